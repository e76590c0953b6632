//! The Langfuse-compatible prompt API (API.md "Langfuse-compatible prompt API"): the
//! public prompt endpoints as Langfuse's SDKs call them, so an application moves over by
//! changing the host and keys. Authentication is HTTP Basic with a promptledger API key
//! as the password. Every call goes through the same service layer as `/api/v1`: label
//! rules, gates, approvals and the audit log hold. Langfuse's `production` is our
//! `stable`. Langfuse's create has no base version: a new version goes on top of the
//! newest.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use domain::content::{Message, MessageRole, PromptType};
use domain::model::{MoveLabel, NewPrompt, NewVersion, PromptUpdate, Selector, VersionView};
use domain::names::{LATEST, STABLE};
use serde::Deserialize;
use serde_json::{Value, json};
use service::{PromptQuery, Registry, ServiceError};

use super::error::ApiError;
use super::extract::{Caller, Json, Path, Query};
use crate::AppState;

/// Langfuse's label for what production serves.
const PRODUCTION: &str = "production";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/public/v2/prompts", get(list).post(create))
        .route("/api/public/v2/prompts/{name}", get(get_prompt))
        .route("/api/public/v2/prompts/{name}/versions/{version}", patch(update_labels))
        .route("/api/public/projects", get(projects))
        .route("/api/public/otel/v1/traces", post(super::otlp::traces))
        .layer(axum::middleware::map_response(langfuse_error))
}

/// An error as Langfuse answers it: `{"error", "message"}` with Langfuse's status codes
/// (its 400 for a request it refuses, where `/api/v1` says 422). Every error of these
/// routes, a rejected body or key included, is an `ApiError`, which leaves itself in the
/// response's extensions for this to find.
async fn langfuse_error(mut response: Response) -> Response {
    let Some(e) = response.extensions_mut().remove::<ApiError>() else { return response };
    let status = if e.status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { e.status };
    let name = match status {
        StatusCode::NOT_FOUND => "LangfuseNotFoundError",
        StatusCode::UNAUTHORIZED => "UnauthorizedError",
        StatusCode::FORBIDDEN => "AccessDeniedError",
        s if s.is_client_error() => "InvalidRequestError",
        _ => "InternalServerError",
    };
    let mut body = json!({"error": name, "message": e.message, "code": e.code});
    for (k, v) in e.extra {
        body[k] = v;
    }
    let mut answer = (status, axum::Json(body)).into_response();
    for (k, v) in response.headers() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            answer.headers_mut().insert(k, v.clone());
        }
    }
    answer
}

type Result<T = Response> = std::result::Result<T, ApiError>;

/// Our label for a Langfuse one, and back.
fn ours(label: &str) -> &str {
    if label == PRODUCTION { STABLE } else { label }
}

fn theirs(label: &str) -> &str {
    if label == STABLE { PRODUCTION } else { label }
}

/// A version as Langfuse's `Prompt` (text or chat).
fn prompt_json(view: &VersionView, tags: &[String], updated_at: &str) -> Value {
    let prompt = match view.prompt_type {
        PromptType::Text => json!(view.template.clone().unwrap_or_default()),
        PromptType::Chat => json!(
            view.messages
                .iter()
                .flatten()
                .map(|m| match m.role {
                    MessageRole::Placeholder => json!({"type": "placeholder", "name": m.content}),
                    _ => json!({"type": "chatmessage", "role": m.role.as_str(), "content": m.content}),
                })
                .collect::<Vec<_>>()
        ),
    };
    json!({
        "id": format!("{}@{}", view.name, view.version),
        "name": view.name,
        "version": view.version,
        "type": view.prompt_type.as_str(),
        "prompt": prompt,
        "config": view.config,
        "labels": view.labels.iter().map(|l| theirs(l)).collect::<Vec<_>>(),
        "tags": tags,
        "commitMessage": if view.message.is_empty() { Value::Null } else { json!(view.message) },
        "resolutionGraph": Value::Null,
        "createdBy": view.created_by,
        "createdAt": view.created_at,
        "updatedAt": updated_at,
        "projectId": "promptledger",
    })
}

#[derive(Deserialize)]
struct GetParams {
    version: Option<i64>,
    label: Option<String>,
    resolve: Option<bool>,
}

