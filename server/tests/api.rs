//! Every endpoint of API.md's Prompts, Labels and Audit sections, and their error statuses,
//! against the real server on a loopback port.

mod common;

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn create_resolve_and_version_objects() {
    let s = TestServer::start().await;
    let v1 = s.create_text("support/greeting", "Hello {{ customer }}, about {{ topic }}").await;
    assert_eq!(v1["name"], "support/greeting");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["type"], "text");
    assert_eq!(v1["messages"], serde_json::Value::Null);
    assert_eq!(v1["variables"], json!(["customer", "topic"]));
    assert_eq!(v1["labels"], json!(["latest"]));
    assert_eq!(v1["message"], "first");
    assert_eq!(v1["created_by"], "key:test-admin");
    assert!(v1["hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(v1["created_at"].as_str().unwrap().ends_with('Z'));

    // A taken name is 409 and writes nothing.
    let again = s.post("/api/v1/prompts", &s.admin, json!({"name": "support/greeting", "template": "x"})).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "name_taken"));

    // No stable yet: the default resolve is 404; latest and version=1 resolve.
    let path = format!("/api/v1/prompts/{}", enc("support/greeting"));
    let none = s.get(&path, &s.admin).await;
    assert_eq!((none.status, none.code()), (StatusCode::NOT_FOUND, "not_found"));
    for q in ["?label=latest", "?version=1", "?_version=latest", "?_version=1"] {
        let r = s.get(&format!("{path}{q}"), &s.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        assert_eq!(r.body, v1, "{q}");
        assert_eq!(r.headers["etag"], format!("\"{}\"", v1["hash"].as_str().unwrap()));
    }

    // Chat prompts.
    let chat = s
        .post(
            "/api/v1/prompts",
            &s.admin,
            json!({"name": "chat/intro", "type": "chat", "messages": [
            {"role": "system", "content": "You work for {{ company }}."},
            {"role": "user", "content": "Hi, I am {{ customer }}"}], "config": {"model": "m", "temperature": 0.1}}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::CREATED, "{}", chat.text);
    assert_eq!(chat.body["template"], serde_json::Value::Null);
    assert_eq!(chat.body["variables"], json!(["company", "customer"]));
    assert_eq!(chat.body["messages"][1]["role"], "user");
    s.stop().await;
}

#[tokio::test]
async fn etag_and_not_modified() {
    let s = TestServer::start().await;
    let v1 = s.create_text("etag", "Hi").await;
    let etag = format!("\"{}\"", v1["hash"].as_str().unwrap());
    let path = "/api/v1/prompts/etag?label=latest";
    let r = s.raw(Method::GET, path, Some(&s.admin), None, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers["etag"], etag.as_str());
    assert!(r.text.is_empty());
    let other = s.raw(Method::GET, path, Some(&s.admin), None, &[("if-none-match", "\"sha256:other\"")]).await;
    assert_eq!(other.status, StatusCode::OK);
    // After a new version, the old ETag no longer matches `latest`.
    let v2 = s.post("/api/v1/prompts/etag/versions", &s.admin, json!({"base_version": 1, "template": "Hi!"})).await;
    assert_eq!(v2.status, StatusCode::CREATED);
    let after = s.raw(Method::GET, path, Some(&s.admin), None, &[("if-none-match", &etag)]).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(after.body["version"], 2);
    s.stop().await;
}

#[tokio::test]
async fn versions_conflicts_and_unchanged() {
    let s = TestServer::start().await;
    s.create_text("p", "Hello {{ a }}").await;
    let v2 = s
        .post(
            "/api/v1/prompts/p/versions",
            &s.admin,
            json!({"base_version": 1, "template": "Hello {{ a }}!", "config": {"model": "x"}, "message": "bang"}),
        )
        .await;
    assert_eq!(v2.status, StatusCode::CREATED, "{}", v2.text);
    assert_eq!((v2.body["version"].as_i64(), v2.body["labels"].clone()), (Some(2), json!(["latest"])));

    // Stale base: 409 with latest_version, nothing written.
    let stale = s.post("/api/v1/prompts/p/versions", &s.admin, json!({"base_version": 1, "template": "other"})).await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "conflict"));
    assert_eq!(stale.body["error"]["latest_version"], 2);

    // Same content as the newest: 200, unchanged, no version 3.
    let same = s
        .post(
            "/api/v1/prompts/p/versions",
            &s.admin,
            json!({"base_version": 2, "template": "Hello {{ a }}!", "config": {"model": "x"}}),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!((same.body["version"].as_i64(), same.body["unchanged"].as_bool()), (Some(2), Some(true)));

    // Leaving config out keeps the newest config.
    let v3 =
        s.post("/api/v1/prompts/p/versions", &s.admin, json!({"base_version": 2, "template": "Bye {{ a }}"})).await;
    assert_eq!(v3.status, StatusCode::CREATED);
    assert_eq!(v3.body["config"], json!({"model": "x"}));

    // base_version is required.
    let missing = s.post("/api/v1/prompts/p/versions", &s.admin, json!({"template": "x"})).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::UNPROCESSABLE_ENTITY, "base_version_required"));

    // List newest first, paginated.
    let page1 = s.get("/api/v1/prompts/p/versions?limit=2", &s.admin).await;
    let nums: Vec<i64> =
        page1.body["items"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(nums, vec![3, 2]);
    let cursor = page1.body["next_cursor"].as_str().unwrap().to_owned();
    let page2 = s.get(&format!("/api/v1/prompts/p/versions?limit=2&cursor={cursor}"), &s.admin).await;
    assert_eq!(page2.body["items"][0]["version"], 1);
    assert_eq!(page2.body["next_cursor"], serde_json::Value::Null);

    // One version; unknown ones are 404, non-numbers 400.
    let one = s.get("/api/v1/prompts/p/versions/2", &s.admin).await;
    assert_eq!(one.body["template"], "Hello {{ a }}!");
    assert_eq!(one.headers["etag"], format!("\"{}\"", v2.body["hash"].as_str().unwrap()));
    assert_eq!(s.get("/api/v1/prompts/p/versions/9", &s.admin).await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/api/v1/prompts/p/versions/x", &s.admin).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.get("/api/v1/prompts/nope/versions", &s.admin).await.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn template_errors_are_422_with_position() {
    let s = TestServer::start().await;
    let r = s.post("/api/v1/prompts", &s.admin, json!({"name": "bad", "template": "line one\nHello {{ name"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "template_syntax"));
    assert_eq!(r.body["error"]["line"], 2);
    assert!(r.body["error"]["column"].as_u64().unwrap() >= 1);
    let chat = s
        .post(
            "/api/v1/prompts",
            &s.admin,
            json!({"name": "bad", "messages": [
        {"role": "system", "content": "ok"}, {"role": "user", "content": "{% for %}"}]}),
        )
        .await;
    assert_eq!(chat.code(), "template_syntax");
    assert_eq!(chat.body["error"]["location"], "messages[1]");
    assert_eq!(s.get("/api/v1/prompts/bad?label=latest", &s.admin).await.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn render_is_strict() {
    let s = TestServer::start().await;
    s.create_text("r", "Hello {{ customer|title }}{% if vip %} (VIP){% endif %}").await;
    let ok = s
        .post(
            "/api/v1/prompts/r/render",
            &s.admin,
            json!({"label": "latest", "variables": {"customer": "ada", "vip": true}}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["text"], "Hello Ada (VIP)");
    assert_eq!(ok.body["version"], 1);
    assert!(ok.body["hash"].as_str().unwrap().starts_with("sha256:"));

    let missing =
        s.post("/api/v1/prompts/r/render", &s.admin, json!({"version": 1, "variables": {"customer": "ada"}})).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::UNPROCESSABLE_ENTITY, "missing_variables"));
    assert_eq!(missing.body["error"]["missing"], json!(["vip"]));

    let unknown = s
        .post(
            "/api/v1/prompts/r/render",
            &s.admin,
            json!({"version": 1, "variables": {"customer": "a", "vip": false, "mood": 1}}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_variables"));
    assert_eq!(unknown.body["error"]["unknown"], json!(["mood"]));

    let allowed = s
        .post(
            "/api/v1/prompts/r/render",
            &s.admin,
            json!({"version": 1, "variables": {"customer": "a", "vip": false, "mood": 1}, "allow_unknown": true}),
        )
        .await;
    assert_eq!(allowed.body["text"], "Hello A");

    // Default is stable, which points nowhere yet.
    let no_stable = s.post("/api/v1/prompts/r/render", &s.admin, json!({"variables": {}})).await;
    assert_eq!(no_stable.status, StatusCode::NOT_FOUND);

    // A runaway template is stopped with a 4xx.
    s.create_text("loop", "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}").await;
    let runaway = s.post("/api/v1/prompts/loop/render", &s.admin, json!({"label": "latest"})).await;
    assert_eq!((runaway.status, runaway.code()), (StatusCode::UNPROCESSABLE_ENTITY, "template_too_expensive"));

    // Chat render.
    s.post(
        "/api/v1/prompts",
        &s.admin,
        json!({"name": "c", "messages": [{"role": "system", "content": "Be {{ tone }}"}]}),
    )
    .await;
    let chat =
        s.post("/api/v1/prompts/c/render", &s.admin, json!({"label": "latest", "variables": {"tone": "kind"}})).await;
    assert_eq!(chat.body["messages"], json!([{"role": "system", "content": "Be kind"}]));
    assert!(chat.body.get("text").is_none());
    assert!(s.healthy().await);
    s.stop().await;
}

#[tokio::test]
async fn diff_between_versions() {
    let s = TestServer::start().await;
    s.create_text("d", "Hello there\nBye").await;
    s.post(
        "/api/v1/prompts/d/versions",
        &s.admin,
        json!({"base_version": 1, "template": "Hi there\nBye", "config": {"model": "gpt-4o"}}),
    )
    .await;
    let d = s.get("/api/v1/prompts/d/diff?from=1&to=2", &s.admin).await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!((d.body["from"].as_i64(), d.body["to"].as_i64()), (Some(1), Some(2)));
    assert_eq!(d.body["config_changed"], true);
    let unified = d.body["unified"].as_str().unwrap();
    assert!(unified.contains("-Hello there\n+Hi there\n"), "{unified}");
    let same = s.get("/api/v1/prompts/d/diff?from=2&to=2", &s.admin).await;
    assert_eq!((same.body["unified"].as_str(), same.body["config_changed"].as_bool()), (Some(""), Some(false)));
    assert_eq!(s.get("/api/v1/prompts/d/diff?from=1", &s.admin).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.get("/api/v1/prompts/d/diff?from=1&to=7", &s.admin).await.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn labels_move_and_are_served_on_the_next_request() {
    let s = TestServer::start().await;
    s.create_text("l", "v1").await;
    s.post("/api/v1/prompts/l/versions", &s.admin, json!({"base_version": 1, "template": "v2"})).await;

    let promote = s.put("/api/v1/prompts/l/labels/stable", &s.admin, json!({"version": 2, "reason": "ship it"})).await;
    assert_eq!(promote.status, StatusCode::OK, "{}", promote.text);
    assert_eq!(promote.body, json!({"label": "stable", "version": 2, "previous_version": null}));
    let served = s.get("/api/v1/prompts/l", &s.admin).await;
    assert_eq!(
        (served.body["version"].as_i64(), served.body["labels"].clone()),
        (Some(2), json!(["latest", "stable"]))
    );

    let rollback =
        s.put("/api/v1/prompts/l/labels/stable", &s.admin, json!({"version": 1, "reason": "tone regression"})).await;
    assert_eq!(rollback.body, json!({"label": "stable", "version": 1, "previous_version": 2}));
    let served = s.get("/api/v1/prompts/l", &s.admin).await;
    assert_eq!((served.body["template"].as_str(), served.body["labels"].clone()), (Some("v1"), json!(["stable"])));
    assert_eq!(s.get("/api/v1/prompts/l?_version=stable", &s.admin).await.body["version"], 1);

    // A free label.
    let canary = s.put("/api/v1/prompts/l/labels/canary", &s.admin, json!({"version": 2})).await;
    assert_eq!(canary.status, StatusCode::OK);
    assert_eq!(s.get("/api/v1/prompts/l?label=canary", &s.admin).await.body["template"], "v2");

    // latest cannot be moved; bad labels and versions.
    let latest = s.put("/api/v1/prompts/l/labels/latest", &s.admin, json!({"version": 1})).await;
    assert_eq!((latest.status, latest.code()), (StatusCode::UNPROCESSABLE_ENTITY, "latest_is_automatic"));
    let bad = s.put("/api/v1/prompts/l/labels/Bad%20Label", &s.admin, json!({"version": 1})).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"));
    assert_eq!(
        s.put("/api/v1/prompts/l/labels/stable", &s.admin, json!({"version": 9})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.put("/api/v1/prompts/zz/labels/stable", &s.admin, json!({"version": 1})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.get("/api/v1/prompts/l?label=nowhere", &s.admin).await.status, StatusCode::NOT_FOUND);

    let labels = s.get("/api/v1/prompts/l/labels", &s.admin).await;
    assert_eq!(labels.body["labels"], json!({"canary": 2, "latest": 2, "stable": 1}));
    let history = labels.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0]["label"], "canary");
    assert_eq!(history[1]["reason"], "tone regression");
    assert_eq!((history[1]["version"].as_i64(), history[1]["previous_version"].as_i64()), (Some(1), Some(2)));
    assert_eq!(history[1]["actor"], "key:test-admin");
    assert!(history[1]["at"].is_string());
    s.stop().await;
}

#[tokio::test]
async fn list_filters_and_pages() {
    let s = TestServer::start().await;
    for (name, tags, description) in [
        ("support/greeting", json!(["support"]), "First reply"),
        ("support/refund", json!(["support", "billing"]), "Refunds"),
        ("sales/pitch", json!(["sales"]), "The pitch"),
        ("supportive", json!([]), "not in the folder"),
    ] {
        let r = s
            .post(
                "/api/v1/prompts",
                &s.admin,
                json!({"name": name, "template": "x", "tags": tags, "description": description}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    s.put("/api/v1/prompts/support%2Frefund/labels/stable", &s.admin, json!({"version": 1})).await;
    let names = |r: &common::Reply| -> Vec<String> {
        r.body["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect()
    };
    let all = s.get("/api/v1/prompts", &s.admin).await;
    assert_eq!(names(&all), ["sales/pitch", "support/greeting", "support/refund", "supportive"]);
    let refund = &all.body["items"][2];
    assert_eq!(refund["labels"], json!({"stable": 1}));
    assert_eq!(refund["latest_version"], 1);
    assert_eq!(refund["tags"], json!(["support", "billing"]));
    assert!(refund["updated_at"].is_string());
    assert_eq!(names(&s.get("/api/v1/prompts?folder=support", &s.admin).await), ["support/greeting", "support/refund"]);
    assert_eq!(names(&s.get("/api/v1/prompts?tag=billing", &s.admin).await), ["support/refund"]);
    assert_eq!(names(&s.get("/api/v1/prompts?q=pitch", &s.admin).await), ["sales/pitch"]);
    assert_eq!(names(&s.get("/api/v1/prompts?q=REFUNDS", &s.admin).await), ["support/refund"]);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/prompts?limit=3&cursor={c}"),
            None => "/api/v1/prompts?limit=3".into(),
        };
        let page = s.get(&path, &s.admin).await;
        seen.extend(names(&page));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, names(&all));
    assert_eq!(s.get("/api/v1/prompts?limit=501", &s.admin).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.get("/api/v1/prompts?limit=0", &s.admin).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.get("/api/v1/prompts?cursor=zz", &s.admin).await.status, StatusCode::BAD_REQUEST);
    s.stop().await;
}

#[tokio::test]
async fn audit_lists_filters_and_verifies() {
    let s = TestServer::start().await;
    let before = service::time::format_us(service::time::now_us());
    s.create_text("a", "one").await;
    s.post("/api/v1/prompts/a/versions", &s.admin, json!({"base_version": 1, "template": "two"})).await;
    s.put("/api/v1/prompts/a/labels/stable", &s.admin, json!({"version": 2, "reason": "go"})).await;
    s.create_text("b", "other").await;

    let all = s.get("/api/v1/audit", &s.admin).await;
    let items = all.body["items"].as_array().unwrap();
    // key created by the harness, then four changes; newest first.
    let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["prompt.created", "label.moved", "version.created", "prompt.created", "apikey.created"]);
    for pair in items.windows(2) {
        assert_eq!(pair[0]["prev_hash"], pair[1]["hash"]);
        assert_eq!(pair[0]["seq"].as_i64().unwrap(), pair[1]["seq"].as_i64().unwrap() + 1);
    }
    let moved = &items[1];
    assert_eq!(
        (moved["prompt"].as_str(), moved["version"].as_i64(), moved["label"].as_str()),
        (Some("a"), Some(2), Some("stable"))
    );
    assert_eq!(moved["detail"]["reason"], "go");
    assert_eq!(moved["actor"], "key:test-admin");

    let only_a = s.get("/api/v1/audit?prompt=a", &s.admin).await;
    assert_eq!(only_a.body["items"].as_array().unwrap().len(), 3);
    let moves = s.get("/api/v1/audit?action=label.moved", &s.admin).await;
    assert_eq!(moves.body["items"].as_array().unwrap().len(), 1);
    let by_actor = s.get("/api/v1/audit?actor=key%3Atest-admin", &s.admin).await;
    assert_eq!(by_actor.body["items"].as_array().unwrap().len(), 4);
    let since = s.get(&format!("/api/v1/audit?since={before}"), &s.admin).await;
    assert_eq!(since.body["items"].as_array().unwrap().len(), 4);
    let until = s.get(&format!("/api/v1/audit?until={before}"), &s.admin).await;
    assert_eq!(until.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(s.get("/api/v1/audit?since=yesterday", &s.admin).await.status, StatusCode::BAD_REQUEST);

    let page = s.get("/api/v1/audit?limit=2", &s.admin).await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = s.get(&format!("/api/v1/audit?limit=10&cursor={cursor}"), &s.admin).await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 3);

    let verify = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(verify.body["ok"], true, "{}", verify.text);
    assert_eq!(verify.body["events"], 5);
    assert_eq!(verify.body["head"], items[0]["hash"]);
    s.stop().await;
}

#[tokio::test]
async fn transport_errors_are_json() {
    let s = TestServer::start().await;
    let big = json!({"name": "big", "template": "x".repeat(1_100_000)}).to_string();
    let r = s.raw(Method::POST, "/api/v1/prompts", Some(&s.admin), Some(big), &[]).await;
    assert_eq!((r.status, r.code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let r = s.raw(Method::GET, "/api/v1/nothing-here", Some(&s.admin), None, &[]).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = s.raw(Method::DELETE, "/api/v1/prompts", Some(&s.admin), None, &[]).await;
    assert_eq!((r.status, r.code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let r = s.raw(Method::GET, "/api/v1/prompts", None, None, &[]).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = s.raw(Method::GET, "/api/v1/prompts", Some("pl_not-a-key"), None, &[]).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert!(s.healthy().await);
    s.stop().await;
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let s = TestServer::start().await;
    assert!(s.healthy().await);
    s.create_text("m", "x").await;
    s.get("/api/v1/prompts/m?label=latest", &s.admin).await;
    let text = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains("http_requests_total{method=\"GET\",route=\"/api/v1/prompts/{name}\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/prompts\"} 1"),
        "{text}"
    );
    let openapi = s.http.get(format!("{}/api/v1/openapi.yaml", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(openapi.contains("openapi: 3."), "{openapi}");
    let actions = openapi.split("action: {enum: [").nth(1).and_then(|rest| rest.split(']').next()).unwrap();
    let listed: Vec<&str> = actions.split(',').map(str::trim).collect();
    for action in domain::vocabulary::AuditAction::ALL {
        assert!(listed.contains(&action.as_str()), "the OpenAPI document does not list the audit action {action}");
    }
    s.stop().await;
}

#[tokio::test]
async fn keys_and_users_over_the_api() {
    let s = TestServer::start().await;
    let u = s
        .post("/api/v1/users", &s.admin, json!({"username": "alice", "role": "editor", "password": "correct horse"}))
        .await;
    assert_eq!(u.status, StatusCode::CREATED, "{}", u.text);
    assert_eq!((u.body["role"].as_str(), u.body["has_password"].as_bool()), (Some("editor"), Some(true)));
    assert!(!u.text.contains("correct horse") && !u.text.contains("argon2"));
    let dup = s.post("/api/v1/users", &s.admin, json!({"username": "alice", "role": "viewer"})).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    let k = s.post("/api/v1/keys", &s.admin, json!({"name": "alice-ci", "scope": "write", "user": "alice"})).await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text);
    let key = k.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pl_") && key.len() == 67);
    let made = s.post("/api/v1/prompts", &key, json!({"name": "by-alice", "template": "x"})).await;
    assert_eq!(made.body["created_by"], "alice");

    let list = s.get("/api/v1/keys", &s.admin).await;
    assert!(!list.text.contains(&key), "a key list must never show secrets");
    assert_eq!(
        s.post("/api/v1/keys", &s.admin, json!({"name": "x", "scope": "read", "user": "nobody"})).await.status,
        StatusCode::NOT_FOUND
    );

    let revoked = s.call(Method::DELETE, "/api/v1/keys/alice-ci", &s.admin, None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    assert_eq!(s.get("/api/v1/prompts", &key).await.status, StatusCode::UNAUTHORIZED);
    let actions: Vec<String> = s.get("/api/v1/audit?limit=3", &s.admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["apikey.revoked", "prompt.created", "apikey.created"]);
    s.stop().await;
}

/// An extension: a prompt's description and tags change without a new version, audited;
/// bad input is 4xx and changes nothing.
#[tokio::test]
async fn description_and_tags_change_without_a_version() {
    let s = TestServer::start().await;
    s.create_text("support/tagged", "Hello").await;
    let path = format!("/api/v1/prompts/{}", enc("support/tagged"));
    let details = |what: serde_json::Value| s.call(Method::PATCH, &path, &s.admin, Some(what));
    let r = details(json!({"description": "Greets customers", "tags": ["support", " support ", "tone"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.body["description"].as_str(), r.body["tags"].clone()), (Some("Greets customers"), json!(["support", "tone"])));
    assert_eq!(r.body["latest_version"], 1, "no version is made");
    let listed = s.get("/api/v1/prompts?tag=tone", &s.admin).await;
    assert_eq!(listed.body["items"][0]["name"], "support/tagged", "{}", listed.text);

    // Only what is given changes; the same again writes nothing.
    let r = details(json!({"tags": ["billing"]})).await;
    assert_eq!((r.body["description"].as_str(), r.body["tags"].clone()), (Some("Greets customers"), json!(["billing"])));
    details(json!({"tags": ["billing"]})).await;
    let audit = s.get("/api/v1/audit?prompt=support%2Ftagged&action=prompt.updated", &s.admin).await.body;
    let events = audit["items"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{audit}");
    assert_eq!((events[0]["detail"]["tags"].clone(), events[0]["detail"]["previous_tags"].clone()), (json!(["billing"]), json!(["support", "tone"])));

    // Bad input: 4xx, nothing changed.
    for (bad, code) in [
        (json!({"tags": [""]}), "invalid_tags"),
        (json!({"tags": "support"}), "invalid_body"),
        (json!({"labels": ["x"]}), "invalid_body"),
    ] {
        let r = details(bad.clone()).await;
        assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{bad}: {}", r.text);
    }
    let missing = s.call(Method::PATCH, "/api/v1/prompts/nope", &s.admin, Some(json!({"tags": []}))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let reader = s.key("reader", domain::access::Scope::Read, None).await;
    let refused = s.call(Method::PATCH, &path, &reader, Some(json!({"tags": []}))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let summary = s.get("/api/v1/prompts?tag=billing", &s.admin).await.body;
    assert_eq!(summary["items"][0]["tags"], json!(["billing"]));
    let verify = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(verify.body["ok"], true);
    s.stop().await;
}
