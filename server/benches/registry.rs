//! Speed figures of the registry, measured side by side in one run on loopback:
//! `cargo bench -p server --bench registry` (see README, "Benchmarks"). It prints
//! figures and ratios; it asserts nothing, because this machine is shared and noisy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use domain::access::Scope;
use domain::model::{MoveLabel, NewPrompt, NewVersion};
use domain::rollout::{NewRollout, RolloutOutcome};
use service::{Durability, Principal, Registry};

mod common;

use common::{CONNECTIONS, Server, TURNS, WINDOW, load, seed, show, start};

/// The server-side p99 of resolve, read from `/metrics` (upper bound of its bucket).
async fn server_p99(base: &str) -> String {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let prefix = "http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/prompts/{name}\",le=\"";
    let buckets: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| {
            let (le, n) = rest.split_once("\"} ")?;
            Some((le.to_owned(), n.parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets.iter().find(|(_, n)| *n >= total * 0.99).map_or("n/a".into(), |(le, _)| {
        if le == "+Inf" { "> 2.5 s".into() } else { format!("≤ {:.2} ms", le.parse::<f64>().unwrap() * 1000.0) }
    })
}

/// From the commit of the batch that completes a step's evidence of a regression to the
/// label serving only the base, over 10 rollouts (1-second steps, 200 calls per arm).
async fn reaction(server: &Server) {
    let op = Principal::operator();
    let app = server.registry.create_key(&op, "bench-app", Scope::App, None).await.unwrap().key;
    let http = reqwest::Client::new();
    let mut took = Vec::new();
    for t in 0..10 {
        let name = format!("react{t}");
        let new = |template: &str| NewPrompt {
            name: name.clone(),
            description: String::new(),
            tags: vec![],
            prompt_type: None,
            template: Some(template.into()),
            messages: None,
            config: None,
            message: None,
        };
        server.registry.create_prompt(&op, new("v1")).await.unwrap();
        let v2 = NewVersion {
            base_version: Some(1),
            prompt_type: None,
            template: Some("v2".into()),
            messages: None,
            config: None,
            message: None,
        };
        server.registry.add_version(&op, &name, v2).await.unwrap();
        server
            .registry
            .move_label(&op, &name, "stable", MoveLabel { version: 1, reason: String::new() })
            .await
            .unwrap();
        let plan = NewRollout { steps: vec![50, 100], step_seconds: 1, ..NewRollout::new("stable", 2, "bench") };
        let RolloutOutcome::Started(rollout) = server.registry.start_rollout(&op, &name, plan).await.unwrap() else {
            panic!("no approval here")
        };
        let unit = (0..).map(|u| format!("u{u}")).find(|u| domain::rollout::bucket(&rollout.id, u) < 5000).unwrap();
        let items = |arm: &str, from: usize, n: usize| -> Vec<serde_json::Value> {
            (from..from + n)
                .map(|i| {
                    serde_json::json!({"id": format!("{}-{arm}-{i}", rollout.id), "prompt": name,
                        "version": if arm == "base" { 1 } else { 2 }, "rollout": rollout.id, "arm": arm,
                        "status": if arm == "candidate" && i % 2 == 0 { "error" } else { "ok" },
                        "latency_ms": 300, "cost": 0.001, "started_at": service::time::format_us(service::time::now_us())})
                })
                .collect()
        };
        let send = async |items: Vec<serde_json::Value>| {
            let r = http
                .post(format!("{}/api/v1/generations", server.base))
                .bearer_auth(&app)
                .json(&serde_json::json!({ "items": items }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        };
        let mut first = items("base", 0, 200);
        first.extend(items("candidate", 0, 199));
        send(first).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        send(items("candidate", 199, 1)).await;
        let committed = Instant::now();
        loop {
            let r = http
                .get(format!("{}/api/v1/prompts/{name}?unit={unit}", server.base))
                .bearer_auth(&app)
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            if v["version"] == 1 {
                break;
            }
        }
        took.push(committed.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    println!("\n[rollback reaction: last evidence committed -> only the base served, 10 rollouts]");
    println!("  p50 {:.1} ms  max {:.1} ms  (goal <= 1 s)", took[took.len() / 2], took[took.len() - 1]);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!(
        "promptledger benchmark: {CONNECTIONS} connections, {} s windows, loopback, {} cores",
        WINDOW.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Two registries: 10 prompts, and 10,000 prompts x 20 versions (loaded first, so the
    // measurements below run back to back, in turns, against both).
    let big_db = dir.path().join("big.db");
    let loaded = Instant::now();
    {
        let loader = Registry::open(&big_db, Durability::Normal).await.unwrap();
        seed(&loader, 10_000, 20, 8).await;
        loader.close().await;
    }
    println!(
        "\n10,000 prompts x 20 versions loaded through the service layer in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );
    let (small, _) = start(&dir.path().join("small.db"), Durability::Full).await;
    seed(&small.registry, 10, 2, 4).await;
    let (big, open_time) = start(&big_db, Durability::Full).await;
    println!(
        "server start on the large database (migrate + index rebuild): {:.0} ms",
        open_time.as_secs_f64() * 1000.0
    );

    // What the server itself spends per request, without sockets or a client.
    {
        use tower::ServiceExt;
        let app = server::router(small.registry.clone(), None);
        let auth = format!("Bearer {}", small.key);
        println!("\n[server-side cost per request, in process (router oneshot, 200,000 each)]");
        let paths = [
            ("healthz", "/healthz"),
            ("resolve", "/api/v1/prompts/folder1%2Fprompt1"),
            ("resolve under a rollout, with a unit", "/api/v1/prompts/folder3%2Fprompt3?unit=user-42"),
        ];
        for (what, uri) in paths {
            let started = Instant::now();
            for _ in 0..200_000 {
                let req = axum::http::Request::get(uri)
                    .header("authorization", &auth)
                    .body(axum::body::Body::empty())
                    .unwrap();
                let resp = app.clone().oneshot(req).await.unwrap();
                assert!(resp.status().is_success());
                let _ = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            }
            println!("  {what:<38} {:.2} µs", started.elapsed().as_secs_f64() * 1e6 / 200_000.0);
        }
    }

    // A running rollout on one prompt's stable (5 % on v2, no step ends during the run).
    let rolled = "folder3/prompt3";
    small
        .registry
        .start_rollout(
            &Principal::operator(),
            rolled,
            NewRollout { step_seconds: 86_400, ..NewRollout::new("stable", 2, "bench") },
        )
        .await
        .unwrap();

    println!("\n[resolve (stable label) vs /healthz, {TURNS} interleaved turns]");
    println!("  (healthz requests carry the same Authorization header, so both cost the client the same)");
    let (mut vs_health, mut big_vs_small, mut rollout_vs_health) = (Vec::new(), Vec::new(), Vec::new());
    let mut rollout_p99 = Vec::new();
    for turn in 1..=TURNS {
        let (base, key) = (small.base.clone(), small.key.clone());
        let h = load(move |c, _| c.get(format!("{base}/healthz")).bearer_auth(&key)).await;
        let (base, key) = (small.base.clone(), small.key.clone());
        let r10 = load(move |c, i| {
            c.get(format!("{base}/api/v1/prompts/folder{}%2Fprompt{}", i % 10, i % 10)).bearer_auth(&key)
        })
        .await;
        let (base, key) = (big.base.clone(), big.key.clone());
        let r10k = load(move |c, i| {
            let p = (i * 7919) % 10_000;
            c.get(format!("{base}/api/v1/prompts/folder{}%2Fprompt{p}", p % 100)).bearer_auth(&key)
        })
        .await;
        let (base, key) = (small.base.clone(), small.key.clone());
        let ro =
            load(move |c, i| c.get(format!("{base}/api/v1/prompts/folder3%2Fprompt3?unit=user-{i}")).bearer_auth(&key))
                .await;
        show(&format!("turn {turn} healthz"), &h);
        show(&format!("turn {turn} resolve, 10"), &r10);
        show(&format!("turn {turn} resolve, 10,000"), &r10k);
        show(&format!("turn {turn} resolve, rollout"), &ro);
        vs_health.push(r10.rps / h.rps);
        big_vs_small.push(r10k.rps / r10.rps);
        rollout_vs_health.push(ro.rps / h.rps);
        rollout_p99.push(ro.p99_ms);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "  server-side p99 of resolve (from /metrics): 10 prompts {}, 10,000 prompts {}",
        server_p99(&small.base).await,
        server_p99(&big.base).await
    );
    println!("  ratio resolve/healthz (10 prompts), median:        {:.3}  (goal >= 0.9)", median(&mut vs_health));
    println!("  ratio resolve 10,000 / 10 prompts, median:         {:.3}  (goal >= 0.95)", median(&mut big_vs_small));
    println!(
        "  ratio resolve under a rollout with units / healthz: {:.3}  (goal >= 0.9); its client p99, median {:.2} ms (goal <= 2 ms)",
        median(&mut rollout_vs_health),
        median(&mut rollout_p99)
    );
    reaction(&small).await;

    // 32 writers, each saving versions of its own prompt over HTTP, fsync on every commit.
    let (base, key) = (small.base.clone(), small.key.clone());
    let op = Principal::operator();
    for w in 0..CONNECTIONS {
        small
            .registry
            .create_prompt(
                &op,
                NewPrompt {
                    name: format!("writer{w}"),
                    description: String::new(),
                    tags: vec![],
                    prompt_type: None,
                    template: Some("v1".into()),
                    messages: None,
                    config: None,
                    message: None,
                },
            )
            .await
            .unwrap();
    }
    let versions: Arc<Vec<AtomicU64>> = Arc::new((0..CONNECTIONS).map(|_| AtomicU64::new(1)).collect());
    let commits = load(move |c, i| {
        let w = (i % CONNECTIONS as u64) as usize;
        let base_version = versions[w].fetch_add(1, Ordering::Relaxed);
        c.post(format!("{base}/api/v1/prompts/writer{w}/versions"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"base_version": base_version, "template": format!("v{}", base_version + 1)}))
    })
    .await;
    println!("\n[version commits, {CONNECTIONS} concurrent writers over HTTP, synchronous=FULL]");
    println!(
        "  {:>8.0} commits/s  p50 {:.2} ms  p99 {:.2} ms  errors {}  (goal >= 300/s, 0 errors)",
        commits.rps, commits.p50_ms, commits.p99_ms, commits.errors
    );
    let _ = small.stop.send(());

    let verified = Instant::now();
    let report = big.registry.verify(&Principal::operator()).await.unwrap();
    let took = verified.elapsed().as_secs_f64();
    println!("\n[audit verify]");
    println!(
        "  {} events + {} versions: {:.3} s, ok = {}  ({:.3} s per 100,000 events; goal < 1 s)",
        report.events,
        report.versions,
        took,
        report.ok,
        took * 100_000.0 / report.events as f64
    );
    let _ = big.stop.send(());
}
