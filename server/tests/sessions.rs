//! Console sign-in through the service layer against a real SQLite file: sessions end
//! when idle, when too old, at sign-out and when the account is disabled; repeated
//! failures are rate limited. And, over HTTP, the cross-site guard and security headers.

mod common;

use common::TestServer;
use domain::access::Role;
use reqwest::Method;
use service::{Principal, ServiceError, UserChange};

const PASSWORD: &str = "a long enough password";

async fn with_user(s: &TestServer, name: &str, role: Role) {
    s.registry.add_user(&Principal::operator(), name, role, Some(PASSWORD.into())).await.unwrap();
}

async fn age_sessions(s: &TestServer, column: &str, hours: i64) {
    let mut db = s.sql().await;
    let shift = hours * 3_600_000_000;
    sqlx::query(&format!("UPDATE sessions SET {column} = {column} - $1")).bind(shift).execute(&mut db).await.unwrap();
}

fn ended(result: Result<std::sync::Arc<Principal>, ServiceError>) -> bool {
    matches!(result, Err(ServiceError::Unauthenticated(_)))
}

#[tokio::test]
async fn sessions_end_when_idle_too_old_signed_out_or_disabled() {
    let s = TestServer::start().await;
    with_user(&s, "lead", Role::Editor).await;
    let r = &s.registry;

    let session = r.login("lead", PASSWORD, None, None).await.unwrap();
    assert_eq!(session.token.len(), 64);
    let who = r.authenticate_session(&session.token).await.unwrap();
    assert_eq!((who.actor.as_str(), who.grant.role), ("lead", Some(Role::Editor)));
    // The database holds only the SHA-256 of the cookie value.
    let mut db = s.sql().await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT id_hash FROM sessions").fetch_one(&mut db).await.unwrap();
    assert_ne!(stored, session.token.as_bytes());
    assert_eq!(hex::encode(&stored), {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(session.token.as_bytes()))
    });

    // Idle for three hours (the limit is two).
    age_sessions(&s, "last_seen_at", 3).await;
    assert!(ended(r.authenticate_session(&session.token).await));

    // Active, but signed in thirteen hours ago (the limit is twelve).
    let session = r.login("lead", PASSWORD, None, None).await.unwrap();
    age_sessions(&s, "created_at", 13).await;
    assert!(ended(r.authenticate_session(&session.token).await));

    // A new sign-in replaces the session the browser had (a new id every time).
    let first = r.login("lead", PASSWORD, None, None).await.unwrap();
    let second = r.login("lead", PASSWORD, None, Some(&first.token)).await.unwrap();
    assert_ne!(first.token, second.token);
    assert!(ended(r.authenticate_session(&first.token).await));
    r.authenticate_session(&second.token).await.unwrap();

    // Signing out ends it.
    r.logout(&second.token).await.unwrap();
    assert!(ended(r.authenticate_session(&second.token).await));

    // Disabling the account ends every session and refuses new ones.
    let session = r.login("lead", PASSWORD, None, None).await.unwrap();
    let change = UserChange { disabled: Some(true), ..Default::default() };
    r.update_user(&Principal::operator(), "lead", change).await.unwrap();
    assert!(ended(r.authenticate_session(&session.token).await));
    assert!(matches!(r.login("lead", PASSWORD, None, None).await, Err(ServiceError::Unauthenticated(_))));
    s.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_account_and_per_address() {
    let s = TestServer::start().await;
    with_user(&s, "pm", Role::Publisher).await;
    with_user(&s, "other", Role::Viewer).await;
    let r = &s.registry;
    let addr = Some("203.0.113.7".parse().unwrap());
    for _ in 0..5 {
        assert!(matches!(r.login("pm", "wrong password", addr, None).await, Err(ServiceError::Unauthenticated(_))));
    }
    // Locked: even the right password is refused, with how long to wait.
    match r.login("pm", PASSWORD, addr, None).await {
        Err(ServiceError::RateLimited { retry_after }) => assert!((1..=900).contains(&retry_after)),
        other => panic!("expected a rate limit, got {:?}", other.map(|_| ())),
    }
    // Another account from another address is unaffected.
    r.login("other", PASSWORD, Some("198.51.100.1".parse().unwrap()), None).await.unwrap();
    // An address guessing across accounts is locked after 20 failures.
    let guesser = Some("192.0.2.9".parse().unwrap());
    for i in 0..20 {
        let _ = r.login(&format!("nobody{i}"), "guess", guesser, None).await;
    }
    assert!(matches!(r.login("other", PASSWORD, guesser, None).await, Err(ServiceError::RateLimited { .. })));
    s.stop().await;
}

