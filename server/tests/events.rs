//! The event stream (API.md "Event stream"): events at commit, per-prompt filtering,
//! replay from `Last-Event-ID` / `since` with nothing missed after a dropped connection,
//! dependents' events when an include's label moves, and many idle subscribers.

mod common;

use std::time::Duration;

use common::TestServer;
use domain::access::Scope;
use reqwest::StatusCode;
use serde_json::Value;

/// One server-sent event as a client reads it.
#[derive(Debug, Clone)]
struct Sse {
    /// Only the last event of a change carries its seq as the id.
    id: Option<i64>,
    event: String,
    data: Value,
}

/// A connection to `/api/v1/events`, read event by event.
struct Stream {
    resp: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(s: &TestServer, key: &str, query: &str, last_event_id: Option<i64>) -> Stream {
        let mut req = s.http.get(format!("{}/api/v1/events{query}", s.base)).bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Stream { resp, buffer: String::new() }
    }

    /// The next event (comments skipped), within `within`.
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v.trim()).ok();
                    }
                }
                if let (Some(event), Some(data)) = (event, data) {
                    return Some(Sse { id, event, data });
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk()).await.ok()?.unwrap()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn changes_stream_as_they_commit_filtered_and_replayed_after_a_drop() {
    let s = TestServer::start().await;
    let app = s.key("app", Scope::App, None).await;
    s.create_text("watched", "one").await;
    s.create_text("other", "x").await;

    let mut live = Stream::open(&s, &app, "?prompts=watched", None).await;
    s.save("other", 1, "y").await;
    s.save("watched", 1, "two").await;
    let e = live.next(WAIT).await.expect("a version.created event");
    assert_eq!(e.event, "version.created");
    let served = s.get("/api/v1/prompts/watched?label=latest", &s.admin).await.body;
    assert_eq!(e.data["prompt"], "watched");
    assert_eq!(e.data["label"], "latest");
    assert_eq!(e.data["version"], 2);
    assert_eq!(e.data["hash"], served["hash"]);
    assert_eq!(e.data["resolved_hash"], served["resolved_hash"]);
    assert_eq!(e.data["seq"].as_i64(), e.id);
    s.promote("watched", "stable", 2).await;
    let moved = live.next(WAIT).await.expect("a label.moved event");
    assert_eq!((moved.event.as_str(), moved.data["label"].as_str(), moved.data["version"].as_i64()), ("label.moved", Some("stable"), Some(2)));
    assert!(moved.id > e.id);
    // The stream is then dropped; changes made meanwhile are replayed on reconnection.
    let last = moved.id.unwrap();
    drop(live);
    s.save("watched", 2, "three").await;
    s.promote("other", "stable", 2).await;
    s.promote("watched", "stable", 3).await;
    let mut again = Stream::open(&s, &app, "?prompts=watched", Some(last)).await;
    let a = again.next(WAIT).await.unwrap();
    let b = again.next(WAIT).await.unwrap();
    assert_eq!((a.event.as_str(), a.data["version"].as_i64()), ("version.created", Some(3)));
    assert_eq!((b.event.as_str(), b.data["version"].as_i64()), ("label.moved", Some(3)));
    assert!(a.id > Some(last) && b.id > a.id);
    // ...and live ones follow, each once.
    s.save("watched", 3, "four").await;
    let c = again.next(WAIT).await.unwrap();
    assert_eq!(c.data["version"], 4);
    assert!(again.next(Duration::from_millis(300)).await.is_none(), "no duplicate");

    // `since` replays everything after it, every prompt without a filter.
    let mut all = Stream::open(&s, &app, "?since=0", None).await;
    let mut seen = Vec::new();
    while let Some(e) = all.next(Duration::from_millis(500)).await {
        seen.push((e.data["prompt"].as_str().unwrap().to_owned(), e.event.clone(), e.data["version"].as_i64().unwrap()));
    }
    assert_eq!(seen.iter().filter(|(p, _, _)| p == "other").count(), 3, "{seen:?}");
    assert_eq!(seen.iter().filter(|(p, _, _)| p == "watched").count(), 6, "{seen:?}");

    // Bad input is a 400, and a key without the app scope or more cannot subscribe.
    let bad = s.http.get(format!("{}/api/v1/events?since=yesterday", s.base)).bearer_auth(&app).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let none = s.http.get(format!("{}/api/v1/events", s.base)).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn an_included_prompts_label_move_streams_an_event_for_each_dependent() {
    let s = TestServer::start().await;
    let app = s.key("app", Scope::App, None).await;
    s.create_text("shared/tone", "Kind.").await;
    s.promote("shared/tone", "stable", 1).await;
    for bot in ["bots/a", "bots/b"] {
        s.create_text(bot, "{% include \"shared/tone@stable\" %} Hi").await;
        s.promote(bot, "stable", 1).await;
    }
    s.save("shared/tone", 1, "Very kind.").await;
    let mut stream = Stream::open(&s, &app, "?prompts=bots/a,bots/b", None).await;
    s.promote("shared/tone", "stable", 2).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = stream.next(WAIT).await.expect("an event per dependent label");
        got.push((e.data["prompt"].as_str().unwrap().to_owned(), e.data["label"].as_str().unwrap().to_owned(), e));
    }
    // One change: the same seq in each, and only the last event carries it as its id, so
    // a client that drops midway gets the whole change again when it reconnects.
    let seq = got[0].2.data["seq"].as_i64();
    assert!(got.iter().all(|(_, _, e)| e.data["seq"].as_i64() == seq));
    let ids: Vec<Option<i64>> = got.iter().map(|(_, _, e)| e.id).collect();
    assert_eq!(ids, [None, None, None, seq]);
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let keys: Vec<(&str, &str)> = got.iter().map(|(p, l, _)| (p.as_str(), l.as_str())).collect();
    assert_eq!(keys, [("bots/a", "latest"), ("bots/a", "stable"), ("bots/b", "latest"), ("bots/b", "stable")]);
    let served = s.get("/api/v1/prompts/bots%2Fa", &s.admin).await.body;
    let (_, _, e) = &got[1];
    assert_eq!((e.event.as_str(), e.data["version"].as_i64()), ("label.moved", Some(1)));
    assert_eq!(e.data["resolved_hash"], served["resolved_hash"]);
    assert!(served["template"].as_str().unwrap().starts_with("Very kind."));

    // A new version moves `latest`: what includes `shared/tone@latest` changes with it.
    s.create_text("bots/c", "{% include \"shared/tone@latest\" %} Hey").await;
    s.promote("bots/c", "stable", 1).await;
    let mut stream = Stream::open(&s, &app, "?prompts=bots/c", None).await;
    s.save("shared/tone", 2, "Warm.").await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let e = stream.next(WAIT).await.expect("an event per label of bots/c");
        // A change committed as the stream opened (the promotion) may come first.
        if e.event != "label.moved" {
            got.push((e.data["label"].as_str().unwrap().to_owned(), e.event.clone(), e.data["resolved_hash"].clone()));
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let served = s.get("/api/v1/prompts/bots%2Fc", &s.admin).await.body;
    assert!(served["template"].as_str().unwrap().starts_with("Warm."), "{served}");
    assert_eq!(got[0], ("latest".to_owned(), "version.created".to_owned(), served["resolved_hash"].clone()));
    assert_eq!(got[1], ("stable".to_owned(), "version.created".to_owned(), served["resolved_hash"].clone()));
    s.stop().await;
}

/// An id past the log's head (from another registry, or a restored backup) replays
/// nothing and hides nothing that comes after.
#[tokio::test]
async fn a_last_event_id_past_the_head_still_gets_what_comes_next() {
    let s = TestServer::start().await;
    let app = s.key("app", Scope::App, None).await;
    s.create_text("later", "one").await;
    let mut stream = Stream::open(&s, &app, "", Some(1_000_000)).await;
    assert!(stream.next(Duration::from_millis(300)).await.is_none(), "nothing to replay");
    s.save("later", 1, "two").await;
    let e = stream.next(WAIT).await.expect("the next change");
    assert_eq!((e.event.as_str(), e.data["version"].as_i64()), ("version.created", Some(2)));
    s.stop().await;
}

#[tokio::test]
async fn a_thousand_idle_subscribers_each_get_the_change() {
    let s = TestServer::start().await;
    let app = s.key("app", Scope::App, None).await;
    s.create_text("busy", "one").await;
    let mut streams = Vec::new();
    for _ in 0..1000 {
        // Separate clients: each subscriber its own connection.
        let http = reqwest::Client::new();
        let resp = http.get(format!("{}/api/v1/events?prompts=busy", s.base)).bearer_auth(&app).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        streams.push(Stream { resp, buffer: String::new() });
    }
    s.save("busy", 1, "two").await;
    let mut delivered = 0;
    for stream in &mut streams {
        // The first subscribers may get the prompt's creation first: it was committed as
        // they subscribed.
        while let Some(e) = stream.next(WAIT).await {
            if e.data["version"] == 2 {
                delivered += 1;
                break;
            }
        }
    }
    assert_eq!(delivered, 1000);
    s.stop().await;
}
