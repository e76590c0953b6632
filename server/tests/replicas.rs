//! Three replicas on one PostgreSQL database (run when `PROMPTLEDGER_TEST_POSTGRES` is
//! set, as `scripts/test.sh` does): a change through one is served by the others, racing
//! saves through different replicas leave exactly one winner, the sign-in limit and
//! sessions hold whichever replica is asked, a webhook is delivered
//! once however many replicas poll the outbox, an evaluation run executes once and is
//! taken over when its replica is killed or stopped, the rollout judge moves to a live
//! replica, and a replica whose notification connection drops catches up from the
//! audit log.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::provider::MockProvider;
use reqwest::StatusCode;
use serde_json::json;

async fn replicas() -> Option<[TestServer; 3]> {
    common::postgres()?;
    let a = TestServer::start().await;
    let (b, c) = (a.replica().await, a.replica().await);
    Some([a, b, c])
}

/// Waits until `server` serves `version` under `label`; how long it took.
async fn served(server: &TestServer, name: &str, label: &str, version: i64) -> Duration {
    let start = Instant::now();
    loop {
        let r = server.get(&format!("/api/v1/prompts/{name}?label={label}"), &server.admin).await;
        if r.status == StatusCode::OK && r.body["version"] == version {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{} never served v{version}: {}", server.base, r.text);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_change_through_one_replica_is_served_by_every_other() {
    let Some([a, b, c]) = replicas().await else { return };
    a.create_text("greeting", "Hello {{ name }}").await;
    served(&b, "greeting", "latest", 1).await;
    served(&c, "greeting", "latest", 1).await;
    let r = b
        .post("/api/v1/prompts/greeting/versions", &b.admin, json!({"base_version": 1, "template": "Hi {{ name }}"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A new version reaches the others' indexes as it is (read once, added in place).
    for other in [&a, &c] {
        served(other, "greeting", "latest", 2).await;
        let v = other.get("/api/v1/prompts/greeting?label=latest", &other.admin).await;
        assert_eq!(
            (v.body["template"].as_str(), v.body["hash"].as_str()),
            (Some("Hi {{ name }}"), r.body["hash"].as_str())
        );
        let listed = other.get("/api/v1/prompts?q=greeting", &other.admin).await;
        assert_eq!(listed.body["items"][0]["latest_version"], 2, "{}", listed.text);
    }
    let mut worst = Duration::ZERO;
    for round in 0..10 {
        let version = 1 + round % 2;
        let r = c.put("/api/v1/prompts/greeting/labels/canary", &c.admin, json!({"version": version})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        worst = worst.max(served(&a, "greeting", "canary", version).await);
        worst = worst.max(served(&b, "greeting", "canary", version).await);
    }
    eprintln!("slowest cross-replica visibility of a label move: {worst:?}");
    assert!(worst < Duration::from_secs(1), "a promotion took {worst:?} to reach another replica");
    // Keys are shared: one created through a replica works on the others.
    let key = a.key("shared", domain::access::Scope::Read, None).await;
    assert_eq!(c.get("/api/v1/prompts/greeting?label=latest", &key).await.status, StatusCode::OK);
    let audit = b.get("/api/v1/audit/verify", &b.admin).await;
    assert_eq!(audit.body["ok"], true, "{}", audit.text);
    for s in [a, b, c] {
        s.stop().await;
    }
}

#[tokio::test]
async fn racing_saves_through_different_replicas_leave_one_winner() {
    let Some(servers) = replicas().await else { return };
    servers[0].create_text("race", "v1 {{ x }}").await;
    for s in &servers[1..] {
        served(s, "race", "latest", 1).await;
    }
    let mut saves = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        for j in 0..4 {
            let body = json!({"base_version": 1, "template": format!("from {i}.{j} {{{{ x }}}}")});
            saves.push(s.post("/api/v1/prompts/race/versions", &s.admin, body));
        }
    }
    let replies = futures::future::join_all(saves).await;
    let won: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::CREATED).collect();
    let lost = replies.iter().filter(|r| r.status == StatusCode::CONFLICT).count();
    assert_eq!((won.len(), lost), (1, 11), "{:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
    for s in &servers {
        served(s, "race", "latest", 2).await;
    }
    let versions = servers[2].get("/api/v1/prompts/race/versions", &servers[2].admin).await;
    assert_eq!(versions.body["items"].as_array().map(Vec::len), Some(2), "{}", versions.text);
    let audit = servers[1].get("/api/v1/audit/verify", &servers[1].admin).await;
    assert_eq!(audit.body["ok"], true, "{}", audit.text);
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test]
async fn a_dropped_notification_connection_misses_no_change() {
    let Some([a, b, c]) = replicas().await else { return };
    a.create_text("drop", "one {{ x }}").await;
    served(&b, "drop", "latest", 1).await;
    // Kill every replica's listening connection, and change while they reconnect.
    let mut db = a.sql().await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'promptledger-listener' AND datname = current_database()",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(killed.len(), 3, "each replica listens on its own connection");
    let r =
        a.post("/api/v1/prompts/drop/versions", &a.admin, json!({"base_version": 1, "template": "two {{ x }}"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    served(&b, "drop", "latest", 2).await;
    served(&c, "drop", "latest", 2).await;
    for s in [a, b, c] {
        s.stop().await;
    }
}

#[tokio::test]
async fn a_webhook_is_delivered_once_by_one_of_the_replicas() {
    let Some(servers) = replicas().await else { return };
    for s in &servers {
        s.registry.configure_webhooks(service::webhooks::WebhookSettings {
            poll: Duration::from_millis(5),
            ..Default::default()
        });
    }
    let (url, hook) = common::hooks::receiver(0, false).await;
    let r =
        servers[0].post("/api/v1/webhooks", &servers[0].admin, json!({"url": url, "events": ["label.moved"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    servers[1].create_text("hooked", "one").await;
    served(&servers[2], "hooked", "latest", 1).await;
    let r = servers[2]
        .post("/api/v1/prompts/hooked/versions", &servers[2].admin, json!({"base_version": 1, "template": "two"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for round in 0..10 {
        let s = &servers[round % 3];
        served(s, "hooked", "latest", 2).await;
        let r = s.put("/api/v1/prompts/hooked/labels/canary", &s.admin, json!({"version": 1 + round % 2})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    common::hooks::eventually("ten deliveries", async || hook.got.lock().len() >= 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.got.lock().len(), 10, "each label move delivered once");
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test]
async fn the_rollout_judge_runs_on_one_replica_and_another_takes_over_when_it_dies() {
    let Some(servers) = replicas().await else { return };
    let s = &servers[0];
    s.create_text("judged", "v1 {{ x }}").await;
    let r =
        s.post("/api/v1/prompts/judged/versions", &s.admin, json!({"base_version": 1, "template": "v2 {{ x }}"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        s.put("/api/v1/prompts/judged/labels/stable", &s.admin, json!({"version": 1})).await.status,
        StatusCode::OK
    );
    let plan = json!({"version": 2, "reason": "r", "steps": [50, 100], "step_seconds": 1, "min_samples": 20});
    let r = s.post("/api/v1/prompts/judged/rollouts", &s.admin, plan).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    // The judge's lease is held by exactly one replica: stop that one, as if it died.
    let mut db = s.sql().await;
    let mut holder = None;
    for _ in 0..500 {
        holder = sqlx::query_scalar::<_, String>("SELECT holder FROM leases WHERE name = 'rollout-judge'")
            .fetch_optional(&mut db)
            .await
            .unwrap();
        if holder.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let holder = holder.expect("a replica holds the judge's lease");
    let mut servers: Vec<TestServer> = servers.into_iter().collect();
    let dead = servers.iter().position(|s| s.registry.replica() == holder).expect("the holder is one of the three");
    servers.remove(dead).stop().await;
    let live = &servers[0];
    let app = live.key("app", domain::access::Scope::App, None).await;
    let items = ["base", "candidate"]
        .into_iter()
        .flat_map(|arm| {
            let id = id.as_str();
            (0..20).map(move |n| common::call("judged", id, arm, n, false, 100.0, 0.001))
        })
        .collect();
    common::send(live, &app, items).await;
    let start = Instant::now();
    loop {
        let view = live.get(&format!("/api/v1/rollouts/{id}"), &live.admin).await;
        if view.body["status"] == "completed" {
            break;
        }
        assert_eq!(view.body["status"], "running", "{}", view.text);
        assert!(start.elapsed() < Duration::from_secs(30), "no replica took the judging over: {}", view.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taken: String =
        sqlx::query_scalar("SELECT holder FROM leases WHERE name = 'rollout-judge'").fetch_one(&mut db).await.unwrap();
    assert_ne!(taken, holder, "a surviving replica judged the rollout");
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test]
async fn the_sign_in_limit_and_sessions_hold_across_replicas() {
    use domain::access::Role;
    use service::{Principal, ServiceError};
    let Some([a, b, c]) = replicas().await else { return };
    let password = "a long enough password";
    for user in ["lead", "other"] {
        a.registry.add_user(&Principal::operator(), user, Role::Editor, Some(password.into())).await.unwrap();
    }
    // Five failures through one replica lock the account on every replica.
    for _ in 0..5 {
        let failed = a.registry.login("lead", "not the password", None, None).await;
        assert!(matches!(failed, Err(ServiceError::Unauthenticated(_))), "{:?}", failed.err());
    }
    for s in [&b, &c] {
        let locked = s.registry.login("lead", password, None, None).await;
        assert!(matches!(locked, Err(ServiceError::RateLimited { .. })), "{:?}", locked.err());
    }
    // A session begun through one replica is honoured by the others, and ended everywhere.
    let session = c.registry.login("other", password, None, None).await.unwrap();
    let who = a.registry.authenticate_session(&session.token).await.unwrap();
    assert_eq!(who.actor, "other");
    b.registry.logout(&session.token).await.unwrap();
    assert!(a.registry.authenticate_session(&session.token).await.is_err());
    for s in [a, b, c] {
        s.stop().await;
    }
}

/// An evaluation run is executed once however many replicas look for runs to take over;
/// and when the replica running one is killed, a live replica carries it on from the
/// cases it recorded and finishes it.
#[tokio::test]
async fn an_eval_run_runs_once_and_a_killed_replicas_run_is_taken_over() {
    let Some(servers) = replicas().await else { return };
    let mock = MockProvider::start().await;
    for s in &servers {
        // Leases keep the default 30 s: the test lapses the killed replica's lease itself,
        // and a short one would lapse whenever a loaded machine stalls a live replica.
        s.registry.configure_evals(service::eval::EvalSettings {
            heartbeat: Duration::from_millis(100),
            ..Default::default()
        });
    }
    let s = &servers[0];
    let r = s
        .put("/api/v1/providers/local", &s.admin, json!({"kind": "openai", "base_url": format!("{}/v1", mock.base)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.create_text("graded", "{{ m }}").await;
    let quick: Vec<_> = (0..10)
        .map(|i| json!({"vars": {"m": format!("SAY:{i}")}, "assert": [{"type": "equals", "value": i.to_string()}]}))
        .collect();
    let slow: Vec<_> = (0..30).map(|i| json!({"vars": {"m": format!("SAY:{i} [sleep:100]")}})).collect();
    for (name, cases) in [("quick", quick), ("slow", slow)] {
        let r = s.put(&format!("/api/v1/prompts/graded/suites/{name}"), &s.admin, json!({"cases": cases})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let mut db = s.sql().await;
    let events = |action: &'static str, run: String| async move {
        let mut db = s.sql().await;
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events WHERE action = $1 AND detail LIKE $2")
            .bind(action)
            .bind(format!("%\"{run}\"%"))
            .fetch_one(&mut db)
            .await
            .unwrap()
    };
    // Through one replica, while all three look for runs every 100 ms: one execution.
    let r = servers[1]
        .post("/api/v1/prompts/graded/eval-runs", &s.admin, json!({"suite": "quick", "model": "local/m"}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let run = ended(&servers[2], &id).await;
    assert_eq!(run.body["status"], "passed", "{}", run.text);
    assert_eq!(mock.requests(), 10, "each case was sent to the model once");
    assert_eq!(events("eval.run.finished", id.clone()).await, 1);
    assert_eq!(events("eval.run.resumed", id.clone()).await, 0, "no replica took a live run over");

    // A fourth replica, a process of its own, runs the slow suite and is killed mid-run.
    let (mut child, id, done_before) = slow_run_in_a_process(s).await;
    child.kill().await.unwrap();
    let killed_at = mock.requests();
    // Its lease would lapse after the 30 s the killed process ran with: lapsed here.
    sqlx::query("UPDATE leases SET until = 0 WHERE name = $1")
        .bind(format!("eval-run:{id}"))
        .execute(&mut db)
        .await
        .unwrap();
    let run = ended(&servers[2], &id).await;
    assert_eq!(run.body["status"], "passed", "{}", run.text);
    assert_eq!((run.body["done"].as_u64(), run.body["total"].as_u64()), (Some(30), Some(30)), "{}", run.text);
    let cases: Vec<u64> = run.body["results"].as_array().unwrap().iter().map(|c| c["case"].as_u64().unwrap()).collect();
    assert_eq!(cases.len(), 30, "one result per case: {cases:?}");
    // The cases recorded before the kill were not sent again; those in flight were.
    let resent = mock.requests() - killed_at;
    assert!(resent <= 30 - done_before as usize + 2, "{resent} calls after the kill, {done_before} were recorded");
    assert_eq!(events("eval.run.resumed", id.clone()).await, 1);
    assert_eq!(events("eval.run.finished", id.clone()).await, 1);
    let replica: String =
        sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'eval.run.resumed' AND detail LIKE $1")
            .bind(format!("%\"{id}\"%"))
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(servers.iter().any(|s| replica.contains(s.registry.replica())), "{replica}");
    let leases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leases WHERE name LIKE 'eval-run:%'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(leases, 0, "an ended run holds no lease");

    // A replica that is stopped (SIGTERM, as in a rolling deploy) hands its run over at
    // once: no lease to wait for.
    let (child, id, _) = slow_run_in_a_process(s).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let run = ended(&servers[2], &id).await;
    assert_eq!((run.body["status"].as_str(), run.body["done"].as_u64()), (Some("passed"), Some(30)), "{}", run.text);
    assert_eq!(events("eval.run.resumed", id.clone()).await, 1);
    assert_eq!(events("eval.run.interrupted", id.clone()).await, 0);

    let verify = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(verify.body["ok"], true, "{}", verify.text);
    for s in servers {
        s.stop().await;
    }
}

/// A replica as a process of its own on `s`'s database, running the slow suite one case
/// at a time; returned once it has recorded 3 cases, with the run's id and its count.
async fn slow_run_in_a_process(s: &TestServer) -> (tokio::process::Child, String, u64) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_promptledger"))
        .args(["--db", &s.db_arg(), "serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).await.unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap().to_owned();
    let r = s
        .http
        .post(format!("{base}/api/v1/prompts/graded/eval-runs"))
        .bearer_auth(&s.admin)
        .json(&json!({"suite": "slow", "model": "local/m", "concurrency": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    loop {
        let r = s.get(&format!("/api/v1/eval-runs/{id}"), &s.admin).await;
        let done = r.body["done"].as_u64().unwrap();
        if done >= 3 {
            return (child, id, done);
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the run made no progress: {}", r.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The run once it has ended, read through `server`.
async fn ended(server: &TestServer, id: &str) -> common::Reply {
    let start = Instant::now();
    loop {
        let r = server.get(&format!("/api/v1/eval-runs/{id}"), &server.admin).await;
        if r.body["status"] != "queued" && r.body["status"] != "running" {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the run never ended: {}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
