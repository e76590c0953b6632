//! Users and API keys.

use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::{Flag, inserted};
use crate::error::Result;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub password_hash: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub disabled: bool,
    pub created_at: i64,
}

pub async fn user_by_name(ex: impl AnyExecutor<'_>, username: &str) -> Result<Option<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(
        "SELECT id, username, role, password_hash, disabled, created_at FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(ex)
    .await?)
}

pub async fn users(ex: impl AnyExecutor<'_>) -> Result<Vec<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(
        "SELECT id, username, role, password_hash, disabled, created_at FROM users ORDER BY username",
    )
    .fetch_all(ex)
    .await?)
}

pub async fn count_users(ex: impl AnyExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(ex).await?)
}

pub async fn insert_user(
    conn: &mut AnyConnection,
    username: &str,
    role: &str,
    password_hash: Option<&str>,
    at: i64,
) -> Result<i64> {
    let result = sqlx::query_scalar(
        "INSERT INTO users (username, role, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(username)
    .bind(role)
    .bind(password_hash)
    .bind(at)
    .fetch_one(conn)
    .await;
    inserted(result, || format!("a user named '{username}' already exists"))
}

#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub scope: String,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub user_role: Option<String>,
    /// Whether the key's user is disabled (false for a service key).
    #[sqlx(try_from = "Flag")]
    pub user_disabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const KEY_SELECT: &str = "SELECT k.id, k.name, k.prefix, k.scope, k.user_id, u.username, u.role AS user_role,
    COALESCE(u.disabled, 0) AS user_disabled, k.created_by, k.created_at, k.revoked_at
    FROM api_keys k LEFT JOIN users u ON u.id = k.user_id";

pub async fn key_by_hash(ex: impl AnyExecutor<'_>, key_hash: &[u8]) -> Result<Option<KeyRow>> {
    Ok(sqlx::query_as::<_, KeyRow>(&format!("{KEY_SELECT} WHERE k.key_hash = $1"))
        .bind(key_hash)
        .fetch_optional(ex)
        .await?)
}

pub async fn key_by_name(ex: impl AnyExecutor<'_>, name: &str) -> Result<Option<KeyRow>> {
    Ok(sqlx::query_as::<_, KeyRow>(&format!("{KEY_SELECT} WHERE k.name = $1")).bind(name).fetch_optional(ex).await?)
}

pub async fn keys(ex: impl AnyExecutor<'_>) -> Result<Vec<KeyRow>> {
    Ok(sqlx::query_as::<_, KeyRow>(&format!("{KEY_SELECT} ORDER BY k.name")).fetch_all(ex).await?)
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_key(
    conn: &mut AnyConnection,
    name: &str,
    prefix: &str,
    key_hash: &[u8],
    scope: &str,
    user_id: Option<i64>,
    created_by: &str,
    at: i64,
) -> Result<i64> {
    let result = sqlx::query_scalar(
        "INSERT INTO api_keys (name, prefix, key_hash, scope, user_id, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(name)
    .bind(prefix)
    .bind(key_hash)
    .bind(scope)
    .bind(user_id)
    .bind(created_by)
    .bind(at)
    .fetch_one(conn)
    .await;
    inserted(result, || format!("an API key named '{name}' already exists"))
}

pub async fn revoke_key(conn: &mut AnyConnection, id: i64, at: i64) -> Result<()> {
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_user(conn: &mut AnyConnection, id: i64, role: &str, disabled: bool) -> Result<()> {
    sqlx::query("UPDATE users SET role = $1, disabled = $2 WHERE id = $3")
        .bind(role)
        .bind(Flag(disabled))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_password(conn: &mut AnyConnection, id: i64, password_hash: &str) -> Result<()> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(password_hash).bind(id).execute(conn).await?;
    Ok(())
}
