//! Prompts and their immutable versions.

use domain::content::{Content, Message, Parts, PromptBody};
use domain::model::VersionView;
use serde_json::{Map, Value};
use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::{CHUNK, chunk_sql, corrupt, inserted};
use crate::error::{Result, ServiceError};
use crate::time::format_us;

#[derive(Debug, Clone, FromRow)]
pub struct PromptRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub tags: String,
    pub updated_at: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub prompt_id: i64,
    pub version: i64,
    pub hash: String,
    #[sqlx(rename = "type")]
    pub prompt_type: String,
    pub template: Option<String>,
    pub messages: Option<String>,
    pub config: String,
    pub variables: String,
    pub message: String,
    pub created_by: String,
    pub created_at: i64,
}

impl VersionRow {
    /// The content as stored (not re-parsed: it was checked when saved).
    pub fn content(&self) -> Result<Content> {
        let body = match (self.prompt_type.as_str(), &self.template, &self.messages) {
            ("text", Some(t), _) => PromptBody::Text(t.clone()),
            ("chat", _, Some(m)) => {
                PromptBody::Chat(serde_json::from_str::<Vec<Message>>(m).map_err(|_| corrupt("messages"))?)
            }
            _ => return Err(corrupt("version body")),
        };
        let config: Map<String, Value> = serde_json::from_str(&self.config).map_err(|_| corrupt("config"))?;
        let variables: Vec<String> = serde_json::from_str(&self.variables).map_err(|_| corrupt("variables"))?;
        Ok(Content::stored(body, config, variables))
    }

    /// The stored parts, for recomputing the hash exactly over what is stored.
    pub fn parts(&self) -> Parts<'_> {
        Parts {
            prompt_type: &self.prompt_type,
            template: self.template.as_deref(),
            messages: self.messages.as_deref(),
            config: &self.config,
            variables: &self.variables,
        }
    }

    /// The version object without labels (the caller knows them).
    pub fn view(&self, name: &str, content: &Content) -> VersionView {
        VersionView {
            name: name.to_owned(),
            version: self.version,
            hash: self.hash.clone(),
            prompt_type: content.body.prompt_type(),
            template: content.body.template().map(str::to_owned),
            messages: content.body.messages().map(<[Message]>::to_vec),
            config: content.config.clone(),
            variables: content.variables.clone(),
            labels: Vec::new(),
            includes: Vec::new(),
            resolved_hash: self.hash.clone(),
            message: self.message.clone(),
            created_by: self.created_by.clone(),
            created_at: format_us(self.created_at),
            unchanged: None,
            rollout: None,
        }
    }
}

pub async fn prompt_by_name(ex: impl AnyExecutor<'_>, name: &str) -> Result<Option<PromptRow>> {
    Ok(sqlx::query_as::<_, PromptRow>(
        "SELECT id, name, description, tags, updated_at, updated_by FROM prompts WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(ex)
    .await?)
}

pub async fn all_prompts(ex: impl AnyExecutor<'_>) -> Result<Vec<PromptRow>> {
    Ok(sqlx::query_as::<_, PromptRow>("SELECT id, name, description, tags, updated_at, updated_by FROM prompts")
        .fetch_all(ex)
        .await?)
}

pub async fn insert_prompt(
    conn: &mut AnyConnection,
    name: &str,
    description: &str,
    tags: &[String],
    actor: &str,
    at: i64,
) -> Result<i64> {
    let tags = serde_json::to_string(tags).map_err(ServiceError::internal)?;
    let result = sqlx::query_scalar(
        "INSERT INTO prompts (name, description, tags, created_by, created_at, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(name)
    .bind(description)
    .bind(tags)
    .bind(actor)
    .bind(at)
    .bind(at)
    .bind(actor)
    .fetch_one(conn)
    .await;
    inserted(result, || format!("a prompt named '{name}' already exists"))
}

/// Sets a prompt's description and tags (and who changed it, when).
pub async fn set_prompt_details(
    conn: &mut AnyConnection,
    prompt_id: i64,
    description: &str,
    tags: &[String],
    at: i64,
    actor: &str,
) -> Result<()> {
    let tags = serde_json::to_string(tags).map_err(ServiceError::internal)?;
    sqlx::query("UPDATE prompts SET description = $1, tags = $2, updated_at = $3, updated_by = $4 WHERE id = $5")
        .bind(description)
        .bind(tags)
        .bind(at)
        .bind(actor)
        .bind(prompt_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn touch_prompt(conn: &mut AnyConnection, prompt_id: i64, at: i64, actor: &str) -> Result<()> {
    sqlx::query("UPDATE prompts SET updated_at = $1, updated_by = $2 WHERE id = $3")
        .bind(at)
        .bind(actor)
        .bind(prompt_id)
        .execute(conn)
        .await?;
    Ok(())
}

const VERSION_COLUMNS: &str =
    "prompt_id, version, hash, type, template, messages, config, variables, message, created_by, created_at";

pub async fn insert_version(conn: &mut AnyConnection, row: &VersionRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(row.prompt_id)
    .bind(row.version)
    .bind(&row.hash)
    .bind(&row.prompt_type)
    .bind(&row.template)
    .bind(&row.messages)
    .bind(&row.config)
    .bind(&row.variables)
    .bind(&row.message)
    .bind(&row.created_by)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn version(ex: impl AnyExecutor<'_>, prompt_id: i64, version: i64) -> Result<Option<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE prompt_id = $1 AND version = $2"
    ))
    .bind(prompt_id)
    .bind(version)
    .fetch_optional(ex)
    .await?)
}

/// Versions whose text mentions `name@` inside a tag (a superset of the versions that
/// include `name`; the caller reads the includes), oldest first.
pub async fn versions_mentioning(ex: impl AnyExecutor<'_>, name: &str) -> Result<Vec<VersionRow>> {
    let pattern = format!("%include%{name}@%");
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE template LIKE $1 OR messages LIKE $1 ORDER BY prompt_id, version"
    ))
    .bind(pattern)
    .fetch_all(ex)
    .await?)
}

