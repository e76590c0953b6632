//! Label moves: append-only, so where a label pointed at any instant is a query.

use domain::model::LabelMove;
use sqlx::{AnyConnection, AnyExecutor, FromRow};

use crate::error::Result;
use crate::time::format_us;

#[derive(Debug, Clone, FromRow)]
pub struct LabelMoveRow {
    pub prompt_id: i64,
    pub label: String,
    pub version: i64,
    pub previous_version: Option<i64>,
    pub actor: String,
    pub reason: String,
    pub at: i64,
}

impl From<LabelMoveRow> for LabelMove {
    fn from(r: LabelMoveRow) -> Self {
        LabelMove {
            label: r.label,
            version: r.version,
            previous_version: r.previous_version,
            actor: r.actor,
            reason: r.reason,
            at: format_us(r.at),
        }
    }
}

/// The label each prompt's labels point at now: the last move of each.
pub async fn current_labels(ex: impl AnyExecutor<'_>) -> Result<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT prompt_id, label, version FROM label_moves
         WHERE id IN (SELECT MAX(id) FROM label_moves GROUP BY prompt_id, label)",
    )
    .fetch_all(ex)
    .await?)
}

/// Where one prompt's labels point now.
pub async fn labels_of(ex: impl AnyExecutor<'_>, prompt_id: i64) -> Result<std::collections::BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT label, version FROM label_moves
         WHERE id IN (SELECT MAX(id) FROM label_moves WHERE prompt_id = $1 GROUP BY label)",
    )
    .bind(prompt_id)
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().collect())
}

pub async fn insert_label_move(conn: &mut AnyConnection, m: &LabelMoveRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO label_moves (prompt_id, label, version, previous_version, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(m.prompt_id)
    .bind(&m.label)
    .bind(m.version)
    .bind(m.previous_version)
    .bind(&m.actor)
    .bind(&m.reason)
    .bind(m.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where `label` pointed at instant `at` (the last move at or before it).
pub async fn label_at(ex: impl AnyExecutor<'_>, prompt_id: i64, label: &str, at: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT version FROM label_moves WHERE prompt_id = $1 AND label = $2 AND at <= $3 ORDER BY at DESC, id DESC LIMIT 1",
    )
    .bind(prompt_id)
    .bind(label)
    .bind(at)
    .fetch_optional(ex)
    .await?)
}

pub async fn label_history(ex: impl AnyExecutor<'_>, prompt_id: i64, limit: i64) -> Result<Vec<LabelMoveRow>> {
    Ok(sqlx::query_as::<_, LabelMoveRow>(
        "SELECT prompt_id, label, version, previous_version, actor, reason, at FROM label_moves
         WHERE prompt_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(prompt_id)
    .bind(limit)
    .fetch_all(ex)
    .await?)
}
