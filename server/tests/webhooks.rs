//! Webhooks against local receivers on loopback: signed deliveries (the signature is
//! checked here with an independent HMAC), retries after 500s, a delivery log, failure
//! after the last attempt, and an endpoint that hangs never holding up a change.

mod common;

use std::time::Duration;

use common::hooks::{eventually, receiver};
use common::{TestServer, enc};
use domain::access::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service::webhooks::WebhookSettings;
use sha2::{Digest, Sha256};

/// HMAC-SHA256 (RFC 2104), written out here so the check does not trust the server's code.
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let hashed;
    let key = if key.len() > 64 {
        hashed = Sha256::digest(key);
        &hashed[..]
    } else {
        key
    };
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    hex::encode(Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize())
}

#[tokio::test]
async fn deliveries_are_signed_retried_logged_and_never_hold_up_a_change() {
    let server = TestServer::start().await;
    server.registry.configure_webhooks(WebhookSettings {
        poll: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
        base_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(200),
        max_attempts: 4,
    });
    let (flaky_url, flaky) = receiver(2, false).await;
    let (dead_url, _dead) = receiver(usize::MAX, false).await;
    let (hung_url, hung) = receiver(0, true).await;

    // Admins only; bad URLs and events are 422.
    let writer = server.key("writer", Scope::Write, None).await;
    let body = json!({"url": flaky_url, "events": ["label.moved", "version.created"]});
    assert_eq!(server.post("/api/v1/webhooks", &writer, body.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        server
            .post("/api/v1/webhooks", &server.admin, json!({"url": "ftp://x", "events": ["label.moved"]}))
            .await
            .code(),
        "invalid_url"
    );
    assert_eq!(
        server
            .post("/api/v1/webhooks", &server.admin, json!({"url": flaky_url, "events": ["everything"]}))
            .await
            .code(),
        "invalid_events"
    );
    let created = server.post("/api/v1/webhooks", &server.admin, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = server.get("/api/v1/webhooks", &server.admin).await;
    assert!(!listed.text.contains(&secret), "the secret is shown once");
    for url in [&dead_url, &hung_url] {
        let r = server.post("/api/v1/webhooks", &server.admin, json!({"url": url, "events": ["label.moved"]})).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let dead_id = server.get("/api/v1/webhooks", &server.admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["url"] == dead_url.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A change raises events; the hung endpoint gets its request and never answers, and
    // the next change is not held up by it.
    server.create_text("support/hello", "Hello {{ name }}").await;
    let moved = server
        .put(
            &format!("/api/v1/prompts/{}/labels/stable", enc("support/hello")),
            &server.admin,
            json!({"version": 1, "reason": "go"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    eventually("the hung endpoint's request", async || !hung.got.lock().is_empty()).await;
    let again = server
        .put(
            &format!("/api/v1/prompts/{}/labels/canary", enc("support/hello")),
            &server.admin,
            json!({"version": 1, "reason": "go"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "a change goes through while an endpoint hangs");

    // The flaky endpoint: two 500s, then delivered; 3 events (version, stable, canary).
    eventually("three deliveries to the flaky endpoint", async || {
        let log = server.get(&format!("/api/v1/webhooks/{id}/deliveries"), &server.admin).await;
        log.body["items"].as_array().unwrap().iter().filter(|d| d["status"] == "delivered").count() == 3
    })
    .await;
    let log = server.get(&format!("/api/v1/webhooks/{id}/deliveries"), &server.admin).await.body;
    let items = log["items"].as_array().unwrap();
    let events: Vec<&str> = items.iter().map(|d| d["event"].as_str().unwrap()).collect();
    assert_eq!(events.iter().filter(|e| **e == "label.moved").count(), 2, "{log}");
    assert_eq!(events.iter().filter(|e| **e == "version.created").count(), 1, "{log}");
    let total_attempts: i64 = items.iter().map(|d| d["attempts"].as_i64().unwrap()).sum();
    assert_eq!(total_attempts, 5, "two 500s retried: {log}");
    assert!(items.iter().all(|d| d["response_code"] == 204), "{log}");

    // Every request is signed: HMAC-SHA256 with the secret over "<t>.<body>".
    let got = flaky.got.lock().clone();
    assert_eq!(got.len(), 5);
    for (headers, body) in &got {
        let sig = headers["x-promptledger-signature"].to_str().unwrap();
        let (t, v1) = sig.strip_prefix("t=").unwrap().split_once(",v1=").unwrap();
        assert_eq!(v1, hmac_sha256(secret.as_bytes(), format!("{t}.{body}").as_bytes()), "bad signature on {body}");
        let t: i64 = t.parse().unwrap();
        assert!((t - chrono_now()).abs() < 60);
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["event"], headers["x-promptledger-event"].to_str().unwrap());
        assert_eq!(payload["data"]["prompt"], "support/hello");
    }
    let moved_payload: Value = got
        .iter()
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap())
        .find(|p| p["data"]["label"] == "stable")
        .unwrap();
    assert_eq!(
        (moved_payload["data"]["action"].as_str(), moved_payload["data"]["version"].as_i64()),
        (Some("label.moved"), Some(1))
    );

    // An endpoint that always fails is given up after the last attempt, with the code.
    eventually("the dead endpoint to be given up", async || {
        let log = server.get(&format!("/api/v1/webhooks/{dead_id}/deliveries"), &server.admin).await;
        let items = log.body["items"].as_array().unwrap().clone();
        items.len() == 2 && items.iter().all(|d| d["status"] == "failed")
    })
    .await;
    let dead_log = server.get(&format!("/api/v1/webhooks/{dead_id}/deliveries"), &server.admin).await.body;
    assert!(
        dead_log["items"].as_array().unwrap().iter().all(|d| d["attempts"] == 4 && d["response_code"] == 500),
        "{dead_log}"
    );

    // A deleted webhook gets nothing more; the deletion is audited.
    assert_eq!(
        server.call(reqwest::Method::DELETE, &format!("/api/v1/webhooks/{id}"), &server.admin, None).await.status,
        StatusCode::OK
    );
    server
        .put(
            &format!("/api/v1/prompts/{}/labels/stable", enc("support/hello")),
            &server.admin,
            json!({"version": 1, "reason": "same"}),
        )
        .await;
    server.create_text("support/bye", "Bye").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(flaky.got.lock().len(), 5);
    let audit = server.get("/api/v1/audit?action=webhook.deleted", &server.admin).await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(server.get("/api/v1/audit/verify", &server.admin).await.body["ok"], true);
    server.stop().await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
