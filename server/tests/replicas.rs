//! Three replicas on one PostgreSQL database (run when `PROMPTLEDGER_TEST_POSTGRES` is
//! set, as `scripts/test.sh` does): a change through one is served by the others, racing
//! saves through different replicas leave exactly one winner, and a replica whose
//! notification connection drops catches up from the audit log.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

async fn replicas() -> Option<[TestServer; 3]> {
    common::postgres()?;
    let a = TestServer::start().await;
    let (b, c) = (a.replica().await, a.replica().await);
    Some([a, b, c])
}

/// Waits until `server` serves `version` under `label`; how long it took.
async fn served(server: &TestServer, name: &str, label: &str, version: i64) -> Duration {
    let start = Instant::now();
    loop {
        let r = server.get(&format!("/api/v1/prompts/{name}?label={label}"), &server.admin).await;
        if r.status == StatusCode::OK && r.body["version"] == version {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{} never served v{version}: {}", server.base, r.text);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_change_through_one_replica_is_served_by_every_other() {
    let Some([a, b, c]) = replicas().await else { return };
    a.create_text("greeting", "Hello {{ name }}").await;
    served(&b, "greeting", "latest", 1).await;
    served(&c, "greeting", "latest", 1).await;
    let r = b.post("/api/v1/prompts/greeting/versions", &b.admin, json!({"base_version": 1, "template": "Hi {{ name }}"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut worst = Duration::ZERO;
    for round in 0..10 {
        let version = 1 + round % 2;
        let r = c.put("/api/v1/prompts/greeting/labels/canary", &c.admin, json!({"version": version})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        worst = worst.max(served(&a, "greeting", "canary", version).await);
        worst = worst.max(served(&b, "greeting", "canary", version).await);
    }
    eprintln!("slowest cross-replica visibility of a label move: {worst:?}");
    assert!(worst < Duration::from_secs(1), "a promotion took {worst:?} to reach another replica");
    // Keys are shared: one created through a replica works on the others.
    let key = a.key("shared", domain::access::Scope::Read, None).await;
    assert_eq!(c.get("/api/v1/prompts/greeting?label=latest", &key).await.status, StatusCode::OK);
    let audit = b.get("/api/v1/audit/verify", &b.admin).await;
    assert_eq!(audit.body["ok"], true, "{}", audit.text);
    for s in [a, b, c] {
        s.stop().await;
    }
}

#[tokio::test]
async fn racing_saves_through_different_replicas_leave_one_winner() {
    let Some(servers) = replicas().await else { return };
    servers[0].create_text("race", "v1 {{ x }}").await;
    for s in &servers[1..] {
        served(s, "race", "latest", 1).await;
    }
    let mut saves = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        for j in 0..4 {
            let body = json!({"base_version": 1, "template": format!("from {i}.{j} {{{{ x }}}}")});
            saves.push(s.post("/api/v1/prompts/race/versions", &s.admin, body));
        }
    }
    let replies = futures::future::join_all(saves).await;
    let won: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::CREATED).collect();
    let lost = replies.iter().filter(|r| r.status == StatusCode::CONFLICT).count();
    assert_eq!((won.len(), lost), (1, 11), "{:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
    for s in &servers {
        served(s, "race", "latest", 2).await;
    }
    let versions = servers[2].get("/api/v1/prompts/race/versions", &servers[2].admin).await;
    assert_eq!(versions.body["items"].as_array().map(Vec::len), Some(2), "{}", versions.text);
    let audit = servers[1].get("/api/v1/audit/verify", &servers[1].admin).await;
    assert_eq!(audit.body["ok"], true, "{}", audit.text);
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test]
async fn a_dropped_notification_connection_misses_no_change() {
    let Some([a, b, c]) = replicas().await else { return };
    a.create_text("drop", "one {{ x }}").await;
    served(&b, "drop", "latest", 1).await;
    // Kill every replica's listening connection, and change while they reconnect.
    let mut db = a.sql().await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'promptledger-listener' AND datname = current_database()",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(killed.len(), 3, "each replica listens on its own connection");
    let r = a.post("/api/v1/prompts/drop/versions", &a.admin, json!({"base_version": 1, "template": "two {{ x }}"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    served(&b, "drop", "latest", 2).await;
    served(&c, "drop", "latest", 2).await;
    for s in [a, b, c] {
        s.stop().await;
    }
}

