//! 50 editors save over the same version at once: exactly one wins, every other save is a
//! 409 that wrote nothing, and nothing is lost.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_editors_lose_no_update() {
    let s = std::sync::Arc::new(TestServer::start().await);
    s.create_text("shared", "v1").await;
    for round in 0..3 {
        let base = round + 1;
        let mut tasks = Vec::new();
        for editor in 0..50 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let r = s
                    .post(
                        "/api/v1/prompts/shared/versions",
                        &s.admin,
                        json!({"base_version": base, "template": format!("round {round} editor {editor}")}),
                    )
                    .await;
                (editor, r.status, r.body)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (editor, status, body) = t.await.unwrap();
            match status {
                StatusCode::CREATED => winners.push((editor, body)),
                StatusCode::CONFLICT => {
                    assert_eq!(body["error"]["code"], "conflict");
                    assert_eq!(body["error"]["latest_version"], base + 1);
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one save wins");
        let (editor, body) = &winners[0];
        assert_eq!(body["version"], base + 1);
        let latest = s.get("/api/v1/prompts/shared?label=latest", &s.admin).await;
        assert_eq!(
            latest.body["template"],
            format!("round {round} editor {editor}"),
            "the acknowledged save is what is served"
        );
    }
    let versions = s.get("/api/v1/prompts/shared/versions", &s.admin).await;
    assert_eq!(versions.body["items"].as_array().unwrap().len(), 4);
    let audit = s.get("/api/v1/audit?prompt=shared", &s.admin).await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 4, "one event per version, none for refused saves");
    assert_eq!(s.get("/api/v1/audit/verify", &s.admin).await.body["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_different_prompts_all_succeed() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for w in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_text(&format!("w{w}"), "v1").await;
            for v in 1..=10 {
                let r = s
                    .post(
                        &format!("/api/v1/prompts/w{w}/versions"),
                        &s.admin,
                        json!({"base_version": v, "template": format!("v{}", v + 1)}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let verify = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!((verify.body["ok"].as_bool(), verify.body["events"].as_i64()), (Some(true), Some(1 + 32 * 11)));
}
