//! The service layer's one error type. Each variant is a kind of outcome a caller can act
//! on; the HTTP layer maps them to status codes and JSON bodies in one place.

use domain::{NameError, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Malformed parameters (a bad cursor, an unparsable time...). HTTP 400.
    #[error("{0}")]
    BadRequest(String),
    /// No or unknown credentials. HTTP 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// Known caller, not allowed. HTTP 403.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown prompt, version, label, key or user. HTTP 404.
    #[error("{0}")]
    NotFound(String),
    /// A name that is already taken. HTTP 409.
    #[error("{0}")]
    NameTaken(String),
    /// The edit started from a version that is no longer the newest. HTTP 409.
    #[error(
        "version {base_version} is not the newest version any more (version {latest_version} is); reload, reapply your edit and save again"
    )]
    Stale { base_version: i64, latest_version: i64 },
    /// A name that breaks the naming rules. HTTP 422.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A template that does not parse or render, or variables that do not match. HTTP 422.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Includes that cannot be resolved (unknown, a cycle, too deep). HTTP 422.
    #[error(transparent)]
    Compose(#[from] domain::compose::ComposeError),
    /// Valid JSON that breaks another rule; `code` is machine-readable. HTTP 422.
    #[error("{message}")]
    Rule { code: &'static str, message: String },
    /// A label move refused by its eval gate. HTTP 422 `eval_gate`.
    #[error("{message}")]
    EvalGate {
        suite: String,
        min_pass_rate: f64,
        best_pass_rate: Option<f64>,
        best_run: Option<String>,
        message: String,
    },
    /// A release of which some prompts cannot move (each with its reason); nothing moved.
    /// HTTP 422 `release_refused`.
    #[error("{message}")]
    ReleaseRefused { message: String, refusals: Vec<domain::model::Refusal> },
    /// A label request that is no longer pending (decided, withdrawn or expired). HTTP 409.
    #[error("{0}")]
    Closed(String),
    /// A rollout in the way of the change (live on the label), or one whose state does not
    /// allow it (ended, not paused...). HTTP 409 with `code`.
    #[error("{message}")]
    Rollout { code: &'static str, message: String },
    /// One item of a batch breaks a rule; nothing of the batch was stored. HTTP 422.
    #[error("item {index}: {message}")]
    InvalidItem { index: usize, field: &'static str, message: String },
    /// The prompt's budget is spent and set to block until the window ends. HTTP 429.
    #[error("{message}")]
    BudgetExceeded { message: String, retry_after: u64 },
    /// Too many failed sign-ins; try again after `retry_after` seconds. HTTP 429.
    #[error("too many failed sign-ins; wait {retry_after} seconds and try again")]
    RateLimited { retry_after: u64 },
    /// A failure of ours (storage, a bug). HTTP 500; the text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A short machine-readable word for the error (as the API's `error.code`, where
    /// the HTTP layer has no better one).
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::BadRequest(_) => "bad_request",
            ServiceError::Unauthenticated(_) => "unauthorized",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::NameTaken(_) => "name_taken",
            ServiceError::Stale { .. } => "conflict",
            ServiceError::InvalidName(_) => "invalid_name",
            ServiceError::Compose(domain::compose::ComposeError::Unknown { .. }) => "unknown_include",
            ServiceError::Compose(domain::compose::ComposeError::Cycle { .. }) => "include_cycle",
            ServiceError::Compose(domain::compose::ComposeError::Depth { .. }) => "include_depth",
            ServiceError::Template(_) => "invalid_template",
            ServiceError::Rule { code, .. } | ServiceError::Rollout { code, .. } => code,
            ServiceError::EvalGate { .. } => "eval_gate",
            ServiceError::ReleaseRefused { .. } => "release_refused",
            ServiceError::Closed(_) => "closed",
            ServiceError::InvalidItem { .. } => "invalid_item",
            ServiceError::BudgetExceeded { .. } => "budget_exceeded",
            ServiceError::RateLimited { .. } => "rate_limited",
            ServiceError::Internal(_) => "internal",
        }
    }

    pub fn rule(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Rule { code, message: message.into() }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ServiceError::Internal(err.to_string())
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(err: sqlx::Error) -> Self {
        ServiceError::Internal(format!("storage: {err}"))
    }
}

impl From<sqlx::migrate::MigrateError> for ServiceError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        ServiceError::Internal(format!("migration: {err}"))
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
