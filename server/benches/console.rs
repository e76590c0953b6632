//! The console's budgets (issue 3), printed, never asserted (this machine is shared and
//! noisy): `cargo bench -p server --bench console` after `cargo leptos build --release --split`
//! (see README, "Benchmarks").
//!
//! - the hydrate wasm, raw, gzip -9 and brotli q11 (budget: 300 KB brotli): the main
//!   module every page loads, and per page the main module with its islands' chunks;
//! - the server-rendered prompt list with 10,000 prompts, per page (budget: p50 10 ms):
//!   the first page, a page deep in the list, a search, and a folder.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use domain::access::Role;
use domain::model::NewPrompt;
use service::{Durability, Principal, Registry};
use tower::ServiceExt;

const PROMPTS: usize = 10_000;
const SAMPLES: usize = 200;

fn site_root() -> Option<PathBuf> {
    let explicit = std::env::var_os("PROMPTLEDGER_SITE_ROOT").map(PathBuf::from);
    let candidates = [explicit, Some(PathBuf::from("../target/site")), Some(PathBuf::from("target/site"))];
    candidates.into_iter().flatten().find(|p| p.join("pkg/promptledger.wasm").is_file())
}

/// Which lazy islands each page loads (manifest keys start with the island's name).
const PAGES: &[(&str, &[&str])] = &[
    ("sign-in", &["login_page_"]),
    ("prompt list", &[]),
    ("prompt (editor)", &["editor_"]),
    ("history and releases", &["compare_", "release_form_"]),
    ("audit", &["verify_panel_", "live_at_panel_"]),
    ("users and keys", &["admin_panels_", "providers_panel_"]),
    ("evaluations (editing)", &["suite_editor_", "run_form_"]),
    ("a run in progress", &["run_progress_"]),
    ("production (publisher)", &["budget_form_"]),
];

fn compressed(bytes: &[u8]) -> (usize, usize) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    let gz = gz.finish().unwrap().len();
    let mut br = Vec::new();
    let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
    brotli::BrotliCompress(&mut &bytes[..], &mut br, &params).unwrap();
    (gz, br.len())
}

/// Sizes of the wasm a page downloads: the main module (every page), plus the chunks of
/// the islands on it, which `cargo leptos build --split` cut out of it.
fn wasm_sizes(root: &std::path::Path) {
    let pkg = root.join("pkg");
    let size = |file: &str| {
        let bytes = std::fs::read(pkg.join(format!("{file}.wasm"))).unwrap();
        let (gz, br) = compressed(&bytes);
        [bytes.len(), gz, br]
    };
    let kb = |n: usize| n as f64 / 1000.0;
    let main = size("promptledger");
    println!(
        "hydrate wasm, main module ({}): raw {:.0} KB, gzip -9 {:.0} KB, brotli q11 {:.0} KB (budget 300 KB brotli)",
        pkg.join("promptledger.wasm").display(),
        kb(main[0]),
        kb(main[1]),
        kb(main[2])
    );
    let manifest: std::collections::BTreeMap<String, Vec<String>> =
        match std::fs::read_to_string(pkg.join("__wasm_split_manifest.json")) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => return println!("  no split manifest: build with `cargo leptos build --release --split`"),
        };
    let all: std::collections::BTreeSet<&String> = manifest.values().flatten().collect();
    let all = all.iter().fold(main, |acc, file| {
        let s = size(file);
        [acc[0] + s[0], acc[1] + s[1], acc[2] + s[2]]
    });
    println!("  every chunk together: raw {:.0} KB, brotli {:.0} KB", kb(all[0]), kb(all[2]));
    println!("  what each page downloads (main module + its islands' chunks):");
    for (page, islands) in PAGES {
        let files: std::collections::BTreeSet<&String> = manifest
            .iter()
            .filter(|(key, _)| islands.iter().any(|i| key.starts_with(i)))
            .flat_map(|(_, files)| files)
            .collect();
        let total = files.iter().fold(main, |acc, file| {
            let s = size(file);
            [acc[0] + s[0], acc[1] + s[1], acc[2] + s[2]]
        });
        println!("    {page:<22} raw {:>5.0} KB  brotli {:>4.0} KB", kb(total[0]), kb(total[2]));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn page_times(app: &axum::Router, cookie: &str, uri: &str, expect: &str, show: bool) {
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let req = Request::get(uri).header(header::COOKIE, cookie).body(Body::empty()).unwrap();
        let started = Instant::now();
        let res = app.clone().oneshot(req).await.unwrap();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        times.push(started.elapsed());
        assert!(String::from_utf8_lossy(&body).contains(expect), "{uri} did not render {expect}");
    }
    times.sort();
    if !show {
        return;
    }
    println!(
        "  {uri:<40} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  (budget p50 10 ms)",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99)
    );
}

#[tokio::main]
async fn main() {
    let Some(root) = site_root() else {
        println!(
            "console assets not found: run `cargo leptos build --release --split` first (or set PROMPTLEDGER_SITE_ROOT)"
        );
        return;
    };
    wasm_sizes(&root);

    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("bench.db"), Durability::Normal).await.unwrap();
    let operator = Principal::operator();
    let loading = Instant::now();
    for i in 0..PROMPTS {
        let req = NewPrompt {
            name: format!("team{:02}/feature{:03}/prompt{i:05}", i % 20, i % 500),
            description: format!("Prompt number {i} for the console benchmark"),
            tags: vec![format!("tag{}", i % 10)],
            prompt_type: None,
            template: Some(format!("Hello {{{{ customer }}}}, this is prompt {i}.")),
            messages: None,
            config: None,
            message: None,
        };
        registry.create_prompt(&operator, req).await.unwrap();
    }
    println!("loaded {PROMPTS} prompts in {:.1} s", loading.elapsed().as_secs_f64());
    registry.add_user(&operator, "bench", Role::Viewer, Some("bench-password".into())).await.unwrap();
    let session = registry.login("bench", "bench-password", None, None).await.unwrap();
    let cookie = format!("promptledger_session={}", session.token);
    let app = server::router(registry, Some(root));

    // Warm up (first render initialises leptos' statics).
    page_times(&app, &cookie, "/", "prompt-row", false).await;
    println!("server-rendered prompt list, {PROMPTS} prompts, {SAMPLES} requests each, in-process:");
    page_times(&app, &cookie, "/", "team00/feature000/prompt00000", true).await;
    let deep = hex_cursor("team15/feature015/prompt09015");
    page_times(&app, &cookie, &format!("/?cursor={deep}"), "prompt-row", true).await;
    page_times(&app, &cookie, "/?q=number+9999", "prompt09999", true).await;
    page_times(&app, &cookie, "/?folder=team07", "team07/", true).await;
}

fn hex_cursor(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}
