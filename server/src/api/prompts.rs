//! Prompts, versions, render, diff and labels (API.md "Prompts" and "Labels").

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use domain::model::{LabelOutcome, MoveLabel, NewPrompt, NewVersion, PromptUpdate, RenderRequest, Selector};
use domain::rollout::RolloutRef;
use serde::Deserialize;
use service::{PromptQuery, Registry};

use super::error::ApiError;
use super::extract::{ARM_HEADER, Caller, IfNoneMatch, Json, Path, Query, UnitHeader};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/prompts", post(create).get(list))
        .route("/api/v1/prompts/{name}", get(resolve).patch(update_details))
        .route("/api/v1/prompts/{name}/versions", get(versions).post(add_version))
        .route("/api/v1/prompts/{name}/versions/{n}", get(version))
        .route("/api/v1/prompts/{name}/render", post(render))
        .route("/api/v1/prompts/{name}/diff", get(diff))
        .route("/api/v1/prompts/{name}/labels", get(labels))
        .route("/api/v1/prompts/{name}/labels/{label}", put(move_label))
        .route("/api/v1/prompts/{name}/dependents", get(dependents))
}

type ApiResult<T = Response> = Result<T, ApiError>;

async fn create(State(r): State<Registry>, Caller(who): Caller, Json(req): Json<NewPrompt>) -> ApiResult {
    let view = r.create_prompt(&who, req).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    q: Option<String>,
    tag: Option<String>,
    folder: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(State(r): State<Registry>, Caller(who): Caller, Query(p): Query<ListParams>) -> ApiResult {
    let query = PromptQuery { q: p.q, tag: p.tag, folder: p.folder, limit: p.limit, cursor: p.cursor };
    Ok(axum::Json(r.list_prompts(&who, &query)?).into_response())
}

#[derive(Deserialize)]
struct ResolveParams {
    version: Option<String>,
    label: Option<String>,
    #[serde(rename = "_version")]
    compat_version: Option<String>,
    at: Option<String>,
    unit: Option<String>,
    raw: Option<bool>,
}

fn parse_version(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::bad_request(format!("version must be a whole number from 1 up (got '{s}')")))
}

impl ResolveParams {
    fn selector(self) -> Result<Selector, ApiError> {
        let raw = self.raw.unwrap_or(false);
        let mut sel = Selector { version: None, label: self.label, at: self.at, unit: self.unit, raw };
        if let Some(v) = self.version {
            sel.version = Some(parse_version(&v)?);
        }
        if let Some(v) = self.compat_version {
            if sel.version.is_some() || sel.label.is_some() {
                return Err(ApiError::bad_request("give `_version` alone, without `version` or `label`"));
            }
            if v.bytes().all(|b| b.is_ascii_digit()) {
                sel.version = Some(parse_version(&v)?);
            } else {
                sel.label = Some(v);
            }
        }
        Ok(sel)
    }
}

/// The hot path: the answer is bytes serialised when the version was committed.
async fn resolve(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Query(p): Query<ResolveParams>,
    IfNoneMatch(inm): IfNoneMatch,
    UnitHeader(unit): UnitHeader,
) -> ApiResult {
    let mut sel = p.selector()?;
    sel.unit = sel.unit.or(unit);
    let served = r.serve(&who, &name, &sel).await?;
    let etag = HeaderValue::from_str(&served.etag).map_err(|_| ApiError::bad_request("bad etag"))?;
    let cache = HeaderValue::from_static("no-cache");
    let mut response = if let Some(inm) = inm.as_ref().and_then(|v| v.to_str().ok())
        && inm
            .split(',')
            .map(str::trim)
            .any(|t| t == served.etag || t == "*" || t.strip_prefix("W/") == Some(&served.etag))
    {
        (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache)]).into_response()
    } else {
        let body = if sel.raw { Bytes::from(serde_json::to_vec(&served.raw_view()).unwrap_or_default()) } else { served.json.clone() };
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache),
            ],
            body,
        )
            .into_response()
    };
    with_arm(&mut response, served.rollout.as_ref());
    Ok(response)
}

/// `X-Promptledger-Arm` on an answer a rollout chose, which varies with the unit.
fn with_arm(response: &mut Response, rollout: Option<&RolloutRef>) {
    if let Some(rollout) = rollout {
        let headers = response.headers_mut();
        headers.insert(ARM_HEADER, HeaderValue::from_static(rollout.arm.as_str()));
        headers.insert(header::VARY, HeaderValue::from_static("x-promptledger-unit"));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn versions(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Query(p): Query<PageParams>,
) -> ApiResult {
    Ok(axum::Json(r.list_versions(&who, &name, p.limit, p.cursor.as_deref()).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionParams {
    raw: Option<bool>,
}

async fn version(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((name, n)): Path<(String, String)>,
    Query(p): Query<VersionParams>,
) -> ApiResult {
    let sel = Selector { version: Some(parse_version(&n)?), ..Default::default() };
    if p.raw == Some(true) {
        let served = r.resolve(&who, &name, &sel).await?;
        return Ok(([(header::ETAG, served.etag.as_str())], axum::Json(served.raw_view())).into_response());
    }
    let served = r.resolve(&who, &name, &sel).await?;
    Ok(([(header::CONTENT_TYPE, "application/json"), (header::ETAG, served.etag.as_str())], served.json.clone())
        .into_response())
}

async fn add_version(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(req): Json<NewVersion>,
) -> ApiResult {
    let view = r.add_version(&who, &name, req).await?;
    let status = if view.unchanged == Some(true) { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, axum::Json(view)).into_response())
}

/// An extension: a prompt's description and tags, changed without a new version.
async fn update_details(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(req): Json<PromptUpdate>,
) -> ApiResult {
    Ok(axum::Json(r.update_details(&who, &name, req).await?).into_response())
}

async fn render(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    UnitHeader(unit): UnitHeader,
    Json(mut req): Json<RenderRequest>,
) -> ApiResult {
    req.unit = req.unit.or(unit);
    let view = r.render(&who, &name, req).await?;
    let rollout = view.rollout.clone();
    let mut response = axum::Json(view).into_response();
    with_arm(&mut response, rollout.as_ref());
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffParams {
    from: Option<String>,
    to: Option<String>,
    composed: Option<bool>,
}

async fn diff(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Query(p): Query<DiffParams>,
) -> ApiResult {
    let (Some(from), Some(to)) = (p.from, p.to) else {
        return Err(ApiError::bad_request("give both `from` and `to` version numbers"));
    };
    let composed = p.composed.unwrap_or(false);
    Ok(axum::Json(r.diff(&who, &name, parse_version(&from)?, parse_version(&to)?, composed).await?).into_response())
}

async fn dependents(State(r): State<Registry>, Caller(who): Caller, Path(name): Path<String>) -> ApiResult {
    Ok(axum::Json(r.dependents(&who, &name).await?).into_response())
}

async fn labels(State(r): State<Registry>, Caller(who): Caller, Path(name): Path<String>) -> ApiResult {
    Ok(axum::Json(r.labels(&who, &name).await?).into_response())
}

async fn move_label(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((name, label)): Path<(String, String)>,
    Json(req): Json<MoveLabel>,
) -> ApiResult {
    Ok(match r.move_label(&who, &name, &label, req).await? {
        LabelOutcome::Moved(moved) => axum::Json(moved).into_response(),
        LabelOutcome::Requested(request) => (StatusCode::ACCEPTED, axum::Json(request)).into_response(),
    })
}
