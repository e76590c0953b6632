//! The audit log (API.md "Audit") and, as an extension documented in the OpenAPI
//! document, API keys and users for admins.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use domain::access::{Role, Scope};
use serde::Deserialize;
use service::time::parse_param;
use service::{AuditFilter, Registry};

use super::error::ApiError;
use super::extract::{Caller, Json, Path, Query};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/audit/verify", get(verify))
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route("/api/v1/keys/{name}", delete(revoke_key))
        .route("/api/v1/users", get(list_users).post(add_user))
        .route("/api/v1/users/{name}", axum::routing::patch(update_user))
}

type ApiResult = Result<Response, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    prompt: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn audit(State(r): State<Registry>, Caller(who): Caller, Query(p): Query<AuditParams>) -> ApiResult {
    let filter = AuditFilter {
        prompt: p.prompt,
        actor: p.actor,
        action: p.action,
        since: parse_param("since", p.since.as_deref())?,
        until: parse_param("until", p.until.as_deref())?,
        before_seq: None,
    };
    Ok(axum::Json(r.audit(&who, filter, p.limit, p.cursor.as_deref()).await?).into_response())
}

async fn verify(State(r): State<Registry>, Caller(who): Caller) -> ApiResult {
    Ok(axum::Json(r.verify(&who).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    scope: Scope,
    #[serde(default)]
    user: Option<String>,
}

async fn create_key(State(r): State<Registry>, Caller(who): Caller, Json(req): Json<NewKey>) -> ApiResult {
    let created = r.create_key(&who, &req.name, req.scope, req.user.as_deref()).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

async fn list_keys(State(r): State<Registry>, Caller(who): Caller) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "items": r.list_keys(&who).await? })).into_response())
}

async fn revoke_key(State(r): State<Registry>, Caller(who): Caller, Path(name): Path<String>) -> ApiResult {
    Ok(axum::Json(r.revoke_key(&who, &name).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    role: Role,
    #[serde(default)]
    password: Option<String>,
}

async fn add_user(State(r): State<Registry>, Caller(who): Caller, Json(req): Json<NewUser>) -> ApiResult {
    let user = r.add_user(&who, &req.username, req.role, req.password).await?;
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}

async fn update_user(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(change): Json<service::UserChange>,
) -> ApiResult {
    Ok(axum::Json(r.update_user(&who, &name, change).await?).into_response())
}

async fn list_users(State(r): State<Registry>, Caller(who): Caller) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "items": r.list_users(&who).await? })).into_response())
}
