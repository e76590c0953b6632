//! PostgreSQL and three replicas, measured side by side in one run on loopback:
//! `cargo bench -p server --bench replicas` (see README, "Benchmarks"). It starts a
//! throwaway PostgreSQL with `scripts/pg.sh` (Debian's package) unless
//! `PROMPTLEDGER_BENCH_POSTGRES` names a server. It prints figures; it asserts nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use domain::model::{MoveLabel, Selector};
use serde_json::json;
use service::{Durability, Location, Principal, Registry};

mod common;

use common::{CONNECTIONS, TURNS, WINDOW, load, seed, show, start};

/// A PostgreSQL server's admin URL: the given one, or a throwaway one under `dir`.
fn postgres(dir: &std::path::Path) -> String {
    if let Ok(url) = std::env::var("PROMPTLEDGER_BENCH_POSTGRES") {
        return url;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh");
    let out = std::process::Command::new(script).arg("start").arg(dir.join("pg")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn fresh_database(server: &str, name: &str) -> Location {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(name);
    Location::Postgres(url.to_string())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // Replicas share the server key; set before any other thread exists.
    unsafe { std::env::set_var("PROMPTLEDGER_SECRET", "bench-secret-shared-by-replicas") };
    let dir = tempfile::tempdir().unwrap();
    let pg = postgres(dir.path());
    println!(
        "promptledger replicas benchmark: PostgreSQL, {CONNECTIONS} connections, {} s windows, loopback, {} cores",
        WINDOW.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let shared = fresh_database(&pg, "bench_replicas").await;
    let (a, _) = start(&shared, Durability::Full).await;
    let (b, _) = start(&shared, Durability::Full).await;
    let (c, _) = start(&shared, Durability::Full).await;
    seed(&a.registry, 10, 2, 4).await;
    let (lite, _) = start(&dir.path().join("small.db"), Durability::Full).await;
    seed(&lite.registry, 10, 2, 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("\n[resolve (stable label) vs /healthz on a PostgreSQL replica, and on SQLite, {TURNS} turns]");
    let (mut pg_ratio, mut lite_ratio) = (Vec::new(), Vec::new());
    for turn in 1..=TURNS {
        let (base, key) = (b.base.clone(), b.key.clone());
        let h = load(move |cl, _| cl.get(format!("{base}/healthz")).bearer_auth(&key)).await;
        let (base, key) = (b.base.clone(), a.key.clone());
        let r = load(move |cl, i| {
            cl.get(format!("{base}/api/v1/prompts/folder{}%2Fprompt{}", i % 10, i % 10)).bearer_auth(&key)
        })
        .await;
        let (base, key) = (lite.base.clone(), lite.key.clone());
        let hl = load(move |cl, _| cl.get(format!("{base}/healthz")).bearer_auth(&key)).await;
        let (base, key) = (lite.base.clone(), lite.key.clone());
        let rl = load(move |cl, i| {
            cl.get(format!("{base}/api/v1/prompts/folder{}%2Fprompt{}", i % 10, i % 10)).bearer_auth(&key)
        })
        .await;
        show(&format!("turn {turn} healthz, pg"), &h);
        show(&format!("turn {turn} resolve, pg"), &r);
        show(&format!("turn {turn} healthz, sqlite"), &hl);
        show(&format!("turn {turn} resolve, sqlite"), &rl);
        pg_ratio.push(r.rps / h.rps);
        lite_ratio.push(rl.rps / hl.rps);
    }
    println!("  ratio resolve/healthz on PostgreSQL, median: {:.3}  (goal >= 0.9)", median(&mut pg_ratio));
    println!("  ratio resolve/healthz on SQLite, median:     {:.3}  (same run)", median(&mut lite_ratio));

    println!("\n[commits: {CONNECTIONS} writers over 3 replicas, each saving versions of its own prompt]");
    for w in 0..CONNECTIONS {
        a.registry
            .create_prompt(
                &Principal::operator(),
                serde_json::from_value(json!({"name": format!("w/{w}"), "template": "0"})).unwrap(),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replicas = Arc::new([a.base.clone(), b.base.clone(), c.base.clone()]);
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + WINDOW * 5;
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..CONNECTIONS {
        let (replicas, done, errors, key) = (replicas.clone(), done.clone(), errors.clone(), a.key.clone());
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let base = &replicas[w % 3];
            let mut version = 1;
            while Instant::now() < deadline {
                let r = client
                    .post(format!("{base}/api/v1/prompts/w%2F{w}/versions"))
                    .bearer_auth(&key)
                    .json(&json!({"base_version": version, "template": format!("{}", version + 1)}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        version += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  {:.0} commits/s over {:.1} s, errors {}  (goal >= 500/s, 0 errors)",
        done.load(Ordering::Relaxed) as f64 / secs,
        secs,
        errors.load(Ordering::Relaxed)
    );

    println!("\n[a promotion through one replica, until each of the two others serves it: 200 moves]");
    let op = Principal::operator();
    let sel = Selector { label: Some("canary".into()), ..Default::default() };
    let mut seen = Vec::new();
    for round in 0..200 {
        let version = 1 + round % 2;
        let moved = Instant::now();
        a.registry
            .move_label(&op, "folder1/prompt1", "canary", MoveLabel { version, reason: "bench".into() })
            .await
            .unwrap();
        for other in [&b.registry, &c.registry] {
            while !other.resolve(&op, "folder1/prompt1", &sel).await.is_ok_and(|v| v.base.view.version == version) {
                tokio::task::yield_now().await;
            }
            seen.push(moved.elapsed());
        }
    }
    seen.sort_unstable();
    println!(
        "  visible on another replica: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms  (goal p99 <= 100 ms)",
        percentile(&seen, 0.5),
        percentile(&seen, 0.99),
        percentile(&seen, 1.0)
    );
    for s in [a, b, c, lite] {
        let _ = s.stop.send(());
        s.registry.close().await;
    }

    println!("\n[db copy: 10,000 prompts x 20 versions]");
    let file = dir.path().join("big.db");
    let loaded = Instant::now();
    {
        let loader = Registry::open(&file, Durability::Normal).await.unwrap();
        seed(&loader, 10_000, 20, 8).await;
        loader.close().await;
    }
    println!("  loaded into SQLite through the service layer in {:.1} s", loaded.elapsed().as_secs_f64());
    let to_pg = fresh_database(&pg, "bench_copy").await;
    let copied = Instant::now();
    let report = service::copy::copy_registry(&Location::File(file.clone()), &to_pg).await.unwrap();
    println!(
        "  SQLite -> PostgreSQL: {:.1} s, verified {} events and {} versions on arrival",
        copied.elapsed().as_secs_f64(),
        report.events,
        report.versions
    );
    let back = Location::File(dir.path().join("back.db"));
    let copied = Instant::now();
    let report = service::copy::copy_registry(&to_pg, &back).await.unwrap();
    println!(
        "  PostgreSQL -> SQLite: {:.1} s, verified {} events and {} versions on arrival",
        copied.elapsed().as_secs_f64(),
        report.events,
        report.versions
    );
    if std::env::var("PROMPTLEDGER_BENCH_POSTGRES").is_err() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh");
        let _ = std::process::Command::new(script).arg("stop").arg(dir.path().join("pg")).status();
    }
}
