//! Model providers over their real HTTP protocols: OpenAI-compatible chat completions and
//! embeddings (OpenAI, Azure-style gateways, vLLM, Ollama, llama.cpp server, LiteLLM) and
//! Anthropic Messages. Calls are retried with exponential backoff and full jitter on 429,
//! 5xx, timeouts and connection failures, honouring `Retry-After`.
//!
//! Base URLs: an OpenAI-compatible provider's base URL includes the API version
//! (`https://api.openai.com/v1`, `http://localhost:11434/v1`); requests go to
//! `{base}/chat/completions` and `{base}/embeddings`. An Anthropic base URL is the host
//! (`https://api.anthropic.com`); requests go to `{base}/v1/messages`.

use std::time::Duration;

use domain::eval::{ProviderKind, Tokens};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// Timeouts and retries of model calls.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// The first backoff; it doubles per attempt (full jitter: a random delay up to it).
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a provider asking for more gets this.
    pub max_retry_after: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
            timeout: Duration::from_secs(120),
        }
    }
}

/// Where to send calls, with the key read from the environment at run time.
#[derive(Clone)]
pub struct Endpoint {
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<String>,
}

/// Never prints the key.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Of the attempt that answered (retries and their waits not counted).
    pub latency: Duration,
    /// Normalised to OpenAI's words: `stop`, `length`, `tool_calls`, `content_filter`.
    pub finish_reason: Option<String>,
    pub tokens: Tokens,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub enum CallError {
    /// Worth another attempt (429, 5xx, timeout, connection), maybe after a given delay.
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again (400, 401, 404, an unreadable answer...).
    Fatal(String),
    Cancelled,
}

impl CallError {
    pub fn message(&self) -> String {
        match self {
            CallError::Retryable { message, .. } | CallError::Fatal(message) => message.clone(),
            CallError::Cancelled => "cancelled".into(),
        }
    }
}

/// Config keys passed on to the provider; everything else in a version's config
/// (`model` included) is ours.
const OPENAI_PARAMS: &[&str] =
    &["temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "response_format"];
const ANTHROPIC_PARAMS: &[&str] = &["temperature", "top_p", "top_k", "max_tokens", "stop_sequences"];
/// Anthropic requires `max_tokens`.
const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 1024;

impl Endpoint {
    /// One chat completion, retried per `policy`.
    pub async fn complete(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
        model: &str,
        messages: &[(String, String)],
        config: &Map<String, Value>,
    ) -> Result<Completion, CallError> {
        let (url, body) = match self.kind {
            ProviderKind::Openai => {
                let mut body = pick(config, OPENAI_PARAMS);
                body.insert("model".into(), model.into());
                let msgs: Vec<Value> = messages.iter().map(|(r, c)| json!({"role": r, "content": c})).collect();
                body.insert("messages".into(), msgs.into());
                (format!("{}/chat/completions", self.base()), body)
            }
            ProviderKind::Anthropic => {
                let mut body = pick(config, ANTHROPIC_PARAMS);
                body.insert("model".into(), model.into());
                body.entry("max_tokens").or_insert(ANTHROPIC_DEFAULT_MAX_TOKENS.into());
                let system: Vec<&str> =
                    messages.iter().filter(|(r, _)| r == "system").map(|(_, c)| c.as_str()).collect();
                if !system.is_empty() {
                    body.insert("system".into(), system.join("\n\n").into());
                }
                let msgs: Vec<Value> = messages
                    .iter()
                    .filter(|(r, _)| r != "system")
                    .map(|(r, c)| json!({"role": r, "content": c}))
                    .collect();
                body.insert("messages".into(), msgs.into());
                (format!("{}/v1/messages", self.base()), body)
            }
        };
        let (answer, latency) = self.post_with_retries(http, policy, cancel, &url, &Value::Object(body)).await?;
        match self.kind {
            ProviderKind::Openai => parse_openai(&answer, latency),
            ProviderKind::Anthropic => parse_anthropic(&answer, latency),
        }
        .ok_or_else(|| {
            CallError::Fatal(format!("the provider's answer does not look like a completion: {}", clip(&answer)))
        })
    }

    /// The embedding of `input` (OpenAI-compatible providers only).
    pub async fn embed(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
        model: &str,
        input: &str,
    ) -> Result<Vec<f32>, CallError> {
        if self.kind == ProviderKind::Anthropic {
            return Err(CallError::Fatal(
                "Anthropic has no embeddings endpoint: name an OpenAI-compatible embedding model in the `provider` of the `similar` assertion".into(),
            ));
        }
        let url = format!("{}/embeddings", self.base());
        let (answer, _) =
            self.post_with_retries(http, policy, cancel, &url, &json!({"model": model, "input": input})).await?;
        answer["data"][0]["embedding"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_f64).map(|x| x as f32).collect::<Vec<f32>>())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CallError::Fatal(format!("the provider's answer has no embedding: {}", clip(&answer))))
    }

    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    async fn post_with_retries(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
        url: &str,
        body: &Value,
    ) -> Result<(Value, Duration), CallError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = std::time::Instant::now();
            let result = tokio::select! {
                r = self.post(http, policy, url, body) => r,
                () = cancel.cancelled() => Err(CallError::Cancelled),
            };
            match result {
                Ok(answer) => return Ok((answer, started.elapsed())),
                Err(CallError::Retryable { message, retry_after }) if attempt < policy.attempts => {
                    let delay = match retry_after {
                        Some(after) => after.min(policy.max_retry_after),
                        None => backoff(policy, attempt),
                    };
                    tracing::debug!(%url, attempt, ?delay, %message, "model call failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = cancel.cancelled() => return Err(CallError::Cancelled),
                    }
                }
                Err(CallError::Retryable { message, .. }) => {
                    return Err(CallError::Retryable {
                        message: format!("{message} (gave up after {attempt} attempts)"),
                        retry_after: None,
                    });
                }
                Err(other) => return Err(other),
            }
        }
    }

    async fn post(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        url: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        let mut request = http.post(url).timeout(policy.timeout).json(body);
        match (self.kind, &self.api_key) {
            (ProviderKind::Openai, Some(key)) => request = request.bearer_auth(key),
            (ProviderKind::Anthropic, key) => {
                request = request.header("anthropic-version", "2023-06-01");
                if let Some(key) = key {
                    request = request.header("x-api-key", key);
                }
            }
            (ProviderKind::Openai, None) => {}
        }
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() { "timed out" } else { "could not be reached" };
            CallError::Retryable { message: format!("the provider {what} ({})", without_url(&e)), retry_after: None }
        })?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = tokio::time::timeout(policy.timeout, response.text())
            .await
            .map_err(|_| CallError::Retryable {
                message: "the provider timed out sending its answer".into(),
                retry_after: None,
            })?
            .map_err(|e| CallError::Retryable {
                message: format!("the provider's answer could not be read ({})", without_url(&e)),
                retry_after: None,
            })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|_| {
                CallError::Fatal(format!("the provider answered with something that is not JSON: {}", clip_str(&text)))
            });
        }
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| clip_str(&text));
        let message = format!("the provider answered {status}: {detail}");
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error()
        {
            Err(CallError::Retryable { message, retry_after })
        } else {
            Err(CallError::Fatal(message))
        }
    }
}

