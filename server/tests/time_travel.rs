//! `at=`: what a label served at a past instant, derived from the label history.

mod common;

use std::time::Duration;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;
use service::time::{format_us, now_us};

async fn tick() -> String {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = format_us(now_us());
    tokio::time::sleep(Duration::from_millis(5)).await;
    t
}

#[tokio::test]
async fn labels_at_past_instants() {
    let s = TestServer::start().await;
    let t0 = tick().await; // before the prompt exists
    s.create_text("tt", "one").await;
    let t1 = tick().await; // v1 exists, no stable yet
    s.put("/api/v1/prompts/tt/labels/stable", &s.admin, json!({"version": 1})).await;
    let t2 = tick().await; // stable = 1
    s.post("/api/v1/prompts/tt/versions", &s.admin, json!({"base_version": 1, "template": "two"})).await;
    s.put("/api/v1/prompts/tt/labels/stable", &s.admin, json!({"version": 2})).await;
    let t3 = tick().await; // stable = 2
    s.put("/api/v1/prompts/tt/labels/stable", &s.admin, json!({"version": 1, "reason": "rollback"})).await;
    let t4 = tick().await; // stable = 1 again

    let at = |label: &'static str, t: String| {
        let s = &s;
        async move {
            let r = s.get(&format!("/api/v1/prompts/tt?label={label}&at={}", t.replace('+', "%2B")), &s.admin).await;
            (r.status, r.body["version"].as_i64())
        }
    };
    assert_eq!(at("stable", t0.clone()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(at("stable", t1.clone()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(at("stable", t2.clone()).await, (StatusCode::OK, Some(1)));
    assert_eq!(at("stable", t3.clone()).await, (StatusCode::OK, Some(2)));
    assert_eq!(at("stable", t4.clone()).await, (StatusCode::OK, Some(1)));
    assert_eq!(at("latest", t0).await.0, StatusCode::NOT_FOUND);
    assert_eq!(at("latest", t2.clone()).await, (StatusCode::OK, Some(1)));
    assert_eq!(at("latest", t3.clone()).await, (StatusCode::OK, Some(2)));

    // Any offset is accepted; the default label is stable.
    let r = s.get(&format!("/api/v1/prompts/tt?at={}", t3), &s.admin).await;
    assert_eq!(r.body["template"], "two");
    let rendered = s.post("/api/v1/prompts/tt/render", &s.admin, json!({"label": "stable", "at": t3})).await;
    assert_eq!(rendered.body["text"], "two");
    let bad = s.get("/api/v1/prompts/tt?label=stable&at=last-tuesday", &s.admin).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let both = s.get(&format!("/api/v1/prompts/tt?version=1&at={t2}"), &s.admin).await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    s.stop().await;
}
