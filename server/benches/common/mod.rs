//! What the benchmarks share: a server on loopback, closed-loop load, a seeded registry.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use domain::access::Scope;
use domain::model::{MoveLabel, NewPrompt, NewVersion};
use service::{Durability, Location, Principal, Registry};

pub const CONNECTIONS: usize = 32;
pub const WINDOW: Duration = Duration::from_secs(2);
/// Interleaved turns; ratios are the median of the per-turn ratios (the machine is noisy).
pub const TURNS: usize = 5;

pub struct Server {
    pub base: String,
    pub key: String,
    pub registry: Registry,
    pub stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn start(db: impl Into<Location>, durability: Durability) -> (Server, Duration) {
    let opened = Instant::now();
    let registry = Registry::open(db, durability).await.unwrap();
    let open_time = opened.elapsed();
    let key = registry
        .create_key(&Principal::operator(), &format!("bench-{}", service::time::now_us()), Scope::Admin, None)
        .await
        .unwrap()
        .key;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = server::router(registry.clone(), None);
    tokio::spawn(server::serve(listener, registry.clone(), app, async move {
        let _ = stopped.await;
    }));
    (Server { base, key, registry, stop }, open_time)
}

pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// `CONNECTIONS` closed-loop clients for `WINDOW`, each sending `request(i)`.
pub async fn load(request: impl Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static) -> Load {
    let request = Arc::new(request);
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + WINDOW;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (request, errors) = (request.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let mut latencies = Vec::with_capacity(50_000);
            let mut i = c as u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match request(&client, i).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(sent.elapsed().as_micros() as u32);
                i += CONNECTIONS as u64;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0) as f64
            / 1000.0
    };
    Load {
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

pub async fn seed(registry: &Registry, prompts: usize, versions: i64, writers: usize) {
    let op = Principal::operator();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (registry, op, next) = (registry.clone(), op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= prompts {
                    break;
                }
                let name = format!("folder{}/prompt{i}", i % 100);
                registry
                    .create_prompt(
                        &op,
                        NewPrompt {
                            name: name.clone(),
                            description: format!("prompt number {i}"),
                            tags: vec!["bench".into()],
                            prompt_type: None,
                            template: Some(format!("Hello {{{{ customer }}}}, this is prompt {i} v1.")),
                            messages: None,
                            config: Some(serde_json::json!({"model": "gpt-4o-mini", "temperature": 0.2})),
                            message: None,
                        },
                    )
                    .await
                    .unwrap();
                for v in 1..versions {
                    registry
                        .add_version(
                            &op,
                            &name,
                            NewVersion {
                                base_version: Some(v),
                                prompt_type: None,
                                template: Some(format!("Hello {{{{ customer }}}}, this is prompt {i} v{}.", v + 1)),
                                messages: None,
                                config: None,
                                message: Some(format!("edit {v}")),
                            },
                        )
                        .await
                        .unwrap();
                }
                registry
                    .move_label(
                        &op,
                        &name,
                        "stable",
                        MoveLabel { version: versions.max(2) - 1, reason: "bench".into() },
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

pub fn show(what: &str, l: &Load) {
    println!("  {what:<22} {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  errors {}", l.rps, l.p50_ms, l.p99_ms, l.errors);
}
