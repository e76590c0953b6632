//! Production telemetry against the real server: batches checked whole, idempotent
//! ingest, scores before their generation, the `app` scope, drift of both kinds with its
//! webhook, metrics checked against figures computed here from what was sent, the
//! request-id lookup, budgets (alerts once per window, `block`), and retention.

mod common;

use std::time::Duration;

use common::hooks::{eventually, receiver};
use common::{TestServer, enc};
use domain::access::Scope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::TelemetrySettings;

fn now_minus(seconds: i64) -> String {
    service::time::format_us(service::time::now_us() - seconds * 1_000_000)
}

fn generation(id: &str, prompt: &str, version: i64) -> Value {
    json!({"id": id, "prompt": prompt, "version": version, "status": "ok", "started_at": now_minus(60),
           "latency_ms": 500, "input_tokens": 100, "output_tokens": 20, "model": "openai/gpt-4o-mini"})
}

async fn send(s: &TestServer, key: &str, items: Vec<Value>) -> common::Reply {
    s.post("/api/v1/generations", key, json!({ "items": items })).await
}

async fn stored(s: &TestServer, prompt: &str) -> i64 {
    let r = s.get(&format!("/api/v1/generations?prompt={}&limit=500", enc(prompt)), &s.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"].as_array().unwrap().len() as i64
}

async fn metrics_of(s: &TestServer, prompt: &str) -> Value {
    let r = s.get(&format!("/api/v1/prompts/{}/metrics", enc(prompt)), &s.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn drift_of(s: &TestServer, id: &str) -> Value {
    s.get(&format!("/api/v1/generations/{id}"), &s.admin).await.body["drift"].clone()
}

async fn price(s: &TestServer, model: &str, input: f64, output: f64) {
    let r = s
        .put("/api/v1/providers/openai", &s.admin, json!({"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .put(
            &format!("/api/v1/providers/openai/prices/{model}"),
            &s.admin,
            json!({"input_per_mtok": input, "output_per_mtok": output}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_batch_is_checked_whole_and_ingest_is_idempotent() {
    let s = TestServer::start().await;
    s.create_text("support/greeting", "Hello {{ customer }}").await;
    let app = s.key("app", Scope::App, None).await;

    // One bad item anywhere: 422 naming it, and nothing of the batch is stored.
    let mut items: Vec<Value> = (0..10).map(|i| generation(&format!("r-{i}"), "support/greeting", 1)).collect();
    items[7]["latency_ms"] = json!(-5);
    let r = send(&s, &app, items.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!((r.body["error"]["index"].as_i64(), r.body["error"]["field"].as_str()), (Some(7), Some("latency_ms")));
    items[7]["latency_ms"] = json!(5);
    items[3]["version"] = json!(9);
    let r = send(&s, &app, items.clone()).await;
    assert_eq!((r.status, r.body["error"]["index"].as_i64()), (StatusCode::UNPROCESSABLE_ENTITY, Some(3)));
    assert_eq!(r.body["error"]["field"], "version");
    items[3]["version"] = json!(1);
    items[5]["surprise"] = json!(true);
    let r = send(&s, &app, items.clone()).await;
    assert_eq!((r.status, r.body["error"]["index"].as_i64()), (StatusCode::UNPROCESSABLE_ENTITY, Some(5)));
    assert_eq!(r.body["error"]["field"], "surprise");
    assert_eq!(stored(&s, "support/greeting").await, 0);

    // Good: accepted; the same again (a retry) changes nothing; repeats inside a batch too.
    items[5].as_object_mut().unwrap().remove("surprise");
    let r = send(&s, &app, items.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body, json!({"accepted": 10, "duplicates": 0}));
    let r = send(&s, &app, items.clone()).await;
    assert_eq!(r.body, json!({"accepted": 0, "duplicates": 10}));
    let r =
        send(&s, &app, vec![generation("r-new", "support/greeting", 1), generation("r-new", "support/greeting", 1)])
            .await;
    assert_eq!(r.body, json!({"accepted": 1, "duplicates": 1}));
    assert_eq!(stored(&s, "support/greeting").await, 11);
    let metrics = s.get(&format!("/api/v1/prompts/{}/metrics", enc("support/greeting")), &s.admin).await;
    assert_eq!(metrics.body["versions"][0]["count"], 11, "retries are not counted twice: {}", metrics.text);

    // A generation named by its hash alone is attributed to that version.
    let hash =
        s.get(&format!("/api/v1/prompts/{}?version=1", enc("support/greeting")), &app).await.body["hash"].clone();
    let mut by_hash = generation("r-hash", "support/greeting", 1);
    by_hash.as_object_mut().unwrap().remove("version");
    by_hash["hash"] = hash;
    assert_eq!(send(&s, &app, vec![by_hash]).await.status, StatusCode::ACCEPTED);
    let r = s.get("/api/v1/generations/r-hash", &s.admin).await;
    assert_eq!((r.body["version"].as_i64(), &r.body["drift"]), (Some(1), &Value::Null), "{}", r.text);

    // A gzip-compressed batch is the same batch.
    let body = json!({"items": [generation("r-gzip", "support/greeting", 1)]}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
    let r = s
        .http
        .post(format!("{}/api/v1/generations", s.base))
        .bearer_auth(&app)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(s.get("/api/v1/generations/r-gzip", &s.admin).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn the_app_scope_serves_and_ingests_and_reads_nothing_else() {
    let s = TestServer::start().await;
    s.create_text("p", "Hi {{ x }}").await;
    let r = s.put("/api/v1/prompts/p/labels/stable", &s.admin, json!({"version": 1})).await;
    assert_eq!(r.status, StatusCode::OK);
    let app = s.key("app", Scope::App, None).await;
    let read = s.key("reader", Scope::Read, None).await;
    assert_eq!(send(&s, &app, vec![generation("g1", "p", 1)]).await.status, StatusCode::ACCEPTED);
    let allowed: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/v1/prompts/p", None),
        (Method::GET, "/api/v1/prompts/p?label=stable", None),
        (Method::POST, "/api/v1/prompts/p/render", Some(json!({"variables": {"x": "1"}}))),
        (Method::POST, "/api/v1/generations", Some(json!({"items": [generation("g2", "p", 1)]}))),
        (Method::POST, "/api/v1/generations/g1/scores", Some(json!({"name": "thumbs_up", "value": true}))),
    ];
    let refused: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/v1/prompts", None),
        (Method::GET, "/api/v1/prompts/p/versions", None),
        (Method::GET, "/api/v1/prompts/p/versions/1", None),
        (Method::GET, "/api/v1/prompts/p/labels", None),
        (Method::GET, "/api/v1/prompts/p/diff?from=1&to=1", None),
        (Method::GET, "/api/v1/audit", None),
        (Method::GET, "/api/v1/generations", None),
        (Method::GET, "/api/v1/generations/g1", None),
        (Method::GET, "/api/v1/prompts/p/metrics", None),
        (Method::GET, "/api/v1/prompts/p/budget", None),
        (Method::POST, "/api/v1/prompts", Some(json!({"name": "q", "template": "x"}))),
        (Method::POST, "/api/v1/prompts/p/versions", Some(json!({"base_version": 1, "template": "y"}))),
        (Method::PUT, "/api/v1/prompts/p/labels/staging", Some(json!({"version": 1}))),
        (Method::PUT, "/api/v1/prompts/p/budget", Some(json!({"window": "day", "limit": 1.0}))),
    ];
    for (method, path, body) in &allowed {
        let r = s.call(method.clone(), path, &app, body.clone()).await;
        assert!(r.status.is_success(), "app key refused {method} {path}: {}", r.text);
    }
    for (method, path, body) in &refused {
        let r = s.call(method.clone(), path, &app, body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "app key allowed {method} {path}: {}", r.text);
    }
    // A read key reads all of it (and may ingest, as app + read).
    for path in ["/api/v1/generations", "/api/v1/generations/g1", "/api/v1/prompts/p/metrics", "/api/v1/prompts"] {
        assert_eq!(s.get(path, &read).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(send(&s, &read, vec![generation("g3", "p", 1)]).await.status, StatusCode::ACCEPTED);
    s.stop().await;
}

#[tokio::test]
async fn scores_may_arrive_before_their_generation() {
    let s = TestServer::start().await;
    s.create_text("p", "Hi").await;
    let app = s.key("app", Scope::App, None).await;
    for (id, value) in [("early", json!(1)), ("early", json!(false)), ("late", json!(0.5))] {
        let r = s
            .post(&format!("/api/v1/generations/{id}/scores"), &app, json!({"name": "thumbs_up", "value": value}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    assert_eq!(metrics_of(&s, "p").await["versions"], json!([]), "scores without their generation are not counted yet");
    assert_eq!(send(&s, &app, vec![generation("early", "p", 1)]).await.status, StatusCode::ACCEPTED);
    let m = metrics_of(&s, "p").await;
    assert_eq!(m["versions"][0]["scores"]["thumbs_up"], json!({"count": 2, "mean": 0.5}), "{m}");
    // A score after its generation counts at once.
    let r = s
        .post("/api/v1/generations/early/scores", &app, json!({"name": "thumbs_up", "value": 1, "comment": "great"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let m = metrics_of(&s, "p").await;
    assert_eq!(m["versions"][0]["scores"]["thumbs_up"]["count"], 3);
    let lookup = s.get("/api/v1/generations/early", &s.admin).await;
    let scores = lookup.body["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 3);
    assert_eq!(scores[2]["comment"], "great");
    // Bad scores change nothing.
    for body in [json!({"name": "", "value": 1}), json!({"name": "x", "value": "good"}), json!({"value": 1})] {
        let r = s.post("/api/v1/generations/early/scores", &app, body).await;
        assert!(r.status.is_client_error(), "{}", r.text);
    }
    assert_eq!(s.get("/api/v1/generations/early", &s.admin).await.body["scores"].as_array().unwrap().len(), 3);
    s.stop().await;
}

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test]
async fn metrics_match_what_was_sent() {
    let s = TestServer::start().await;
    s.create_text("m", "Hi {{ x }}").await;
    let r =
        s.post("/api/v1/prompts/m/versions", &s.admin, json!({"base_version": 1, "template": "Hello {{ x }}"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    price(&s, "gpt-4o-mini", 0.15, 0.60).await;
    let app = s.key("app", Scope::App, None).await;
    // Deterministic pseudo-random calls over the last two hours on two versions.
    let mut seed: u64 = 42;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut sent: Vec<Value> = Vec::new();
    for i in 0..1200 {
        let version = if i % 3 == 0 { 1 } else { 2 };
        let mut g = generation(&format!("m-{i}"), "m", version);
        g["started_at"] = json!(now_minus(60 + (next() * 7000.0) as i64));
        g["latency_ms"] = json!((100.0 + next() * 3000.0).round());
        g["ttft_ms"] = json!(50);
        g["input_tokens"] = json!(100 + (next() * 400.0) as i64);
        g["output_tokens"] = json!(10 + (next() * 90.0) as i64);
        if next() < 0.05 {
            g["status"] = json!("error");
            g["error"] = json!("provider timeout");
        }
        if i % 10 == 0 {
            g["model"] = json!("unknown/model"); // unpriced
        } else if i % 10 == 1 {
            g["cost"] = json!(0.01); // sent by the caller
        }
        sent.push(g);
    }
    for chunk in sent.chunks(400) {
        assert_eq!(send(&s, &app, chunk.to_vec()).await.status, StatusCode::ACCEPTED);
    }
    let r = s.get("/api/v1/prompts/m/metrics?interval=1h", &s.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for v in [1, 2] {
        let mine: Vec<&Value> = sent.iter().filter(|g| g["version"] == v).collect();
        let got = r.body["versions"].as_array().unwrap().iter().find(|m| m["version"] == v).unwrap();
        let errors = mine.iter().filter(|g| g["status"] == "error").count() as i64;
        assert_eq!(got["count"], mine.len() as i64);
        assert_eq!(got["errors"], errors);
        assert!((got["error_rate"].as_f64().unwrap() - errors as f64 / mine.len() as f64).abs() < 1e-9);
        let mut latencies: Vec<f64> = mine.iter().map(|g| g["latency_ms"].as_f64().unwrap()).collect();
        latencies.sort_by(f64::total_cmp);
        for q in ["p50", "p95", "p99"] {
            let exact = nearest_rank(&latencies, q[1..].parse::<f64>().unwrap() / 100.0);
            let reported = got["latency_ms"][q].as_f64().unwrap();
            assert!((reported - exact).abs() / exact <= 0.011, "v{v} {q}: {reported} vs exact {exact}");
        }
        let tokens = |f: &str| mine.iter().map(|g| g[f].as_i64().unwrap()).sum::<i64>();
        assert_eq!(got["input_tokens"], tokens("input_tokens"));
        assert_eq!(got["output_tokens"], tokens("output_tokens"));
        let priced: Vec<f64> = mine
            .iter()
            .filter(|g| g["model"] != "unknown/model")
            .map(|g| {
                g["cost"].as_f64().unwrap_or_else(|| {
                    (g["input_tokens"].as_f64().unwrap() * 0.15 + g["output_tokens"].as_f64().unwrap() * 0.60) / 1e6
                })
            })
            .collect();
        let cost: f64 = priced.iter().sum();
        assert!((got["cost"].as_f64().unwrap() - cost).abs() < 1e-9, "v{v} cost");
        assert!((got["cost_per_call"].as_f64().unwrap() - cost / priced.len() as f64).abs() < 1e-12);
        assert_eq!(got["unpriced"], (mine.len() - priced.len()) as i64, "unpriced calls are not counted as free");
        // The series adds up to the totals.
        let series: Vec<&Value> = r.body["series"].as_array().unwrap().iter().filter(|p| p["version"] == v).collect();
        assert!(series.len() >= 2, "two hours give at least two hourly points");
        assert_eq!(series.iter().map(|p| p["count"].as_i64().unwrap()).sum::<i64>(), mine.len() as i64);
    }
    // An unpriced call's cost is null, never 0; a price change never rewrites past costs.
    let g = s.get("/api/v1/generations/m-0", &s.admin).await;
    assert_eq!((&g.body["cost"], &g.body["cost_source"]), (&Value::Null, &Value::Null));
    let before = s.get("/api/v1/generations/m-2", &s.admin).await.body["cost"].as_f64().unwrap();
    price(&s, "gpt-4o-mini", 100.0, 100.0).await;
    assert_eq!(s.get("/api/v1/generations/m-2", &s.admin).await.body["cost"].as_f64().unwrap(), before);
    assert_eq!(s.get("/api/v1/generations/m-2", &s.admin).await.body["cost_source"], "price_table");
    // Filters and cursors walk every generation once.
    let mut seen = std::collections::HashSet::new();
    let mut path = "/api/v1/generations?prompt=m&status=error&limit=7".to_owned();
    loop {
        let page = s.get(&path, &s.admin).await;
        for g in page.body["items"].as_array().unwrap() {
            assert_eq!(g["status"], "error");
            assert!(seen.insert(g["id"].as_str().unwrap().to_owned()));
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/generations?prompt=m&status=error&limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), sent.iter().filter(|g| g["status"] == "error").count());
    s.stop().await;
}

#[tokio::test]
async fn drift_of_both_kinds_is_counted_and_reported_once_an_hour() {
    let s = TestServer::start().await;
    let (url, hook) = receiver(0, false).await;
    let r = s.post("/api/v1/webhooks", &s.admin, json!({"url": url, "events": ["drift.detected"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    s.create_text("d", "v1 {{ x }}").await;
    s.post("/api/v1/prompts/d/versions", &s.admin, json!({"base_version": 1, "template": "v2 {{ x }}"})).await;
    assert_eq!(s.put("/api/v1/prompts/d/labels/stable", &s.admin, json!({"version": 1})).await.status, StatusCode::OK);
    assert_eq!(s.put("/api/v1/prompts/d/labels/stable", &s.admin, json!({"version": 2})).await.status, StatusCode::OK);
    let app = s.key("app", Scope::App, None).await;
    let v1 = s.get("/api/v1/prompts/d?version=1", &app).await.body["hash"].as_str().unwrap().to_owned();
    let mut items = Vec::new();
    // Content that is not what version 1 registered.
    let mut forged = generation("forged", "d", 1);
    forged["hash"] = json!(format!("sha256:{}", "0".repeat(64)));
    items.push(forged);
    // stable left v1 just now: within five minutes it is not stale; an hour on it is.
    let mut fresh = generation("fresh", "d", 1);
    fresh["label"] = json!("stable");
    fresh["hash"] = json!(v1);
    fresh["started_at"] = json!(now_minus(0));
    items.push(fresh);
    let mut stale = fresh_at("stale", 3600);
    stale["hash"] = json!(v1);
    items.push(stale);
    let mut current = generation("current", "d", 2);
    current["label"] = json!("stable");
    current["started_at"] = json!(now_minus(0));
    items.push(current);
    assert_eq!(send(&s, &app, items).await.status, StatusCode::ACCEPTED);
    assert_eq!(drift_of(&s, "forged").await, "hash_mismatch");
    assert_eq!(drift_of(&s, "fresh").await, Value::Null);
    assert_eq!(drift_of(&s, "current").await, Value::Null);
    // The stale call is judged at the instant it says it started, an hour from now.
    assert_eq!(drift_of(&s, "stale").await, "stale_label");
    let m = s.get(&format!("/api/v1/prompts/d/metrics?until={}", now_minus(-7200)), &s.admin).await;
    let v1 = m.body["versions"].as_array().unwrap().iter().find(|v| v["version"] == 1).unwrap().clone();
    assert_eq!((&v1["drift"], &v1["drift_hash_mismatch"], &v1["drift_stale_label"]), (&json!(2), &json!(1), &json!(1)));
    let listed = s.get("/api/v1/generations?prompt=d&drift=hash_mismatch", &s.admin).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    // One webhook per kind, however many more drifting calls arrive within the hour.
    let mut more = generation("forged-2", "d", 1);
    more["hash"] = json!(format!("sha256:{}", "1".repeat(64)));
    assert_eq!(send(&s, &app, vec![more]).await.status, StatusCode::ACCEPTED);
    eventually("two drift webhooks", async || hook.got.lock().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = hook.got.lock().clone();
    let kinds: Vec<String> = got
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).unwrap()["data"]["detail"]["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(got.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&"hash_mismatch".to_owned()) && kinds.contains(&"stale_label".to_owned()));
    assert!(got.iter().all(|(h, _)| h["x-promptledger-event"] == "drift.detected"));
    s.stop().await;
}

/// A call on `stable` with version 1 that started `seconds_after_move` after stable moved on.
fn fresh_at(id: &str, seconds_after_move: i64) -> Value {
    let mut g = generation(id, "d", 1);
    g["label"] = json!("stable");
    g["started_at"] = json!(now_minus(-seconds_after_move));
    g
}

#[tokio::test]
async fn a_lookup_reconstructs_the_call() {
    let s = TestServer::start().await;
    s.create_text("support/reply", "Dear {{ customer }}, about {{ topic }}").await;
    assert_eq!(
        s.put(&format!("/api/v1/prompts/{}/labels/stable", enc("support/reply")), &s.admin, json!({"version": 1}))
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = now_minus(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = s
        .post(
            &format!("/api/v1/prompts/{}/versions", enc("support/reply")),
            &s.admin,
            json!({"base_version": 1, "template": "Hi {{ customer }}"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    s.put(&format!("/api/v1/prompts/{}/labels/stable", enc("support/reply")), &s.admin, json!({"version": 2})).await;
    let app = s.key("app", Scope::App, None).await;
    let mut g = generation("complaint-17", "support/reply", 1);
    g["label"] = json!("stable");
    g["started_at"] = json!(before);
    g["variables"] = json!({"customer": "Ada", "topic": "refunds"});
    g["output"] = json!(format!("{}{}", "x".repeat(40_000), "end"));
    g["user"] = json!("u-42");
    g["metadata"] = json!({"feature": "refunds"});
    assert_eq!(send(&s, &app, vec![g]).await.status, StatusCode::ACCEPTED);
    let r = s.get("/api/v1/generations/complaint-17", &s.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["prompt_version"]["version"], 1);
    assert_eq!(r.body["prompt_version"]["template"], "Dear {{ customer }}, about {{ topic }}");
    assert_eq!(r.body["rendered"], "Dear Ada, about refunds");
    assert_eq!(r.body["label_at_start"], 1, "stable served v1 when the call started");
    assert_eq!(r.body["user"], "u-42");
    assert_eq!(r.body["metadata"]["feature"], "refunds");
    assert_eq!(r.body["truncated"], json!(["output"]));
    assert_eq!(r.body["output"].as_str().unwrap().len(), 32 * 1024);
    let r = s.get("/api/v1/generations/no-such-call", &s.admin).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    s.stop().await;
}

#[tokio::test]
async fn budgets_alert_once_per_window_and_block_when_asked() {
    let s = TestServer::start().await;
    let (url, hook) = receiver(0, false).await;
    let r = s.post("/api/v1/webhooks", &s.admin, json!({"url": url, "events": ["budget.threshold"]})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    s.create_text("b", "Hi").await;
    assert_eq!(s.put("/api/v1/prompts/b/labels/stable", &s.admin, json!({"version": 1})).await.status, StatusCode::OK);
    let app = s.key("app", Scope::App, None).await;
    let writer = s.key("writer", Scope::Write, None).await;
    let budget = json!({"window": "day", "limit": 1.0, "alerts": [0.5, 1.0]});
    assert_eq!(s.put("/api/v1/prompts/b/budget", &writer, budget.clone()).await.status, StatusCode::FORBIDDEN);
    for bad in [
        json!({"window": "year", "limit": 1}),
        json!({"window": "day", "limit": 0}),
        json!({"window": "day", "limit": 1, "alerts": [-1]}),
    ] {
        assert!(s.put("/api/v1/prompts/b/budget", &s.admin, bad).await.status.is_client_error());
    }
    let r = s.put("/api/v1/prompts/b/budget", &s.admin, budget).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["spent"], 0.0);
    let call = |id: String, cost: f64| {
        let mut g = generation(&id, "b", 1);
        g["cost"] = json!(cost);
        g["started_at"] = json!(now_minus(0));
        g
    };
    // 0.3, then 0.6 (crosses 50 %), then more below 100 %: one alert so far.
    for (i, cost) in [0.3, 0.3, 0.1].iter().enumerate() {
        assert_eq!(send(&s, &app, vec![call(format!("b-{i}"), *cost)]).await.status, StatusCode::ACCEPTED);
    }
    eventually("the 50 % alert", async || hook.got.lock().len() == 1).await;
    // Crossing 100 % with two batches at once still fires it once.
    let (a, b) =
        tokio::join!(send(&s, &app, vec![call("b-3".into(), 0.2)]), send(&s, &app, vec![call("b-4".into(), 0.2)]));
    assert_eq!((a.status, b.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    eventually("the 100 % alert", async || hook.got.lock().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(hook.got.lock().len(), 2, "each alert fires once per window");
    let audit = s.get("/api/v1/audit?action=budget.alert", &s.admin).await;
    let fractions: Vec<f64> =
        audit.body["items"].as_array().unwrap().iter().map(|e| e["detail"]["fraction"].as_f64().unwrap()).collect();
    assert_eq!(fractions, vec![1.0, 0.5]);
    let view = s.get("/api/v1/prompts/b/budget", &s.admin).await.body;
    assert!((view["spent"].as_f64().unwrap() - 1.1).abs() < 1e-9, "{view}");
    assert!(view["forecast"].as_f64().unwrap() >= 1.1);
    // `alert` mode never blocks; `block` does, until the budget is raised.
    assert_eq!(s.get("/api/v1/prompts/b", &app).await.status, StatusCode::OK);
    let r =
        s.put("/api/v1/prompts/b/budget", &s.admin, json!({"window": "day", "limit": 1.0, "on_exceed": "block"})).await;
    assert_eq!(r.body["blocked"], true);
    let r = s.get("/api/v1/prompts/b", &app).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "budget_exceeded"));
    assert!(r.headers.contains_key("retry-after"));
    let r = s.post("/api/v1/prompts/b/render", &app, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "budget_exceeded"));
    // Other prompts are served; ingest goes on (it is what tells us the spend).
    s.create_text("other", "x").await;
    assert_eq!(s.get("/api/v1/prompts/other?label=latest", &app).await.status, StatusCode::OK);
    assert_eq!(send(&s, &app, vec![call("b-5".into(), 0.1)]).await.status, StatusCode::ACCEPTED);
    let r =
        s.put("/api/v1/prompts/b/budget", &s.admin, json!({"window": "day", "limit": 5.0, "on_exceed": "block"})).await;
    assert_eq!(r.body["blocked"], false);
    assert_eq!(s.get("/api/v1/prompts/b", &app).await.status, StatusCode::OK);
    assert_eq!(s.call(Method::DELETE, "/api/v1/prompts/b/budget", &s.admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get("/api/v1/prompts/b/budget", &s.admin).await.status, StatusCode::NOT_FOUND);
    let actions: Vec<String> = s.get("/api/v1/audit?prompt=b", &s.admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(actions.contains(&"budget.set".into()) && actions.contains(&"budget.removed".into()), "{actions:?}");
    assert_eq!(s.get("/api/v1/audit/verify", &s.admin).await.body["ok"], true);
    s.stop().await;
}

#[tokio::test]
async fn retention_prunes_raw_generations_and_keeps_rollups() {
    let s = TestServer::start().await;
    s.create_text("r", "Hi").await;
    let app = s.key("app", Scope::App, None).await;
    let mut items = Vec::new();
    for i in 0..25 {
        let mut g = generation(&format!("old-{i}"), "r", 1);
        g["started_at"] = json!(now_minus(3 * 3600));
        items.push(g);
    }
    items.push(generation("new", "r", 1));
    assert_eq!(send(&s, &app, items).await.status, StatusCode::ACCEPTED);
    assert_eq!(stored(&s, "r").await, 26);
    s.registry.configure_telemetry(TelemetrySettings {
        retention: Duration::from_secs(2 * 3600),
        prune_every: Duration::from_millis(50),
        prune_batch: 10,
    });
    // serve's worker prunes, ten at a time.
    eventually("pruning", async || stored(&s, "r").await == 1).await;
    assert_eq!(s.get("/api/v1/generations/old-3", &s.admin).await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/api/v1/generations/new", &s.admin).await.status, StatusCode::OK);
    let m = s.get("/api/v1/prompts/r/metrics", &s.admin).await;
    assert_eq!(m.body["versions"][0]["count"], 26, "rollups are kept: {}", m.text);
    s.stop().await;
}
