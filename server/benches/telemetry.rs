//! Telemetry figures, side by side in one run on loopback:
//! `cargo bench -p server --bench telemetry` (see README, "Benchmarks").
//!
//! 1. Ingest: 4 clients send 1,000-item batches as fast as they can while one client
//!    resolves a prompt 500 times a second and another moves a label every 200 ms; prints
//!    generations per second, resolve p50/p99 and label-move latency, next to resolve and
//!    moves with no ingest at all.
//! 2. At 1,000,000 stored generations: metrics of one prompt (p50, p95) and the
//!    request-id lookup (p50, p95).
//! 3. Bytes of the telemetry database per 1,000,000 generations.
//!
//! It asserts nothing: the machine is shared and noisy. `BENCH_GENERATIONS` changes the
//! total (default 1,000,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use domain::access::Scope;
use domain::model::{MoveLabel, NewPrompt, NewVersion};
use service::{Durability, Principal, Registry};

const CLIENTS: usize = 4;
const BATCH: usize = 1000;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// A batch of `BATCH` generations starting at number `from`, started within the minute
/// before `now` (applications report calls seconds after they end).
fn batch(from: u64, now: i64) -> String {
    let items: Vec<String> = (from..from + BATCH as u64)
        .map(|i| {
            let started = service::time::format_us(now - ((i * 7919) % 60_000) as i64 * 1_000);
            let version = if i % 4 == 0 { 2 } else { 1 };
            let status = if i % 50 == 0 { "error" } else { "ok" };
            format!(
                r#"{{"id":"req-{i:010}","prompt":"support/greeting","version":{version},"label":"stable","model":"openai/gpt-4o-mini","input_tokens":{},"output_tokens":{},"latency_ms":{},"ttft_ms":120,"status":"{status}","variables":{{"customer":"customer {i}"}},"output":"Hello customer {i}, thanks for writing to us. We have looked into your order and will get back to you.","user":"u-{}","started_at":"{started}"}}"#,
                100 + i % 300,
                20 + i % 80,
                200 + (i * 37) % 2500,
                i % 5000
            )
        })
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

/// Resolve 500 times a second until `stop` (paced, so the probe does not itself take
/// the CPU that ingest needs); latencies in ms.
async fn resolve_loop(base: String, key: String, stop: Arc<AtomicBool>) -> Vec<f64> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/prompts/support%2Fgreeting");
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let t = Instant::now();
        let r = client.get(&url).bearer_auth(&key).send().await.unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().await;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

/// Moves `staging` between versions 1 and 2 every 200 ms until `stop`; latencies in ms.
async fn move_loop(base: String, key: String, stop: Arc<AtomicBool>) -> Vec<f64> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/prompts/support%2Fgreeting/labels/staging");
    let mut out = Vec::new();
    let mut v = 1;
    while !stop.load(Ordering::Relaxed) {
        v = 3 - v;
        let t = Instant::now();
        let r = client.put(&url).bearer_auth(&key).json(&serde_json::json!({"version": v})).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    out
}

/// Runs resolve and label moves for `window` alongside `work`; (resolve ms, move ms, work's result).
async fn alongside<T>(base: &str, key: &str, work: impl Future<Output = T>) -> (Vec<f64>, Vec<f64>, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let resolves = tokio::spawn(resolve_loop(base.to_owned(), key.to_owned(), stop.clone()));
    let moves = tokio::spawn(move_loop(base.to_owned(), key.to_owned(), stop.clone()));
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    (sorted(resolves.await.unwrap()), sorted(moves.await.unwrap()), out)
}

fn dir_bytes(db: &std::path::Path) -> u64 {
    let telemetry = service::telemetry_path(db);
    let name = telemetry.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(telemetry.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::main]
async fn main() {
    let total: u64 = std::env::var("BENCH_GENERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let registry = Registry::open(&db, Durability::Full).await.unwrap();
    let op = Principal::operator();
    registry
        .create_prompt(
            &op,
            NewPrompt {
                name: "support/greeting".into(),
                description: String::new(),
                tags: vec![],
                prompt_type: None,
                template: Some("Hello {{ customer }}".into()),
                messages: None,
                config: None,
                message: None,
            },
        )
        .await
        .unwrap();
    let v2 = NewVersion {
        base_version: Some(1),
        prompt_type: None,
        template: Some("Hi {{ customer }}".into()),
        messages: None,
        config: None,
        message: None,
    };
    registry.add_version(&op, "support/greeting", v2).await.unwrap();
    registry
        .move_label(&op, "support/greeting", "stable", MoveLabel { version: 1, reason: String::new() })
        .await
        .unwrap();
    let key = registry.create_key(&op, "bench", Scope::Admin, None).await.unwrap().key;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = server::router(registry.clone(), None);
    let serving = registry.clone();
    tokio::spawn(async move { server::serve(listener, serving, app, std::future::pending()).await.unwrap() });

    println!(
        "telemetry benchmark: {total} generations, {CLIENTS} clients × {BATCH}-item batches, SQLite synchronous=FULL"
    );
    // Quiet: resolve and moves with nothing else going on, for 5 s.
    let (quiet_resolve, quiet_moves, ()) = alongside(&base, &key, tokio::time::sleep(Duration::from_secs(5))).await;

    // Ingest: the batches are made before the clock starts.
    let now = service::time::now_us();
    let batches = Arc::new((0..total / BATCH as u64).map(|b| batch(b * BATCH as u64, now)).collect::<Vec<_>>());
    let next = Arc::new(AtomicU64::new(0));
    let ingest = async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (batches, next, base, key) = (batches.clone(), next.clone(), base.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = batches.get(i) else { break };
                    let t = Instant::now();
                    let r = client
                        .post(format!("{base}/api/v1/generations"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            }));
        }
        let mut batch_ms = Vec::new();
        for t in tasks {
            batch_ms.extend(t.await.unwrap());
        }
        (started.elapsed(), sorted(batch_ms))
    };
    let (busy_resolve, busy_moves, (elapsed, batch_ms)) = alongside(&base, &key, ingest).await;
    let rate = total as f64 / elapsed.as_secs_f64();
    println!("\ningest");
    println!("  {rate:>10.0} generations/s   (goal ≥ 20,000; {total} in {:.1} s)", elapsed.as_secs_f64());
    println!("  batch of {BATCH}: p50 {:.1} ms, p99 {:.1} ms", pct(&batch_ms, 0.5), pct(&batch_ms, 0.99));
    println!(
        "                       resolve p50   resolve p99   move p50   move max   (goals: resolve p99 ≤ 2 ms, move ≤ 50 ms)"
    );
    println!(
        "  no ingest        {:>10.3} ms {:>10.3} ms {:>7.1} ms {:>7.1} ms   ({} resolves, {} moves)",
        pct(&quiet_resolve, 0.5),
        pct(&quiet_resolve, 0.99),
        pct(&quiet_moves, 0.5),
        quiet_moves.last().copied().unwrap_or(f64::NAN),
        quiet_resolve.len(),
        quiet_moves.len()
    );
    println!(
        "  during ingest    {:>10.3} ms {:>10.3} ms {:>7.1} ms {:>7.1} ms   ({} resolves, {} moves)",
        pct(&busy_resolve, 0.5),
        pct(&busy_resolve, 0.99),
        pct(&busy_moves, 0.5),
        busy_moves.last().copied().unwrap_or(f64::NAN),
        busy_resolve.len(),
        busy_moves.len()
    );

    // Reads at this size.
    let client = reqwest::Client::new();
    let mut metrics_ms = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let r = client
            .get(format!("{base}/api/v1/prompts/support%2Fgreeting/metrics?interval=1h"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let body: serde_json::Value = r.json().await.unwrap();
        metrics_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(body["versions"].as_array().unwrap().len() == 2);
    }
    let mut lookup_ms = Vec::new();
    for i in 0..500u64 {
        let id = (i * 104_729) % total;
        let t = Instant::now();
        let r = client.get(format!("{base}/api/v1/generations/req-{id:010}")).bearer_auth(&key).send().await.unwrap();
        assert!(r.status().is_success(), "{id}");
        let _ = r.bytes().await;
        lookup_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (metrics_ms, lookup_ms) = (sorted(metrics_ms), sorted(lookup_ms));
    println!("\nreads at {total} stored generations (over HTTP, loopback)");
    println!(
        "  metrics (24 h, hourly)  p50 {:>7.2} ms   p95 {:>7.2} ms   (goal p50 ≤ 50 ms)",
        pct(&metrics_ms, 0.5),
        pct(&metrics_ms, 0.95)
    );
    println!(
        "  request-id lookup       p50 {:>7.2} ms   p95 {:>7.2} ms   (goal p50 ≤ 5 ms)",
        pct(&lookup_ms, 0.5),
        pct(&lookup_ms, 0.95)
    );

    registry.close().await;
    let bytes = dir_bytes(&db);
    println!("\nstorage");
    println!(
        "  telemetry database: {:.1} MB for {total} generations = {:.0} MB per 1,000,000 ({:.0} bytes each; each carries ~110 bytes of output and its variables)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 * 1_000_000.0 / total as f64,
        bytes as f64 / total as f64
    );
}