async fn get_prompt(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Query(p): Query<GetParams>,
) -> Result {
    let label = match (&p.version, &p.label) {
        (None, None) => Some(STABLE.to_owned()),
        (_, l) => l.as_deref().map(|l| ours(l).to_owned()),
    };
    let sel = Selector { version: p.version, label, ..Default::default() };
    let served = r.serve(&who, &name, &sel).await.map_err(|e| match e {
        // In Langfuse's words: the label asked for (or meant) is `production`.
        ServiceError::NotFound(m) if sel.label.as_deref() == Some(STABLE) => {
            ServiceError::NotFound(m.replace("'stable'", "'production'"))
        }
        e => e,
    })?;
    let raw;
    let view = if p.resolve == Some(false) {
        raw = served.raw_view();
        &raw
    } else {
        &served.view
    };
    // An application's key (the `app` scope) may serve prompts but not read the registry:
    // it gets the version without the prompt's tags.
    let (tags, updated_at) = match r.prompt(&who, &name) {
        Ok(summary) => (summary.tags, summary.updated_at),
        Err(ServiceError::Forbidden(_)) => (Vec::new(), view.created_at.clone()),
        Err(e) => return Err(e.into()),
    };
    Ok(axum::Json(prompt_json(view, &tags, &updated_at)).into_response())
}

/// One chat message of a create: `{"role", "content"}` (with an optional `"type":
/// "chatmessage"`), or a placeholder `{"type": "placeholder", "name"}`.
#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    role: Option<MessageRole>,
    #[serde(default)]
    content: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: String,
    prompt: Value,
    #[serde(rename = "type", default)]
    prompt_type: Option<PromptType>,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    labels: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    commit_message: Option<String>,
}

/// A create's content: its type, and its template or messages.
type Body = (PromptType, Option<String>, Option<Vec<Message>>);

fn body_of(b: &CreateBody) -> Result<Body> {
    match (b.prompt_type.unwrap_or(PromptType::Text), &b.prompt) {
        (PromptType::Text, Value::String(t)) => Ok((PromptType::Text, Some(t.clone()), None)),
        (PromptType::Chat, Value::Array(items)) => {
            let mut messages = Vec::with_capacity(items.len());
            for item in items {
                let wrong = || {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_body",
                        "each chat message is {\"role\": system|user|assistant, \"content\"} or {\"type\": \"placeholder\", \"name\"}",
                    )
                };
                let m: ChatMessage = serde_json::from_value(item.clone()).map_err(|_| wrong())?;
                messages.push(match (m.kind.as_deref(), m.role, m.content, m.name) {
                    (Some("placeholder"), None, None, Some(name)) => Message { role: MessageRole::Placeholder, content: name },
                    (None | Some("chatmessage"), Some(role), Some(content), None) if role != MessageRole::Placeholder => {
                        Message { role, content }
                    }
                    _ => return Err(wrong()),
                });
            }
            Ok((PromptType::Chat, None, Some(messages)))
        }
        (PromptType::Text, _) => Err(ApiError::bad_request("a text prompt's `prompt` is a string")),
        (PromptType::Chat, _) => Err(ApiError::bad_request("a chat prompt's `prompt` is a list of messages")),
    }
}

/// Creates the prompt, or its next version on top of the newest; then moves the labels
/// asked for (each under its rules; one that needs approval opens a request). The labels
/// are checked first, so a refused label leaves no version behind; a create racing
/// another one goes on top of it, as Langfuse's would.
async fn create(State(r): State<Registry>, Caller(who): Caller, Json(b): Json<CreateBody>) -> Result {
    let (prompt_type, template, messages) = body_of(&b)?;
    let labels = our_labels(b.labels.as_deref().unwrap_or_default());
    r.check_label_moves(&who, &b.name, None, &labels).await?;
    if let Some(tags) = &b.tags {
        service::check_tags(tags)?;
    }
    let mut attempts = 0;
    let view = loop {
        attempts += 1;
        let saved = match r.prompt(&who, &b.name) {
            Err(ServiceError::NotFound(_)) => {
                let req = NewPrompt {
                    name: b.name.clone(),
                    description: String::new(),
                    tags: b.tags.clone().unwrap_or_default(),
                    prompt_type: Some(prompt_type),
                    template: template.clone(),
                    messages: messages.clone(),
                    config: b.config.clone(),
                    message: b.commit_message.clone(),
                };
                r.create_prompt(&who, req).await
            }
            Err(e) => return Err(e.into()),
            Ok(summary) => {
                let newest = Selector { version: Some(summary.latest_version), ..Default::default() };
                if r.resolve(&who, &b.name, &newest).await?.view.prompt_type != prompt_type {
                    return Err(ApiError::bad_request(format!(
                        "'{}' is a {} prompt: a new version keeps its type; create a prompt with another name",
                        b.name,
                        if prompt_type == PromptType::Text { "chat" } else { "text" }
                    )));
                }
                let req = NewVersion {
                    base_version: Some(summary.latest_version),
                    prompt_type: Some(prompt_type),
                    template: template.clone(),
                    messages: messages.clone(),
                    config: Some(b.config.clone().unwrap_or_else(|| json!({}))),
                    message: b.commit_message.clone(),
                };
                r.add_version(&who, &b.name, req).await
            }
        };
        match saved {
            Err(ServiceError::NameTaken(_) | ServiceError::Stale { .. }) if attempts < 10 => continue,
            saved => break saved?,
        }
    };
    // As Langfuse: tags given replace the prompt's (a new prompt has them already).
    if let Some(tags) = b.tags.clone().filter(|_| view.version > 1) {
        r.update_details(&who, &b.name, PromptUpdate { tags: Some(tags), description: None }).await?;
    }
    move_labels(&r, &who, &b.name, view.version, &labels).await?;
    let summary = r.prompt(&who, &b.name)?;
    let served = r.resolve(&who, &b.name, &Selector { version: Some(view.version), ..Default::default() }).await?;
    Ok((StatusCode::CREATED, axum::Json(prompt_json(&served.view, &summary.tags, &summary.updated_at))).into_response())
}

