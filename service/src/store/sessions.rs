//! Console sessions and the sign-in rate limit.

use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::Flag;

use crate::error::Result;

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub username: String,
    pub role: String,
    #[sqlx(try_from = "Flag")]
    pub disabled: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
}

pub async fn session(ex: impl AnyExecutor<'_>, id_hash: &[u8]) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as::<_, SessionRow>(
        "SELECT s.user_id, u.username, u.role, u.disabled, s.created_at, s.last_seen_at
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
    )
    .bind(id_hash)
    .fetch_optional(ex)
    .await?)
}

pub async fn insert_session(conn: &mut AnyConnection, id_hash: &[u8], user_id: i64, at: i64) -> Result<()> {
    sqlx::query("INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4)")
        .bind(id_hash)
        .bind(user_id)
        .bind(at)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn touch_session(conn: &mut AnyConnection, id_hash: &[u8], at: i64) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(at)
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_session(conn: &mut AnyConnection, id_hash: &[u8]) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(conn).await?;
    Ok(())
}

pub async fn delete_user_sessions(conn: &mut AnyConnection, user_id: i64) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(conn).await?;
    Ok(())
}

/// Removes sessions idle since `idle_before` or created before `created_before`.
pub async fn delete_expired_sessions(conn: &mut AnyConnection, idle_before: i64, created_before: i64) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
        .bind(idle_before)
        .bind(created_before)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- sign-in rate limit

/// Failed sign-ins for `key` since `since`: how many, and when the oldest was.
pub async fn login_failures(ex: impl AnyExecutor<'_>, key: &str, since: i64) -> Result<(i64, i64)> {
    let (count, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM login_failures WHERE key = $1 AND at > $2")
            .bind(key)
            .bind(since)
            .fetch_one(ex)
            .await?;
    Ok((count, oldest.unwrap_or(since)))
}

/// Records a failed sign-in under each of `keys`, and forgets failures before `forget_before`.
pub async fn insert_login_failures(conn: &mut AnyConnection, keys: &[&str], at: i64, forget_before: i64) -> Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE at < $1").bind(forget_before).execute(&mut *conn).await?;
    for key in keys {
        sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
            .bind(key)
            .bind(at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn delete_login_failures(conn: &mut AnyConnection, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1").bind(key).execute(conn).await?;
    Ok(())
}
