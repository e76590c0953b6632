//! Event stream benchmarks (issue 14): how long from a label move's call until a
//! subscriber has the event (p50/p99 over 200 moves, one subscriber and with 2,000 idle
//! ones), and the server's memory per idle subscriber. It prints figures; it asserts
//! nothing, because this machine is shared and noisy.

mod common;

use std::time::{Duration, Instant};

use common::start;
use domain::model::{MoveLabel, NewPrompt, NewVersion};
use service::{Durability, Principal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE: usize = 2000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A subscriber on a bare socket (so the client side costs next to nothing): the request
/// sent, the response head read.
async fn subscribe(base: &str, key: &str, prompts: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /api/v1/events?prompts={prompts} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\naccept: text/event-stream\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    socket
}

/// Reads until an event for `version` arrives.
async fn wait_for(socket: &mut TcpStream, version: i64) {
    let needle = format!("\"version\":{version}");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains(&needle) {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream ended");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn moves(registry: &service::Registry, socket: &mut TcpStream, rounds: usize) -> Vec<f64> {
    let op = Principal::operator();
    let mut took = Vec::new();
    for round in 0..rounds {
        let version = if round % 2 == 0 { 2 } else { 1 };
        let started = Instant::now();
        registry.move_label(&op, "watched", "stable", MoveLabel { version, reason: "bench".into() }).await.unwrap();
        wait_for(socket, version).await;
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    took
}

fn show(what: &str, took: &[f64]) {
    let p = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!("  {what:<34} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (goal p99 <= 100 ms)", p(0.5), p(0.99), took[took.len() - 1]);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let op = Principal::operator();
    let (server, _) = start(&dir.path().join("events.db"), Durability::Full).await;
    let registry = server.registry.clone();
    let prompt = |name: &str| NewPrompt {
        name: name.into(),
        description: String::new(),
        tags: vec![],
        prompt_type: None,
        template: Some("one".into()),
        messages: None,
        config: None,
        message: None,
    };
    registry.create_prompt(&op, prompt("watched")).await.unwrap();
    registry.create_prompt(&op, prompt("quiet")).await.unwrap();
    let v2 = NewVersion { base_version: Some(1), prompt_type: None, template: Some("two".into()), messages: None, config: None, message: None };
    registry.add_version(&op, "watched", v2).await.unwrap();
    println!("promptledger event stream benchmark, {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));

    println!("\n[label move -> the subscriber has the event (call to event read; fsync on every commit), 200 moves]");
    let mut subscriber = subscribe(&server.base, &server.key, "watched").await;
    show("one subscriber", &moves(&registry, &mut subscriber, 200).await);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(subscribe(&server.base, &server.key, "quiet").await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!("\n[{IDLE} idle subscribers (another prompt), client sockets in the same process]");
    println!(
        "  RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per idle subscriber (server and its bare socket client together)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / IDLE as f64
    );
    show(&format!("one subscriber, with {IDLE} idle"), &moves(&registry, &mut subscriber, 200).await);
    drop(idle);
    let _ = server.stop.send(());
}
