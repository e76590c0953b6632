//! Production telemetry (API.md "Telemetry"): generations and scores in, the request-id
//! lookup, the list, metrics and budgets out. OTLP is in `otlp`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use domain::telemetry::{Budget, Drift, GenerationFilter, NewGeneration, NewScore, Status};
use serde::Deserialize;
use service::Registry;

use super::error::ApiError;
use super::extract::{Body, Caller, Json, Path, Query};
use crate::AppState;

/// A batch of generations may be up to 5 MiB.
pub const INGEST_LIMIT: usize = 5 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/generations", post(ingest).get(list))
        .route("/api/v1/generations/{id}", get(lookup))
        .route("/api/v1/generations/{id}/scores", post(score))
        .route("/api/v1/prompts/{name}/metrics", get(metrics))
        .route("/api/v1/prompts/{name}/budget", put(put_budget).get(budget).delete(delete_budget))
        .route("/api/v1/otel/v1/traces", post(super::otlp::traces))
}

type ApiResult<T = Response> = Result<T, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    items: Vec<NewGeneration>,
}

/// Parses a batch so that an item of the wrong shape is named by its index and field.
fn parse_batch(bytes: &[u8]) -> Result<Vec<NewGeneration>, ApiError> {
    // The plain parser first; tracking the path costs, and only a bad batch needs it.
    if let Ok(batch) = serde_json::from_slice::<Batch>(bytes) {
        return Ok(batch.items);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let batch: Batch = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        use serde_path_to_error::Segment;
        if !matches!(e.inner().classify(), serde_json::error::Category::Data) {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {}", e.inner()),
            );
        }
        let mut index = None;
        let mut field = None;
        for segment in e.path().iter() {
            match segment {
                Segment::Seq { index: i } if index.is_none() => index = Some(*i),
                Segment::Map { key } if index.is_some() => field = Some(key.clone()),
                _ => {}
            }
        }
        let inner = e.inner().to_string();
        // Unknown and missing fields are named in serde's message, not its path.
        let named = inner.split('`').nth(1).map(str::to_owned);
        let field = field.or(if index.is_some() { named } else { None });
        let message = match index {
            Some(i) => format!("item {i}: {inner}"),
            None => format!("the body must be {{\"items\": [...]}}: {inner}"),
        };
        let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_item", message);
        err.extra.insert("index".into(), index.into());
        err.extra.insert("field".into(), field.into());
        err
    })?;
    de.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    Ok(batch.items)
}

async fn ingest(State(r): State<Registry>, Caller(who): Caller, Body(bytes): Body<INGEST_LIMIT>) -> ApiResult {
    // Parsing a large batch takes milliseconds of CPU: off the threads that serve resolve.
    let items = tokio::task::spawn_blocking(move || parse_batch(&bytes))
        .await
        .map_err(|_| ApiError::bad_request("the batch could not be parsed"))??;
    let report = r.ingest(&who, items).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(report)).into_response())
}

async fn score(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Json(body): Json<NewScore>,
) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(r.add_score(&who, &id, body).await?)).into_response())
}

async fn lookup(State(r): State<Registry>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(r.generation(&who, &id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    prompt: Option<String>,
    version: Option<i64>,
    label: Option<String>,
    status: Option<String>,
    user: Option<String>,
    session: Option<String>,
    drift: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(State(r): State<Registry>, Caller(who): Caller, Query(p): Query<ListParams>) -> ApiResult {
    let status = p
        .status
        .map(|s| Status::parse(&s).ok_or_else(|| ApiError::bad_request(format!("`status` is ok or error (got '{s}')"))))
        .transpose()?;
    let drift = p
        .drift
        .map(|d| {
            Drift::parse(&d)
                .ok_or_else(|| ApiError::bad_request(format!("`drift` is hash_mismatch or stale_label (got '{d}')")))
        })
        .transpose()?;
    let filter = GenerationFilter {
        prompt: p.prompt,
        version: p.version,
        label: p.label,
        status,
        user: p.user,
        session: p.session,
        drift,
        since: p.since,
        until: p.until,
        limit: p.limit,
        cursor: p.cursor,
    };
    Ok(axum::Json(r.generations(&who, &filter).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsParams {
    since: Option<String>,
    until: Option<String>,
    interval: Option<String>,
}

async fn metrics(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Query(p): Query<MetricsParams>,
) -> ApiResult {
    let view = r.metrics(&who, &name, p.since.as_deref(), p.until.as_deref(), p.interval.as_deref()).await?;
    Ok(axum::Json(view).into_response())
}

async fn put_budget(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(body): Json<Budget>,
) -> ApiResult {
    Ok(axum::Json(r.put_budget(&who, &name, body).await?).into_response())
}

async fn budget(State(r): State<Registry>, Caller(who): Caller, Path(name): Path<String>) -> ApiResult {
    Ok(axum::Json(r.budget(&who, &name).await?).into_response())
}

async fn delete_budget(State(r): State<Registry>, Caller(who): Caller, Path(name): Path<String>) -> ApiResult {
    r.delete_budget(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
