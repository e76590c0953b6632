//! The role and scope matrix: no key can do more than API.md allows.

mod common;

use common::TestServer;
use domain::access::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// What each kind of caller attempts, and whether it must be allowed:
/// [read, write (new prompt + version + free label), move stable, administer].
async fn attempt(s: &TestServer, key: &str, tag: &str) -> [bool; 4] {
    let read = s.get("/api/v1/prompts/base?label=latest", key).await.status == StatusCode::OK
        && s.get("/api/v1/audit", key).await.status == StatusCode::OK
        && s.get("/api/v1/audit/verify", key).await.status == StatusCode::OK;
    let create = s.post("/api/v1/prompts", key, json!({"name": format!("new-{tag}"), "template": "x"})).await.status;
    let latest = s.get("/api/v1/prompts/base?label=latest", &s.admin).await.body["version"].as_i64().unwrap();
    let version = s
        .post("/api/v1/prompts/base/versions", key, json!({"base_version": latest, "template": format!("t {tag}")}))
        .await
        .status;
    let canary = s.put("/api/v1/prompts/base/labels/canary", key, json!({"version": 1, "reason": tag})).await.status;
    let write = [create, version, canary].map(|st| st.is_success());
    assert!(write.iter().all(|w| *w) || write.iter().all(|w| !*w), "{tag}: {create} {version} {canary}");
    for st in [create, version, canary] {
        assert!(st.is_success() || st == StatusCode::FORBIDDEN, "{tag}: {st}");
    }
    let stable = s.put("/api/v1/prompts/base/labels/stable", key, json!({"version": 1, "reason": tag})).await.status;
    let unstable = s.put("/api/v1/prompts/base/labels/stable", &s.admin, json!({"version": latest})).await;
    assert!(unstable.status.is_success());
    let admin = s.post("/api/v1/keys", key, json!({"name": format!("k-{tag}"), "scope": "read"})).await.status;
    let users = s.raw(Method::GET, "/api/v1/users", Some(key), None, &[]).await.status;
    assert_eq!(admin.is_success(), users.is_success(), "{tag}");
    for st in [stable, admin, users] {
        assert!(st.is_success() || st == StatusCode::FORBIDDEN, "{tag}: {st}");
    }
    [read, write[0], stable.is_success(), admin.is_success()]
}

#[tokio::test]
async fn scopes_and_roles_allow_exactly_what_the_spec_says() {
    let s = TestServer::start().await;
    s.create_text("base", "x").await;
    for role in Role::ALL {
        s.user(role.as_str(), role).await;
    }
    let mut cases = Vec::new();
    // Service keys: the scope alone.
    cases.push(("app-key", s.key("svc-app", Scope::App, None).await, [false, false, false, false]));
    cases.push(("read-key", s.key("svc-read", Scope::Read, None).await, [true, false, false, false]));
    cases.push(("write-key", s.key("svc-write", Scope::Write, None).await, [true, true, false, false]));
    cases.push(("admin-key", s.key("svc-admin", Scope::Admin, None).await, [true, true, true, true]));
    // Keys acting as people: the scope AND the role.
    let expected_role = |r: Role| match r {
        Role::Viewer => [true, false, false, false],
        Role::Editor => [true, true, false, false],
        Role::Publisher => [true, true, true, false],
        Role::Admin => [true, true, true, true],
    };
    for role in Role::ALL {
        for scope in Scope::ALL {
            let key = s.key(&format!("{}-{}", role.as_str(), scope.as_str()), scope, Some(role.as_str())).await;
            let by_scope = match scope {
                Scope::App => [false, false, false, false],
                Scope::Read => [true, false, false, false],
                Scope::Write => [true, true, false, false],
                Scope::Admin => [true, true, true, true],
            };
            let by_role = expected_role(role);
            let expected = [0, 1, 2, 3].map(|i| by_scope[i] && by_role[i]);
            cases.push((Box::leak(format!("{}-as-{}", scope.as_str(), role.as_str()).into_boxed_str()), key, expected));
        }
    }
    for (tag, key, expected) in &cases {
        let got = attempt(&s, key, tag).await;
        assert_eq!(&got, expected, "{tag}: [read, write, move stable, administer]");
    }
    // Every allowed stable move was audited under the right actor.
    let moves = s.get("/api/v1/audit?action=label.moved&label=stable&limit=1000", &s.admin).await;
    assert_eq!(moves.status, StatusCode::BAD_REQUEST, "unknown filters are refused, not ignored");
    let moves = s.get("/api/v1/audit?action=label.moved&actor=publisher&limit=1000", &s.admin).await;
    assert!(!moves.body["items"].as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn disabled_and_revoked_keys_are_refused() {
    let s = TestServer::start().await;
    let key = s.key("temp", Scope::Read, None).await;
    assert_eq!(s.get("/api/v1/prompts", &key).await.status, StatusCode::OK);
    s.registry.revoke_key(&service::Principal::operator(), "temp").await.unwrap();
    let r = s.get("/api/v1/prompts", &key).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    s.stop().await;
}
