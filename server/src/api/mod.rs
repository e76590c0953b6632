//! The REST API under `/api/v1`: thin handlers over the service layer, JSON errors for
//! everything (unknown routes and methods included). Routes carry their full paths
//! rather than being nested: a nested router costs a URI rewrite per request.

mod admin;
mod composition;
pub mod error;
mod evals;
mod events;
pub(crate) mod extract;
mod governance;
mod langfuse;
mod otlp;
mod prompts;
mod rollouts;
mod telemetry;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::AppState;
use error::ApiError;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(prompts::router())
        .merge(admin::router())
        .merge(evals::router())
        .merge(governance::router())
        .merge(telemetry::router())
        .merge(rollouts::router())
        .merge(composition::router())
        .merge(events::router())
        .merge(langfuse::router())
        .route("/api/v1/openapi.yaml", axum::routing::get(openapi))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint")
}

/// For the whole application: a known path asked with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], include_str!("../../openapi.yaml"))
}
