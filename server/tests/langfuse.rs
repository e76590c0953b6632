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

/// The Langfuse routes refuse bad input before they write anything, answer in
/// Langfuse's error shape whatever refused it, and take racing creates one on top of the
/// other, as Langfuse does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_langfuse_routes_refuse_whole_requests_in_langfuses_error_shape() {
    let s = TestServer::start().await;
    let writer = s.key("editor", Scope::Write, None).await;
    let create = |key: &str, body: Value| {
        let key = if key == "admin" { s.admin.clone() } else { writer.clone() };
        let s = &s;
        async move { call(s, reqwest::Method::POST, "/api/public/v2/prompts", &key, Some(&body.to_string())).await }
    };
    let versions = |name: &str| {
        let path = format!("/api/v1/prompts/{}/versions", common::enc(name));
        let s = &s;
        async move { s.get(&path, &s.admin).await }
    };

    // A label refused (a bad name; a protected label for an editor; a gate a new version
    // cannot pass) leaves no version behind.
    let (status, body) = create("admin", json!({"name": "lf/bad-label", "prompt": "v1", "labels": ["Bad Label"]})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("InvalidRequestError")), "{body}");
    assert_eq!(versions("lf/bad-label").await.status, reqwest::StatusCode::NOT_FOUND);
    s.put("/api/v1/labels/stable/policy", &s.admin, json!({"protected": true})).await;
    let (status, body) = create("writer", json!({"name": "lf/protected", "prompt": "v1", "labels": ["production"]})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("AccessDeniedError")), "{body}");
    assert_eq!(versions("lf/protected").await.status, reqwest::StatusCode::NOT_FOUND);
    s.put("/api/v1/labels/gated/policy", &s.admin, json!({"require_eval": {"suite": "smoke", "min_pass_rate": 1.0}})).await;
    let (status, body) = create("admin", json!({"name": "lf/gated", "prompt": "v1", "labels": ["gated"]})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("eval_gate")), "{body}");
    assert_eq!(versions("lf/gated").await.status, reqwest::StatusCode::NOT_FOUND);

    // A label update with one bad label moves none.
    let (status, _) = create("admin", json!({"name": "lf/p", "prompt": "v1"})).await;
    assert_eq!(status, 201);
    let patch = json!({"newLabels": ["staging", "Bad!"]}).to_string();
    let (status, body) = call(&s, reqwest::Method::PATCH, "/api/public/v2/prompts/lf%2Fp/versions/1", &s.admin, Some(&patch)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("InvalidRequestError")), "{body}");
    let labels = s.get("/api/v1/prompts/lf%2Fp/labels", &s.admin).await.body;
    assert!(labels["labels"]["staging"].is_null(), "{labels}");

    // A new version keeps the prompt's type.
    let chat = json!({"name": "lf/p", "type": "chat", "prompt": [{"role": "user", "content": "hi"}]});
    let (status, body) = create("admin", chat).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(versions("lf/p").await.body["items"].as_array().map(Vec::len), Some(1));

    // Tags given with a new version replace the prompt's, as Langfuse's do.
    let (status, body) = create("admin", json!({"name": "lf/p", "prompt": "v2", "tags": ["billing"]})).await;
    assert_eq!((status, body["version"].as_i64(), body["tags"].clone()), (201, Some(2), json!(["billing"])), "{body}");
    let (status, _) = create("admin", json!({"name": "lf/p", "prompt": "v3", "tags": [""]})).await;
    assert_eq!(status, 400);
    assert_eq!(versions("lf/p").await.body["items"].as_array().map(Vec::len), Some(2), "a refused tag saves nothing");

    // Errors raised before the handler (a body of the wrong shape, no key) are Langfuse's too.
    let wrong = json!({"newLabels": "staging"}).to_string();
    let (status, body) = call(&s, reqwest::Method::PATCH, "/api/public/v2/prompts/lf%2Fp/versions/1", &s.admin, Some(&wrong)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("InvalidRequestError")), "{body}");
    assert!(body["message"].is_string(), "{body}");
    let anonymous = s.http.get(format!("{}/api/public/v2/prompts", s.base)).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(anonymous.json::<Value>().await.unwrap()["error"], "UnauthorizedError");

    // A prompt without `production` is a 404 that says so in Langfuse's words.
    let (status, body) = call(&s, reqwest::Method::GET, "/api/public/v2/prompts/lf%2Fp", &s.admin, None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("LangfuseNotFoundError")), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("'production'") && !message.contains("stable"), "{message}");

    // A page far past the end is an empty page, not a crash.
    let (status, body) = call(&s, reqwest::Method::GET, "/api/public/v2/prompts?page=18446744073709551615", &s.admin, None).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(0)), "{body}");

    // Racing creates of one name: each gets its own version, none a conflict.
    let racing = (1..=8).map(|i| create("admin", json!({"name": "lf/race", "prompt": format!("v{i}")})));
    let answers = futures::future::join_all(racing).await;
    assert!(answers.iter().all(|(status, _)| *status == 201), "{answers:?}");
    let mut made: Vec<i64> = answers.iter().map(|(_, b)| b["version"].as_i64().unwrap()).collect();
    made.sort();
    assert_eq!(made, (1..=8).collect::<Vec<_>>());
    s.stop().await;
}

/// A call with HTTP Basic, as Langfuse's SDKs send it: the status and the JSON body.
async fn call(s: &TestServer, method: reqwest::Method, path: &str, key: &str, body: Option<&str>) -> (u16, Value) {
    let mut req = s.http.request(method, format!("{}{path}", s.base)).basic_auth("pk-any", Some(key));
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
}
