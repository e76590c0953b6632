//! Releases (API.md "Releases and lockfiles"): several prompts moved together, all or
//! nothing under every label rule, one approval for the whole release, rollback.

mod common;

use common::TestServer;
use domain::access::{Role, Scope};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn two_prompts(s: &TestServer) {
    for name in ["support/greeting", "support/refund"] {
        s.create_text(name, "one").await;
        s.put(&format!("/api/v1/prompts/{}/labels/stable", common::enc(name)), &s.admin, json!({"version": 1})).await;
        let r = s
            .post(&format!("/api/v1/prompts/{}/versions", common::enc(name)), &s.admin, json!({"base_version": 1, "template": "two"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
}

async fn label_of(s: &TestServer, name: &str, label: &str) -> Option<i64> {
    s.get(&format!("/api/v1/prompts/{}/labels", common::enc(name)), &s.admin).await.body["labels"][label].as_i64()
}

async fn audit_actions(s: &TestServer) -> Vec<String> {
    let r = s.get("/api/v1/audit?limit=500", &s.admin).await;
    r.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_release_moves_every_prompt_or_none_and_rolls_back_together() {
    let s = TestServer::start().await;
    two_prompts(&s).await;
    let release = json!({"label": "stable", "prompts": {"support/greeting": 2, "support/refund": 2}, "reason": "new tone"});

    // Refused as a whole: one prompt has no such version, another does not exist.
    let bad = json!({"label": "stable", "prompts": {"support/greeting": 2, "support/refund": 9, "nope": 1}});
    let r = s.post("/api/v1/releases", &s.admin, bad).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "release_refused"));
    let refusals = r.body["error"]["refusals"].as_array().unwrap();
    let refused: Vec<&str> = refusals.iter().map(|x| x["prompt"].as_str().unwrap()).collect();
    assert_eq!(refused, ["nope", "support/refund"], "{}", r.text);
    assert!(refusals.iter().all(|x| x["code"] == "not_found"));
    assert_eq!(label_of(&s, "support/greeting", "stable").await, Some(1), "nothing moved");
    assert!(!audit_actions(&s).await.iter().any(|a| a == "release.created"));

    // Bad shapes are 4xx and change nothing.
    for body in [json!({"label": "stable", "prompts": {}}), json!({"label": "latest", "prompts": {"support/greeting": 2}}),
                 json!({"label": "stable", "prompts": {"support/greeting": "two"}})] {
        let r = s.post("/api/v1/releases", &s.admin, body.clone()).await;
        assert!(r.status.is_client_error(), "{body}: {}", r.text);
    }

    let r = s.post("/api/v1/releases", &s.admin, release.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rel_"));
    assert_eq!(r.body["label"], "stable");
    assert_eq!(
        r.body["moves"],
        json!([{"prompt": "support/greeting", "version": 2, "previous_version": 1},
               {"prompt": "support/refund", "version": 2, "previous_version": 1}])
    );
    assert_eq!(r.body["created_by"], "key:test-admin");
    for name in ["support/greeting", "support/refund"] {
        assert_eq!(s.get(&format!("/api/v1/prompts/{}", common::enc(name)), &s.admin).await.body["version"], 2);
    }
    let actions = audit_actions(&s).await;
    assert_eq!(actions.iter().filter(|a| *a == "release.created").count(), 1);
    assert_eq!(s.get(&format!("/api/v1/releases/{id}"), &s.admin).await.body["id"], id.as_str());
    let listed = s.get("/api/v1/releases", &s.admin).await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());

    // Rollback: every label back, together, as a release of its own; once only.
    let back = s.post(&format!("/api/v1/releases/{id}/rollback"), &s.admin, json!({"reason": "complaints"})).await;
    assert_eq!(back.status, StatusCode::CREATED, "{}", back.text);
    assert_eq!(back.body["rollback_of"], id.as_str());
    for name in ["support/greeting", "support/refund"] {
        assert_eq!(label_of(&s, name, "stable").await, Some(1));
    }
    assert_eq!(s.get(&format!("/api/v1/releases/{id}"), &s.admin).await.body["rolled_back_by"], back.body["id"]);
    let again = s.post(&format!("/api/v1/releases/{id}/rollback"), &s.admin, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(audit_actions(&s).await.iter().any(|a| a == "release.rolled_back"));
    assert_eq!(s.get("/api/v1/releases/rel_nope", &s.admin).await.status, StatusCode::NOT_FOUND);
    let verify = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(verify.body["ok"], true, "{}", verify.text);
    s.stop().await;
}

#[tokio::test]
async fn a_release_holds_to_gates_protection_and_one_approval() {
    let s = TestServer::start().await;
    two_prompts(&s).await;
    s.user("pub-a", Role::Publisher).await;
    s.user("pub-b", Role::Publisher).await;
    s.user("ed", Role::Editor).await;
    let a = s.key("a", Scope::Admin, Some("pub-a")).await;
    let b = s.key("b", Scope::Admin, Some("pub-b")).await;
    let editor = s.key("e", Scope::Write, Some("ed")).await;

    // An eval gate refuses each prompt without a passing run, naming the gate.
    let gate = json!({"require_eval": {"suite": "smoke", "min_pass_rate": 1.0}});
    assert_eq!(s.put("/api/v1/labels/gated/policy", &s.admin, gate).await.status, StatusCode::OK);
    let r = s.post("/api/v1/releases", &a, json!({"label": "gated", "prompts": {"support/greeting": 2, "support/refund": 2}})).await;
    assert_eq!(r.code(), "release_refused");
    let codes: Vec<&str> = r.body["error"]["refusals"].as_array().unwrap().iter().map(|x| x["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["eval_gate", "eval_gate"]);

    // A protected label: an editor may not release it at all.
    let protect = json!({"protected": true, "require_approval": true});
    assert_eq!(s.put("/api/v1/labels/stable/policy", &s.admin, protect).await.status, StatusCode::OK);
    let plan = json!({"label": "stable", "prompts": {"support/greeting": 2, "support/refund": 2}, "reason": "q4"});
    let r = s.post("/api/v1/releases", &editor, plan.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // With approval required: one request for the whole release, nothing moved yet.
    let r = s.post("/api/v1/releases", &a, plan.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["release"]["prompts"], json!({"support/greeting": 2, "support/refund": 2}));
    let request = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(label_of(&s, "support/refund", "stable").await, Some(1));
    let pending = s.get("/api/v1/label-requests?status=pending", &b).await;
    assert_eq!(pending.body["items"].as_array().unwrap().len(), 1);
    // The requester cannot approve; another publisher can, and both move at once.
    assert_eq!(s.post(&format!("/api/v1/label-requests/{request}/approve"), &a, json!({})).await.status, StatusCode::FORBIDDEN);
    let r = s.post(&format!("/api/v1/label-requests/{request}/approve"), &b, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "approved");
    for name in ["support/greeting", "support/refund"] {
        assert_eq!(label_of(&s, name, "stable").await, Some(2));
    }
    let releases = s.get("/api/v1/releases", &s.admin).await;
    let made: &Value = &releases.body["items"][0];
    assert_eq!(made["moves"].as_array().unwrap().len(), 2);
    assert_eq!(made["created_by"], "pub-b");

    // Its rollback needs approval too.
    let back = s.post(&format!("/api/v1/releases/{}/rollback", made["id"].as_str().unwrap()), &a, json!({})).await;
    assert_eq!(back.status, StatusCode::ACCEPTED, "{}", back.text);
    assert_eq!(back.body["release"]["rollback_of"], made["id"]);
    let r = s.post(&format!("/api/v1/label-requests/{}/approve", back.body["id"].as_str().unwrap()), &b, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for name in ["support/greeting", "support/refund"] {
        assert_eq!(label_of(&s, name, "stable").await, Some(1));
    }
    s.stop().await;
}
