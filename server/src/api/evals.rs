//! Evaluations (API.md "Evaluations"): suites, runs, and the extensions for providers and
//! model prices (documented in openapi.yaml).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use domain::eval::{ModelPrice, NewMigration, NewRun, Provider, Suite};
use serde::Deserialize;
use service::Registry;
use service::eval::io::Format;

use super::error::ApiError;
use super::extract::{Caller, Json, Path, Query};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/prompts/{name}/suites", get(suites))
        .route("/api/v1/prompts/{name}/suites/{suite}", put(put_suite).get(suite))
        .route("/api/v1/prompts/{name}/suites/{suite}/import", post(import_cases))
        .route("/api/v1/prompts/{name}/suites/{suite}/export", get(export_cases))
        .route("/api/v1/prompts/{name}/eval-runs", post(start_run).get(runs))
        .route("/api/v1/eval-runs/{id}", get(run))
        .route("/api/v1/eval-runs/{id}/cancel", post(cancel_run))
        .route("/api/v1/eval-runs/{id}/compare/{other}", get(compare_runs))
        .route("/api/v1/eval-migrations", post(start_migration))
        .route("/api/v1/eval-migrations/{id}", get(migration))
        .route("/api/v1/providers", get(providers))
        .route("/api/v1/providers/{provider}", put(put_provider))
        .route("/api/v1/providers/{provider}/prices", get(prices))
        .route("/api/v1/providers/{provider}/prices/{model}", put(put_price))
}

type ApiResult<T = Response> = Result<T, ApiError>;

async fn put_suite(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((name, suite)): Path<(String, String)>,
    Json(body): Json<Suite>,
) -> ApiResult {
    Ok(axum::Json(r.put_suite(&who, &name, &suite, body).await?).into_response())
}

async fn suite(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((name, suite)): Path<(String, String)>,
) -> ApiResult {
    Ok(axum::Json(r.suite(&who, &name, &suite).await?).into_response())
}

async fn suites(State(r): State<Registry>, Caller(who): Caller, Path(name): Path<String>) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "items": r.suites(&who, &name).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileParams {
    format: String,
    #[serde(default)]
    mode: Option<String>,
}

async fn import_cases(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((name, suite)): Path<(String, String)>,
    Query(p): Query<FileParams>,
    body: axum::body::Bytes,
) -> ApiResult {
    let format = Format::parse(&p.format)?;
    let append = match p.mode.as_deref() {
        None | Some("replace") => false,
        Some("append") => true,
        Some(other) => return Err(ApiError::bad_request(format!("mode must be replace or append (got '{other}')"))),
    };
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the file is not UTF-8 text"))?;
    Ok(axum::Json(r.import_cases(&who, &name, &suite, format, append, text).await?).into_response())
}

async fn export_cases(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((name, suite)): Path<(String, String)>,
    Query(p): Query<FileParams>,
) -> ApiResult {
    if p.mode.is_some() {
        return Err(ApiError::bad_request("mode is for imports"));
    }
    let format = Format::parse(&p.format)?;
    let text = r.export_cases(&who, &name, &suite, format).await?;
    let extension = if format == Format::Csv { "csv" } else { "jsonl" };
    let disposition = format!("attachment; filename=\"{suite}.{extension}\"");
    Ok(([(header::CONTENT_TYPE, format.content_type().to_owned()), (header::CONTENT_DISPOSITION, disposition)], text)
        .into_response())
}

async fn start_run(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(req): Json<NewRun>,
) -> ApiResult {
    Ok((StatusCode::ACCEPTED, axum::Json(r.start_run(&who, &name, req).await?)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn runs(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Query(p): Query<RunsParams>,
) -> ApiResult {
    Ok(axum::Json(r.eval_runs(&who, &name, p.limit, p.cursor.as_deref()).await?).into_response())
}

async fn run(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.eval_run(&who, &id).await?).into_response())
}

async fn cancel_run(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.cancel_run(&who, &id).await?).into_response())
}

async fn compare_runs(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((id, other)): Path<(String, String)>,
) -> ApiResult {
    Ok(axum::Json(r.compare_runs(&who, &id, &other).await?).into_response())
}

async fn start_migration(State(r): State<Registry>, Caller(who): Caller, Json(req): Json<NewMigration>) -> ApiResult {
    Ok((StatusCode::ACCEPTED, axum::Json(r.start_migration(&who, req).await?)).into_response())
}

async fn migration(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.migration(&who, &id).await?).into_response())
}

async fn providers(State(r): State<Registry>, Caller(who): Caller) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "items": r.providers(&who).await? })).into_response())
}

async fn put_provider(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(provider): Path<String>,
    Json(mut body): Json<Provider>,
) -> ApiResult {
    if !body.name.is_empty() && body.name != provider {
        return Err(ApiError::bad_request("the body's `name` differs from the provider in the path"));
    }
    body.name = provider;
    Ok(axum::Json(r.put_provider(&who, body).await?).into_response())
}

async fn prices(State(r): State<Registry>, Caller(who): Caller, Path(provider): Path<String>) -> ApiResult {
    Ok(axum::Json(serde_json::json!({ "items": r.prices(&who, &provider).await? })).into_response())
}

async fn put_price(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((provider, model)): Path<(String, String)>,
    Json(mut body): Json<ModelPrice>,
) -> ApiResult {
    if !body.model.is_empty() && body.model != model {
        return Err(ApiError::bad_request("the body's `model` differs from the model in the path"));
    }
    body.model = model;
    Ok(axum::Json(r.put_price(&who, &provider, body).await?).into_response())
}
