//! SQL of releases: several label moves made together, and their rollbacks.

use domain::model::{Release, ReleaseMove};
use sqlx::{AnyConnection, FromRow};

use crate::error::Result;
use crate::time::format_us;

#[derive(FromRow)]
struct ReleaseRow {
    id: String,
    label: String,
    reason: String,
    created_by: String,
    created_at: i64,
    rollback_of: Option<String>,
    rolled_back_by: Option<String>,
}

#[derive(FromRow)]
struct MoveRow {
    release_id: String,
    prompt: String,
    version: i64,
    previous_version: Option<i64>,
}

pub struct NewRelease<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub reason: &'a str,
    pub created_by: &'a str,
    pub at: i64,
    pub rollback_of: Option<&'a str>,
}

/// Records a release and its moves (prompt id, version, previous version), in order;
/// a rollback marks the release it takes back.
pub async fn insert_release(
    conn: &mut AnyConnection,
    r: &NewRelease<'_>,
    moves: &[(i64, i64, Option<i64>)],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO releases (id, label, reason, created_by, created_at, rollback_of) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(r.id)
    .bind(r.label)
    .bind(r.reason)
    .bind(r.created_by)
    .bind(r.at)
    .bind(r.rollback_of)
    .execute(&mut *conn)
    .await?;
    for (position, (prompt_id, version, previous)) in moves.iter().enumerate() {
        sqlx::query(
            "INSERT INTO release_moves (release_id, position, prompt_id, version, previous_version)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(r.id)
        .bind(position as i64)
        .bind(*prompt_id)
        .bind(*version)
        .bind(*previous)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(taken_back) = r.rollback_of {
        sqlx::query("UPDATE releases SET rolled_back_by = $1 WHERE id = $2")
            .bind(r.id)
            .bind(taken_back)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

const COLUMNS: &str = "id, label, reason, created_by, created_at, rollback_of, rolled_back_by";

/// Releases, newest first (`before`: a creation time to page from), with their moves.
pub async fn releases(conn: &mut AnyConnection, before: Option<i64>, limit: i64) -> Result<Vec<Release>> {
    let rows: Vec<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM releases WHERE created_at < $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    with_moves(conn, rows).await
}

pub async fn release(conn: &mut AnyConnection, id: &str) -> Result<Option<Release>> {
    let rows: Vec<ReleaseRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM releases WHERE id = $1")).bind(id).fetch_all(&mut *conn).await?;
    Ok(with_moves(conn, rows).await?.pop())
}

async fn with_moves(conn: &mut AnyConnection, rows: Vec<ReleaseRow>) -> Result<Vec<Release>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let moves: Vec<MoveRow> = sqlx::query_as(
            "SELECT m.release_id, p.name AS prompt, m.version, m.previous_version
             FROM release_moves m JOIN prompts p ON p.id = m.prompt_id WHERE m.release_id = $1 ORDER BY m.position",
        )
        .bind(&row.id)
        .fetch_all(&mut *conn)
        .await?;
        out.push(Release {
            moves: moves
                .into_iter()
                .filter(|m| m.release_id == row.id)
                .map(|m| ReleaseMove { prompt: m.prompt, version: m.version, previous_version: m.previous_version })
                .collect(),
            id: row.id,
            label: row.label,
            reason: row.reason,
            created_by: row.created_by,
            at: format_us(row.created_at),
            rollback_of: row.rollback_of,
            rolled_back_by: row.rolled_back_by,
        });
    }
    Ok(out)
}
