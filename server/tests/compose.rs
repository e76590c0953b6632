//! Composition (API.md "Composition"): includes by label and by version, strictness
//! across includes, cycles and depth, a label include following its label (ETag
//! included), `at=` composing as of that instant, `raw=true`, and dependents.

mod common;

use std::time::Duration;

use common::{TestServer, enc};
use domain::canonical::sha256_tagged;
use reqwest::StatusCode;
use serde_json::json;
use service::time::{format_us, now_us};

#[tokio::test]
async fn includes_compose_follow_their_label_and_travel_in_time() {
    let s = TestServer::start().await;
    let safety_v1 = s.create_text("shared/safety", "Never share {{ secret_kind }}.").await;
    s.promote("shared/safety", "stable", 1).await;
    s.create_text("shared/sign-off", "-- {{ agent }}").await;

    let bot = s
        .create_text(
            "support/bot",
            "Hi {{ customer }}. {% include \"shared/safety@stable\" %}\n{%- include \"shared/sign-off@1\" %}",
        )
        .await;
    assert_eq!(bot["template"], "Hi {{ customer }}. Never share {{ secret_kind }}.-- {{ agent }}");
    assert_eq!(bot["variables"], json!(["agent", "customer", "secret_kind"]));
    let includes = bot["includes"].as_array().unwrap();
    assert_eq!(includes.len(), 2);
    assert_eq!(includes[0], json!({"name": "shared/safety", "ref": "stable", "version": 1, "hash": safety_v1["hash"]}));
    assert_eq!((includes[1]["ref"].as_str(), includes[1]["version"].as_i64()), (Some("1"), Some(1)));
    let own = bot["hash"].as_str().unwrap();
    let expected = sha256_tagged(
        format!("{own}{}{}", safety_v1["hash"].as_str().unwrap(), includes[1]["hash"].as_str().unwrap()).as_bytes(),
    );
    assert_eq!(bot["resolved_hash"], expected.as_str());
    s.promote("support/bot", "stable", 1).await;

    // Resolve serves the composed text; the ETag is the resolved hash; raw is the stored text.
    let r = s.get("/api/v1/prompts/support%2Fbot", &s.admin).await;
    assert_eq!(r.headers["etag"].to_str().unwrap(), format!("\"{expected}\""));
    assert_eq!(r.body["template"], bot["template"]);
    let raw = s.get("/api/v1/prompts/support%2Fbot?raw=true", &s.admin).await;
    assert!(raw.body["template"].as_str().unwrap().contains("{% include \"shared/safety@stable\" %}"));
    assert_eq!(raw.body["variables"], json!(["customer"]));
    assert_eq!(raw.body["resolved_hash"], expected.as_str());

    // Render is strict across includes: the snippet's variables are required, and render
    // goes through minijinja's include.
    let missing = s
        .post("/api/v1/prompts/support%2Fbot/render", &s.admin, json!({"variables": {"customer": "Ada", "agent": "Bo"}}))
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.body["error"]["missing"], json!(["secret_kind"]));
    let vars = json!({"customer": "Ada", "agent": "Bo", "secret_kind": "passwords"});
    let rendered = s.post("/api/v1/prompts/support%2Fbot/render", &s.admin, json!({"variables": vars})).await;
    assert_eq!(rendered.body["text"], "Hi Ada. Never share passwords.-- Bo");
    assert_eq!(rendered.body["resolved_hash"], expected.as_str());

    // Moving the snippet's label changes what the dependent serves on the next request.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before_move = format_us(now_us());
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.save("shared/safety", 1, "Never share {{ secret_kind }} or card numbers.").await;
    let unchanged = s.get("/api/v1/prompts/support%2Fbot", &s.admin).await;
    assert_eq!(unchanged.headers["etag"], r.headers["etag"], "a new version alone changes nothing under stable");
    let cond = s
        .raw(reqwest::Method::GET, "/api/v1/prompts/support%2Fbot", Some(&s.admin), None, &[(
            "if-none-match",
            r.headers["etag"].to_str().unwrap(),
        )])
        .await;
    assert_eq!(cond.status, StatusCode::NOT_MODIFIED);
    s.promote("shared/safety", "stable", 2).await;
    let moved = s.get("/api/v1/prompts/support%2Fbot", &s.admin).await;
    assert_eq!(moved.body["version"], 1, "the dependent's own version is the same");
    assert_eq!(moved.body["template"], "Hi {{ customer }}. Never share {{ secret_kind }} or card numbers.-- {{ agent }}");
    assert_ne!(moved.headers["etag"], r.headers["etag"]);
    assert_eq!(moved.body["includes"][0]["version"], 2);
    let cond = s
        .raw(reqwest::Method::GET, "/api/v1/prompts/support%2Fbot", Some(&s.admin), None, &[(
            "if-none-match",
            r.headers["etag"].to_str().unwrap(),
        )])
        .await;
    assert_eq!(cond.status, StatusCode::OK, "the old ETag no longer matches");

    // A version include is pinned: a new sign-off changes nothing.
    s.save("shared/sign-off", 1, "Regards, {{ agent }}").await;
    s.promote("shared/sign-off", "stable", 2).await;
    let pinned = s.get("/api/v1/prompts/support%2Fbot", &s.admin).await;
    assert!(pinned.body["template"].as_str().unwrap().ends_with("-- {{ agent }}"));

    // at= composes as of that instant: the snippet's stable as it was then.
    let then = s.get(&format!("/api/v1/prompts/support%2Fbot?label=stable&at={}", before_move.replace('+', "%2B")), &s.admin).await;
    assert_eq!(then.status, StatusCode::OK, "{}", then.text);
    assert_eq!(then.body["template"], bot["template"]);
    assert_eq!(then.body["resolved_hash"], expected.as_str());
    assert_eq!(then.headers["etag"].to_str().unwrap(), format!("\"{expected}\""));

    // Dependents: every version that includes the prompt, and the labels serving it.
    let deps = s.get("/api/v1/prompts/shared%2Fsafety/dependents", &s.admin).await;
    assert_eq!(deps.body["items"], json!([{"name": "support/bot", "version": 1, "ref": "stable", "labels": ["latest", "stable"]}]));
    let none = s.get("/api/v1/prompts/support%2Fbot/dependents", &s.admin).await;
    assert_eq!(none.body["items"], json!([]));

    // The versions list is composed as resolve serves it; a diff shows either text.
    let list = s.get("/api/v1/prompts/support%2Fbot/versions", &s.admin).await;
    assert_eq!(list.body["items"][0]["resolved_hash"], moved.body["resolved_hash"]);
    assert_eq!(list.body["items"][0]["template"], moved.body["template"]);
    s.save("support/bot", 1, "Hey {{ customer }}. {% include \"shared/safety@stable\" %}").await;
    let stored = s.get("/api/v1/prompts/support%2Fbot/diff?from=1&to=2", &s.admin).await;
    assert!(stored.body["unified"].as_str().unwrap().contains("{% include"), "{}", stored.text);
    let composed = s.get("/api/v1/prompts/support%2Fbot/diff?from=1&to=2&composed=true", &s.admin).await;
    let unified = composed.body["unified"].as_str().unwrap();
    assert!(unified.contains("card numbers") && !unified.contains("{% include"), "{unified}");

    // After a restart the index composes the same way from storage.
    let s = s.restart().await;
    let again = s.get("/api/v1/prompts/support%2Fbot", &s.admin).await;
    assert_eq!(again.headers["etag"], moved.headers["etag"]);
    assert_eq!(again.body["template"], moved.body["template"]);
    s.stop().await;
}

