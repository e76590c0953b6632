//! History is append-only in the database itself, and editing it behind the server's
//! back (its triggers dropped or disabled) is caught by verification. Both backends.

mod common;

use common::TestServer;
use serde_json::json;
use sqlx::AnyConnection;

async fn setup() -> TestServer {
    let s = TestServer::start().await;
    s.create_text("t", "Be kind to {{ customer }}").await;
    s.post(
        "/api/v1/prompts/t/versions",
        &s.admin,
        json!({"base_version": 1, "template": "Be brief with {{ customer }}"}),
    )
    .await;
    s.put("/api/v1/prompts/t/labels/stable", &s.admin, json!({"version": 2})).await;
    assert_eq!(s.get("/api/v1/audit/verify", &s.admin).await.body["ok"], true);
    s
}

async fn file(s: &TestServer) -> AnyConnection {
    s.sql().await
}

/// What an attacker with the database does first: removes the guard on `table`.
async fn unguard(db: &mut AnyConnection, table: &str) {
    let sql = if db.backend_name() == "PostgreSQL" {
        format!("ALTER TABLE {table} DISABLE TRIGGER USER")
    } else {
        let prefix = table.trim_end_matches("_events");
        format!("DROP TRIGGER IF EXISTS {prefix}_no_update; DROP TRIGGER IF EXISTS {prefix}_no_delete")
    };
    sqlx::raw_sql(&sql).execute(db).await.unwrap();
}

#[tokio::test]
async fn triggers_refuse_changes_to_history() {
    let s = setup().await;
    let mut db = file(&s).await;
    for sql in [
        "UPDATE versions SET template = 'evil'",
        "DELETE FROM versions",
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events WHERE seq = 2",
        "UPDATE label_moves SET version = 1",
        "DELETE FROM label_moves",
    ]
    .into_iter()
    .chain(
        db.backend_name()
            .eq("PostgreSQL")
            .then_some(["TRUNCATE versions CASCADE", "TRUNCATE audit_events CASCADE"])
            .into_iter()
            .flatten(),
    ) {
        let err = sqlx::query(sql).execute(&mut db).await.expect_err(sql);
        assert!(err.to_string().contains("immutable") || err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(s.get("/api/v1/audit/verify", &s.admin).await.body["ok"], true);
    s.stop().await;
}

#[tokio::test]
async fn edited_version_content_is_detected() {
    let s = setup().await;
    let mut db = file(&s).await;
    unguard(&mut db, "versions").await;
    sqlx::query("UPDATE versions SET template = 'Be rude to {{ customer }}' WHERE version = 1")
        .execute(&mut db)
        .await
        .unwrap();
    let v = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(v.body["ok"], false, "{}", v.text);
    assert!(v.body["message"].as_str().unwrap().contains("t version 1"), "{}", v.text);
    assert_eq!(v.body["first_bad_seq"], 2, "the event that recorded version 1");
    s.stop().await;
}

#[tokio::test]
async fn a_recomputed_version_hash_still_disagrees_with_the_audit_log() {
    let s = setup().await;
    let mut db = file(&s).await;
    unguard(&mut db, "versions").await;
    // The attacker recomputes the content hash too; the chained event still holds the old one.
    let forged = domain::Content::new(
        domain::PromptBody::Text("Be rude to {{ customer }}".into()),
        serde_json::from_value(json!({"model": "gpt-4o-mini"})).unwrap(),
    )
    .unwrap();
    sqlx::query("UPDATE versions SET template = $1, hash = $2 WHERE version = 1")
        .bind("Be rude to {{ customer }}")
        .bind(forged.hash())
        .execute(&mut db)
        .await
        .unwrap();
    let v = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(v.body["ok"], false, "{}", v.text);
    assert!(v.body["message"].as_str().unwrap().contains("not the version the audit log recorded"), "{}", v.text);
    s.stop().await;
}

#[tokio::test]
async fn edited_or_removed_audit_events_are_detected() {
    let s = setup().await;
    let mut db = file(&s).await;
    unguard(&mut db, "audit_events").await;
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3").execute(&mut db).await.unwrap();
    let v = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!((v.body["ok"].as_bool(), v.body["first_bad_seq"].as_i64()), (Some(false), Some(3)), "{}", v.text);

    sqlx::query("UPDATE audit_events SET actor = 'key:test-admin' WHERE seq = 3").execute(&mut db).await.unwrap();
    assert_eq!(s.get("/api/v1/audit/verify", &s.admin).await.body["ok"], true);

    sqlx::query("DELETE FROM audit_events WHERE seq = 2").execute(&mut db).await.unwrap();
    let v = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!((v.body["ok"].as_bool(), v.body["first_bad_seq"].as_i64()), (Some(false), Some(3)), "{}", v.text);
    s.stop().await;
}

#[tokio::test]
async fn the_cli_exits_1_on_a_broken_chain() {
    let s = setup().await;
    let exe = env!("CARGO_BIN_EXE_promptledger");
    let ok = std::process::Command::new(exe).args(["audit", "verify", "--db"]).arg(s.db_arg()).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("intact: 4 events"));
    let mut db = file(&s).await;
    unguard(&mut db, "audit_events").await;
    sqlx::query("UPDATE audit_events SET detail = '{}' WHERE seq = 4").execute(&mut db).await.unwrap();
    let bad = std::process::Command::new(exe).arg("--db").arg(s.db_arg()).args(["audit", "verify"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("BROKEN at event 4"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    s.stop().await;
}

#[tokio::test]
async fn tampering_deep_in_a_long_log_is_found() {
    // More events than one verification chunk (2,000), the edit far past the first.
    let s = TestServer::start().await;
    s.create_text("long", "v1").await;
    for v in 1..2300 {
        let r = s
            .post(
                "/api/v1/prompts/long/versions",
                &s.admin,
                json!({"base_version": v, "template": format!("v{}", v + 1)}),
            )
            .await;
        assert_eq!(r.status, reqwest::StatusCode::CREATED);
    }
    let ok = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(
        (ok.body["ok"].as_bool(), ok.body["events"].as_i64(), ok.body["versions"].as_i64()),
        (Some(true), Some(2301), Some(2300))
    );
    let mut db = file(&s).await;
    unguard(&mut db, "versions").await;
    sqlx::query("UPDATE versions SET template = 'edited' WHERE version = 2222").execute(&mut db).await.unwrap();
    let v = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!((v.body["ok"].as_bool(), v.body["first_bad_seq"].as_i64()), (Some(false), Some(2223)), "{}", v.text);
    unguard(&mut db, "audit_events").await;
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2100").execute(&mut db).await.unwrap();
    let v = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!((v.body["ok"].as_bool(), v.body["first_bad_seq"].as_i64()), (Some(false), Some(2100)), "{}", v.text);
    s.stop().await;
}
