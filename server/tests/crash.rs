//! Kill the real server with SIGKILL at random moments during a stream of writes, 20
//! times: every acknowledged write is still there after restart, the database passes
//! `PRAGMA integrity_check` (SQLite), and the audit chain verifies. On PostgreSQL too
//! when the tests run against one.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

const EXE: &str = env!("CARGO_BIN_EXE_promptledger");
const WRITERS: usize = 4;

fn start(db: &str) -> (Child, String) {
    let mut child = Command::new(EXE)
        .arg("--db")
        .arg(db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {line}")).to_owned();
    (child, base)
}

#[derive(Default)]
struct Acked {
    /// (prompt, version, hash) of every save the server acknowledged.
    versions: Vec<(String, i64, String)>,
    /// (prompt, reason) of every label move the server acknowledged.
    moves: Vec<(String, String)>,
}

async fn writer(
    http: reqwest::Client,
    base: String,
    key: String,
    prompt: String,
    acked: Arc<Mutex<Acked>>,
    round: usize,
) {
    let auth = format!("Bearer {key}");
    let url = format!("{base}/api/v1/prompts/{prompt}");
    let Ok(r) = http.get(format!("{url}?label=latest")).header("authorization", &auth).send().await else { return };
    let Ok(latest) = r.json::<Value>().await else { return };
    let mut version = latest["version"].as_i64().unwrap();
    for i in 0.. {
        let body = json!({"base_version": version, "template": format!("round {round} write {i} of {prompt}")});
        let Ok(r) = http.post(format!("{url}/versions")).header("authorization", &auth).json(&body).send().await else {
            return;
        };
        if r.status() != 201 {
            return;
        }
        let Ok(v) = r.json::<Value>().await else { return };
        version = v["version"].as_i64().unwrap();
        acked.lock().unwrap().versions.push((prompt.clone(), version, v["hash"].as_str().unwrap().to_owned()));
        let reason = format!("r{round}-{i}");
        let Ok(r) = http
            .put(format!("{url}/labels/canary"))
            .header("authorization", &auth)
            .json(&json!({"version": version, "reason": reason}))
            .send()
            .await
        else {
            return;
        };
        if r.status() != 200 {
            return;
        }
        acked.lock().unwrap().moves.push((prompt.clone(), reason));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = match common::postgres() {
        Some(server) => common::fresh_database(&server).await,
        None => dir.path().join("crash.db").display().to_string(),
    };
    let out = Command::new(EXE)
        .arg("--db")
        .arg(&db)
        .args(["apikey", "create", "--name", "crash", "--scope", "admin"])
        .output()
        .unwrap();
    let key = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().to_owned();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = rand::rng();

    let (mut child, mut base) = start(&db);
    for w in 0..WRITERS {
        let r = http
            .post(format!("{base}/api/v1/prompts"))
            .bearer_auth(&key)
            .json(&json!({"name": format!("w{w}"), "template": "start"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    for round in 0..20 {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(http.clone(), base.clone(), key.clone(), format!("w{w}"), acked.clone(), round))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..300))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let restarted = start(&db);
        child = restarted.0;
        let base_now = restarted.1;
        // Everything acknowledged so far is there, unchanged.
        let snapshot: Vec<_> = acked.lock().unwrap().versions.clone();
        for (prompt, version, hash) in &snapshot {
            let r = http
                .get(format!("{base_now}/api/v1/prompts/{prompt}/versions/{version}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "round {round}: {prompt} v{version} lost");
            assert_eq!(r.json::<Value>().await.unwrap()["hash"].as_str().unwrap(), hash);
        }
        let moves: Vec<_> = acked.lock().unwrap().moves.clone();
        for w in 0..WRITERS {
            let prompt = format!("w{w}");
            let labels: Value = http
                .get(format!("{base_now}/api/v1/prompts/{prompt}/labels"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let reasons: Vec<&str> =
                labels["history"].as_array().unwrap().iter().map(|h| h["reason"].as_str().unwrap()).collect();
            for (_, reason) in moves.iter().filter(|(p, _)| *p == prompt) {
                assert!(reasons.contains(&reason.as_str()), "round {round}: label move {reason} of {prompt} lost");
            }
        }
        base = base_now;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let total = acked.lock().unwrap().versions.len();
    assert!(total >= 20, "the stream wrote too little to mean anything ({total} acknowledged saves)");
    if common::postgres().is_none() {
        let mut conn = SqliteConnection::connect(&format!("sqlite:{db}")).await.unwrap();
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.unwrap();
        assert_eq!(integrity, "ok");
        conn.close().await.unwrap();
    }
    let verify = Command::new(EXE).arg("--db").arg(&db).args(["audit", "verify"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stdout));
    println!("{total} acknowledged saves survived 20 SIGKILLs");
}
