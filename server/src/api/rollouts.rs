//! Rollouts (API.md "Rollouts").

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::rollout::{NewRollout, RolloutOutcome};
use serde::Deserialize;
use service::Registry;

use super::error::ApiError;
use super::extract::{Caller, Json, Path, optional_body};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/prompts/{name}/rollouts", post(start).get(list))
        .route("/api/v1/rollouts/{id}", get(rollout))
        .route("/api/v1/rollouts/{id}/pause", post(pause))
        .route("/api/v1/rollouts/{id}/resume", post(resume))
        .route("/api/v1/rollouts/{id}/advance", post(advance))
        .route("/api/v1/rollouts/{id}/abort", post(abort))
}

type ApiResult<T = Response> = Result<T, ApiError>;

async fn start(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(plan): Json<NewRollout>,
) -> ApiResult {
    Ok(match r.start_rollout(&who, &name, plan).await? {
        RolloutOutcome::Started(rollout) => (StatusCode::CREATED, axum::Json(rollout)).into_response(),
        RolloutOutcome::Requested(request) => (StatusCode::ACCEPTED, axum::Json(request)).into_response(),
    })
}

async fn list(State(r): State<Registry>, Caller(who): Caller, Path(name): Path<String>) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "items": r.rollouts(&who, &name).await? })).into_response())
}

async fn rollout(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.rollout(&who, &id).await?).into_response())
}

/// The optional body of an action: nothing, or `{"reason": "..."}`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Why {
    #[serde(default)]
    reason: String,
}

async fn pause(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let why: Why = optional_body(&body, "{\"reason\": \"...\"}")?;
    Ok(axum::Json(r.pause_rollout(&who, &id, &why.reason).await?).into_response())
}

async fn resume(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let why: Why = optional_body(&body, "{\"reason\": \"...\"}")?;
    Ok(axum::Json(r.resume_rollout(&who, &id, &why.reason).await?).into_response())
}

async fn advance(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let why: Why = optional_body(&body, "{\"reason\": \"...\"}")?;
    Ok(axum::Json(r.advance_rollout(&who, &id, &why.reason).await?).into_response())
}

async fn abort(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let why: Why = optional_body(&body, "{\"reason\": \"...\"}")?;
    Ok(axum::Json(r.abort_rollout(&who, &id, &why.reason).await?).into_response())
}
