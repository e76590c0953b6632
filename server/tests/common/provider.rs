//! A local model provider speaking the real HTTP protocols of OpenAI chat completions and
//! embeddings and of Anthropic Messages, with answers, latency and failures controlled
//! by markers in the last user message:
//!
//! - `SAY:text` answers `text` (otherwise `You said: <message>`);
//! - `[429:N]` / `[500:N]` fail the first N attempts of that message (429s carry
//!   `retry-after-ms: 20`, or `retry-after: 1` with `[429s:N]`);
//! - `[sleep:MS]` waits before answering; `[length]` ends with finish reason `length`;
//! - a model whose name contains `terse` answers only the first word.
//!
//! A judge request (its system message mentions a rubric) passes when the graded output
//! contains "thank". Embeddings are letter frequencies, so similar texts are close.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

#[derive(Default)]
pub struct MockState {
    /// Every request, attempts included.
    pub requests: AtomicUsize,
    attempts: Mutex<HashMap<String, u32>>,
    /// The key the provider expects (`Authorization: Bearer` or `x-api-key`), if any.
    pub key: Mutex<Option<String>>,
    /// Added to every answer.
    pub delay: Mutex<Duration>,
    /// The last request body of each path.
    pub last: Mutex<HashMap<String, Value>>,
}

pub struct MockProvider {
    /// `http://127.0.0.1:PORT`: OpenAI base URL is `{base}/v1`, Anthropic's is `{base}`.
    pub base: String,
    pub state: Arc<MockState>,
}

impl MockProvider {
    pub async fn start() -> MockProvider {
        let state = Arc::new(MockState::default());
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/messages", post(anthropic))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockProvider { base, state }
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

fn marker(text: &str, name: &str) -> Option<u64> {
    let start = text.find(&format!("[{name}:"))? + name.len() + 2;
    text[start..].split(']').next()?.parse().ok()
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message, "type": "mock"}}))).into_response()
}

/// What to answer to `messages` ((role, content) pairs), or the failure to send.
async fn answer(
    state: &MockState,
    key: Option<&str>,
    model: &str,
    messages: &[(String, String)],
) -> Result<(String, bool, u64), Response> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(expected) = state.key.lock().clone()
        && key != Some(expected.as_str())
    {
        return Err(error(StatusCode::UNAUTHORIZED, "invalid api key"));
    }
    let delay = *state.delay.lock();
    tokio::time::sleep(delay).await;
    let system = messages.iter().filter(|(r, _)| r == "system").map(|(_, c)| c.as_str()).collect::<String>();
    let last = messages.iter().rev().find(|(r, _)| r == "user").map(|(_, c)| c.clone()).unwrap_or_default();
    let attempt = {
        let mut attempts = state.attempts.lock();
        let n = attempts.entry(last.clone()).or_default();
        *n += 1;
        *n as u64
    };
    if let Some(n) = marker(&last, "429")
        && attempt <= n
    {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limited");
        r.headers_mut().insert("retry-after-ms", "20".parse().unwrap());
        return Err(r);
    }
    if let Some(n) = marker(&last, "429s")
        && attempt <= n
    {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limited");
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return Err(r);
    }
    if let Some(n) = marker(&last, "500")
        && attempt <= n
    {
        return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "the model crashed"));
    }
    if let Some(ms) = marker(&last, "sleep") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let input_tokens = messages.iter().map(|(_, c)| words(c)).sum();
    let text = if system.to_lowercase().contains("rubric") {
        let pass = last.to_lowercase().contains("thank");
        json!({"pass": pass, "score": if pass { 0.9 } else { 0.1 },
               "reason": if pass { "the reply thanks the customer" } else { "the reply does not thank the customer" }})
        .to_string()
    } else if let Some((_, said)) = last.split_once("SAY:") {
        said.trim().to_owned()
    } else {
        format!("You said: {last}")
    };
    let text =
        if model.contains("terse") { text.split_whitespace().next().unwrap_or_default().to_owned() } else { text };
    Ok((text, last.contains("[length]"), input_tokens))
}

fn pairs(messages: &Value) -> Vec<(String, String)> {
    messages
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| (m["role"].as_str().unwrap_or("").to_owned(), m["content"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn openai(State(state): State<Arc<MockState>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    state.last.lock().insert("chat".into(), body.clone());
    let key = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match answer(&state, key, body["model"].as_str().unwrap_or_default(), &pairs(&body["messages"])).await {
        Ok((text, length, input)) => Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": if length { "length" } else { "stop" }}],
            "usage": {"prompt_tokens": input, "completion_tokens": words(&text), "total_tokens": input + words(&text)}
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn anthropic(State(state): State<Arc<MockState>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    state.last.lock().insert("messages".into(), body.clone());
    if headers.get("anthropic-version").is_none() {
        return error(StatusCode::BAD_REQUEST, "anthropic-version header is required");
    }
    if body["max_tokens"].as_u64().is_none() {
        return error(StatusCode::BAD_REQUEST, "max_tokens is required");
    }
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let mut messages = pairs(&body["messages"]);
    if messages.iter().any(|(r, _)| r == "system") {
        return error(StatusCode::BAD_REQUEST, "system messages go in the top-level `system` field");
    }
    if let Some(system) = body["system"].as_str() {
        messages.insert(0, ("system".into(), system.into()));
    }
    match answer(&state, key, body["model"].as_str().unwrap_or_default(), &messages).await {
        Ok((text, length, input)) => Json(json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": if length { "max_tokens" } else { "end_turn" },
            "usage": {"input_tokens": input, "output_tokens": words(&text)}
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// Letter frequencies: texts with the same letters in the same proportions are similar.
pub fn letters(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; 26];
    for c in text.to_lowercase().chars().filter(char::is_ascii_lowercase) {
        v[(c as u8 - b'a') as usize] += 1.0;
    }
    v
}

async fn embeddings(State(state): State<Arc<MockState>>, Json(body): Json<Value>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let input = body["input"].as_str().unwrap_or_default();
    Json(json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": letters(input)}],
                "model": body["model"], "usage": {"prompt_tokens": words(input), "total_tokens": words(input)}}))
    .into_response()
}
