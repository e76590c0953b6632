//! Lockfiles and the registry as files, through the real binary (API.md "Command line"):
//! `lock` / `verify` exit codes and the table of what moved; `export` then `apply` into a
//! second, empty server serves the same hashes under every label; a second apply plans
//! nothing; an edited file makes one new version; a version saved meanwhile is a
//! conflict, never overwritten; `--db` works as `--server` does.

mod common;

use std::path::Path;

use common::{TestServer, enc};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Runs the binary; returns (exit code, stdout, stderr).
async fn cli(args: &[&str], server: Option<&TestServer>) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_promptledger"));
    cmd.args(args).env_remove("PROMPTLEDGER_DB").env_remove("PROMPTLEDGER_SERVER");
    if let Some(s) = server {
        cmd.arg("--server").arg(&s.base).env("PROMPTLEDGER_API_KEY", &s.admin);
    }
    let out = cmd.output().await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Every prompt's labels (latest included) with what each serves: (prompt, label) -> (hash, resolved_hash).
async fn served(s: &TestServer) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for p in s.get("/api/v1/prompts?limit=500", &s.admin).await.body["items"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let labels = s.get(&format!("/api/v1/prompts/{}/labels", enc(name)), &s.admin).await;
        for label in labels.body["labels"].as_object().unwrap().keys() {
            let v = s.get(&format!("/api/v1/prompts/{}?label={label}", enc(name)), &s.admin).await.body;
            out.push((name.to_owned(), label.clone(), v["hash"].as_str().unwrap().to_owned(), v["resolved_hash"].as_str().unwrap().to_owned()));
        }
    }
    out
}

async fn registry(s: &TestServer) {
    s.create_text("shared/safety", "Never share {{ secret_kind }}.").await;
    s.promote("shared/safety", "stable", 1).await;
    s.create_text("support/bot", "Hi {{ customer }}. {% include \"shared/safety@stable\" %}").await;
    s.promote("support/bot", "stable", 1).await;
    s.save("support/bot", 1, "Hello {{ customer }}! {% include \"shared/safety@stable\" %}").await;
    s.promote("support/bot", "beta", 2).await;
    let chat = json!({"name": "support/chat", "type": "chat", "description": "Chat", "tags": ["support", "chat"],
        "messages": [{"role": "system", "content": "Be brief.\n{% include \"shared/safety@1\" %}"}, {"role": "user", "content": "{{ q }}"}],
        "config": {"model": "gpt-4o-mini", "temperature": 0.2, "params": {"stop": ["\n\n"], "n": 1}}});
    assert_eq!(s.post("/api/v1/prompts", &s.admin, chat).await.status, StatusCode::CREATED);
    let suite = json!({"threshold": 0.5, "cases": [{"description": "greets", "vars": {"customer": "Ada", "secret_kind": "keys"},
        "assert": [{"type": "icontains", "value": "ada"}]}]});
    let r = s.put("/api/v1/prompts/support%2Fbot/suites/smoke", &s.admin, suite).await;
    assert!(r.status.is_success(), "{}", r.text);
}

#[tokio::test]
async fn lock_and_verify_name_what_moved() {
    let s = TestServer::start().await;
    registry(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.lock");
    let file = file.to_str().unwrap();

    let (code, out, err) = cli(&["lock", "support/bot@stable", "shared/safety@stable", "support/chat@1", "--file", file], Some(&s)).await;
    assert_eq!(code, 0, "{out}{err}");
    let lock: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(lock["prompts"].as_array().unwrap().len(), 3);
    let bot = &lock["prompts"][0];
    let resolved = s.get("/api/v1/prompts/support%2Fbot", &s.admin).await;
    assert_eq!((bot["name"].as_str(), bot["ref"].as_str(), bot["version"].as_i64()), (Some("support/bot"), Some("stable"), Some(1)));
    assert_eq!(bot["resolved_hash"], resolved.body["resolved_hash"]);
    assert_eq!(bot["includes"][0]["name"], "shared/safety");
    assert!(lock["audit_head"].as_str().unwrap().starts_with("sha256:"));
    let api = s.post("/api/v1/lock", &s.admin, json!({"refs": ["support/bot@stable"]})).await;
    assert_eq!(api.body["prompts"][0], *bot);

    let (code, out, _) = cli(&["verify", "--file", file], Some(&s)).await;
    assert_eq!(code, 0, "{out}");

    // The snippet's label moves: the snippet's own ref and the prompt including it moved.
    s.save("shared/safety", 1, "Never share {{ secret_kind }}, ever.").await;
    s.promote("shared/safety", "stable", 2).await;
    let (code, out, _) = cli(&["verify", "--file", file], Some(&s)).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("support/bot@stable") && out.contains("an include moved: shared/safety@stable 1 → 2"), "{out}");
    assert!(out.contains("shared/safety@stable") && out.contains("the label moved: version 1 → 2"), "{out}");
    assert!(!out.contains("support/chat@1"), "a pinned version did not move: {out}");

    // Usage errors are 2.
    assert_eq!(cli(&["verify", "--file", "/nonexistent/prompts.lock"], Some(&s)).await.0, 2);
    assert_eq!(cli(&["lock"], Some(&s)).await.0, 2);
    assert_eq!(cli(&["lock", "nope@stable", "--file", file], Some(&s)).await.0, 2);
    s.stop().await;
}

