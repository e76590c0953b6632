//! Bad input of every kind: each is a 4xx with a JSON error body, changes nothing, and the
//! server stays healthy.

mod common;

use common::TestServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn malformed_inputs_get_4xx_json_and_change_nothing() {
    let s = TestServer::start().await;
    s.create_text("ok", "Hello {{ x }}").await;
    let before = s.get("/api/v1/audit/verify", &s.admin).await.body["events"].as_i64().unwrap();

    let long_name = "a".repeat(129);
    let huge_tags: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let bodies: Vec<(Method, &str, String)> = vec![
        (Method::POST, "/api/v1/prompts", "".into()),
        (Method::POST, "/api/v1/prompts", "{".into()),
        (Method::POST, "/api/v1/prompts", "null".into()),
        (Method::POST, "/api/v1/prompts", "[]".into()),
        (Method::POST, "/api/v1/prompts", "\"text\"".into()),
        (Method::POST, "/api/v1/prompts", "{\"name\": 5, \"template\": \"x\"}".into()),
        (Method::POST, "/api/v1/prompts", json!({"template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "", "template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "Upper", "template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "/lead", "template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "a//b", "template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": long_name, "template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": 5}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "type": "text", "messages": []}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "type": "chat", "template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "type": "video", "template": "x"}).to_string()),
        (
            Method::POST,
            "/api/v1/prompts",
            json!({"name": "n", "template": "x", "messages": [{"role": "user", "content": "y"}]}).to_string(),
        ),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "messages": []}).to_string()),
        (
            Method::POST,
            "/api/v1/prompts",
            json!({"name": "n", "messages": [{"role": "robot", "content": "x"}]}).to_string(),
        ),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "messages": [{"role": "user"}]}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "messages": "hello"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "x", "config": []}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "x", "config": "gpt"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "x", "tags": "a"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "x", "tags": [""]}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "x", "tags": huge_tags}).to_string()),
        (
            Method::POST,
            "/api/v1/prompts",
            json!({"name": "n", "template": "x", "description": "d".repeat(2001)}).to_string(),
        ),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "{{ x"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "{% if %}"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "{% endfor %}"}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "x", "surprise": 1}).to_string()),
        (Method::POST, "/api/v1/prompts", json!({"name": "n", "template": "x"}).to_string() + "garbage"),
        (Method::POST, "/api/v1/prompts", "{\"name\": \"n\", \"template\": \"\\ud800\"}".into()),
        (Method::POST, "/api/v1/prompts/ok/rollouts", json!({"version": "two"}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/rollouts", json!({"version": 2, "steps": "5,100"}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/rollouts", json!({"version": 2, "steps": [-5, 100]}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/rollouts", json!({"version": 2, "step_seconds": 1e12}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/rollouts", json!({"version": 2, "min_samples": 0}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/rollouts", json!({"version": 2, "label": "Stable"}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/rollouts", json!({"version": 2, "label": "latest"}).to_string()),
        (
            Method::POST,
            "/api/v1/prompts/ok/rollouts",
            json!({"version": 2, "guards": [{"metric": "error_rate", "max_increase": -1}]}).to_string(),
        ),
        (
            Method::POST,
            "/api/v1/prompts/ok/rollouts",
            json!({"version": 2, "guards": [{"metric": "score:"}]}).to_string(),
        ),
        (Method::POST, "/api/v1/rollouts/ro_none/pause", "garbage".into()),
        (Method::POST, "/api/v1/rollouts/ro_none/abort", json!({"reason": 5}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/versions", json!({"base_version": "one", "template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/versions", json!({"base_version": 0, "template": "x"}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/versions", json!({"base_version": 1}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/versions", json!({"base_version": 1, "template": "{{"}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/versions", json!({"base_version": 99, "template": "y"}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/versions", json!({"base_version": 1.5, "template": "y"}).to_string()),
        (
            Method::POST,
            "/api/v1/prompts/ok/versions",
            json!({"base_version": 1, "template": "y", "config": 7}).to_string(),
        ),
        (Method::POST, "/api/v1/prompts/ok/versions", "[1,2]".into()),
        (Method::POST, "/api/v1/prompts/ok/render", "{]".into()),
        (Method::POST, "/api/v1/prompts/ok/render", json!({"version": 1, "variables": []}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/render", json!({"version": 1}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/render", json!({"version": -1, "variables": {"x": 1}}).to_string()),
        (Method::POST, "/api/v1/prompts/ok/render", json!({"label": "Bad!", "variables": {"x": 1}}).to_string()),
        (
            Method::POST,
            "/api/v1/prompts/ok/render",
            json!({"label": "latest", "at": "soon", "variables": {"x": 1}}).to_string(),
        ),
        (Method::PUT, "/api/v1/prompts/ok/labels/stable", "{}".into()),
        (Method::PUT, "/api/v1/prompts/ok/labels/stable", json!({"version": "1"}).to_string()),
        (Method::PUT, "/api/v1/prompts/ok/labels/stable", json!({"version": 1, "reason": 5}).to_string()),
        (Method::PUT, "/api/v1/prompts/ok/labels/latest", json!({"version": 1}).to_string()),
        (Method::PUT, "/api/v1/prompts/ok/labels/-x", json!({"version": 1}).to_string()),
        (
            Method::PUT,
            &*Box::leak(format!("/api/v1/prompts/ok/labels/{}", "l".repeat(37)).into_boxed_str()),
            json!({"version": 1}).to_string(),
        ),
        (Method::POST, "/api/v1/keys", json!({"name": "k", "scope": "root"}).to_string()),
        (Method::POST, "/api/v1/keys", json!({"name": "bad:name", "scope": "read"}).to_string()),
        (Method::POST, "/api/v1/users", json!({"username": "u", "role": "god"}).to_string()),
        (Method::POST, "/api/v1/users", json!({"username": "u", "role": "viewer", "password": "short"}).to_string()),
        (Method::POST, "/api/v1/users", json!({"username": "", "role": "viewer"}).to_string()),
    ];
    let queries = [
        "/api/v1/prompts?limit=abc",
        "/api/v1/prompts?limit=-1",
        "/api/v1/prompts?cursor=%ZZ",
        "/api/v1/prompts?surprise=1",
        "/api/v1/prompts/ok?version=abc",
        "/api/v1/prompts/ok?version=0",
        "/api/v1/prompts/ok?version=1&label=stable",
        "/api/v1/prompts/ok?_version=1&label=latest",
        "/api/v1/prompts/ok?label=NOPE",
        "/api/v1/prompts/ok?label=latest&at=2026-13-45",
        "/api/v1/prompts/ok/versions?limit=100000",
        "/api/v1/prompts/ok/versions?cursor=x",
        "/api/v1/prompts/ok/versions/-3",
        "/api/v1/prompts/ok/versions/99999999999999999999",
        "/api/v1/prompts/ok/diff?from=a&to=1",
        "/api/v1/prompts/ok/diff",
        "/api/v1/audit?limit=0",
        "/api/v1/audit?cursor=abc",
        "/api/v1/audit?until=noon",
        "/api/v1/prompts/%FF%FE",
        "/api/v1/prompts/Not%20A%20Name",
    ];
    let mut count = 0;
    for (method, path, body) in bodies {
        let r = s.raw(method.clone(), path, Some(&s.admin), Some(body.clone()), &[]).await;
        assert!(r.status.is_client_error(), "{method} {path} {body:.80} -> {} {}", r.status, r.text);
        r.code();
        count += 1;
    }
    for path in queries {
        let r = s.raw(Method::GET, path, Some(&s.admin), None, &[]).await;
        assert!(r.status.is_client_error(), "{path} -> {} {}", r.status, r.text);
        r.code();
        count += 1;
    }
    // Bad credentials of every shape.
    for auth in ["", "Bearer", "Bearer ", "Basic abc", "Bearer pl_00", "Bearer \u{7f}"] {
        let r = s.http.get(format!("{}/api/v1/prompts", s.base)).header("authorization", auth).send().await;
        if let Ok(r) = r {
            assert_eq!(r.status(), 401, "{auth:?}");
            count += 1;
        }
    }
    assert!(count >= 50, "{count} malformed inputs");
    assert!(s.healthy().await);
    let after = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(after.body["ok"], true);
    assert_eq!(after.body["events"].as_i64().unwrap(), before, "no bad input may change anything");
    let list = s.get("/api/v1/prompts", &s.admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn malformed_telemetry_gets_4xx_json_and_stores_nothing() {
    let s = TestServer::start().await;
    s.create_text("ok", "Hello {{ x }}").await;
    let before = s.get("/api/v1/audit/verify", &s.admin).await.body["events"].as_i64().unwrap();
    let good = json!({"id": "r-1", "prompt": "ok", "version": 1, "status": "ok", "started_at": "2026-12-01T09:14:03Z"});
    let with = |field: &str, value: serde_json::Value| {
        let mut g = good.clone();
        g[field] = value;
        json!({"items": [good.clone(), g]}).to_string()
    };
    let without = |field: &str| {
        let mut g = good.clone();
        g.as_object_mut().unwrap().remove(field);
        json!({"items": [g]}).to_string()
    };
    let too_many: Vec<_> = (0..1001)
        .map(|i| {
            json!({"id": format!("x{i}"), "prompt": "ok", "version": 1,
        "status": "ok", "started_at": "2026-12-01T09:14:03Z"})
        })
        .collect();
    let batches: Vec<String> = vec![
        "".into(),
        "{".into(),
        "[]".into(),
        "null".into(),
        json!({}).to_string(),
        json!({"items": {}}).to_string(),
        json!({"items": []}).to_string(),
        json!({"items": [1]}).to_string(),
        json!({"items": [good.clone()], "extra": 1}).to_string(),
        json!({"items": too_many}).to_string(),
        without("id"),
        without("prompt"),
        without("status"),
        without("started_at"),
        without("version"),
        with("id", json!("")),
        with("id", json!("a".repeat(129))),
        with("id", json!("line\nbreak")),
        with("id", json!(7)),
        with("prompt", json!("No Such Name")),
        with("prompt", json!("unknown")),
        with("version", json!(0)),
        with("version", json!(2)),
        with("version", json!("1")),
        with("hash", json!("sha256:xyz")),
        with("label", json!("Stable!")),
        with("arm", json!("candidate")),
        with("status", json!("fine")),
        with("started_at", json!("yesterday")),
        with("started_at", json!("2999-01-01T00:00:00Z")),
        with("latency_ms", json!(-1)),
        with("latency_ms", json!("fast")),
        with("ttft_ms", json!(1e12)),
        with("input_tokens", json!(-3)),
        with("output_tokens", json!(1.5)),
        with("cost", json!(-0.01)),
        with("variables", json!([1, 2])),
        with("metadata", json!("x")),
        with("metadata", json!({"big": "m".repeat(20_000)})),
        with("output", json!({"text": "structured"})),
        with("user", json!("")),
        with("model", json!("m".repeat(201))),
        with("finish_reason", json!(5)),
        with("surprise", json!(true)),
    ];
    let mut count = 0;
    for body in &batches {
        let r = s.raw(Method::POST, "/api/v1/generations", Some(&s.admin), Some(body.clone()), &[]).await;
        assert!(r.status.is_client_error(), "{body:.100} -> {} {}", r.status, r.text);
        r.code();
        count += 1;
    }
    let scores = [
        "{".to_owned(),
        json!({}).to_string(),
        json!({"name": "x"}).to_string(),
        json!({"value": 1}).to_string(),
        json!({"name": "", "value": 1}).to_string(),
        json!({"name": "has space", "value": 1}).to_string(),
        json!({"name": "x", "value": "1"}).to_string(),
        json!({"name": "x", "value": null}).to_string(),
        json!({"name": "x", "value": 1e300}).to_string(),
        json!({"name": "x", "value": 1, "comment": "c".repeat(2001)}).to_string(),
        json!({"name": "x", "value": 1, "extra": 1}).to_string(),
    ];
    for body in &scores {
        let r = s.raw(Method::POST, "/api/v1/generations/r-1/scores", Some(&s.admin), Some(body.clone()), &[]).await;
        assert!(r.status.is_client_error(), "{body:.100} -> {} {}", r.status, r.text);
        r.code();
        count += 1;
    }
    let otlp = [
        ("application/x-protobuf", "\u{ff}\u{ff}\u{ff}".to_owned()),
        ("application/json", "{".to_owned()),
        ("application/json", json!({"resourceSpans": "x"}).to_string()),
        ("application/json", json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}).to_string()),
        (
            "application/json",
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": -1}]}]}]}).to_string(),
        ),
        ("text/csv", "a,b".to_owned()),
    ];
    for (content_type, body) in &otlp {
        let headers = [("content-type", *content_type)];
        let r = s.raw(Method::POST, "/api/v1/otel/v1/traces", Some(&s.admin), Some(body.clone()), &headers).await;
        assert!(r.status.is_client_error(), "{content_type} {body:.100} -> {} {}", r.status, r.text);
        r.code();
        count += 1;
    }
    let queries = [
        "/api/v1/generations?limit=0",
        "/api/v1/generations?cursor=abc",
        "/api/v1/generations?since=noon",
        "/api/v1/generations?status=meh",
        "/api/v1/generations?drift=some",
        "/api/v1/generations?version=x",
        "/api/v1/generations?surprise=1",
        "/api/v1/prompts/ok/metrics?interval=2h",
        "/api/v1/prompts/ok/metrics?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
        "/api/v1/prompts/ok/metrics?since=2020-01-01T00:00:00Z&interval=5m",
        "/api/v1/prompts/nope/metrics",
    ];
    for path in queries {
        let r = s.raw(Method::GET, path, Some(&s.admin), None, &[]).await;
        assert!(r.status.is_client_error(), "{path} -> {} {}", r.status, r.text);
        r.code();
        count += 1;
    }
    assert!(count >= 60, "{count} malformed inputs");
    assert!(s.healthy().await);
    let listed = s.get("/api/v1/generations", &s.admin).await;
    assert_eq!(listed.body["items"], json!([]), "nothing of any bad batch was stored");
    let after = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(after.body["events"].as_i64().unwrap(), before);
    s.stop().await;
}
