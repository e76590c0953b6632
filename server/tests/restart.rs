//! A restart rebuilds the resolve index from the database: everything served before is
//! served the same after.

mod common;

use common::TestServer;
use serde_json::json;
use service::{Durability, Principal, Registry};

#[tokio::test]
async fn the_index_is_rebuilt_from_the_database() {
    if !common::sqlite_only("the copy is made with SQLite's VACUUM INTO (PostgreSQL restarts are in rollouts.rs)") {
        return;
    }
    let s = TestServer::start().await;
    s.create_text("a/one", "one {{ x }}").await;
    s.post("/api/v1/prompts/a%2Fone/versions", &s.admin, json!({"base_version": 1, "template": "two {{ x }}"})).await;
    s.post("/api/v1/prompts/a%2Fone/versions", &s.admin, json!({"base_version": 2, "template": "three {{ x }}"})).await;
    s.put("/api/v1/prompts/a%2Fone/labels/stable", &s.admin, json!({"version": 2})).await;
    s.put("/api/v1/prompts/a%2Fone/labels/canary", &s.admin, json!({"version": 1})).await;
    s.post(
        "/api/v1/prompts",
        &s.admin,
        json!({"name": "b", "messages": [{"role": "user", "content": "hi"}], "tags": ["t"]}),
    )
    .await;
    let paths = [
        "/api/v1/prompts/a%2Fone",
        "/api/v1/prompts/a%2Fone?label=latest",
        "/api/v1/prompts/a%2Fone?label=canary",
        "/api/v1/prompts/a%2Fone/versions/1",
        "/api/v1/prompts/b?label=latest",
        "/api/v1/prompts",
        "/api/v1/prompts/a%2Fone/labels",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(s.get(p, &s.admin).await.body);
    }
    let db = s.db.clone();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    // Copy the database as a backup would (VACUUM INTO), then open a fresh registry on it.
    sqlx::query(&format!("VACUUM INTO '{}'", copy.display()))
        .execute(
            &mut <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite:{}", db.display()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    s.stop().await;
    let registry = Registry::open(&copy, Durability::Full).await.unwrap();
    let op = Principal::operator();
    let served = registry.resolve(&op, "a/one", &Default::default()).await.unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&served.json).unwrap(), before[0]);
    let canary = registry
        .resolve(&op, "a/one", &domain::model::Selector { label: Some("canary".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&canary.json).unwrap(), before[2]);
    let list = registry.list_prompts(&op, &Default::default()).unwrap();
    assert_eq!(serde_json::to_value(&list).unwrap(), before[5]);
    let labels = registry.labels(&op, "a/one").await.unwrap();
    assert_eq!(serde_json::to_value(&labels).unwrap(), before[6]);
    assert!(registry.verify(&op).await.unwrap().ok);
    registry.close().await;
}