/// Langfuse's labels as ours, without `latest` (which follows the newest version by
/// itself there too).
fn our_labels(labels: &[String]) -> Vec<&str> {
    labels.iter().map(|l| ours(l)).filter(|l| *l != LATEST).collect()
}

async fn move_labels(r: &Registry, who: &service::Principal, name: &str, version: i64, labels: &[&str]) -> Result<()> {
    for label in labels {
        // A label that needs approval opens a request; the version is returned as it is.
        r.move_label(who, name, label, MoveLabel { version, reason: "langfuse API".into() }).await?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    new_labels: Vec<String>,
}

async fn update_labels(
    State(r): State<Registry>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, i64)>,
    Json(b): Json<UpdateBody>,
) -> Result {
    let labels = our_labels(&b.new_labels);
    r.check_label_moves(&who, &name, Some(version), &labels).await?;
    move_labels(&r, &who, &name, version, &labels).await?;
    let summary = r.prompt(&who, &name)?;
    let served = r.resolve(&who, &name, &Selector { version: Some(version), ..Default::default() }).await?;
    Ok(axum::Json(prompt_json(&served.view, &summary.tags, &summary.updated_at)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    name: Option<String>,
    label: Option<String>,
    tag: Option<String>,
    page: Option<u64>,
    limit: Option<u64>,
}

/// `PromptMetaListResponse`: one entry per prompt with its versions and labels.
async fn list(State(r): State<Registry>, Caller(who): Caller, Query(p): Query<ListParams>) -> Result {
    let limit = p.limit.unwrap_or(50).clamp(1, 100) as usize;
    let page = p.page.unwrap_or(1).max(1) as usize;
    let mut matching = Vec::new();
    let mut cursor = None;
    loop {
        let query = PromptQuery { tag: p.tag.clone(), limit: Some(500), cursor, ..Default::default() };
        let listed = r.list_prompts(&who, &query)?;
        matching.extend(listed.items.into_iter().filter(|s| {
            p.name.as_deref().is_none_or(|n| s.name == n)
                && p.label.as_deref().is_none_or(|l| ours(l) == LATEST || s.labels.contains_key(ours(l)))
        }));
        match listed.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let total = matching.len();
    let mut data = Vec::new();
    for s in matching.iter().skip((page - 1).saturating_mul(limit)).take(limit) {
        // As Langfuse: with a label, only the version it names is listed, with its labels
        // and config; without, every version, every label and the newest's config.
        let only = p.label.as_deref().map(ours).filter(|l| *l != LATEST).and_then(|l| s.labels.get(l).copied());
        let versions: Vec<i64> = match only {
            Some(v) => vec![v],
            None => (1..=s.latest_version).collect(),
        };
        let mut labels: Vec<&str> =
            s.labels.iter().filter(|(_, v)| only.is_none_or(|o| **v == o)).map(|(l, _)| theirs(l)).collect();
        if only.is_none_or(|o| o == s.latest_version) {
            labels.push(LATEST);
        }
        let last = Selector { version: Some(only.unwrap_or(s.latest_version)), ..Default::default() };
        let view = r.resolve(&who, &s.name, &last).await?.view.clone();
        data.push(json!({"name": s.name, "type": view.prompt_type.as_str(), "versions": versions,
               "labels": labels, "tags": s.tags, "lastUpdatedAt": s.updated_at, "lastConfig": view.config}));
    }
    let meta = json!({"page": page, "limit": limit, "totalItems": total, "totalPages": total.div_ceil(limit)});
    Ok(axum::Json(json!({"data": data, "meta": meta})).into_response())
}

/// `auth_check()`: the one "project" these keys see.
async fn projects(Caller(_who): Caller) -> Result {
    let organization = json!({"id": "promptledger", "name": "promptledger"});
    let project = json!({"id": "promptledger", "name": "promptledger", "organization": organization, "metadata": {}});
    Ok(axum::Json(json!({"data": [project]})).into_response())
}
