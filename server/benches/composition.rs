//! Composition benchmarks (issue 13): resolve of a prompt with three label includes
//! against `/healthz`, and the commit of a snippet's label move with 1,000 prompts
//! including it, up to the moment every one of them serves the new composition. It
//! prints figures and ratios; it asserts nothing, because this machine is shared and noisy.

mod common;

use std::time::Instant;

use common::{TURNS, load, show, start};
use domain::model::{MoveLabel, NewPrompt, NewVersion, Selector};
use service::{Durability, Principal, Registry};

fn text(name: &str, template: String) -> NewPrompt {
    NewPrompt {
        name: name.into(),
        description: String::new(),
        tags: vec![],
        prompt_type: None,
        template: Some(template),
        messages: None,
        config: Some(serde_json::json!({"model": "gpt-4o-mini"})),
        message: None,
    }
}

async fn stable(registry: &Registry, name: &str, version: i64) {
    let op = Principal::operator();
    registry.move_label(&op, name, "stable", MoveLabel { version, reason: "bench".into() }).await.unwrap();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let op = Principal::operator();
    let (server, _) = start(&dir.path().join("compose.db"), Durability::Full).await;
    let registry = server.registry.clone();
    for s in ["safety", "tone", "legal"] {
        registry.create_prompt(&op, text(&format!("shared/{s}"), format!("The {s} part, for {{{{ customer }}}}. "))).await.unwrap();
        stable(&registry, &format!("shared/{s}"), 1).await;
    }
    let composed = "Hello {{ customer }}. {% include \"shared/safety@stable\" %}{% include \"shared/tone@stable\" %}\
                    {% include \"shared/legal@stable\" %}How can I help?";
    registry.create_prompt(&op, text("bots/composed", composed.into())).await.unwrap();
    stable(&registry, "bots/composed", 1).await;
    registry.create_prompt(&op, text("bots/plain", "Hello {{ customer }}. How can I help?".into())).await.unwrap();
    stable(&registry, "bots/plain", 1).await;
    println!("promptledger composition benchmark, {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));

    {
        use tower::ServiceExt;
        let app = server::router(registry.clone(), None);
        let auth = format!("Bearer {}", server.key);
        println!("\n[server-side cost per request, in process (router oneshot, 200,000 each)]");
        for (what, uri) in [
            ("healthz", "/healthz"),
            ("resolve, no includes", "/api/v1/prompts/bots%2Fplain"),
            ("resolve, three label includes", "/api/v1/prompts/bots%2Fcomposed"),
        ] {
            let started = Instant::now();
            for _ in 0..200_000 {
                let req = axum::http::Request::get(uri).header("authorization", &auth).body(axum::body::Body::empty()).unwrap();
                let resp = app.clone().oneshot(req).await.unwrap();
                assert!(resp.status().is_success());
                let _ = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            }
            println!("  {what:<32} {:.2} µs", started.elapsed().as_secs_f64() * 1e6 / 200_000.0);
        }
    }

    println!("\n[resolve of a prompt with three label includes vs /healthz, {TURNS} interleaved turns]");
    let mut ratios = Vec::new();
    for turn in 1..=TURNS {
        let (base, key) = (server.base.clone(), server.key.clone());
        let h = load(move |c, _| c.get(format!("{base}/healthz")).bearer_auth(&key)).await;
        let (base, key) = (server.base.clone(), server.key.clone());
        let r = load(move |c, _| c.get(format!("{base}/api/v1/prompts/bots%2Fcomposed")).bearer_auth(&key)).await;
        show(&format!("turn {turn} healthz"), &h);
        show(&format!("turn {turn} composed"), &r);
        ratios.push(r.rps / h.rps);
    }
    ratios.sort_by(f64::total_cmp);
    println!("  ratio resolve (3 label includes)/healthz, median: {:.3}  (goal >= 0.9)", ratios[ratios.len() / 2]);

    // 1,000 prompts include one snippet by label; its label moves back and forth.
    let snippet = "shared/policy";
    registry.create_prompt(&op, text(snippet, "Policy one. ".into())).await.unwrap();
    stable(&registry, snippet, 1).await;
    let v2 = NewVersion {
        base_version: Some(1),
        prompt_type: None,
        template: Some("Policy two. ".into()),
        messages: None,
        config: None,
        message: None,
    };
    registry.add_version(&op, snippet, v2).await.unwrap();
    let seeded = Instant::now();
    for i in 0..1000 {
        let name = format!("dependents/bot{i}");
        registry.create_prompt(&op, text(&name, format!("Bot {i}. {{% include \"{snippet}@stable\" %}}{{{{ q }}}}"))).await.unwrap();
        stable(&registry, &name, 1).await;
    }
    println!("\n1,000 prompts including {snippet}@stable created in {:.1} s", seeded.elapsed().as_secs_f64());
    let mut took = Vec::new();
    for round in 0..20 {
        let version = if round % 2 == 0 { 2 } else { 1 };
        let started = Instant::now();
        stable(&registry, snippet, version).await;
        took.push(started.elapsed().as_secs_f64() * 1000.0);
        // The move has returned: every dependent serves the new composition already.
        let sel = Selector { label: Some("stable".into()), ..Default::default() };
        for i in [0, 499, 999] {
            let served = registry.resolve(&op, &format!("dependents/bot{i}"), &sel).await.unwrap();
            assert_eq!(served.view.includes[0].version, version);
        }
    }
    took.sort_by(f64::total_cmp);
    println!("[snippet label move with 1,000 dependents: commit + every dependent recomposed, 20 moves]");
    println!(
        "  p50 {:.1} ms  p90 {:.1} ms  max {:.1} ms  (goal <= 50 ms)",
        took[took.len() / 2],
        took[took.len() * 9 / 10],
        took[took.len() - 1]
    );
    let _ = server.stop.send(());
}
