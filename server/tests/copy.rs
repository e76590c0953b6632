//! `promptledger db copy` through the real binary: a registry copied to the other
//! backend (to another SQLite file when no PostgreSQL is given) and back serves the same
//! content under every label, verifies, and takes new changes.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service::{Durability, Location, Principal, Registry};

async fn copy(from: &str, to: &str) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_promptledger"))
        .args(["db", "copy", "--from", from, "--to", to])
        .env("PROMPTLEDGER_SECRET", "copy-test-secret")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("copied and verified: "), "{stdout}");
}

async fn served(registry: &Registry, name: &str, label: &str) -> Value {
    let sel = domain::model::Selector { label: Some(label.into()), ..Default::default() };
    let served = registry.resolve(&Principal::operator(), name, &sel).await.unwrap();
    serde_json::from_slice(&served.json).unwrap()
}

#[tokio::test]
async fn a_registry_copied_to_the_other_backend_and_back_serves_the_same() {
    let s = TestServer::start().await;
    for p in ["support/reply", "billing/notice"] {
        s.create_text(p, "Hello {{ name }}").await;
        let path = format!("/api/v1/prompts/{}/versions", p.replace('/', "%2F"));
        let r = s
            .post(&path, &s.admin, json!({"base_version": 1, "template": "Hi {{ name }}", "config": {"t": 0.5}}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let labels = format!("/api/v1/prompts/{}/labels/stable", p.replace('/', "%2F"));
        assert_eq!(s.put(&labels, &s.admin, json!({"version": 1})).await.status, StatusCode::OK);
    }
    let before =
        (served(&s.registry, "support/reply", "stable").await, served(&s.registry, "billing/notice", "latest").await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db").display().to_string();
    copy(&s.db_arg(), &file).await;
    // And back, into an empty database of the kind the test runs on.
    let back = match common::postgres() {
        Some(server) => common::fresh_database(&server).await,
        None => dir.path().join("back.db").display().to_string(),
    };
    copy(&file, &back).await;
    s.stop().await;
    for at in [Location::parse(&file), Location::parse(&back)] {
        let registry = Registry::open(&at, Durability::Normal).await.unwrap();
        let after =
            (served(&registry, "support/reply", "stable").await, served(&registry, "billing/notice", "latest").await);
        assert_eq!(after, before, "{}", at.display());
        // Ids continue after the copied ones: a new prompt and version are saved.
        let new: domain::model::NewPrompt =
            serde_json::from_value(json!({"name": "after/copy", "template": "x"})).unwrap();
        registry.create_prompt(&Principal::operator(), new).await.unwrap();
        assert!(registry.verify(&Principal::operator()).await.unwrap().ok);
        registry.close().await;
    }
    // A database that already holds a registry is refused.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_promptledger"))
        .args(["db", "copy", "--from", &file, "--to", &back])
        .env("PROMPTLEDGER_SECRET", "copy-test-secret")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("copy into an empty database"));
}
