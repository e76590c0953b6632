//! OTLP/HTTP into the real server, exported by the OpenTelemetry SDK itself
//! (`opentelemetry-otlp`): protobuf (plain and gzip) and JSON. GenAI spans that name a
//! prompt become generations, mapped as API.md says; other spans are ignored.

mod common;

use std::collections::HashMap;

use common::TestServer;
use domain::access::Scope;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, SpanKind, Status, Tracer, TracerProvider};
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Exports spans the way an instrumented application does, on a thread of its own (the
/// SDK's blocking HTTP client must not run on the test's runtime).
fn export(endpoint: String, key: String, protocol: Protocol, gzip: bool, tag: &'static str) {
    std::thread::spawn(move || {
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(endpoint)
            .with_headers(HashMap::from([("authorization".to_owned(), format!("Bearer {key}"))]));
        if gzip {
            builder = builder.with_compression(Compression::Gzip);
        }
        let exporter = builder.build().expect("an OTLP exporter");
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter).build();
        let tracer = provider.tracer("support-bot");
        // A chat call linked to version 1 of the prompt, with usage and a finish reason.
        let mut span = tracer
            .span_builder(format!("chat gpt-4o-mini {tag}"))
            .with_kind(SpanKind::Client)
            .with_attributes(vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
                KeyValue::new("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                KeyValue::new("gen_ai.usage.input_tokens", 120),
                KeyValue::new("gen_ai.usage.output_tokens", 40),
                KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    opentelemetry::Value::Array(vec![opentelemetry::StringValue::from("stop")].into()),
                ),
                KeyValue::new("promptledger.prompt.name", "support/greeting"),
                KeyValue::new("promptledger.prompt.version", 1),
                KeyValue::new("promptledger.prompt.label", "stable"),
                KeyValue::new("promptledger.request_id", format!("otel-{tag}")),
            ])
            .start(&tracer);
        std::thread::sleep(std::time::Duration::from_millis(30));
        span.end();
        // A failed call linked the Langfuse way, with the older token names; its id comes
        // from the trace and span ids.
        let mut failed = tracer
            .span_builder("chat")
            .with_attributes(vec![
                KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
                KeyValue::new("gen_ai.usage.prompt_tokens", 7),
                KeyValue::new("gen_ai.usage.completion_tokens", 0),
                KeyValue::new("langfuse.observation.prompt.name", "support/greeting"),
                KeyValue::new("langfuse.observation.prompt.version", 1),
                KeyValue::new("tag", tag),
            ])
            .start(&tracer);
        failed.set_status(Status::error("rate limited"));
        failed.end();
        // Not generations: a plain span, and a GenAI span that names no prompt.
        tracer.start("db query").end();
        tracer
            .span_builder("chat")
            .with_attributes(vec![KeyValue::new("gen_ai.request.model", "x")])
            .start(&tracer)
            .end();
        provider.force_flush().expect("the export succeeds");
        provider.shutdown().expect("shutdown");
    })
    .join()
    .expect("the exporting thread");
}

#[tokio::test]
async fn spans_exported_by_the_opentelemetry_sdk_become_generations() {
    let s = TestServer::start().await;
    s.create_text("support/greeting", "Hello {{ customer }}").await;
    let app = s.key("app", Scope::App, None).await;
    let endpoint = format!("{}/api/v1/otel/v1/traces", s.base);
    for (protocol, gzip, tag) in [
        (Protocol::HttpBinary, false, "proto"),
        (Protocol::HttpBinary, true, "gzip"),
        (Protocol::HttpJson, false, "json"),
    ] {
        let (endpoint, app) = (endpoint.clone(), app.clone());
        tokio::task::spawn_blocking(move || export(endpoint, app, protocol, gzip, tag)).await.unwrap();
        let r = s.get(&format!("/api/v1/generations/otel-{tag}"), &s.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{tag}: {}", r.text);
        let g = &r.body;
        assert_eq!((g["prompt"].as_str(), g["version"].as_i64()), (Some("support/greeting"), Some(1)), "{tag}");
        assert_eq!(g["model"], "gpt-4o-mini-2024-07-18", "the response model wins");
        assert_eq!((g["input_tokens"].as_i64(), g["output_tokens"].as_i64()), (Some(120), Some(40)));
        assert_eq!((g["finish_reason"].as_str(), g["status"].as_str()), (Some("stop"), Some("ok")));
        assert_eq!(g["label"], "stable");
        let latency = g["latency_ms"].as_f64().unwrap();
        assert!((30.0..5000.0).contains(&latency), "{tag}: latency {latency}");
        let started = service::time::parse_rfc3339(g["started_at"].as_str().unwrap()).unwrap();
        assert!((service::time::now_us() - started).abs() < 60_000_000, "{tag}: started_at is the span's start");
    }
    let all = s.get("/api/v1/generations?prompt=support%2Fgreeting", &s.admin).await;
    let items = all.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "two generation spans per export; the others ignored: {}", all.text);
    let failed: Vec<&Value> = items.iter().filter(|g| g["status"] == "error").collect();
    assert_eq!(failed.len(), 3);
    for g in failed {
        assert_eq!(g["error"], "rate limited");
        assert_eq!((g["input_tokens"].as_i64(), g["output_tokens"].as_i64()), (Some(7), Some(0)));
        let id = g["id"].as_str().unwrap();
        let (trace, span) = id.split_once('-').unwrap();
        assert!(trace.len() == 32 && span.len() == 16, "id from trace and span ids: {id}");
    }
    s.stop().await;
}

#[tokio::test]
async fn otlp_refusals_are_clear() {
    let s = TestServer::start().await;
    s.create_text("p", "Hi").await;
    let app = s.key("app", Scope::App, None).await;
    let path = "/api/v1/otel/v1/traces";
    let proto = [("content-type", "application/x-protobuf")];
    let json_type = [("content-type", "application/json")];
    // Not protobuf, not OTLP JSON, no content type, a broken gzip body.
    let r = s.raw(reqwest::Method::POST, path, Some(&app), Some("\u{1}\u{2}garbage".into()), &proto).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = s.raw(reqwest::Method::POST, path, Some(&app), Some("{\"resourceSpans\": 5}".into()), &json_type).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = s.raw(reqwest::Method::POST, path, Some(&app), Some("{}".into()), &[("content-type", "text/plain")]).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = s
        .raw(
            reqwest::Method::POST,
            path,
            Some(&app),
            Some("not gzip".into()),
            &[proto[0], ("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.raw(reqwest::Method::POST, path, None, Some("{}".into()), &json_type).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A span naming an unknown prompt is refused alone: OTLP's partial success.
    let span = |id: &str, prompt: &str| {
        json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat",
               "kind": 3, "startTimeUnixNano": "1764580443000000000", "endTimeUnixNano": "1764580443500000000",
               "attributes": [
                 {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                 {"key": "promptledger.prompt.name", "value": {"stringValue": prompt}},
                 {"key": "promptledger.prompt.version", "value": {"intValue": "1"}},
                 {"key": "promptledger.request_id", "value": {"stringValue": id}}]})
    };
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [span("ok-1", "p"), span("bad-1", "nope")]}]}]});
    let r = s.raw(reqwest::Method::POST, path, Some(&app), Some(body.to_string()), &json_type).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["partialSuccess"]["rejectedSpans"], "1", "{}", r.text);
    assert_eq!(s.get("/api/v1/generations/ok-1", &s.admin).await.status, StatusCode::OK);
    assert_eq!(s.get("/api/v1/generations/bad-1", &s.admin).await.status, StatusCode::NOT_FOUND);
    assert!(s.healthy().await);
    s.stop().await;
}
