//! The one mapping from service errors (and request rejections) to HTTP status codes and
//! the JSON error body of API.md: `{"error": {"code", "message", ...}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::TemplateError;
use domain::compose::ComposeError;
use serde_json::{Map, Value, json};
use service::ServiceError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), extra: Map::new() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            ServiceError::BadRequest(_) => ApiError::new(S::BAD_REQUEST, "bad_request", message),
            ServiceError::Unauthenticated(_) => ApiError::new(S::UNAUTHORIZED, "unauthorized", message),
            ServiceError::Forbidden(_) => ApiError::new(S::FORBIDDEN, "forbidden", message),
            ServiceError::NotFound(_) => ApiError::new(S::NOT_FOUND, "not_found", message),
            ServiceError::NameTaken(_) => ApiError::new(S::CONFLICT, "name_taken", message),
            ServiceError::Stale { base_version, latest_version } => ApiError::new(S::CONFLICT, "conflict", message)
                .with("base_version", base_version)
                .with("latest_version", latest_version),
            ServiceError::InvalidName(_) => ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_name", message),
            ServiceError::Compose(c) => match c {
                ComposeError::Unknown { reference, .. } => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "unknown_include", message).with("include", reference)
                }
                ComposeError::Cycle { path } => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "include_cycle", message).with("path", path)
                }
                ComposeError::Depth { path } => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "include_depth", message).with("path", path)
                }
            },
            ServiceError::ReleaseRefused { refusals, .. } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "release_refused", message)
                    .with("refusals", serde_json::to_value(refusals).unwrap_or_default())
            }
            ServiceError::Template(t) => match t {
                TemplateError::Syntax { line, column, location, .. } => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "template_syntax", message)
                        .with("line", line)
                        .with("column", column)
                        .with("location", location)
                }
                TemplateError::Variables { missing, unknown } => {
                    let code = if missing.is_empty() { "unknown_variables" } else { "missing_variables" };
                    ApiError::new(S::UNPROCESSABLE_ENTITY, code, message)
                        .with("missing", missing)
                        .with("unknown", unknown)
                }
                TemplateError::TooExpensive(_) => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "template_too_expensive", message)
                }
                TemplateError::Render(_) => ApiError::new(S::UNPROCESSABLE_ENTITY, "render_failed", message),
            },
            ServiceError::Rule { code, .. } => ApiError::new(S::UNPROCESSABLE_ENTITY, code, message),
            ServiceError::EvalGate { suite, min_pass_rate, best_pass_rate, best_run, .. } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "eval_gate", message)
                    .with("suite", suite)
                    .with("min_pass_rate", min_pass_rate)
                    .with("best_pass_rate", best_pass_rate)
                    .with("best_run", best_run)
            }
            ServiceError::Closed(_) => ApiError::new(S::CONFLICT, "request_closed", message),
            ServiceError::Rollout { code, .. } => ApiError::new(S::CONFLICT, code, message),
            ServiceError::InvalidItem { index, field, .. } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_item", message)
                    .with("index", index)
                    .with("field", field)
            }
            ServiceError::BudgetExceeded { retry_after, .. } => {
                ApiError::new(S::TOO_MANY_REQUESTS, "budget_exceeded", message).with("retry_after", retry_after)
            }
            ServiceError::RateLimited { retry_after } => {
                ApiError::new(S::TOO_MANY_REQUESTS, "rate_limited", message).with("retry_after", retry_after)
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred; it has been logged")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Kept for routes that answer errors in another shape (Langfuse's).
        let kept = self.clone();
        let mut error = self.extra;
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.into());
        let retry_after = error.get("retry_after").cloned();
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(Value::Number(n)) = retry_after
            && let Ok(v) = HeaderValue::from_str(&n.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(kept);
        response
    }
}
