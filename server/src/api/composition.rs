//! Releases and lockfiles (API.md "Releases and lockfiles"), and the registry as files
//! (`GET /api/v1/export`, `POST /api/v1/apply`: extensions that `promptledger export` and
//! `apply --server` use).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::model::{LockRequest, NewRelease, PromptFile, ReleaseOutcome};
use serde::Deserialize;
use service::Registry;

use super::error::ApiError;
use super::extract::{Caller, Json, Path, Query, optional_body};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/releases", post(create).get(list))
        .route("/api/v1/releases/{id}", get(one))
        .route("/api/v1/releases/{id}/rollback", post(rollback))
        .route("/api/v1/prompts/{name}/impact", post(start_impact))
        .route("/api/v1/impact/{id}", get(impact))
        .route("/api/v1/lock", post(lock))
        .route("/api/v1/export", get(export))
        .route("/api/v1/apply", post(apply))
}

type ApiResult<T = Response> = Result<T, ApiError>;

fn outcome(outcome: ReleaseOutcome) -> Response {
    match outcome {
        ReleaseOutcome::Released(release) => (StatusCode::CREATED, axum::Json(release)).into_response(),
        ReleaseOutcome::Requested(request) => (StatusCode::ACCEPTED, axum::Json(request)).into_response(),
    }
}

async fn create(State(r): State<Registry>, Caller(who): Caller, Json(req): Json<NewRelease>) -> ApiResult {
    Ok(outcome(r.create_release(&who, req).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default)]
    reason: String,
}

async fn rollback(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body: RollbackBody = optional_body(&body, "{\"reason\": \"...\"}")?;
    Ok(outcome(r.rollback_release(&who, &id, body.reason).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(State(r): State<Registry>, Caller(who): Caller, Query(p): Query<PageParams>) -> ApiResult {
    Ok(axum::Json(r.releases(&who, p.limit, p.cursor.as_deref()).await?).into_response())
}

async fn one(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.release_by_id(&who, &id).await?).into_response())
}

async fn lock(State(r): State<Registry>, Caller(who): Caller, Json(req): Json<LockRequest>) -> ApiResult {
    Ok(axum::Json(r.lock(&who, &req.refs).await?).into_response())
}

async fn export(State(r): State<Registry>, Caller(who): Caller) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "prompts": r.export_files(&who).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    prompts: Vec<PromptFile>,
    #[serde(default)]
    dry_run: bool,
}

async fn apply(State(r): State<Registry>, Caller(who): Caller, Json(body): Json<ApplyBody>) -> ApiResult {
    Ok(axum::Json(r.apply_files(&who, body.prompts, body.dry_run).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImpactBody {
    version: i64,
}

async fn start_impact(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(body): Json<ImpactBody>,
) -> ApiResult {
    Ok((StatusCode::ACCEPTED, axum::Json(r.start_impact(&who, &name, body.version).await?)).into_response())
}

async fn impact(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.impact(&who, &id).await?).into_response())
}
