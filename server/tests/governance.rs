//! Governance over HTTP against a real server and SQLite file: label policies, the eval
//! gate on the exact version, four-eyes approval (never the requester, nor another key of
//! the same person), rejection, withdrawal, expiry, and the audit trail of every step.

mod common;

use std::time::{Duration, Instant};

use common::provider::MockProvider;
use common::{TestServer, enc};
use domain::access::{Role, Scope};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PROMPT: &str = "billing/notice";

async fn setup() -> (TestServer, MockProvider) {
    let server = TestServer::start().await;
    let mock = MockProvider::start().await;
    let r = server
        .put(
            "/api/v1/providers/local",
            &server.admin,
            json!({"kind": "openai", "base_url": format!("{}/v1", mock.base)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Version 1 passes the suite, version 2 apologises and fails it.
    let r = server
        .post(
            "/api/v1/prompts",
            &server.admin,
            json!({"name": PROMPT, "template": "SAY:{{ m }}", "config": {"model": "local/m"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let path = format!("/api/v1/prompts/{}/versions", enc(PROMPT));
    let r = server
        .post(
            &path,
            &server.admin,
            json!({"base_version": 1, "template": "SAY:Sorry, {{ m }}", "config": {"model": "local/m"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let suite =
        json!({"cases": [{"vars": {"m": "thank you"}, "assert": [{"type": "not-icontains", "value": "sorry"}]}]});
    let r = server.put(&format!("/api/v1/prompts/{}/suites/smoke", enc(PROMPT)), &server.admin, suite).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (server, mock)
}

async fn run(server: &TestServer, version: i64) -> Value {
    let r = server
        .post(
            &format!("/api/v1/prompts/{}/eval-runs", enc(PROMPT)),
            &server.admin,
            json!({"suite": "smoke", "version": version}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = server.get(&format!("/api/v1/eval-runs/{id}"), &server.admin).await;
        if !matches!(r.body["status"].as_str(), Some("queued" | "running")) {
            return r.body;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn move_label(server: &TestServer, key: &str, label: &str, version: i64) -> common::Reply {
    server
        .put(
            &format!("/api/v1/prompts/{}/labels/{label}", enc(PROMPT)),
            key,
            json!({"version": version, "reason": "release"}),
        )
        .await
}

async fn serves(server: &TestServer, label: &str) -> Option<i64> {
    let r = server.get(&format!("/api/v1/prompts/{}/labels", enc(PROMPT)), &server.admin).await;
    r.body["labels"][label].as_i64()
}

#[tokio::test]
async fn eval_gates_and_four_eyes_approval_hold_for_people_and_keys_alike() {
    let (server, _mock) = setup().await;
    server.user("pub-a", Role::Publisher).await;
    server.user("pub-b", Role::Publisher).await;
    let a1 = server.key("a-1", Scope::Admin, Some("pub-a")).await;
    let a2 = server.key("a-2", Scope::Admin, Some("pub-a")).await;
    let b = server.key("b-1", Scope::Admin, Some("pub-b")).await;

    // Only admins set policies; the policy reads back; it is audited.
    let policy =
        json!({"protected": true, "require_eval": {"suite": "smoke", "min_pass_rate": 1.0}, "require_approval": true});
    assert_eq!(server.put("/api/v1/labels/stable/policy", &a1, policy.clone()).await.status, StatusCode::FORBIDDEN);
    let r = server.put("/api/v1/labels/stable/policy", &server.admin, policy.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(server.get("/api/v1/labels/stable/policy", &b).await.body, policy);
    for bad in [
        json!({"require_eval": {"suite": "smoke", "min_pass_rate": 1.5}}),
        json!({"protected": "yes"}),
        json!({"surprise": true}),
    ] {
        assert_eq!(
            server.put("/api/v1/labels/stable/policy", &server.admin, bad.clone()).await.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    assert_eq!(
        server.put("/api/v1/labels/latest/policy", &server.admin, json!({})).await.code(),
        "latest_is_automatic"
    );

    // The gate with no run yet: refused, naming the suite, the rate and that nothing ran.
    let r = move_label(&server, &a1, "stable", 1).await;
    assert_eq!(r.code(), "eval_gate", "{}", r.text);
    assert_eq!(
        (r.body["error"]["suite"].as_str(), r.body["error"]["min_pass_rate"].as_f64()),
        (Some("smoke"), Some(1.0))
    );
    assert_eq!(r.body["error"]["best_pass_rate"], Value::Null);
    // An admin-scope service key cannot skip it either.
    assert_eq!(move_label(&server, &server.admin, "stable", 1).await.code(), "eval_gate");

    let good = run(&server, 1).await;
    let bad = run(&server, 2).await;
    assert_eq!((good["status"].as_str(), bad["status"].as_str()), (Some("passed"), Some("failed")));
    // Version 2's best run failed: refused, naming it.
    let r = move_label(&server, &a1, "stable", 2).await;
    assert_eq!(r.code(), "eval_gate");
    assert_eq!(r.body["error"]["best_pass_rate"], 0.0);
    assert_eq!(r.body["error"]["best_run"], bad["id"]);

    // Version 1 passes the gate: the move becomes a pending request.
    let r = move_label(&server, &a1, "stable", 1).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(
        (r.body["status"].as_str(), r.body["requested_by"].as_str(), r.body["prompt"].as_str()),
        (Some("pending"), Some("pub-a"), Some(PROMPT))
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(serves(&server, "stable").await, None, "nothing moved yet");
    let pending = server.get("/api/v1/label-requests?status=pending", &b).await;
    assert!(pending.body["items"].as_array().unwrap().iter().any(|q| q["id"] == id.as_str()));

    // Never the requester, nor another key of the same person.
    for key in [&a1, &a2] {
        let r = server.post(&format!("/api/v1/label-requests/{id}/approve"), key, json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    // A second publisher approves: the label moves, served on the very next request.
    let r =
        server.post(&format!("/api/v1/label-requests/{id}/approve"), &b, json!({"comment": "checked the run"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.body["status"].as_str(), r.body["decided_by"].as_str()), (Some("approved"), Some("pub-b")));
    let served = server.get(&format!("/api/v1/prompts/{}", enc(PROMPT)), &b).await;
    assert_eq!(served.body["version"], 1);
    // Deciding again is a conflict.
    assert_eq!(
        server.post(&format!("/api/v1/label-requests/{id}/reject"), &server.admin, json!({})).await.code(),
        "request_closed"
    );

    // Rejection leaves the label where it was; a withdrawn request cannot be approved.
    server.put("/api/v1/labels/canary/policy", &server.admin, json!({"require_approval": true})).await;
    let r = move_label(&server, &a1, "canary", 2).await;
    let rejected = r.body["id"].as_str().unwrap().to_owned();
    let r = server.post(&format!("/api/v1/label-requests/{rejected}/reject"), &b, json!({"comment": "not yet"})).await;
    assert_eq!((r.body["status"].as_str(), r.body["comment"].as_str()), (Some("rejected"), Some("not yet")));
    assert_eq!(serves(&server, "canary").await, None);
    let r = move_label(&server, &a2, "canary", 1).await;
    let withdrawn = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        server.post(&format!("/api/v1/label-requests/{withdrawn}/withdraw"), &b, json!({})).await.status,
        StatusCode::FORBIDDEN
    );
    let r = server.post(&format!("/api/v1/label-requests/{withdrawn}/withdraw"), &a1, json!({})).await;
    assert_eq!(r.body["status"], "withdrawn", "another key of the requester may withdraw: {}", r.text);
    assert_eq!(
        server.post(&format!("/api/v1/label-requests/{withdrawn}/approve"), &b, json!({})).await.code(),
        "request_closed"
    );

    // A request that waits too long expires (aged in the file) and cannot be approved.
    let r = move_label(&server, &a1, "canary", 1).await;
    let expiring = r.body["id"].as_str().unwrap().to_owned();
    let mut db = server.sql().await;
    sqlx::query("UPDATE label_requests SET expires_at = 0 WHERE id = $1")
        .bind(&expiring)
        .execute(&mut db)
        .await
        .unwrap();
    let r = server.post(&format!("/api/v1/label-requests/{expiring}/approve"), &b, json!({})).await;
    assert_eq!(r.code(), "request_closed", "{}", r.text);
    assert_eq!(server.get(&format!("/api/v1/label-requests/{expiring}"), &b).await.body["status"], "expired");

    // The gate is checked again at approval: a request opened under one gate waits if
    // the gate changed and is no longer met.
    server.put("/api/v1/labels/gold/policy", &server.admin, json!({"require_approval": true})).await;
    let r = move_label(&server, &a1, "gold", 2).await;
    let later = r.body["id"].as_str().unwrap().to_owned();
    server
        .put(
            "/api/v1/labels/gold/policy",
            &server.admin,
            json!({"require_approval": true, "require_eval": {"suite": "smoke", "min_pass_rate": 0.5}}),
        )
        .await;
    assert_eq!(
        server.post(&format!("/api/v1/label-requests/{later}/approve"), &b, json!({})).await.code(),
        "eval_gate"
    );
    assert_eq!(server.get(&format!("/api/v1/label-requests/{later}"), &b).await.body["status"], "pending");
    // A prompt without the gate's suite cannot skip it.
    server
        .put(
            "/api/v1/labels/nightly/policy",
            &server.admin,
            json!({"require_eval": {"suite": "regression", "min_pass_rate": 0.9}}),
        )
        .await;
    let r = move_label(&server, &a1, "nightly", 1).await;
    assert_eq!(r.code(), "eval_gate");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("no such suite"), "{}", r.text);

    // Every step is in the audit log, and the chain verifies.
    let audit = server.get("/api/v1/audit?limit=500", &server.admin).await;
    let actions: Vec<&str> =
        audit.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in [
        "label.policy.set",
        "label.request.opened",
        "label.request.approved",
        "label.moved",
        "label.request.rejected",
        "label.request.withdrawn",
        "label.request.expired",
    ] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    assert_eq!(server.get("/api/v1/audit/verify", &server.admin).await.body["ok"], true);
    server.stop().await;
}