#[tokio::test]
async fn admins_cannot_lock_themselves_out_and_changes_are_audited() {
    let s = TestServer::start().await;
    with_user(&s, "root", Role::Admin).await;
    let root = s.registry.login("root", PASSWORD, None, None).await.unwrap().principal;
    let demote = UserChange { role: Some(Role::Viewer), ..Default::default() };
    let refused = s.registry.update_user(&root, "root", demote).await;
    assert!(matches!(refused, Err(ServiceError::Rule { code: "own_account", .. })));

    // Over the API: change a role, then disable; each is an audit event.
    s.user("lead", Role::Editor).await;
    let changed =
        s.call(Method::PATCH, "/api/v1/users/lead", &s.admin, Some(serde_json::json!({"role": "publisher"}))).await;
    assert_eq!((changed.status.as_u16(), changed.body["role"].as_str()), (200, Some("publisher")));
    let disabled =
        s.call(Method::PATCH, "/api/v1/users/lead", &s.admin, Some(serde_json::json!({"disabled": true}))).await;
    assert_eq!(disabled.body["disabled"], true);
    let bad = s.call(Method::PATCH, "/api/v1/users/lead", &s.admin, Some(serde_json::json!({"role": "owner"}))).await;
    assert_eq!(bad.status.as_u16(), 422);
    let missing =
        s.call(Method::PATCH, "/api/v1/users/nobody", &s.admin, Some(serde_json::json!({"disabled": true}))).await;
    assert_eq!(missing.status.as_u16(), 404);
    let events = s.get("/api/v1/audit?limit=2", &s.admin).await.body["items"].clone();
    assert_eq!(events[0]["action"], "user.disabled");
    assert_eq!(events[1]["action"], "user.updated");
    assert_eq!(events[1]["detail"]["previous_role"], "editor");
    assert_eq!(s.get("/api/v1/audit/verify", &s.admin).await.body["ok"], true);
    s.stop().await;
}

#[tokio::test]
async fn cross_site_changes_are_refused_and_security_headers_are_set() {
    let s = TestServer::start().await;
    let body = Some(r#"{"name": "x", "template": "hi"}"#.to_owned());
    for headers in [&[("sec-fetch-site", "cross-site")][..], &[("origin", "https://evil.example")][..]] {
        let refused = s.raw(Method::POST, "/api/v1/prompts", None, body.clone(), headers).await;
        assert_eq!((refused.status.as_u16(), refused.code()), (403, "cross_site"), "{headers:?}");
    }
    // Same-origin requests reach the handler (which then asks for credentials).
    let host = s.base.trim_start_matches("http://").to_owned();
    let origin = s.base.clone();
    let same =
        s.raw(Method::POST, "/api/v1/prompts", None, body.clone(), &[("origin", &origin), ("host", &host)]).await;
    assert_eq!(same.status.as_u16(), 401);
    // An API key is never cross-site: the browser cannot attach one to a forged request.
    let keyed = s.raw(Method::POST, "/api/v1/prompts", Some(&s.admin), body, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(keyed.status.as_u16(), 201);
    // Reads are never refused, and every response carries the headers.
    let read = s.raw(Method::GET, "/healthz", None, None, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(read.status.as_u16(), 200);
    assert_eq!(read.headers["x-content-type-options"], "nosniff");
    assert_eq!(read.headers["x-frame-options"], "DENY");
    assert_eq!(read.headers["referrer-policy"], "same-origin");
    assert!(read.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(s.get("/api/v1/prompts", &s.admin).await.body["items"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn the_audit_export_needs_a_session_and_answers_bad_filters_with_json_errors() {
    let s = TestServer::start().await;
    s.create_text("export/me", "Hello, world").await;
    with_user(&s, "auditor", Role::Viewer).await;
    let token = s.registry.login("auditor", PASSWORD, None, None).await.unwrap().token;
    let cookie = format!("promptledger_session={token}");

    let signed_out = s.raw(Method::GET, "/export/audit.csv", None, None, &[]).await;
    assert_eq!(signed_out.status.as_u16(), 401);
    let csv = s.raw(Method::GET, "/export/audit.csv?prompt=export%2Fme", None, None, &[("cookie", &cookie)]).await;
    assert_eq!(csv.status.as_u16(), 200, "{}", csv.text);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines[0], "seq,at,actor,action,prompt,version,label,detail,hash,prev_hash");
    // The header and the one event of that prompt (its creation, version 1 included).
    assert_eq!(lines.len(), 2, "{}", csv.text);
    assert!(lines[1].contains(",prompt.created,export/me,1,"), "{}", lines[1]);
    for bad in ["/export/audit.json?bogus=1", "/export/audit.json?since=last+tuesday", "/export/audit.csv?until=%ZZ"] {
        let refused = s.raw(Method::GET, bad, None, None, &[("cookie", &cookie)]).await;
        assert_eq!((refused.status.as_u16(), refused.code()), (400, "bad_request"), "{bad}: {}", refused.text);
    }
    s.stop().await;
}
