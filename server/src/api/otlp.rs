//! OTLP/HTTP trace export (`POST /api/v1/otel/v1/traces`), protobuf or JSON, gzip or
//! not, decoded with the protocol's own types (`opentelemetry-proto`). Spans that carry
//! GenAI attributes and name a prompt become generations, mapped as API.md says; the
//! rest are ignored. A generation span the registry refuses (an unknown prompt, say) is
//! dropped alone and reported as OTLP's partial success, so one bad span never costs a
//! batch its good ones.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::telemetry::{MAX_BATCH, NewGeneration, Status};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode as SpanStatus};
use prost::Message;
use service::{Registry, ServiceError};

use super::error::ApiError;
use super::extract::{Body, Caller};
use super::telemetry::INGEST_LIMIT;

enum Format {
    Protobuf,
    Json,
}

fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send OTLP as application/x-protobuf or application/json",
        )),
    }
}

pub async fn traces(
    State(r): State<Registry>,
    Caller(who): Caller,
    headers: HeaderMap,
    Body(bytes): Body<INGEST_LIMIT>,
) -> Result<Response, ApiError> {
    let format = format_of(&headers)?;
    let request = match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(&bytes[..])
            .map_err(|e| ApiError::bad_request(format!("the body is not an OTLP ExportTraceServiceRequest: {e}")))?,
        Format::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not OTLP JSON: {e}")))?,
    };
    let spans = request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
    let total = spans.clone().count();
    let mut items: Vec<NewGeneration> = spans.filter_map(generation_of).collect();
    tracing::debug!(spans = total, generations = items.len(), ignored = total - items.len(), "OTLP export received");
    let mut rejected = Vec::new();
    while !items.is_empty() {
        let rest = items.split_off(items.len().min(MAX_BATCH));
        let mut chunk = std::mem::replace(&mut items, rest);
        // Refused items are taken out one at a time; the rest of the chunk is stored.
        while !chunk.is_empty() {
            match r.ingest(&who, chunk.clone()).await {
                Ok(_) => break,
                Err(ServiceError::InvalidItem { index, message, .. }) => {
                    rejected.push(format!("span {}: {message}", chunk[index].id));
                    chunk.remove(index);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let partial = (!rejected.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected.len() as i64,
        error_message: rejected.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
    });
    let answer = ExportTraceServiceResponse { partial_success: partial };
    Ok(match format {
        Format::Protobuf => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"))], answer.encode_to_vec())
                .into_response()
        }
        Format::Json => axum::Json(match answer.partial_success {
            None => serde_json::json!({}),
            Some(p) => serde_json::json!({"partialSuccess": {"rejectedSpans": p.rejected_spans.to_string(),
                                                             "errorMessage": p.error_message}}),
        })
        .into_response(),
    })
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn number(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        Value::IntValue(i) => Some(*i),
        Value::DoubleValue(d) if d.fract() == 0.0 => Some(*d as i64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn first_text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        Value::ArrayValue(a) => a.values.iter().find_map(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        }),
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// A JSON object or number written as a string attribute (Langfuse's usage and cost details).
fn json_text(attributes: &[KeyValue], key: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&text(attributes, key)?).ok()
}

/// A span as a generation, when it is one (GenAI attributes, or a Langfuse SDK
/// generation) and names a prompt.
fn generation_of(span: &Span) -> Option<NewGeneration> {
    let a = &span.attributes;
    let is_genai = ["gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model"]
        .iter()
        .any(|k| attribute(a, k).is_some())
        || text(a, "langfuse.observation.type").as_deref() == Some("generation");
    if !is_genai {
        return None;
    }
    // The Langfuse SDK's details: `{"input": 12, "output": 40, ...}` and `{"total": 0.0003, ...}`.
    let usage = json_text(a, "langfuse.observation.usage_details").unwrap_or_default();
    let tokens = |keys: &[&str]| keys.iter().find_map(|k| usage[*k].as_i64());
    let langfuse_cost = json_text(a, "langfuse.observation.cost_details").and_then(|c| c["total"].as_f64());
    let langfuse_error = text(a, "langfuse.observation.level").as_deref() == Some("ERROR");
    let prompt = text(a, "promptledger.prompt.name").or_else(|| text(a, "langfuse.observation.prompt.name"))?;
    let version = number(a, "promptledger.prompt.version").or_else(|| number(a, "langfuse.observation.prompt.version"));
    let id = text(a, "promptledger.request_id")
        .unwrap_or_else(|| format!("{}-{}", hex::encode(&span.trace_id), hex::encode(&span.span_id)));
    let start_us = (span.start_time_unix_nano / 1_000) as i64;
    let latency = span.end_time_unix_nano.checked_sub(span.start_time_unix_nano).map(|ns| ns as f64 / 1e6);
    let status = span.status.as_ref();
    let failed = status.is_some_and(|s| s.code == SpanStatus::Error as i32) || langfuse_error;
    let ttft = number(a, "langfuse.observation.completion_start_time")
        .or_else(|| {
            let at = text(a, "langfuse.observation.completion_start_time")?;
            let at = at.trim_matches('"');
            service::time::parse_param("completion_start_time", Some(at)).ok().flatten().map(|us| us * 1_000)
        })
        .and_then(|ns| (ns as u64).checked_sub(span.start_time_unix_nano))
        .map(|ns| ns as f64 / 1e6);
    Some(NewGeneration {
        id,
        prompt,
        version,
        hash: text(a, "promptledger.prompt.hash"),
        label: text(a, "promptledger.prompt.label"),
        rollout: text(a, "promptledger.rollout"),
        arm: text(a, "promptledger.arm").and_then(|s| domain::telemetry::Arm::parse(&s)),
        model: text(a, "gen_ai.response.model")
            .or_else(|| text(a, "gen_ai.request.model"))
            .or_else(|| text(a, "langfuse.observation.model.name")),
        input_tokens: number(a, "gen_ai.usage.input_tokens")
            .or_else(|| number(a, "gen_ai.usage.prompt_tokens"))
            .or_else(|| tokens(&["input", "prompt_tokens", "input_tokens"])),
        output_tokens: number(a, "gen_ai.usage.output_tokens")
            .or_else(|| number(a, "gen_ai.usage.completion_tokens"))
            .or_else(|| tokens(&["output", "completion_tokens", "output_tokens"])),
        cost: langfuse_cost,
        latency_ms: latency.filter(|l| span.end_time_unix_nano > 0 && *l <= 86_400_000.0),
        ttft_ms: ttft.filter(|t| *t <= 86_400_000.0),
        status: if failed { Status::Error } else { Status::Ok },
        error: status
            .filter(|_| failed)
            .map(|s| s.message.clone())
            .filter(|m| !m.is_empty())
            .or_else(|| text(a, "langfuse.observation.status_message").filter(|_| failed)),
        output: text(a, "langfuse.observation.output").map(|o| match serde_json::from_str::<serde_json::Value>(&o) {
            Ok(serde_json::Value::String(s)) => s,
            _ => o,
        }),
        finish_reason: first_text(a, "gen_ai.response.finish_reasons"),
        user: text(a, "user.id").or_else(|| text(a, "enduser.id")),
        session: text(a, "session.id"),
        started_at: service::time::format_us(start_us),
        ..Default::default()
    })
}
