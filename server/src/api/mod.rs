//! The REST API under `/api/v1`: thin handlers over the service layer, JSON errors for
//! everything (unknown routes and methods included).

mod admin;
pub mod error;
mod extract;
mod prompts;

use axum::Router;
use axum::extract::DefaultBodyLimit;
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
        .route("/openapi.yaml", axum::routing::get(openapi))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], include_str!("../../openapi.yaml"))
}