/// The newest version of a prompt with this content hash, if any.
pub async fn version_with_hash(ex: impl AnyExecutor<'_>, prompt_id: i64, hash: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM versions WHERE prompt_id = $1 AND hash = $2")
        .bind(prompt_id)
        .bind(hash)
        .fetch_one(ex)
        .await?)
}

/// The newest version of the prompt named `name` (one query, for the write path).
pub async fn latest_version_named(ex: impl AnyExecutor<'_>, name: &str) -> Result<Option<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions
         WHERE prompt_id = (SELECT id FROM prompts WHERE name = $1) ORDER BY version DESC LIMIT 1"
    ))
    .bind(name)
    .fetch_optional(ex)
    .await?)
}

/// Versions older than `before` (all when `None`), newest first.
pub async fn versions_page(
    ex: impl AnyExecutor<'_>,
    prompt_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE prompt_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3"
    ))
    .bind(prompt_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(ex)
    .await?)
}

/// The versions the index serves at start-up: the newest of each prompt and every
/// version a label points at.
pub async fn served_versions(ex: impl AnyExecutor<'_>) -> Result<Vec<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "WITH current AS (
             SELECT prompt_id, version FROM label_moves
             WHERE id IN (SELECT MAX(id) FROM label_moves GROUP BY prompt_id, label)
             UNION SELECT prompt_id, MAX(version) FROM versions GROUP BY prompt_id)
         SELECT {VERSION_COLUMNS} FROM versions WHERE (prompt_id, version) IN (SELECT prompt_id, version FROM current)"
    ))
    .fetch_all(ex)
    .await?)
}

type VersionTuple = (i64, i64, String, String, Option<String>, Option<String>, String, String, String, String, i64);

/// Up to `CHUNK` versions after `(prompt_id, version)`, in key order.
pub async fn versions_after(conn: &mut AnyConnection, after: (i64, i64)) -> Result<Vec<VersionRow>> {
    let sql = chunk_sql(
        conn,
        "prompt_id, version, hash, type, template, messages, config, variables, message, created_by, created_at",
        "versions WHERE (prompt_id, version) > ($1, $2)",
        "prompt_id, version",
        "$3",
    );
    let json: String = sqlx::query_scalar(&sql).bind(after.0).bind(after.1).bind(CHUNK).fetch_one(&mut *conn).await?;
    let rows: Vec<VersionTuple> = serde_json::from_str(&json).map_err(|_| corrupt("version chunk"))?;
    Ok(rows
        .into_iter()
        .map(|r| VersionRow {
            prompt_id: r.0,
            version: r.1,
            hash: r.2,
            prompt_type: r.3,
            template: r.4,
            messages: r.5,
            config: r.6,
            variables: r.7,
            message: r.8,
            created_by: r.9,
            created_at: r.10,
        })
        .collect())
}

/// One prompt's served versions (as `served_versions`, for one prompt).
pub async fn served_versions_of(ex: impl AnyExecutor<'_>, prompt_id: i64) -> Result<Vec<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE prompt_id = $1 AND version IN (
             SELECT version FROM label_moves
             WHERE id IN (SELECT MAX(id) FROM label_moves WHERE prompt_id = $1 GROUP BY label)
             UNION SELECT MAX(version) FROM versions WHERE prompt_id = $1)"
    ))
    .bind(prompt_id)
    .fetch_all(ex)
    .await?)
}

/// The newest version created at or before `at`.
pub async fn latest_at(ex: impl AnyExecutor<'_>, prompt_id: i64, at: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MAX(version) FROM versions WHERE prompt_id = $1 AND created_at <= $2",
    )
    .bind(prompt_id)
    .bind(at)
    .fetch_one(ex)
    .await?)
}