#[tokio::test]
async fn export_then_apply_round_trips_and_plans_nothing_the_second_time() {
    let a = TestServer::start().await;
    registry(&a).await;
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("registry");
    let files_arg = files.to_str().unwrap();

    let (code, out, err) = cli(&["export", files_arg], Some(&a)).await;
    assert_eq!(code, 0, "{out}{err}");
    let bot = std::fs::read_to_string(files.join("support/bot.toml")).unwrap();
    assert!(bot.contains("{% include \"shared/safety@stable\" %}"), "the stored text, not the composed one:\n{bot}");
    assert!(bot.contains("[suites.smoke]") || bot.contains("suites.smoke"), "{bot}");
    assert!(Path::new(&files.join("shared/safety.toml")).exists());

    // A dry run plans and changes nothing.
    let b = TestServer::start().await;
    let (code, out, _) = cli(&["apply", files_arg, "--dry-run"], Some(&b)).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("planned") && out.contains("create"), "{out}");
    assert_eq!(b.get("/api/v1/prompts/support%2Fbot", &b.admin).await.status, StatusCode::NOT_FOUND);

    let (code, out, err) = cli(&["apply", files_arg], Some(&b)).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(served(&a).await, served(&b).await, "the same content under every label");
    assert_eq!(b.get("/api/v1/prompts/support%2Fbot/suites/smoke", &b.admin).await.body["hash"],
               a.get("/api/v1/prompts/support%2Fbot/suites/smoke", &a.admin).await.body["hash"]);

    // The second apply plans nothing.
    let (code, out, _) = cli(&["apply", files_arg], Some(&b)).await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("applied")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l.contains("unchanged")), "{out}");

    // Editing a file's description and tags changes them, and makes no version.
    let chat = std::fs::read_to_string(files.join("support/chat.toml")).unwrap();
    assert!(chat.contains("description = \"Chat\""), "{chat}");
    let edited = chat.replace("description = \"Chat\"", "description = \"Chat with customers\"");
    let edited: Vec<String> = edited
        .lines()
        .map(|l| match l.trim() {
            // The tag, in `tags = [...]` on one line or one item a line.
            t if t.starts_with("tags") || t == "\"chat\"," || t == "\"chat\"" => l.replace("\"chat\"", "\"live-chat\""),
            _ => l.to_owned(),
        })
        .collect();
    std::fs::write(files.join("support/chat.toml"), edited.join("\n")).unwrap();
    let (code, out, _) = cli(&["apply", files_arg], Some(&b)).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.contains("support/chat") && l.contains("details")), "{out}");
    let listed = b.get("/api/v1/prompts?tag=live-chat", &b.admin).await.body;
    assert_eq!(listed["items"][0]["description"], "Chat with customers", "{listed}");
    assert_eq!(listed["items"][0]["latest_version"], a.get("/api/v1/prompts?tag=chat", &a.admin).await.body["items"][0]["latest_version"]);

    // Editing a file's content makes one new version. The files are the desired state: a
    // label that names the edited content (beta) serves the new version; one that names
    // an older version (stable) stays.
    let latest_before = b.get("/api/v1/prompts/support%2Fbot?label=latest", &b.admin).await.body["version"].as_i64().unwrap();
    std::fs::write(files.join("support/bot.toml"), bot.replace("Hello {{ customer }}!", "Hello there, {{ customer }}!")).unwrap();
    let (code, out, _) = cli(&["apply", files_arg], Some(&b)).await;
    assert_eq!(code, 0, "{out}");
    let now = b.get("/api/v1/prompts/support%2Fbot?label=latest", &b.admin).await.body;
    assert_eq!(now["version"].as_i64(), Some(latest_before + 1));
    assert!(now["template"].as_str().unwrap().starts_with("Hello there, {{ customer }}!"));
    assert_eq!(b.get("/api/v1/prompts/support%2Fbot?label=beta", &b.admin).await.body["version"].as_i64(), Some(latest_before + 1));
    assert_eq!(b.get("/api/v1/prompts/support%2Fbot?label=stable", &b.admin).await.body["version"], 1);

    // A version saved in the registry after the export: the file's edit is a conflict.
    b.save("support/bot", latest_before + 1, "Someone else's edit").await;
    let (code, out, _) = cli(&["apply", files_arg], Some(&b)).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("conflict"), "{out}");
    assert_eq!(b.get("/api/v1/prompts/support%2Fbot?label=latest", &b.admin).await.body["template"], "Someone else's edit");

    // --db: the same files into a database file directly, then locked from it.
    let db = dir.path().join("direct.db");
    let (code, out, err) = cli(&["apply", files_arg, "--db", db.to_str().unwrap()], None).await;
    assert_eq!(code, 0, "{out}{err}");
    let lockfile = dir.path().join("direct.lock");
    let (code, _, err) = cli(&["lock", "shared/safety@stable", "--file", lockfile.to_str().unwrap(), "--db", db.to_str().unwrap()], None).await;
    assert_eq!(code, 0, "{err}");
    let lock: Value = serde_json::from_str(&std::fs::read_to_string(&lockfile).unwrap()).unwrap();
    let safety = a.get("/api/v1/prompts/shared%2Fsafety", &a.admin).await.body;
    assert_eq!(lock["prompts"][0]["hash"], safety["hash"]);
    a.stop().await;
    b.stop().await;
}
