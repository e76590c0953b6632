//! The console's one error type, serialisable so server functions return it to the
//! browser, and worded for people rather than engineers.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("You are not allowed to do this. {0}")]
    NotAllowed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("Someone else changed this first. {0}")]
    Conflict(String),
    #[error(
        "Something went wrong on the server. Try again in a moment; if it keeps happening, tell your administrator."
    )]
    Internal,
    #[error("The server could not be reached ({0}). Check your connection and try again.")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl From<service::ServiceError> for AppError {
    fn from(err: service::ServiceError) -> Self {
        use service::ServiceError as E;
        match err {
            E::Unauthenticated(m) | E::Forbidden(m) => AppError::NotAllowed(m),
            E::NotFound(m) => AppError::NotFound(m),
            E::NameTaken(m) | E::BadRequest(m) => AppError::Invalid(m),
            e @ E::Stale { .. } => AppError::Conflict(e.to_string()),
            e @ (E::InvalidName(_) | E::Template(_) | E::Rule { .. }) => AppError::Invalid(e.to_string()),
            E::Internal(m) => {
                leptos::logging::error!("console: {m}");
                AppError::Internal
            }
        }
    }
}
