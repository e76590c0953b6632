//! Label policies and label requests (API.md "Labels"), and webhooks (an extension).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::model::{Decision, LabelPolicy, NewWebhook, RequestStatus};
use serde::Deserialize;
use service::Registry;

use super::error::ApiError;
use super::extract::{Caller, Json, Path, Query, optional_body};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/labels/{label}/policy", get(policy).put(set_policy))
        .route("/api/v1/label-requests", get(requests))
        .route("/api/v1/label-requests/{id}", get(request))
        .route("/api/v1/label-requests/{id}/approve", post(approve))
        .route("/api/v1/label-requests/{id}/reject", post(reject))
        .route("/api/v1/label-requests/{id}/withdraw", post(withdraw))
        .route("/api/v1/webhooks", get(webhooks).post(create_webhook))
        .route("/api/v1/webhooks/{id}", axum::routing::delete(delete_webhook))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
}

type ApiResult<T = Response> = Result<T, ApiError>;

async fn policy(State(r): State<Registry>, Caller(who): Caller, Path(label): Path<String>) -> ApiResult {
    Ok(axum::Json(r.label_policy(&who, &label).await?).into_response())
}

async fn set_policy(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(label): Path<String>,
    Json(body): Json<LabelPolicy>,
) -> ApiResult {
    Ok(axum::Json(r.set_label_policy(&who, &label, body).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsParams {
    status: Option<String>,
}

async fn requests(State(r): State<Registry>, Caller(who): Caller, Query(p): Query<RequestsParams>) -> ApiResult {
    let status = match p.status.as_deref() {
        None => None,
        Some(s) => Some(RequestStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be pending, approved, rejected, withdrawn or expired (got '{s}')"
            ))
        })?),
    };
    Ok(axum::Json(serde_json::json!({ "items": r.label_requests(&who, status).await? })).into_response())
}

async fn request(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.label_request(&who, &id).await?).into_response())
}

/// The body is optional: nothing, or `{"comment": "..."}`.
fn decision(body: &[u8]) -> Result<Decision, ApiError> {
    optional_body(body, "{\"comment\": \"...\"}")
}

async fn approve(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>, body: Bytes) -> ApiResult {
    Ok(axum::Json(r.approve_request(&who, &id, decision(&body)?).await?).into_response())
}

async fn reject(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>, body: Bytes) -> ApiResult {
    Ok(axum::Json(r.reject_request(&who, &id, decision(&body)?).await?).into_response())
}

async fn withdraw(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>, body: Bytes) -> ApiResult {
    Ok(axum::Json(r.withdraw_request(&who, &id, decision(&body)?).await?).into_response())
}

async fn webhooks(State(r): State<Registry>, Caller(who): Caller) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "items": r.webhooks(&who).await? })).into_response())
}

async fn create_webhook(State(r): State<Registry>, Caller(who): Caller, Json(req): Json<NewWebhook>) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(r.create_webhook(&who, req).await?)).into_response())
}

async fn delete_webhook(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.delete_webhook(&who, &id).await?).into_response())
}

async fn deliveries(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "items": r.webhook_deliveries(&who, &id).await? })).into_response())
}
