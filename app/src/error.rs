//! The console's one error type, serialisable so server functions return it to the
//! browser, and worded for people rather than engineers. On the server, turning a
//! service error into it also sets the response status, so a refused server function
//! answers 401/403/409/422/429 like the REST API, never 500.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("You are signed out. {0}")]
    SignedOut(String),
    #[error("You are not allowed to do this. {0}")]
    NotAllowed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("Someone else changed this first. {0}")]
    Conflict(String),
    #[error("{0}")]
    RateLimited(String),
    #[error(
        "Something went wrong on the server. Try again in a moment; if it keeps happening, tell your administrator."
    )]
    Internal,
    #[error("The request could not be completed ({0}). Check your connection and try again.")]
    Transport(String),
}

impl AppError {
    /// The HTTP status a server function answers with when it returns this error.
    pub fn status(&self) -> u16 {
        match self {
            AppError::SignedOut(_) => 401,
            AppError::NotAllowed(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::Invalid(_) => 422,
            AppError::RateLimited(_) => 429,
            AppError::Internal => 500,
            AppError::Transport(_) => 400,
        }
    }
}

impl AppError {
    /// A refusal of the console's own (input a page could not have sent), answered with
    /// its status like the service's refusals.
    #[cfg(feature = "ssr")]
    pub fn invalid(message: impl Into<String>) -> Self {
        let err = AppError::Invalid(message.into());
        set_status(&err);
        err
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        // On the server this is a request the function could not even read (bad
        // arguments): the caller's fault, so 400 rather than the default 500.
        let err = AppError::Transport(value.to_string());
        #[cfg(feature = "ssr")]
        set_status(&err);
        err
    }
}

#[cfg(feature = "ssr")]
fn set_status(err: &AppError) {
    if let Some(options) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(axum::http::StatusCode::from_u16(err.status()).unwrap_or_default());
    }
}

#[cfg(feature = "ssr")]
impl From<service::ServiceError> for AppError {
    fn from(err: service::ServiceError) -> Self {
        use service::ServiceError as E;
        let app = match err {
            E::Unauthenticated(m) => AppError::SignedOut(capitalise(&m)),
            E::Forbidden(m) => AppError::NotAllowed(capitalise(&m) + "."),
            E::NotFound(m) => AppError::NotFound(capitalise(&m) + "."),
            E::NameTaken(m) | E::BadRequest(m) => AppError::Invalid(capitalise(&m) + "."),
            e @ (E::Stale { .. } | E::Closed(_) | E::Rollout { .. }) => {
                AppError::Conflict(capitalise(&e.to_string()) + ".")
            }
            e @ (E::RateLimited { .. } | E::BudgetExceeded { .. }) => {
                AppError::RateLimited(capitalise(&e.to_string()) + ".")
            }
            e @ (E::InvalidName(_)
            | E::Template(_)
            | E::Compose(_)
            | E::ReleaseRefused { .. }
            | E::Rule { .. }
            | E::EvalGate { .. }
            | E::InvalidItem { .. }) => {
                AppError::Invalid(capitalise(&e.to_string()))
            }
            E::Internal(m) => {
                tracing::error!(detail = %m, "console: internal error");
                AppError::Internal
            }
        };
        set_status(&app);
        app
    }
}

/// Service messages start in lower case (they read well inside JSON); the console shows
/// them as sentences.
#[cfg(feature = "ssr")]
fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
