//! Evaluations end to end: the real server on loopback, a real SQLite file, and a local
//! model provider speaking the OpenAI and Anthropic HTTP protocols (tests/common/provider.rs),
//! reached through the real HTTP client: assertions, retries, timeouts, cancellation,
//! cost accounting, interrupted runs and the `eval run` command.

mod common;

use std::time::{Duration, Instant};

use common::provider::MockProvider;
use common::{TestServer, enc};
use domain::access::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service::eval::{EvalSettings, RetryPolicy};

/// Short retries and timeouts, so failures are tested in milliseconds.
fn quick() -> EvalSettings {
    EvalSettings {
        retry: RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
            timeout: Duration::from_millis(400),
        },
        ..Default::default()
    }
}

/// A server with a provider `local` (OpenAI protocol, key from `var`) priced at $1 in and
/// $2 out per million tokens, and a text prompt.
async fn setup(prompt: &str, template: &str, var: &str) -> (TestServer, MockProvider) {
    let server = TestServer::start().await;
    server.registry.configure_evals(quick());
    let mock = MockProvider::start().await;
    *mock.state.key.lock() = Some(format!("secret-{var}"));
    // SAFETY: each test sets its own variable before any run reads it.
    unsafe { std::env::set_var(var, format!("secret-{var}")) };
    let r = server
        .put(
            "/api/v1/providers/local",
            &server.admin,
            json!({"kind": "openai", "base_url": format!("{}/v1", mock.base), "api_key_env": var}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = server
        .put(
            "/api/v1/providers/local/prices/mock-1",
            &server.admin,
            json!({"input_per_mtok": 1.0, "output_per_mtok": 2.0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    server.create_text(prompt, template).await;
    (server, mock)
}

async fn put_suite(server: &TestServer, prompt: &str, suite: &str, body: Value) -> Value {
    let r = server.put(&format!("/api/v1/prompts/{}/suites/{suite}", enc(prompt)), &server.admin, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn start(server: &TestServer, prompt: &str, body: Value) -> Value {
    let r = server.post(&format!("/api/v1/prompts/{}/eval-runs", enc(prompt)), &server.admin, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(matches!(r.body["status"].as_str(), Some("queued" | "running")), "{}", r.text);
    r.body
}

async fn wait(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = server.get(&format!("/api/v1/eval-runs/{id}"), &server.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if !matches!(r.body["status"].as_str(), Some("queued" | "running")) {
            return r.body;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {}", r.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn case(run: &Value, i: usize) -> &Value {
    &run["results"][i]
}

#[tokio::test]
async fn suites_are_validated_hashed_listed_and_audited() {
    let (server, _mock) = setup("support/greeting", "Hello {{ customer }}", "PL_KEY_SUITES").await;
    let suite = json!({"threshold": 0.5, "cases": [{"description": "greets", "vars": {"customer": "Ada"},
                       "assert": [{"type": "icontains", "value": "ada"}, {"type": "latency", "threshold": 2000}]}]});
    let saved = put_suite(&server, "support/greeting", "smoke", suite.clone()).await;
    let hash = saved["hash"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("sha256:"));
    assert_eq!(saved["threshold"], 0.5);
    // The same suite again: the same hash, and no new audit event.
    assert_eq!(put_suite(&server, "support/greeting", "smoke", suite).await["hash"], hash.as_str());
    let audit = server.get("/api/v1/audit?action=suite.saved", &server.admin).await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 1, "{}", audit.text);
    assert_eq!(audit.body["items"][0]["detail"]["hash"], hash.as_str());

    let list = server.get(&format!("/api/v1/prompts/{}/suites", enc("support/greeting")), &server.admin).await;
    assert_eq!(list.body["items"][0]["name"], "smoke");

    // Bad suites are 422 and change nothing.
    let path = format!("/api/v1/prompts/{}/suites/smoke", enc("support/greeting"));
    for bad in [
        json!({"cases": [{"assert": [{"type": "sounds-nice"}]}]}),
        json!({"cases": [{"assert": [{"type": "regex", "value": "("}]}]}),
        json!({"cases": []}),
        json!({"threshold": 2, "cases": [{"assert": []}]}),
        json!({"cases": [{"vars": {}, "assert": [], "surprise": 1}]}),
    ] {
        let r = server.put(&path, &server.admin, bad.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.text);
    }
    let r =
        server.put("/api/v1/prompts/support%2Fgreeting/suites/Bad%20Name", &server.admin, json!({"cases": [{}]})).await;
    assert_eq!(r.code(), "invalid_name");
    assert_eq!(server.get(&path, &server.admin).await.body["hash"], hash.as_str());
    // Read keys cannot change suites.
    let reader = server.key("reader", Scope::Read, None).await;
    let r = server.put(&path, &reader, json!({"cases": [{}]})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    server.stop().await;
}

#[tokio::test]
async fn a_run_checks_every_kind_of_assertion_and_accounts_cost() {
    let (server, mock) = setup("support/reply", "{{ message }}", "PL_KEY_RUN").await;
    let cases = json!([
        {"description": "thanks", "vars": {"message": "SAY:Thank you, Ada! Your order ships today."},
         "assert": [{"type": "icontains", "value": "ada"}, {"type": "not-contains", "value": "sorry"},
                    {"type": "starts-with", "value": "Thank"}, {"type": "regex", "value": "ships (today|tomorrow)"},
                    {"type": "icontains-all", "value": ["thank", "order"]}, {"type": "word-count", "min": 3, "max": 20},
                    {"type": "latency", "threshold": 5000}, {"type": "cost", "threshold": 0.01},
                    {"type": "finish-reason", "value": "stop"}, {"type": "llm-rubric", "value": "The reply is grateful to the customer"},
                    {"type": "similar", "value": "Thank you Ada, your order ships today", "threshold": 0.9},
                    {"type": "levenshtein", "value": "Thank you, Ada! Your order ships today!", "threshold": 2}]},
        {"description": "json", "vars": {"message": "SAY:{\"refund\": true, \"amount\": 12}"},
         "assert": [{"type": "is-json"}, {"type": "json-schema", "value": {"type": "object", "required": ["refund"]}},
                    {"type": "equals", "value": {"refund": true, "amount": 12}}, {"type": "contains", "value": "refund"},
                    {"type": "contains-json", "value": {"type": "object"}}, {"type": "contains-any", "value": ["amount", "total"]},
                    {"type": "contains-all", "value": ["refund", "amount"]}, {"type": "icontains-any", "value": ["REFUND"]},
                    {"type": "not-starts-with", "value": "Sorry"}]},
        {"description": "rude", "vars": {"message": "SAY:Sorry, no. [length]"},
         "assert": [{"type": "not-icontains", "value": "sorry"}, {"type": "llm-rubric", "value": "The reply is grateful to the customer"},
                    {"type": "finish-reason", "value": "stop"}]}
    ]);
    put_suite(&server, "support/reply", "smoke", json!({"threshold": 0.6, "cases": cases})).await;
    let run =
        start(&server, "support/reply", json!({"suite": "smoke", "model": "local/mock-1", "concurrency": 2})).await;
    let run = wait(&server, run["id"].as_str().unwrap()).await;

    assert_eq!(run["status"], "passed", "2 of 3 pass, the threshold is 0.6: {run}");
    assert_eq!(
        (run["total"].as_u64(), run["done"].as_u64(), run["passed"].as_u64(), run["failed"].as_u64()),
        (Some(3), Some(3), Some(2), Some(1))
    );
    assert_eq!(run["version"], 1);
    assert!(run["hash"].as_str().unwrap().starts_with("sha256:"));
    for i in 0..2 {
        let c = case(&run, i);
        assert_eq!(c["passed"], true, "case {i}: {c}");
        assert!(c["assertions"].as_array().unwrap().iter().all(|a| a["passed"] == true), "{c}");
    }
    let thanks = case(&run, 0);
    assert_eq!(thanks["input"], "SAY:Thank you, Ada! Your order ships today.");
    assert_eq!(thanks["output"], "Thank you, Ada! Your order ships today.");
    assert_eq!(thanks["finish_reason"], "stop");
    // Cost: 7 input and 7 output tokens (the mock counts words) at $1 and $2 per million.
    assert_eq!(thanks["tokens"], json!({"input": 7, "output": 7}));
    let expected = (7.0 + 7.0 * 2.0) / 1e6;
    assert!((thanks["cost"].as_f64().unwrap() - expected).abs() < 1e-12, "{thanks}");
    let rude = case(&run, 2);
    assert_eq!(rude["passed"], false);
    assert_eq!(rude["finish_reason"], "length");
    let reasons: Vec<&str> =
        rude["assertions"].as_array().unwrap().iter().map(|a| a["reason"].as_str().unwrap()).collect();
    assert!(rude["assertions"].as_array().unwrap().iter().all(|a| a["passed"] == false), "{rude}");
    assert!(reasons[1].contains("does not thank"), "the judge's reason is kept: {reasons:?}");
    assert!(reasons.iter().all(|r| !r.is_empty()));
    let total: f64 = run["results"].as_array().unwrap().iter().map(|c| c["cost"].as_f64().unwrap()).sum();
    assert!((run["cost"].as_f64().unwrap() - total).abs() < 1e-12);
    // The provider got the key from the environment, as a bearer token.
    assert!(mock.requests() >= 3);

    // Listed, and audited from start to finish; the key never appears.
    let runs = server.get(&format!("/api/v1/prompts/{}/eval-runs", enc("support/reply")), &server.admin).await;
    assert_eq!(runs.body["items"][0]["id"], run["id"]);
    let audit = server.get(&format!("/api/v1/audit?prompt={}", enc("support/reply")), &server.admin).await;
    let actions: Vec<&str> =
        audit.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"eval.run.started") && actions.contains(&"eval.run.finished"), "{actions:?}");
    let everything = server.get("/api/v1/audit?limit=1000", &server.admin).await.text;
    assert!(!everything.contains("secret-PL_KEY_RUN"));
    assert_eq!(server.get("/api/v1/audit/verify", &server.admin).await.body["ok"], true);
    server.stop().await;
}

#[tokio::test]
async fn failures_are_retried_with_backoff_and_a_case_that_still_fails_is_recorded() {
    let (server, mock) = setup("billing/notice", "{{ m }}", "PL_KEY_RETRY").await;
    let cases = json!([
        {"description": "429 twice", "vars": {"m": "SAY:ok [429:2]"}, "assert": [{"type": "equals", "value": "ok [429:2]"}]},
        {"description": "500 once", "vars": {"m": "SAY:fine [500:1]"}, "assert": [{"type": "contains", "value": "fine"}]},
        {"description": "500 always", "vars": {"m": "[500:99]"}, "assert": []},
        {"description": "too slow", "vars": {"m": "[sleep:3000]"}, "assert": []},
        {"description": "missing variable", "vars": {}, "assert": []}
    ]);
    put_suite(&server, "billing/notice", "smoke", json!({"cases": cases})).await;
    let before = mock.requests();
    let run =
        start(&server, "billing/notice", json!({"suite": "smoke", "model": "local/mock-1", "concurrency": 5})).await;
    let run = wait(&server, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["passed"], 2);
    assert_eq!(run["errors"], 3);
    assert_eq!(case(&run, 0)["passed"], true, "passed on the third attempt");
    assert_eq!(case(&run, 1)["passed"], true, "passed on the second attempt");
    let error = |i: usize| case(&run, i)["error"].as_str().unwrap_or_default().to_owned();
    assert!(error(2).contains("500") && error(2).contains("gave up after 3 attempts"), "{}", error(2));
    assert!(error(3).contains("timed out"), "{}", error(3));
    assert!(error(4).contains("missing"), "{}", error(4));
    // 3 + 2 + 3 + 3 attempts (the missing variable never reaches the model).
    assert_eq!(mock.requests() - before, 11);

    // Retry-After in seconds is honoured: the retry waits at least a second.
    put_suite(&server, "billing/notice", "slow", json!({"cases": [{"vars": {"m": "SAY:hi [429s:1]"}, "assert": []}]}))
        .await;
    let started = Instant::now();
    let run = start(&server, "billing/notice", json!({"suite": "slow", "model": "local/mock-1"})).await;
    let run = wait(&server, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "passed", "{run}");
    assert!(started.elapsed() >= Duration::from_secs(1), "the retry did not wait for Retry-After");
    server.stop().await;
}

#[tokio::test]
async fn a_cancelled_run_stops_calling_the_model_and_keeps_what_it_recorded() {
    let (server, mock) = setup("ops/slow", "{{ m }}", "PL_KEY_CANCEL").await;
    let cases: Vec<Value> =
        (0..30).map(|i| json!({"vars": {"m": format!("SAY:{i} [sleep:100]")}, "assert": []})).collect();
    put_suite(&server, "ops/slow", "long", json!({"cases": cases})).await;
    let run = start(&server, "ops/slow", json!({"suite": "long", "model": "local/mock-1", "concurrency": 1})).await;
    let id = run["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = server.post(&format!("/api/v1/eval-runs/{id}/cancel"), &server.admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "cancelled");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = mock.requests();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(mock.requests(), calls, "no model calls after the cancel");
    let run = server.get(&format!("/api/v1/eval-runs/{id}"), &server.admin).await.body;
    assert_eq!(run["status"], "cancelled");
    let done = run["done"].as_u64().unwrap();
    assert!((1..30).contains(&done), "{run}");
    assert_eq!(run["results"].as_array().unwrap().len() as u64, done);
    // Cancelling again changes nothing; an unknown run is 404.
    let again = server.post(&format!("/api/v1/eval-runs/{id}/cancel"), &server.admin, json!({})).await;
    assert_eq!(again.body["finished_at"], run["finished_at"]);
    assert_eq!(
        server.post("/api/v1/eval-runs/run_nope/cancel", &server.admin, json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_run_requests_are_refused_before_anything_is_queued() {
    let (server, _mock) = setup("sales/pitch", "{{ m }}", "PL_KEY_BAD").await;
    put_suite(&server, "sales/pitch", "smoke", json!({"cases": [{"vars": {"m": "x"}}]})).await;
    let path = format!("/api/v1/prompts/{}/eval-runs", enc("sales/pitch"));
    let cases = [
        (json!({"suite": "nope", "model": "local/mock-1"}), StatusCode::NOT_FOUND, "not_found"),
        (json!({"suite": "smoke", "model": "elsewhere/mock-1"}), StatusCode::UNPROCESSABLE_ENTITY, "unknown_provider"),
        (json!({"suite": "smoke", "model": "mock-1"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_model"),
        (
            json!({"suite": "smoke", "model": "local/mock-1", "concurrency": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_concurrency",
        ),
        (
            json!({"suite": "smoke", "model": "local/mock-1", "version": 1, "label": "latest"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (json!({"suite": "smoke", "model": "local/mock-1", "version": 7}), StatusCode::NOT_FOUND, "not_found"),
        (json!({"suite": "smoke", "modle": "local/mock-1"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let r = server.post(&path, &server.admin, body.clone()).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {}", r.text);
    }
    // A provider whose key variable is not set.
    server
        .put(
            "/api/v1/providers/keyless",
            &server.admin,
            json!({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "PL_NEVER_SET_ANYWHERE"}),
        )
        .await;
    let r = server.post(&path, &server.admin, json!({"suite": "smoke", "model": "keyless/m"})).await;
    assert_eq!(r.code(), "provider_key_missing");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("PL_NEVER_SET_ANYWHERE"));
    // The version's config.model (`gpt-4o-mini`, no provider) is not a usable default.
    let r = server.post(&path, &server.admin, json!({"suite": "smoke"})).await;
    assert_eq!(r.code(), "invalid_model");
    // Providers are admin business; bad ones are 422.
    let writer = server.key("writer", Scope::Write, None).await;
    let r = server.put("/api/v1/providers/mine", &writer, json!({"kind": "openai", "base_url": "http://x/v1"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (body, code) in [
        (json!({"kind": "openai", "base_url": "ftp://x"}), "invalid_base_url"),
        (json!({"kind": "openai", "base_url": "http://x/v1", "api_key_env": "sk-live-123 456"}), "invalid_api_key_env"),
    ] {
        assert_eq!(server.put("/api/v1/providers/mine", &server.admin, body).await.code(), code);
    }
    let runs = server.get(&path, &server.admin).await;
    assert_eq!(runs.body["items"].as_array().unwrap().len(), 0, "nothing was queued: {}", runs.text);
    server.stop().await;
}

#[tokio::test]
async fn anthropic_messages_are_spoken_with_the_system_prompt_on_top() {
    let server = TestServer::start().await;
    server.registry.configure_evals(quick());
    let mock = MockProvider::start().await;
    *mock.state.key.lock() = Some("anthropic-secret".into());
    // SAFETY: set before any run reads it; the name is this test's own.
    unsafe { std::env::set_var("PL_KEY_ANTHROPIC", "anthropic-secret") };
    server
        .put(
            "/api/v1/providers/claude",
            &server.admin,
            json!({"kind": "anthropic", "base_url": mock.base, "api_key_env": "PL_KEY_ANTHROPIC"}),
        )
        .await;
    let r = server
        .post(
            "/api/v1/prompts",
            &server.admin,
            json!({"name": "chat/helper", "type": "chat", "config": {"model": "claude/haiku", "temperature": 0.2},
                   "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "SAY:Hi {{ name }} [length]"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    put_suite(
        &server,
        "chat/helper",
        "smoke",
        json!({"cases": [{"vars": {"name": "Ada"},
        "assert": [{"type": "equals", "value": "Hi Ada [length]"}, {"type": "finish-reason", "value": "length"}]}]}),
    )
    .await;
    // No `model`: the version's config.model is used.
    let run = start(&server, "chat/helper", json!({"suite": "smoke"})).await;
    let run = wait(&server, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["model"], "claude/haiku");
    let sent = mock.state.last.lock().get("messages").cloned().unwrap();
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["model"], "haiku");
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "SAY:Hi Ada [length]"}]));
    assert_eq!(case(&run, 0)["tokens"], json!({"input": 5, "output": 3}));
    assert_eq!(case(&run, 0)["cost"], Value::Null, "no price set for claude/haiku");
    server.stop().await;
}

const EXE: &str = env!("CARGO_BIN_EXE_promptledger");

/// The binary, run without blocking this test's runtime (which serves the mock provider).
fn cli(db: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(EXE);
    c.arg("--db").arg(db).args(args).env("PL_CLI_KEY", "cli-secret");
    c
}

/// `eval run` for CI: exit 0 when the run passes, 1 when it fails; and a run whose
/// process is killed is marked interrupted when the database is next opened.
#[tokio::test]
async fn eval_run_on_the_command_line_exits_with_the_outcome_and_killed_runs_end_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let mock = MockProvider::start().await;
    *mock.state.key.lock() = Some("cli-secret".into());
    let base = format!("{}/v1", mock.base);
    let ok =
        cli(&db, &["provider", "add", "local", "--kind", "openai", "--base-url", &base, "--api-key-env", "PL_CLI_KEY"])
            .output()
            .await
            .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let registry = service::Registry::open(&db, service::Durability::Normal).await.unwrap();
    let operator = service::Principal::operator();
    let prompt: domain::model::NewPrompt =
        serde_json::from_value(json!({"name": "ci/check", "template": "{{ m }}", "config": {"model": "local/m"}}))
            .unwrap();
    registry.create_prompt(&operator, prompt).await.unwrap();
    let suite = |cases: Value| serde_json::from_value::<domain::eval::Suite>(json!({"cases": cases})).unwrap();
    let good = json!([{"description": "says hi", "vars": {"m": "SAY:hi there"}, "assert": [{"type": "equals", "value": "hi there"}]}]);
    let bad =
        json!([{"description": "says bye", "vars": {"m": "SAY:bye"}, "assert": [{"type": "equals", "value": "hi"}]}]);
    let slow: Vec<Value> = (0..50).map(|i| json!({"vars": {"m": format!("SAY:{i} [sleep:200]")}})).collect();
    registry.put_suite(&operator, "ci/check", "good", suite(good)).await.unwrap();
    registry.put_suite(&operator, "ci/check", "bad", suite(bad)).await.unwrap();
    registry.put_suite(&operator, "ci/check", "slow", suite(Value::Array(slow))).await.unwrap();

    let out = cli(&db, &["eval", "run", "ci/check", "--suite", "good"]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PASS") && stdout.contains("says hi") && stdout.contains("PASSED: 1/1 passed"), "{stdout}");

    let out =
        cli(&db, &["eval", "run", "ci/check", "--suite", "bad", "--model", "local/other"]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL") && stdout.contains("equals") && stdout.contains("FAILED: 0/1 passed"), "{stdout}");

    let out = cli(&db, &["eval", "run", "ci/check", "--suite", "missing"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown suite is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no suite named 'missing'"));

    // Kill a run's process in the middle; once its heartbeat is old, opening the
    // database ends the run as interrupted (aged here rather than waiting 30 s).
    let mut child = cli(&db, &["eval", "run", "ci/check", "--suite", "slow", "--concurrency", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let id = loop {
        let runs = registry.eval_runs(&operator, "ci/check", None, None).await.unwrap();
        if let Some(r) = runs.items.iter().find(|r| r.suite == "slow" && r.done >= 1) {
            break r.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().await.unwrap();
    registry.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display())).await.unwrap();
    sqlx::query("UPDATE eval_runs SET heartbeat_at = heartbeat_at - 60000000 WHERE id = ?")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let registry = service::Registry::open(&db, service::Durability::Normal).await.unwrap();
    let run = registry.eval_run(&operator, &id).await.unwrap();
    assert_eq!(run.status, domain::eval::RunStatus::Error);
    assert!(run.error.as_deref().unwrap().contains("interrupted"), "{:?}", run.error);
    assert!(run.done >= 1 && run.done < 50);
    assert!(registry.verify(&operator).await.unwrap().ok);
    registry.close().await;
}

#[tokio::test]
async fn suites_import_and_export_csv_and_jsonl() {
    let (server, _mock) = setup("support/faq", "{{ question }}", "PL_KEY_IO").await;
    let base = format!("{}/api/v1/prompts/{}/suites/faq", server.base, enc("support/faq"));
    let send = |path: String, body: &'static str| {
        server.http.post(path).bearer_auth(&server.admin).header("content-type", "text/csv").body(body).send()
    };
    let csv = "__description,question,__expected1,__expected2\n\
               refunds,How do refunds work?,icontains: refund,latency: 3000\n\
               hours,When are you open?,\"contains-any: [\"\"9am\"\",\"\"nine\"\"]\",\n";
    let r = send(format!("{base}/import?format=csv"), csv).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let suite: Value = r.json().await.unwrap();
    assert_eq!(suite["cases"].as_array().unwrap().len(), 2);
    assert_eq!(suite["cases"][0]["vars"]["question"], "How do refunds work?");
    assert_eq!(suite["cases"][0]["assert"][1], json!({"type": "latency", "threshold": 3000.0}));
    assert_eq!(suite["cases"][1]["assert"][0]["value"], json!(["9am", "nine"]));

    let jsonl = "{\"description\": \"extra\", \"vars\": {\"question\": \"Hi\"}, \"assert\": [{\"type\": \"contains\", \"value\": \"Hi\", \"weight\": 2}]}\n";
    let r = server
        .http
        .post(format!("{base}/import?format=jsonl&mode=append"))
        .bearer_auth(&server.admin)
        .body(jsonl)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let exported =
        server.http.get(format!("{base}/export?format=jsonl")).bearer_auth(&server.admin).send().await.unwrap();
    assert_eq!(exported.headers()["content-type"], "application/x-ndjson");
    let lines = exported.text().await.unwrap();
    assert_eq!(lines.lines().count(), 3);
    assert!(lines.lines().last().unwrap().contains("\"weight\":2"));
    // CSV cannot hold a weight: a 422 that says to use JSONL.
    let r = server
        .get(&format!("/api/v1/prompts/{}/suites/faq/export?format=csv", enc("support/faq")), &server.admin)
        .await;
    assert_eq!(r.code(), "invalid_import");

    // Replace with the CSV again, then export it: the same cases come back.
    assert_eq!(send(format!("{base}/import?format=csv"), csv).await.unwrap().status(), StatusCode::OK);
    let r = server.http.get(format!("{base}/export?format=csv")).bearer_auth(&server.admin).send().await.unwrap();
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains("faq.csv"));
    let text = r.text().await.unwrap();
    assert!(text.starts_with("__description,question,__expected1,__expected2"), "{text}");
    assert!(text.contains("icontains: refund") && text.contains("latency: 3000"), "{text}");

    // Bad files are 422 naming the row, and change nothing.
    let before =
        server.get(&format!("/api/v1/prompts/{}/suites/faq", enc("support/faq")), &server.admin).await.body["hash"]
            .clone();
    for (query, body) in [
        ("format=csv", "question,__expected\nx,latency: soon\n"),
        ("format=csv", "question,__what\nx,y\n"),
        ("format=jsonl", "{nope}\n"),
    ] {
        let r = send(format!("{base}/import?{query}"), body).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    for query in ["format=xml", "format=csv&mode=merge", "format=csv&extra=1"] {
        assert_eq!(
            send(format!("{base}/import?{query}"), csv).await.unwrap().status(),
            StatusCode::BAD_REQUEST,
            "{query}"
        );
    }
    let after =
        server.get(&format!("/api/v1/prompts/{}/suites/faq", enc("support/faq")), &server.admin).await.body["hash"]
            .clone();
    assert_eq!(before, after);
    server.stop().await;
}

/// Imports at the same moment lose no case: each reads and writes the suite in one
/// transaction.
#[tokio::test]
async fn imports_at_once_lose_no_case() {
    let (server, _mock) = setup("support/faq", "{{ question }}", "PL_KEY_IMPORTS").await;
    let base = format!("{}/api/v1/prompts/{}/suites/faq", server.base, enc("support/faq"));
    let mut imports = tokio::task::JoinSet::new();
    for i in 0..12 {
        let line = format!(
            "{{\"description\": \"case {i}\", \"vars\": {{\"question\": \"q{i}\"}}, \"assert\": [{{\"type\": \"contains\", \"value\": \"q\"}}]}}\n"
        );
        let request =
            server.http.post(format!("{base}/import?format=jsonl&mode=append")).bearer_auth(&server.admin).body(line);
        imports.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = imports.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let suite = server.get(&format!("/api/v1/prompts/{}/suites/faq", enc("support/faq")), &server.admin).await.body;
    let mut got: Vec<String> =
        suite["cases"].as_array().unwrap().iter().map(|c| c["description"].as_str().unwrap().to_owned()).collect();
    got.sort();
    let mut want: Vec<String> = (0..12).map(|i| format!("case {i}")).collect();
    want.sort();
    assert_eq!(got, want);
    server.stop().await;
}

/// A model migration: every suite of every stable prompt in a folder against a candidate
/// model, with the prompts that regress versus their stable results first; and two runs
/// compared case by case.
#[tokio::test]
async fn a_model_migration_reports_which_prompts_regress_and_runs_compare_case_by_case() {
    let (server, _mock) = setup("support/refund", "{{ m }}", "PL_KEY_MIGRATE").await;
    server.create_text("support/hours", "{{ m }}").await;
    server.create_text("sales/pitch", "{{ m }}").await;
    server.create_text("support/draft", "{{ m }}").await; // no stable version: left out
    let long = json!({"cases": [
        {"description": "full answer", "vars": {"m": "SAY:Thank you for asking about refunds"}, "assert": [{"type": "icontains", "value": "refund"}]},
        {"description": "starts politely", "vars": {"m": "SAY:Thank you"}, "assert": [{"type": "starts-with", "value": "Thank"}]}]});
    let short = json!({"cases": [{"vars": {"m": "SAY:Open"}, "assert": [{"type": "equals", "value": "Open"}]}]});
    for (prompt, suite) in
        [("support/refund", &long), ("support/hours", &short), ("sales/pitch", &short), ("support/draft", &short)]
    {
        put_suite(&server, prompt, "smoke", suite.clone()).await;
    }
    for prompt in ["support/refund", "support/hours", "sales/pitch"] {
        let r = server
            .put(
                &format!("/api/v1/prompts/{}/labels/stable", enc(prompt)),
                &server.admin,
                json!({"version": 1, "reason": "go"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // Today's model: the baseline results on stable.
    let mut baselines = Vec::new();
    for prompt in ["support/refund", "support/hours"] {
        let run = start(&server, prompt, json!({"suite": "smoke", "label": "stable", "model": "local/chatty"})).await;
        baselines.push(wait(&server, run["id"].as_str().unwrap()).await);
    }
    assert!(baselines.iter().all(|b| b["status"] == "passed"));

    let r = server
        .post(
            "/api/v1/eval-migrations",
            &server.admin,
            json!({"model": "local/terse", "folder": "support", "concurrency": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "support/refund and support/hours only: {}", r.text);
    let report = loop {
        let r = server.get(&format!("/api/v1/eval-migrations/{id}"), &server.admin).await;
        if r.body["finished"] == true {
            break r.body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report["regressions"], 1, "{report}");
    let first = &report["items"][0];
    assert_eq!(
        (first["prompt"].as_str(), first["regressed"].as_bool()),
        (Some("support/refund"), Some(true)),
        "{report}"
    );
    assert_eq!(first["regressed_cases"], json!([0]), "the full answer lost 'refund'; 'Thank' still starts it");
    assert_eq!(first["baseline"]["id"], baselines[0]["id"]);
    assert_eq!(first["candidate"]["model"], "local/terse");
    let second = &report["items"][1];
    assert_eq!((second["prompt"].as_str(), second["regressed"].as_bool()), (Some("support/hours"), Some(false)));

    // The same two runs compared directly.
    let cmp = server
        .get(
            &format!(
                "/api/v1/eval-runs/{}/compare/{}",
                baselines[0]["id"].as_str().unwrap(),
                first["candidate"]["id"].as_str().unwrap()
            ),
            &server.admin,
        )
        .await;
    assert_eq!(cmp.status, StatusCode::OK, "{}", cmp.text);
    assert_eq!(
        (cmp.body["regressions"].as_u64(), cmp.body["fixes"].as_u64(), cmp.body["same_suite"].as_bool()),
        (Some(1), Some(0), Some(true))
    );
    assert_eq!(cmp.body["cases"][0]["change"], "regressed");
    assert_eq!(cmp.body["cases"][0]["description"], "full answer");
    assert_eq!(cmp.body["cases"][1]["change"], "stillpassing");
    assert!((cmp.body["pass_rate_delta"].as_f64().unwrap() + 0.5).abs() < 1e-9);

    // Nothing qualifies in an unknown folder; a bad model is refused; nothing was queued.
    let r = server
        .post("/api/v1/eval-migrations", &server.admin, json!({"model": "local/terse", "folder": "nowhere"}))
        .await;
    assert_eq!(r.code(), "nothing_to_run");
    let r = server.post("/api/v1/eval-migrations", &server.admin, json!({"model": "ghost/terse"})).await;
    assert_eq!(r.code(), "unknown_provider");
    assert_eq!(server.get("/api/v1/eval-migrations/mig_nope", &server.admin).await.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// A server that stops (SIGTERM) in the middle of a run ends the run as interrupted on
/// its way out, so nothing is left "running".
#[tokio::test]
async fn a_server_stopping_mid_run_ends_the_run_as_interrupted() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stop.db");
    let mock = MockProvider::start().await;
    let registry = service::Registry::open(&db, service::Durability::Normal).await.unwrap();
    let operator = service::Principal::operator();
    let provider = domain::eval::Provider {
        name: "local".into(),
        kind: domain::eval::ProviderKind::Openai,
        base_url: format!("{}/v1", mock.base),
        api_key_env: None,
    };
    registry.put_provider(&operator, provider).await.unwrap();
    let prompt: domain::model::NewPrompt =
        serde_json::from_value(json!({"name": "ops/stop", "template": "{{ m }}"})).unwrap();
    registry.create_prompt(&operator, prompt).await.unwrap();
    let cases: Vec<Value> = (0..40).map(|i| json!({"vars": {"m": format!("SAY:{i} [sleep:150]")}})).collect();
    let suite = serde_json::from_value(json!({"cases": cases})).unwrap();
    registry.put_suite(&operator, "ops/stop", "slow", suite).await.unwrap();
    let key = registry.create_key(&operator, "stopper", Scope::Write, None).await.unwrap().key;
    registry.close().await;

    let mut serve = tokio::process::Command::new(EXE)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(serve.stdout.take().unwrap()).read_line(&mut line).await.unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap().to_owned();
    let http = reqwest::Client::new();
    let run: Value = http
        .post(format!("{base}/api/v1/prompts/ops%2Fstop/eval-runs"))
        .bearer_auth(&key)
        .json(&json!({"suite": "slow", "model": "local/m", "concurrency": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    loop {
        let r: Value = http
            .get(format!("{base}/api/v1/eval-runs/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["done"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = serve.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(serve.wait().await.unwrap().success(), "a graceful stop");

    let registry = service::Registry::open(&db, service::Durability::Normal).await.unwrap();
    let run = registry.eval_run(&operator, &id).await.unwrap();
    assert_eq!(run.status, domain::eval::RunStatus::Error);
    assert!(run.error.as_deref().unwrap().contains("server stopped"), "{:?}", run.error);
    assert!(run.done >= 1 && run.done < 40);
    registry.close().await;
}
