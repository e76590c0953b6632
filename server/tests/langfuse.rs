//! The Langfuse-compatible prompt API driven by the published `langfuse` SDK (5.2.0 from
//! PyPI, in the virtualenv `scripts/setup.sh --test` makes): create text and chat
//! prompts, get by label and by version, compile, update labels, the fallback on a 404,
//! auth_check and the list; then checks on the server that it all went through the
//! service layer (labels, audit).

mod common;

use common::TestServer;
use domain::access::Scope;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_langfuse_sdk_works_unchanged_with_only_host_and_keys() {
    // Set by scripts/env.sh; a run without the virtualenv says how to get it.
    let python = std::env::var("PROMPTLEDGER_TEST_PYTHON").unwrap_or_default();
    assert!(
        std::path::Path::new(&python).exists(),
        "the langfuse SDK's virtualenv is missing ({python:?}): run `scripts/setup.sh --test` and `. scripts/env.sh`"
    );
    let s = TestServer::start().await;
    let key = s.key("langfuse-sdk", Scope::Admin, None).await;
    let app_key = s.key("langfuse-app", Scope::App, None).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/langfuse_journey.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .env("PL_HOST", &s.base)
        .env("PL_KEY", &key)
        .env("PL_APP_KEY", &app_key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK journey failed:\n{stdout}\n{stderr}");
    let got: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_eq!(got["auth"], true);
    assert_eq!(got["created"], json!({"version": 1, "labels": ["latest", "production"], "config": {"model": "gpt-4o-mini", "temperature": 0.2}}));
    assert_eq!(got["second"]["version"], 2);
    assert_eq!(got["production"], json!({"version": 1, "compiled": "Hello Ada, how can we help?", "is_fallback": false}));
    assert_eq!(got["by_version"], json!({"version": 2, "compiled": "Hi Ada! What can we do for you?"}));
    assert_eq!(got["staging"], 2);
    assert_eq!(got["app_key"], "Hi Bo! What can we do for you?");
    assert_eq!(got["promoted"], 2);
    assert_eq!(got["chat"]["compiled"], json!([{"role": "system", "content": "You help Acme."}, {"role": "user", "content": "Where is my parcel?"}]));
    assert_eq!(
        got["placeholder"],
        json!([{"role": "system", "content": "You help Acme."}, {"role": "user", "content": "Hi"},
               {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "And now?"}])
    );
    // The same prompt rendered by promptledger itself: the history goes in as messages.
    let rendered = s
        .post(
            "/api/v1/prompts/sdk%2Fchat-history/render",
            &s.admin,
            json!({"variables": {"company": "Acme", "question": "And now?", "history": [{"role": "user", "content": "Hi"}]}}),
        )
        .await;
    assert_eq!(rendered.body["messages"].as_array().map(Vec::len), Some(3), "{}", rendered.text);
    assert_eq!(got["fallback"], json!({"is_fallback": true, "compiled": "Fallback for Ada"}));
    assert_eq!(got["missing_raises"], "NotFoundError");
    assert_eq!(got["listed"], json!(["sdk/chat", "sdk/chat-history", "sdk/greeting"]));
    assert_eq!(
        got["listed_legacy"],
        json!([{"versions": [1], "labels": ["legacy"], "config": {"model": "gpt-4o-mini", "temperature": 0.2}}])
    );

    // The traced generation arrived over OTLP, linked to the version the prompt served.
    let traced = &got["traced"];
    let id = format!("{}-{}", traced["trace_id"].as_str().unwrap(), traced["id"].as_str().unwrap());
    let generation = s.get(&format!("/api/v1/generations/{id}"), &s.admin).await;
    assert_eq!(generation.status, reqwest::StatusCode::OK, "{}", generation.text);
    let g = &generation.body;
    assert_eq!((g["prompt"].as_str(), g["version"].as_i64()), (Some("sdk/greeting"), traced["version"].as_i64()));
    assert_eq!((g["model"].as_str(), g["input_tokens"].as_i64(), g["output_tokens"].as_i64()), (Some("gpt-4o-mini"), Some(12), Some(9)));
    assert_eq!(g["status"], "ok");

    // On the server: production is stable, each move audited as the key.
    let labels = s.get("/api/v1/prompts/sdk%2Fgreeting/labels", &s.admin).await.body;
    let at = |l: &str| labels["labels"][l].as_i64();
    assert_eq!((at("stable"), at("staging"), at("legacy")), (Some(2), Some(2), Some(1)));
    let audit = s.get("/api/v1/audit?prompt=sdk%2Fgreeting&action=label.moved", &s.admin).await.body;
    let moves = audit["items"].as_array().unwrap();
    assert_eq!(moves.len(), 4, "{audit}");
    assert!(moves.iter().all(|e| e["actor"] == "key:langfuse-sdk"));
    s.stop().await;
}
