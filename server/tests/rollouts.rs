//! Rollouts against the real server: the published bucket formula and stickiness, time
//! travel through weight changes, a rollout that completes, rollbacks on error rate,
//! latency and a score, a pause for lack of samples, noise that never rolls back, a
//! restart mid-rollout, approval, gates and protection, manual controls, a policy change
//! racing a move, and the audit chain verifying after all of it.

mod common;

use std::time::Duration;

use common::hooks::{eventually, receiver};
use common::{Reply, TestServer, call, send};
use domain::access::{Role, Scope};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The spec's formula, computed here independently of the server's code.
fn bucket(rollout: &str, unit: &str) -> u64 {
    let digest = Sha256::digest(format!("{rollout}:{unit}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap()) % 10_000
}

/// A prompt whose `stable` is on v1, with v2 saved.
async fn two_versions(s: &TestServer, name: &str) {
    s.create_text(name, "v1 {{ x }}").await;
    let r = s
        .post(
            &format!("/api/v1/prompts/{name}/versions"),
            &s.admin,
            json!({"base_version": 1, "template": "v2 {{ x }}"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        s.put(&format!("/api/v1/prompts/{name}/labels/stable"), &s.admin, json!({"version": 1})).await.status,
        StatusCode::OK
    );
}

async fn start(s: &TestServer, key: &str, name: &str, plan: Value) -> Reply {
    s.post(&format!("/api/v1/prompts/{name}/rollouts"), key, plan).await
}

/// Starts a rollout of v2 on `stable` and returns its id.
async fn started(s: &TestServer, name: &str, plan: Value) -> String {
    let mut body = json!({"version": 2, "reason": "softer tone"});
    body.as_object_mut().unwrap().extend(plan.as_object().unwrap().clone());
    let r = start(s, &s.admin, name, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!((r.body["status"].as_str(), r.body["base_version"].as_i64()), (Some("running"), Some(1)));
    r.body["id"].as_str().unwrap().to_owned()
}

async fn rollout(s: &TestServer, id: &str) -> Value {
    let r = s.get(&format!("/api/v1/rollouts/{id}"), &s.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn until_status(s: &TestServer, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..1000 {
        last = rollout(s, id).await;
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("rollout {id} is not {status}: {last}");
}

/// `n` calls per arm; `shape(arm, i)` gives (error, latency, cost).
async fn feed(
    s: &TestServer,
    key: &str,
    name: &str,
    id: &str,
    n: usize,
    shape: impl Fn(&str, usize) -> (bool, f64, f64),
) {
    let mut items = Vec::new();
    for arm in ["base", "candidate"] {
        for i in 0..n {
            let (error, latency, cost) = shape(arm, i);
            items.push(call(name, id, arm, i, error, latency, cost));
        }
    }
    send(s, key, items).await;
}

async fn audit_actions(s: &TestServer, prompt: &str) -> Vec<(String, Value)> {
    let r = s.get(&format!("/api/v1/audit?prompt={prompt}&limit=500"), &s.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut items: Vec<(String, Value)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    items.reverse();
    items
}

async fn chain_verifies(s: &TestServer) {
    let r = s.get("/api/v1/audit/verify", &s.admin).await;
    assert_eq!(r.body["ok"], true, "{}", r.text);
}

async fn resolve(s: &TestServer, key: &str, path: &str) -> Reply {
    let r = s.get(path, key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

#[tokio::test]
async fn units_are_bucketed_by_the_published_formula_and_stay_on_the_candidate() {
    let s = TestServer::start().await;
    two_versions(&s, "greet").await;
    let app = s.key("app", Scope::App, None).await;
    let before = service::time::format_us(service::time::now_us());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let id = started(&s, "greet", json!({"step_seconds": 3600})).await;
    assert!(id.starts_with("ro_"));
    let started_at = service::time::now_us();

    // Every unit gets the arm the formula says, by query or by header; the version
    // object and the header name the rollout and the arm; ETags stay per version.
    let v1 = resolve(&s, &app, "/api/v1/prompts/greet?version=1").await.body["hash"].clone();
    let v2 = resolve(&s, &app, "/api/v1/prompts/greet?version=2").await.body["hash"].clone();
    let mut on_candidate = Vec::new();
    for u in 0..400 {
        let unit = format!("user-{u}");
        let expected = if bucket(&id, &unit) < 500 { "candidate" } else { "base" };
        let r = resolve(&s, &app, &format!("/api/v1/prompts/greet?unit={unit}")).await;
        assert_eq!(r.headers["x-promptledger-arm"], expected, "{unit}");
        assert_eq!(r.headers["vary"], "x-promptledger-unit");
        assert_eq!(r.body["rollout"], json!({"id": id, "arm": expected, "weight": 5}));
        let hash = if expected == "candidate" { &v2 } else { &v1 };
        assert_eq!(r.body["hash"], *hash);
        assert_eq!(r.headers["etag"], format!("\"{}\"", hash.as_str().unwrap()));
        let by_header = s
            .raw(Method::GET, "/api/v1/prompts/greet?label=stable", Some(&app), None, &[("x-promptledger-unit", &unit)])
            .await;
        assert_eq!(by_header.headers["x-promptledger-arm"], expected);
        if expected == "candidate" {
            on_candidate.push(unit);
        }
    }
    assert!(!on_candidate.is_empty() && on_candidate.len() < 60, "{} of 400 on 5 %", on_candidate.len());
    // Render chooses the same way.
    let r =
        s.post("/api/v1/prompts/greet/render", &app, json!({"variables": {"x": "A"}, "unit": on_candidate[0]})).await;
    assert_eq!((r.body["text"].as_str(), r.body["rollout"]["arm"].as_str()), (Some("v2 A"), Some("candidate")));
    assert_eq!(r.headers["x-promptledger-arm"], "candidate");

    // Without a unit each request is bucketed at random: about 5 % of 2,000.
    let mut candidates = 0;
    for _ in 0..2000 {
        let r = resolve(&s, &app, "/api/v1/prompts/greet").await;
        candidates += usize::from(r.headers["x-promptledger-arm"] == "candidate");
    }
    assert!((40..=200).contains(&candidates), "{candidates} of 2000 on the candidate at 5 %");

    // Raising the weight keeps every unit already on the candidate.
    let r = s.post(&format!("/api/v1/rollouts/{id}/advance"), &s.admin, json!({"reason": "looks fine"})).await;
    assert_eq!((r.status, r.body["weight"].as_u64(), r.body["step"].as_i64()), (StatusCode::OK, Some(25), Some(1)));
    let advanced_at = service::time::now_us();
    for unit in &on_candidate {
        let r = resolve(&s, &app, &format!("/api/v1/prompts/greet?unit={unit}")).await;
        assert_eq!(r.body["rollout"], json!({"id": id, "arm": "candidate", "weight": 25}));
    }
    let summary = resolve(&s, &s.admin, "/api/v1/prompts?q=greet").await.body["items"][0].clone();
    assert_eq!(summary["rollouts"]["stable"], json!({"id": id, "candidate_version": 2, "weight": 25}));

    // What was live at an instant of the 5 % step: the arm that unit got then.
    let during = service::time::format_us(started_at + (advanced_at - started_at) / 2);
    let unit = on_candidate.iter().find(|u| bucket(&id, u) < 500).unwrap();
    let at = resolve(&s, &app, &format!("/api/v1/prompts/greet?label=stable&at={during}&unit={unit}")).await;
    assert_eq!(at.body["rollout"], json!({"id": id, "arm": "candidate", "weight": 5}));
    let other = (0..).map(|u| format!("u{u}")).find(|u| (500..2500).contains(&bucket(&id, u))).unwrap();
    let at = resolve(&s, &app, &format!("/api/v1/prompts/greet?label=stable&at={during}&unit={other}")).await;
    assert_eq!((at.body["version"].as_i64(), at.body["rollout"]["weight"].as_u64()), (Some(1), Some(5)));
    let now = resolve(&s, &app, &format!("/api/v1/prompts/greet?unit={other}")).await;
    assert_eq!(now.body["rollout"]["arm"], "candidate", "at 25 % the same unit is on the candidate");
    // Before the rollout: no rollout in the answer.
    let at = resolve(&s, &app, &format!("/api/v1/prompts/greet?at={before}&unit={unit}")).await;
    assert!(at.body.get("rollout").is_none(), "{}", at.text);
    // The label history shows each weight.
    let labels = resolve(&s, &s.admin, "/api/v1/prompts/greet/labels").await.body;
    let weights: Vec<u64> =
        labels["rollouts"].as_array().unwrap().iter().map(|w| w["weight"].as_u64().unwrap()).collect();
    assert_eq!(weights, [25, 5]);
    assert_eq!(labels["labels"]["stable"], 1, "the label stays on the base while it runs");

    // A call that names the rollout is judged against what its arm serves: the
    // candidate's arm with the base's version is drift; no stale-label drift otherwise.
    let mut wrong = call("greet", &id, "candidate", 0, false, 100.0, 0.001);
    wrong["version"] = json!(1);
    let right = call("greet", &id, "candidate", 1, false, 100.0, 0.001);
    send(&s, &app, vec![wrong.clone(), right.clone()]).await;
    let drift = async |g: &Value| {
        s.get(&format!("/api/v1/generations/{}", g["id"].as_str().unwrap()), &s.admin).await.body["drift"].clone()
    };
    assert_eq!((drift(&wrong).await, drift(&right).await), (json!("stale_label"), Value::Null));
    // Evidence is what the arm served, of this prompt: neither the drifted call nor one
    // of another prompt naming this rollout counts.
    s.create_text("other", "o").await;
    let mut foreign = call("other", &id, "candidate", 2, false, 100.0, 0.001);
    foreign["version"] = json!(1);
    send(&s, &app, vec![foreign]).await;
    let view = rollout(&s, &id).await;
    assert_eq!(view["history"][1]["candidate"]["count"], 1, "{view}");

    // A unit that is too long is a clear 400.
    let long = "u".repeat(300);
    let r = s.get(&format!("/api/v1/prompts/greet?unit={long}"), &app).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn a_rollout_advances_step_by_step_and_completes_with_an_audited_label_move() {
    let s = TestServer::start().await;
    let (url, hook) = receiver(0, false).await;
    let r = s.post("/api/v1/webhooks", &s.admin, json!({"url": url, "events": ["rollout.completed"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    two_versions(&s, "c").await;
    let app = s.key("app", Scope::App, None).await;
    let id = started(&s, "c", json!({"steps": [10, 50, 100], "step_seconds": 1, "min_samples": 30})).await;
    let good = |_: &str, i: usize| (i.is_multiple_of(50), 400.0 + (i % 7) as f64 * 10.0, 0.001);
    feed(&s, &app, "c", &id, 40, good).await;
    eventually("step 2", async || rollout(&s, &id).await["step"] == 1).await;
    let view = rollout(&s, &id).await;
    assert_eq!((view["weight"].as_u64(), view["status"].as_str()), (Some(50), Some("running")));
    let passed: Vec<&Value> = view["verdicts"].as_array().unwrap().iter().collect();
    assert_eq!(passed.len(), 3, "{view}");
    assert!(passed.iter().all(|v| v["outcome"] == "pass" && v["step"] == 0), "{view}");
    assert!(passed[0]["message"].as_str().unwrap().contains("within the 2-point margin"), "{view}");
    // Evidence from the first step does not count for the second.
    assert_eq!(view["history"][1]["candidate"]["count"], 0);
    assert_eq!(view["history"][0]["candidate"]["count"], 40);
    // Evidence counts in the step it arrives in, whatever the application's clock says:
    // calls stamped an hour ago still judge the second step.
    let hour_ago = service::time::format_us(service::time::now_us() - 3_600_000_000);
    let mut late = Vec::new();
    for arm in ["base", "candidate"] {
        for i in 0..40 {
            let (error, latency, cost) = good(arm, i);
            let mut item = call("c", &id, arm, i + 1000, error, latency, cost);
            item["started_at"] = json!(hour_ago);
            late.push(item);
        }
    }
    send(&s, &app, late).await;
    let done = until_status(&s, &id, "completed").await;
    assert_eq!((done["weight"].as_u64(), done["step"].as_i64()), (Some(100), Some(2)));
    assert_eq!(done["arms"]["candidate"]["count"], 80);
    assert_eq!(done["arms"]["base"]["version"], 1);

    // The label moved to the candidate through the normal, audited move.
    let r = resolve(&s, &app, "/api/v1/prompts/c?unit=anyone").await;
    assert_eq!(r.body["version"], 2);
    assert!(r.body.get("rollout").is_none() && r.headers.get("x-promptledger-arm").is_none());
    let labels = resolve(&s, &s.admin, "/api/v1/prompts/c/labels").await.body;
    assert_eq!(labels["history"][0]["actor"], "system");
    assert!(labels["history"][0]["reason"].as_str().unwrap().contains(&id));
    let actions: Vec<String> = audit_actions(&s, "c").await.into_iter().map(|(a, _)| a).collect();
    let tail: Vec<&str> = actions.iter().map(String::as_str).skip_while(|a| *a != "rollout.started").collect();
    assert_eq!(tail, ["rollout.started", "rollout.advanced", "label.moved", "rollout.completed"]);
    eventually("the completion webhook", async || hook.got.lock().len() == 1).await;
    chain_verifies(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn a_worse_error_rate_rolls_back_at_once_with_its_verdict_and_webhook() {
    let s = TestServer::start().await;
    let (url, hook) = receiver(0, false).await;
    let r = s.post("/api/v1/webhooks", &s.admin, json!({"url": url, "events": ["rollout.rolled_back"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    two_versions(&s, "e").await;
    let app = s.key("app", Scope::App, None).await;
    let id = started(&s, "e", json!({"step_seconds": 1, "min_samples": 100})).await;
    feed(&s, &app, "e", &id, 150, |arm, i| (i % if arm == "candidate" { 3 } else { 100 } == 0, 300.0, 0.001)).await;
    let back = until_status(&s, &id, "rolled_back").await;
    assert_eq!((back["weight"].as_u64(), back["ended_by"].as_str()), (Some(0), Some("system")));
    let failed: Vec<&Value> = back["verdicts"].as_array().unwrap().iter().filter(|v| v["outcome"] == "fail").collect();
    assert_eq!(failed.len(), 1, "{back}");
    assert_eq!(failed[0]["guard"], "error_rate");
    assert!(failed[0]["candidate"].as_f64().unwrap() > 0.3 && failed[0]["p_value"].as_f64().unwrap() < 0.05);
    assert!(back["note"].as_str().unwrap().contains("error rate"), "{back}");
    // Every unit is served the base; the label never moved.
    for u in 0..200 {
        let r = resolve(&s, &app, &format!("/api/v1/prompts/e?unit=u{u}")).await;
        assert_eq!(r.body["version"], 1);
        assert!(r.body.get("rollout").is_none());
    }
    let (_, event) = audit_actions(&s, "e").await.into_iter().find(|(a, _)| a == "rollout.rolled_back").unwrap();
    assert_eq!(event["actor"], "system");
    assert!(event["detail"]["verdicts"].as_array().unwrap().iter().any(|v| v["outcome"] == "fail"));
    eventually("the rollback webhook", async || hook.got.lock().len() == 1).await;
    let body: Value = serde_json::from_str(&hook.got.lock()[0].1).unwrap();
    assert_eq!(body["event"], "rollout.rolled_back", "{body}");
    // A label move by hand is possible again.
    assert_eq!(s.put("/api/v1/prompts/e/labels/stable", &s.admin, json!({"version": 2})).await.status, StatusCode::OK);
    chain_verifies(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn a_slower_candidate_rolls_back_on_latency() {
    let s = TestServer::start().await;
    two_versions(&s, "l").await;
    let app = s.key("app", Scope::App, None).await;
    let id = started(&s, "l", json!({"step_seconds": 1, "min_samples": 200})).await;
    let slow = |arm: &str, i: usize| {
        let base = 300.0 + (i * 37 % 200) as f64;
        (false, if arm == "candidate" { base * 1.8 } else { base }, 0.001)
    };
    feed(&s, &app, "l", &id, 200, slow).await;
    let back = until_status(&s, &id, "rolled_back").await;
    let failed: Vec<&Value> = back["verdicts"].as_array().unwrap().iter().filter(|v| v["outcome"] == "fail").collect();
    assert_eq!(failed.iter().map(|v| v["guard"].as_str().unwrap()).collect::<Vec<_>>(), ["latency_p95"], "{back}");
    assert!(back["note"].as_str().unwrap().contains("latency"), "{back}");
    s.stop().await;
}

#[tokio::test]
async fn lower_feedback_scores_roll_back() {
    let s = TestServer::start().await;
    two_versions(&s, "sc").await;
    let app = s.key("app", Scope::App, None).await;
    let guards = json!([{"metric": "score:thumbs_up", "max_decrease": 0.1}]);
    let id = started(&s, "sc", json!({"step_seconds": 1, "min_samples": 60, "guards": guards})).await;
    let mut items = Vec::new();
    let mut scores = Vec::new();
    for arm in ["base", "candidate"] {
        for i in 0..60 {
            let item = call("sc", &id, arm, i, false, 300.0, 0.001);
            // 85 % thumbs up on the base, 40 % on the candidate.
            let up = if arm == "base" { i % 20 < 17 } else { i % 5 < 2 };
            scores.push((item["id"].as_str().unwrap().to_owned(), up));
            items.push(item);
        }
    }
    // Half the scores arrive before their generations.
    for (gen_id, up) in scores.iter().step_by(2) {
        let r = s
            .post(&format!("/api/v1/generations/{gen_id}/scores"), &app, json!({"name": "thumbs_up", "value": up}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    send(&s, &app, items).await;
    for (gen_id, up) in scores.iter().skip(1).step_by(2) {
        let r = s
            .post(&format!("/api/v1/generations/{gen_id}/scores"), &app, json!({"name": "thumbs_up", "value": up}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let back = until_status(&s, &id, "rolled_back").await;
    let verdict = &back["verdicts"].as_array().unwrap()[0];
    assert_eq!(
        (verdict["guard"].as_str(), verdict["outcome"].as_str()),
        (Some("score:thumbs_up"), Some("fail")),
        "{back}"
    );
    // Judged on the scores there were then: the base well above the candidate.
    assert!(verdict["base"].as_f64().unwrap() > 0.7 && verdict["candidate"].as_f64().unwrap() < 0.55, "{back}");
    // Every score counts in the figures, whichever came first.
    let up = |view: &Value, arm: &str| view["arms"][arm]["scores"]["thumbs_up"].clone();
    eventually("all scores counted", async || up(&rollout(&s, &id).await, "candidate")["count"] == 60).await;
    let view = rollout(&s, &id).await;
    assert_eq!((up(&view, "base")["mean"].as_f64(), up(&view, "candidate")["mean"].as_f64()), (Some(0.85), Some(0.4)));
    s.stop().await;
}

#[tokio::test]
async fn a_step_without_enough_calls_pauses_for_a_person() {
    let s = TestServer::start().await;
    let (url, hook) = receiver(0, false).await;
    let r = s.post("/api/v1/webhooks", &s.admin, json!({"url": url, "events": ["rollout.paused"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    two_versions(&s, "p").await;
    let app = s.key("app", Scope::App, None).await;
    let id = started(&s, "p", json!({"step_seconds": 1, "min_samples": 50})).await;
    feed(&s, &app, "p", &id, 10, |_, _| (false, 300.0, 0.001)).await;
    // Not before three times the step.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rollout(&s, &id).await["status"], "running");
    let paused = until_status(&s, &id, "paused").await;
    let v = &paused["verdicts"].as_array().unwrap()[0];
    assert_eq!((v["guard"].as_str(), v["outcome"].as_str()), (Some("samples"), Some("insufficient")), "{paused}");
    assert!(paused["note"].as_str().unwrap().contains("enough calls"), "{paused}");
    // Still serving its weight while paused.
    assert_eq!(paused["weight"], 5);
    let unit = (0..).map(|u| format!("u{u}")).find(|u| bucket(&id, u) < 500).unwrap();
    assert_eq!(resolve(&s, &app, &format!("/api/v1/prompts/p?unit={unit}")).await.body["version"], 2);
    eventually("the pause webhook", async || hook.got.lock().len() == 1).await;
    // A person resumes it: a new stretch of the step, evidence counted afresh.
    let r = s.post(&format!("/api/v1/rollouts/{id}/resume"), &s.admin, json!({})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("running")), "{}", r.text);
    assert_eq!(r.body["history"].as_array().unwrap().len(), 2);
    feed(&s, &app, "p", &id, 60, |_, i| (false, 300.0 + i as f64, 0.001)).await;
    eventually("step 2", async || rollout(&s, &id).await["step"] == 1).await;
    s.stop().await;
}

#[tokio::test]
async fn noise_alone_never_rolls_back() {
    let s = TestServer::start().await;
    let app = s.key("app", Scope::App, None).await;
    let guards = json!([{"metric": "error_rate", "max_increase": 0.02}, {"metric": "latency_p95", "max_ratio": 1.25},
                        {"metric": "cost_per_call", "max_ratio": 1.10}]);
    let mut ids = Vec::new();
    for r in 0..24 {
        let name = format!("noise-{r}");
        two_versions(&s, &name).await;
        let id =
            started(&s, &name, json!({"steps": [50, 100], "step_seconds": 1, "min_samples": 500, "guards": guards}))
                .await;
        ids.push((name, id));
    }
    // Both arms drawn from the same distributions: 5 % errors, latency log-normal-ish,
    // cost varying with output length. Seeded, so a failure is reproducible.
    for (r, (name, id)) in ids.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(r as u64);
        let mut items = Vec::new();
        for arm in ["base", "candidate"] {
            for i in 0..500 {
                let latency = 200.0 * (1.0 + rng.random::<f64>() * 2.0).powf(1.0 + rng.random::<f64>());
                let cost = 0.0005 + rng.random::<f64>() * 0.001;
                items.push(call(name, id, arm, i, rng.random::<f64>() < 0.05, latency, cost));
            }
        }
        send(&s, &app, items).await;
    }
    for (_, id) in &ids {
        let view = until_status(&s, id, "completed").await;
        assert!(view["verdicts"].as_array().unwrap().iter().all(|v| v["outcome"] == "pass"), "{view}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_rollout_survives_a_restart_and_the_judge_resumes() {
    let s = TestServer::start().await;
    two_versions(&s, "r").await;
    let app = s.key("app", Scope::App, None).await;
    let id = started(&s, "r", json!({"steps": [20, 100], "step_seconds": 1, "min_samples": 20})).await;
    let arms = async |s: &TestServer| {
        let mut arms = Vec::new();
        for u in 0..100 {
            arms.push(resolve(s, &app, &format!("/api/v1/prompts/r?unit=u{u}")).await.body["version"].clone());
        }
        arms
    };
    let before = arms(&s).await;
    let s = s.restart().await;
    assert_eq!(arms(&s).await, before, "the same units on the same arms after a restart");
    feed(&s, &app, "r", &id, 25, |_, _| (false, 300.0, 0.001)).await;
    until_status(&s, &id, "completed").await;
    chain_verifies(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn label_rules_apply_to_rollouts_as_to_moves() {
    let s = TestServer::start().await;
    two_versions(&s, "g").await;
    s.user("ann", Role::Publisher).await;
    s.user("bob", Role::Publisher).await;
    s.user("eve", Role::Editor).await;
    let ann = s.key("ann", Scope::Admin, Some("ann")).await;
    let bob = s.key("bob", Scope::Admin, Some("bob")).await;
    let eve = s.key("eve", Scope::Write, Some("eve")).await;
    let plan = json!({"version": 2, "step_seconds": 3600});

    // Protected: an editor may not roll out; a publisher may.
    let r = s.put("/api/v1/labels/stable/policy", &s.admin, json!({"protected": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(start(&s, &eve, "g", plan.clone()).await.status, StatusCode::FORBIDDEN);
    // An eval gate with no passing run refuses.
    let gate = json!({"protected": true, "require_eval": {"suite": "smoke", "min_pass_rate": 0.9}});
    assert_eq!(s.put("/api/v1/labels/stable/policy", &s.admin, gate).await.status, StatusCode::OK);
    let r = start(&s, &ann, "g", plan.clone()).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "eval_gate"), "{}", r.text);

    // Approval: a request that carries the plan; the requester cannot approve it.
    let approval = json!({"protected": true, "require_approval": true});
    assert_eq!(s.put("/api/v1/labels/stable/policy", &s.admin, approval).await.status, StatusCode::OK);
    let r = start(&s, &ann, "g", plan.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["rollout"]["step_seconds"], 3600);
    let request = r.body["id"].as_str().unwrap().to_owned();
    assert!(s.get("/api/v1/prompts/g/rollouts", &s.admin).await.body["items"].as_array().unwrap().is_empty());
    let r = s.post(&format!("/api/v1/label-requests/{request}/approve"), &ann, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s.post(&format!("/api/v1/label-requests/{request}/approve"), &bob, json!({"comment": "ok"})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("approved")), "{}", r.text);
    let items = s.get("/api/v1/prompts/g/rollouts", &s.admin).await.body["items"].clone();
    assert_eq!((items[0]["status"].as_str(), items[0]["created_by"].as_str()), (Some("running"), Some("ann")));
    let id = items[0]["id"].as_str().unwrap().to_owned();
    // Advancing by hand skips the judge: a second person must do it.
    let r = s.post(&format!("/api/v1/rollouts/{id}/advance"), &ann, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s.post(&format!("/api/v1/rollouts/{id}/advance"), &eve, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s.post(&format!("/api/v1/rollouts/{id}/advance"), &bob, json!({})).await;
    assert_eq!((r.status, r.body["weight"].as_u64()), (StatusCode::OK, Some(25)), "{}", r.text);
    chain_verifies(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn people_pause_resume_advance_and_abort_and_bad_requests_change_nothing() {
    let s = TestServer::start().await;
    two_versions(&s, "m").await;
    let app = s.key("app", Scope::App, None).await;
    let reader = s.key("reader", Scope::Read, None).await;
    for (plan, why) in [
        (json!({"version": 2, "steps": [5, 5, 100]}), "rise"),
        (json!({"version": 2, "steps": [5, 50]}), "end at 100"),
        (json!({"version": 2, "steps": [100]}), "below 100"),
        (json!({"version": 2, "step_seconds": 0}), "step_seconds"),
        (json!({"version": 2, "guards": [{"metric": "error_rate", "max_ratio": 2}]}), "max_increase"),
        (json!({"version": 2, "guards": [{"metric": "p99"}]}), "not a guard metric"),
        (json!({"version": 1}), "already points"),
        (json!({"version": 2, "label": "canary"}), "points at no version"),
    ] {
        let r = start(&s, &s.admin, "m", plan).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(r.body["error"]["message"].as_str().unwrap().contains(why), "{}", r.text);
    }
    assert_eq!(start(&s, &s.admin, "m", json!({"version": 9})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(start(&s, &s.admin, "m", json!({"verson": 2})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(start(&s, &reader, "m", json!({"version": 2})).await.status, StatusCode::FORBIDDEN);
    assert!(s.get("/api/v1/prompts/m/rollouts", &s.admin).await.body["items"].as_array().unwrap().is_empty());

    let id = started(&s, "m", json!({"step_seconds": 3600})).await;
    // One live rollout per label, and no hand moves under it.
    let r = start(&s, &s.admin, "m", json!({"version": 2})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "rollout_running"), "{}", r.text);
    let r = s.put("/api/v1/prompts/m/labels/stable", &s.admin, json!({"version": 2})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "rollout_running"), "{}", r.text);
    assert_eq!(s.post(&format!("/api/v1/rollouts/{id}/pause"), &reader, json!({})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(s.get(&format!("/api/v1/rollouts/{id}"), &reader).await.status, StatusCode::OK);
    assert_eq!(s.get("/api/v1/rollouts/ro_nope", &s.admin).await.status, StatusCode::NOT_FOUND);

    let act = async |action: &str| {
        s.post(&format!("/api/v1/rollouts/{id}/{action}"), &s.admin, json!({"reason": "checking"})).await
    };
    let r = act("pause").await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("paused")));
    let r = act("pause").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "rollout_state"));
    assert_eq!(act("resume").await.body["status"], "running");
    assert_eq!(act("resume").await.status, StatusCode::CONFLICT);
    assert_eq!(act("advance").await.body["weight"], 25);
    let r = act("abort").await;
    assert_eq!((r.body["status"].as_str(), r.body["weight"].as_u64()), (Some("aborted"), Some(0)));
    assert!(r.body["note"].as_str().unwrap().contains("checking"));
    assert_eq!(r.body["ended_by"], "key:test-admin");
    for action in ["pause", "resume", "advance", "abort"] {
        assert_eq!(act(action).await.status, StatusCode::CONFLICT, "{action} after abort");
    }
    for u in 0..100 {
        assert_eq!(resolve(&s, &app, &format!("/api/v1/prompts/m?unit=u{u}")).await.body["version"], 1);
    }
    let actions: Vec<String> = audit_actions(&s, "m").await.into_iter().map(|(a, _)| a).collect();
    let tail: Vec<&str> = actions.iter().map(String::as_str).skip_while(|a| *a != "rollout.started").collect();
    assert_eq!(tail, ["rollout.started", "rollout.paused", "rollout.resumed", "rollout.advanced", "rollout.aborted"]);
    // A new rollout may start now.
    started(&s, "m", json!({})).await;
    chain_verifies(&s).await;
    s.stop().await;
}

/// The label's policy is read inside the move's write transaction: a move that races a
/// policy requiring approval either commits before the policy, or becomes a request;
/// it never moves the label after approval became required.
#[tokio::test]
async fn a_policy_change_racing_a_move_is_never_missed() {
    let s = TestServer::start().await;
    s.create_text("race", "v1").await;
    for v in 1..12 {
        let r = s
            .post(
                "/api/v1/prompts/race/versions",
                &s.admin,
                json!({"base_version": v, "template": format!("v{}", v + 1)}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let writer = s.key("writer", Scope::Write, None).await;
    let (mut moved_first, mut requested) = (0, 0);
    for round in 0..60 {
        let open = s.put("/api/v1/labels/stable/policy", &s.admin, json!({"require_approval": false})).await;
        assert_eq!(open.status, StatusCode::OK);
        let version = round % 12 + 1;
        let (moved, policy) = tokio::join!(
            s.put("/api/v1/prompts/race/labels/stable", &writer, json!({"version": version})),
            s.put("/api/v1/labels/stable/policy", &s.admin, json!({"require_approval": true})),
        );
        assert_eq!(policy.status, StatusCode::OK);
        if moved.status == StatusCode::ACCEPTED {
            requested += 1;
            continue;
        }
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
        if moved.body["previous_version"] == version {
            continue;
        }
        moved_first += 1;
        let r = s.get("/api/v1/audit?limit=2", &s.admin).await;
        let last: Vec<&str> =
            r.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(
            last,
            ["label.policy.set", "label.moved"],
            "round {round}: the label moved after approval became required"
        );
    }
    assert!(moved_first + requested > 0);
    chain_verifies(&s).await;
    s.stop().await;
}