#[tokio::test]
async fn bad_includes_are_refused_at_save_and_at_label_moves() {
    let s = TestServer::start().await;
    let create = |name: &str, template: &str| {
        json!({"name": name, "type": "text", "template": template, "config": {}})
    };
    let unknown = s.post("/api/v1/prompts", &s.admin, create("a", "{% include \"nope@stable\" %}")).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_include"));
    s.create_text("snippet", "x").await;
    let no_label = s.post("/api/v1/prompts", &s.admin, create("a", "{% include \"snippet@stable\" %}")).await;
    assert_eq!(no_label.code(), "unknown_include");
    let no_version = s.post("/api/v1/prompts", &s.admin, create("a", "{% include \"snippet@9\" %}")).await;
    assert_eq!(no_version.code(), "unknown_include");
    let dynamic = s.post("/api/v1/prompts", &s.admin, create("a", "{% include some_name %}")).await;
    assert_eq!(dynamic.code(), "template_syntax");
    let chat = s
        .post(
            "/api/v1/prompts",
            &s.admin,
            json!({"name": "chatty", "type": "chat", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::CREATED);
    let of_chat = s.post("/api/v1/prompts", &s.admin, create("a", "{% include \"chatty@1\" %}")).await;
    assert_eq!(of_chat.code(), "unknown_include");
    // Chat messages may include text prompts.
    let chat_incl = s
        .post(
            "/api/v1/prompts",
            &s.admin,
            json!({"name": "chat2", "type": "chat", "messages": [{"role": "system", "content": "{% include \"snippet@latest\" %}!"}]}),
        )
        .await;
    assert_eq!(chat_incl.status, StatusCode::CREATED, "{}", chat_incl.text);
    assert_eq!(chat_incl.body["messages"][0]["content"], "x!");

    // A cycle through `latest`: a includes b@latest; b's next version would include a@latest.
    s.create_text("b", "B").await;
    s.create_text("a", "A {% include \"b@latest\" %}").await;
    let cycle = s
        .post("/api/v1/prompts/b/versions", &s.admin, json!({"base_version": 1, "template": "B {% include \"a@latest\" %}"}))
        .await;
    assert_eq!((cycle.status, cycle.code()), (StatusCode::UNPROCESSABLE_ENTITY, "include_cycle"));
    assert_eq!(cycle.body["error"]["path"], json!(["b@2", "a@latest", "b@latest", "a@latest"]));
    assert_eq!(s.get("/api/v1/prompts/b?label=latest", &s.admin).await.body["version"], 1, "nothing was written");

    // A cycle closed by a label move: c@stable includes d@stable; d's v2 includes c@stable
    // (allowed while d@stable is v1, which includes nothing), and moving d's stable to it is refused.
    s.create_text("d", "D").await;
    s.promote("d", "stable", 1).await;
    s.create_text("c", "C {% include \"d@stable\" %}").await;
    s.promote("c", "stable", 1).await;
    s.save("d", 1, "D {% include \"c@stable\" %}").await;
    let closing = s.put("/api/v1/prompts/d/labels/stable", &s.admin, json!({"version": 2})).await;
    assert_eq!((closing.status, closing.code()), (StatusCode::UNPROCESSABLE_ENTITY, "include_cycle"));
    assert_eq!(s.get("/api/v1/prompts/d", &s.admin).await.body["version"], 1);

    // Depth: a chain of 11 includes is refused, 10 is fine.
    s.create_text("l0", "end").await;
    for i in 1..=10 {
        s.create_text(&format!("l{i}"), &format!("{{% include \"l{}@1\" %}}", i - 1)).await;
    }
    let deep = s.post("/api/v1/prompts", &s.admin, create("l11", "{% include \"l10@1\" %}")).await;
    assert_eq!((deep.status, deep.code()), (StatusCode::UNPROCESSABLE_ENTITY, "include_depth"));
    assert_eq!(s.get("/api/v1/prompts/l10?label=latest", &s.admin).await.body["template"], "end");
    // ... and a label move that would nest a prompt including it 11 levels deep.
    s.create_text("deep-top", "x").await;
    s.promote("deep-top", "stable", 1).await;
    s.create_text("deep-user", "{% include \"deep-top@stable\" %}").await;
    s.promote("deep-user", "stable", 1).await;
    s.save("deep-top", 1, "{% include \"l9@1\" %}").await;
    let too_deep = s.put("/api/v1/prompts/deep-top/labels/stable", &s.admin, json!({"version": 2})).await;
    assert_eq!((too_deep.status, too_deep.code()), (StatusCode::UNPROCESSABLE_ENTITY, "include_depth"), "{}", too_deep.text);
    assert_eq!(s.get("/api/v1/prompts/deep-user", &s.admin).await.body["template"], "x");
    s.stop().await;
}

async fn impact_done(s: &TestServer, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.get(&format!("/api/v1/impact/{id}"), &s.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.body["status"] == "finished" {
            return r.body;
        }
        assert!(std::time::Instant::now() < deadline, "impact check did not finish: {}", r.text);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn an_impact_check_runs_every_dependents_suites_and_gates_the_shared_label() {
    let s = TestServer::start().await;
    let mock = common::provider::MockProvider::start().await;
    let r = s.put("/api/v1/providers/local", &s.admin, json!({"kind": "openai", "base_url": format!("{}/v1", mock.base)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The mock answers what follows SAY:, so the snippet decides whether the answer apologises.
    let create = |name: &str, template: &str| json!({"name": name, "template": template, "config": {"model": "local/m"}});
    assert_eq!(s.post("/api/v1/prompts", &s.admin, create("shared/tone", "SAY:")).await.status, StatusCode::CREATED);
    s.promote("shared/tone", "stable", 1).await;
    s.save("shared/tone", 1, "SAY:Sorry, ").await;
    let suite = json!({"cases": [{"vars": {"m": "thank you"}, "assert": [{"type": "not-icontains", "value": "sorry"}]}]});
    for name in ["bots/a", "bots/b", "bots/no-suite"] {
        let r = s.post("/api/v1/prompts", &s.admin, create(name, "{% include \"shared/tone@stable\" %}{{ m }}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        s.promote(name, "stable", 1).await;
        if name != "bots/no-suite" {
            assert_eq!(s.put(&format!("/api/v1/prompts/{}/suites/smoke", enc(name)), &s.admin, suite.clone()).await.status, StatusCode::OK);
        }
    }
    // A pinned include is not affected by the label.
    s.post("/api/v1/prompts", &s.admin, create("bots/pinned", "{% include \"shared/tone@1\" %}{{ m }}")).await;
    s.put("/api/v1/prompts/bots%2Fpinned/suites/smoke", &s.admin, suite.clone()).await;

    let r = s.post("/api/v1/prompts/shared%2Ftone/impact", &s.admin, json!({"version": 2})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let impact = impact_done(&s, r.body["id"].as_str().unwrap()).await;
    let runs = impact["runs"].as_array().unwrap();
    let dependents: Vec<&str> = runs.iter().map(|r| r["dependent"].as_str().unwrap()).collect();
    assert_eq!(dependents, ["bots/a", "bots/b"], "{impact}");
    for row in runs {
        assert_eq!((row["label"].as_str(), row["suite"].as_str()), (Some("stable"), Some("smoke")));
        assert_eq!((row["now"]["status"].as_str(), row["now"]["pass_rate"].as_f64()), (Some("passed"), Some(1.0)), "{row}");
        assert_eq!((row["candidate"]["status"].as_str(), row["candidate"]["pass_rate"].as_f64()), (Some("failed"), Some(0.0)));
        assert_eq!(row["regression"], true);
    }
    assert_eq!(impact["passed"], false);

    // The gate on stable: the snippet has no suite of its own, the prompts including it do.
    let gate = json!({"require_eval": {"suite": "smoke", "min_pass_rate": 1.0}});
    assert_eq!(s.put("/api/v1/labels/stable/policy", &s.admin, gate).await.status, StatusCode::OK);
    let refused = s.put("/api/v1/prompts/shared%2Ftone/labels/stable", &s.admin, json!({"version": 2})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "eval_gate"));
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("impact check"), "{}", refused.text);
    s.save("shared/tone", 2, "SAY:Kindly, ").await;
    let refused = s.put("/api/v1/prompts/shared%2Ftone/labels/stable", &s.admin, json!({"version": 3})).await;
    assert_eq!(refused.code(), "eval_gate", "no impact check of version 3 yet");
    let r = s.post("/api/v1/prompts/shared%2Ftone/impact", &s.admin, json!({"version": 3})).await;
    let impact = impact_done(&s, r.body["id"].as_str().unwrap()).await;
    assert_eq!(impact["passed"], true, "{impact}");
    assert!(impact["runs"].as_array().unwrap().iter().all(|r| r["regression"] == false));
    let moved = s.put("/api/v1/prompts/shared%2Ftone/labels/stable", &s.admin, json!({"version": 3})).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    let rendered = s.post("/api/v1/prompts/bots%2Fa/render", &s.admin, json!({"variables": {"m": "hi"}})).await;
    assert_eq!(rendered.body["text"], "SAY:Kindly, hi");
    // The label move names the prompts whose served content it changed.
    let audit = s.get("/api/v1/audit?action=label.moved&prompt=shared%2Ftone", &s.admin).await;
    let deps = &audit.body["items"][0]["detail"]["dependents"];
    assert_eq!(deps.as_array().map(Vec::len), Some(3), "{}", audit.text);
    assert_eq!(s.get("/api/v1/impact/imp_nope", &s.admin).await.status, StatusCode::NOT_FOUND);
    s.stop().await;
}
