//! Evaluation throughput (issue 4), printed, never asserted: `cargo bench -p server --bench evals`.
//!
//! 1,000 cases against a local OpenAI-compatible provider that answers in 50 ms, with
//! concurrency 32: the wall time against the ideal (1000 × 50 ms / 32 = 1.5625 s; goal:
//! ideal / wall >= 0.85), and resolve latency measured by clients on loopback meanwhile,
//! beside the same measurement with no run (goal: p99 under 2 ms during the run).

#[path = "../tests/common/provider.rs"]
mod provider;

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::access::Scope;
use domain::eval::{Case, NewRun, Provider, ProviderKind, Suite};
use domain::model::NewPrompt;
use service::{Durability, Principal, Registry};

const CASES: usize = 1000;
const CONCURRENCY: u32 = 32;
const LATENCY: Duration = Duration::from_millis(50);
/// Clients sending resolve requests back to back.
const CLIENTS: usize = 4;

/// Resolve latencies (sorted) from `CLIENTS` loops until `stop` is set.
async fn resolve_load(base: String, key: String, stop: Arc<std::sync::atomic::AtomicBool>) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, key, stop) = (
            reqwest::Client::new(),
            format!("{base}/api/v1/prompts/bench%2Fprompt?label=latest"),
            key.to_owned(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let r = http.get(&url).bearer_auth(&key).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
                times.push(started.elapsed());
            }
            times
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("bench.db"), Durability::Full).await.unwrap();
    let operator = Principal::operator();
    let mock = provider::MockProvider::start().await;
    *mock.state.delay.lock() = LATENCY;
    let provider = Provider {
        name: "local".into(),
        kind: ProviderKind::Openai,
        base_url: format!("{}/v1", mock.base),
        api_key_env: None,
    };
    registry.put_provider(&operator, provider).await.unwrap();
    let prompt = NewPrompt {
        name: "bench/prompt".into(),
        description: String::new(),
        tags: vec![],
        prompt_type: None,
        template: Some("Say hello to {{ name }}.".into()),
        messages: None,
        config: None,
        message: None,
    };
    registry.create_prompt(&operator, prompt).await.unwrap();
    let cases = (0..CASES)
        .map(|i| {
            let vars = serde_json::Map::from_iter([("name".to_owned(), serde_json::json!(format!("customer {i}")))]);
            let asserts = serde_json::from_value(serde_json::json!([{"type": "icontains", "value": "hello"}])).unwrap();
            Case { description: format!("case {i}"), vars, asserts }
        })
        .collect();
    registry.put_suite(&operator, "bench/prompt", "big", Suite { threshold: 1.0, cases }).await.unwrap();
    let key = registry.create_key(&operator, "bench", Scope::Read, None).await.unwrap().key;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = server::router(registry.clone(), None);
    let serving = registry.clone();
    tokio::spawn(async move { server::serve(listener, serving, app, std::future::pending()).await.unwrap() });

    // Resolve with nothing else going on, for the same length of time as the run.
    let idle_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let idle = tokio::spawn(resolve_load(base.clone(), key.clone(), idle_stop.clone()));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    idle_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let idle = idle.await.unwrap();

    let busy_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = tokio::spawn(resolve_load(base.clone(), key.clone(), busy_stop.clone()));
    let started = Instant::now();
    let run = NewRun {
        suite: "big".into(),
        model: Some("local/mock".into()),
        concurrency: Some(CONCURRENCY),
        ..Default::default()
    };
    let run = registry.start_run(&operator, "bench/prompt", run).await.unwrap();
    let finished = loop {
        let r = registry.eval_run(&operator, &run.id).await.unwrap();
        if r.status.is_final() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let wall = started.elapsed();
    busy_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let busy = busy.await.unwrap();

    let ideal = LATENCY.as_secs_f64() * CASES as f64 / CONCURRENCY as f64;
    println!(
        "{CASES} cases, provider latency {} ms, concurrency {CONCURRENCY}: {} ({} passed), wall {:.3} s, ideal {ideal:.3} s, ideal/wall {:.3} (goal >= 0.85)",
        LATENCY.as_millis(),
        finished.status.as_str(),
        finished.passed,
        wall.as_secs_f64(),
        ideal / wall.as_secs_f64()
    );
    for (what, times) in [("resolve, no run", &idle), ("resolve, during the run", &busy)] {
        println!(
            "  {what:<24} {CLIENTS} clients, {:>6} requests: p50 {:.3} ms  p99 {:.3} ms  (goal p99 < 2 ms during the run)",
            times.len(),
            pct(times, 0.5),
            pct(times, 0.99)
        );
    }
    registry.close().await;
}