/// The delay before attempt `attempt + 1`: a random duration up to base × 2^(attempt-1)
/// (full jitter).
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    crate::backoff(policy.base_delay, policy.max_delay, attempt, 0.0)
}

/// `Retry-After` in seconds (or OpenAI's `retry-after-ms`). An HTTP date is not honoured
/// (backoff applies).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let read = |name: &str| {
        headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
    };
    read("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| read("retry-after").map(Duration::from_secs_f64))
}

fn pick(config: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    config.iter().filter(|(k, _)| keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn parse_openai(answer: &Value, latency: Duration) -> Option<Completion> {
    let choice = &answer["choices"][0];
    let message = choice.get("message")?;
    let text = message["content"].as_str().unwrap_or_default().to_owned();
    let usage = &answer["usage"];
    Some(Completion {
        text,
        latency,
        finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        tokens: Tokens {
            input: usage["prompt_tokens"].as_u64().unwrap_or(0),
            output: usage["completion_tokens"].as_u64().unwrap_or(0),
        },
    })
}

fn parse_anthropic(answer: &Value, latency: Duration) -> Option<Completion> {
    let blocks = answer["content"].as_array()?;
    let text: String = blocks.iter().filter(|b| b["type"] == "text").filter_map(|b| b["text"].as_str()).collect();
    let finish_reason = answer["stop_reason"].as_str().map(|r| {
        match r {
            "end_turn" | "stop_sequence" => "stop",
            "max_tokens" => "length",
            "tool_use" => "tool_calls",
            "refusal" => "content_filter",
            other => other,
        }
        .to_owned()
    });
    let usage = &answer["usage"];
    Some(Completion {
        text,
        latency,
        finish_reason,
        tokens: Tokens {
            input: usage["input_tokens"].as_u64().unwrap_or(0),
            output: usage["output_tokens"].as_u64().unwrap_or(0),
        },
    })
}

/// reqwest's message without the URL (which may carry a query with secrets).
fn without_url(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        message = message.replace(url.as_str(), "the provider");
    }
    message
}

fn clip(v: &Value) -> String {
    clip_str(&v.to_string())
}

fn clip_str(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_ceiling() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..Default::default()
        };
        for attempt in 1..10 {
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(backoff(&policy, attempt) <= ceiling);
        }
    }

    #[test]
    fn anthropic_answers_are_read_and_normalised() {
        let answer = json!({"content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " Ada"}],
                            "stop_reason": "max_tokens", "usage": {"input_tokens": 12, "output_tokens": 3}});
        let c = parse_anthropic(&answer, Duration::ZERO).unwrap();
        assert_eq!(c.text, "Hello Ada");
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!(c.tokens, Tokens { input: 12, output: 3 });
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        h.clear();
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
