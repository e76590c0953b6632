//! SQL of impact checks: a candidate version of an included prompt run against the
//! suites of the prompts that include it.

use sqlx::{AnyConnection, AnyExecutor, FromRow};

use crate::error::Result;

#[derive(FromRow)]
pub struct ImpactRow {
    pub id: String,
    pub prompt: String,
    pub version: i64,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(FromRow, Clone)]
pub struct ImpactRunRow {
    pub dependent: String,
    pub dependent_version: i64,
    pub label: String,
    pub suite: String,
    pub baseline_run: Option<String>,
    pub candidate_run: Option<String>,
    pub error: Option<String>,
}

pub async fn insert_impact(
    conn: &mut AnyConnection,
    impact: &ImpactRow,
    prompt_id: i64,
    runs: &[ImpactRunRow],
) -> Result<()> {
    sqlx::query("INSERT INTO impacts (id, prompt_id, version, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&impact.id)
        .bind(prompt_id)
        .bind(impact.version)
        .bind(&impact.created_by)
        .bind(impact.created_at)
        .execute(&mut *conn)
        .await?;
    for (position, r) in runs.iter().enumerate() {
        sqlx::query(
            "INSERT INTO impact_runs (impact_id, position, dependent, dependent_version, label, suite, baseline_run,
               candidate_run, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&impact.id)
        .bind(position as i64)
        .bind(&r.dependent)
        .bind(r.dependent_version)
        .bind(&r.label)
        .bind(&r.suite)
        .bind(&r.baseline_run)
        .bind(&r.candidate_run)
        .bind(&r.error)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

const COLUMNS: &str = "i.id, p.name AS prompt, i.version, i.created_by, i.created_at";

pub async fn impact(ex: impl AnyExecutor<'_>, id: &str) -> Result<Option<ImpactRow>> {
    let sql = format!("SELECT {COLUMNS} FROM impacts i JOIN prompts p ON p.id = i.prompt_id WHERE i.id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(ex).await?)
}

/// The impact checks of one version of a prompt, newest first.
pub async fn impacts_of(ex: impl AnyExecutor<'_>, prompt_id: i64, version: i64) -> Result<Vec<ImpactRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM impacts i JOIN prompts p ON p.id = i.prompt_id
         WHERE i.prompt_id = $1 AND i.version = $2 ORDER BY i.created_at DESC LIMIT 20"
    );
    Ok(sqlx::query_as(&sql).bind(prompt_id).bind(version).fetch_all(ex).await?)
}

pub async fn impact_runs(ex: impl AnyExecutor<'_>, id: &str) -> Result<Vec<ImpactRunRow>> {
    Ok(sqlx::query_as(
        "SELECT dependent, dependent_version, label, suite, baseline_run, candidate_run, error
         FROM impact_runs WHERE impact_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(ex)
    .await?)
}

/// A run's status, cases passed and cases in all.
pub async fn run_brief(ex: impl AnyExecutor<'_>, id: &str) -> Result<Option<(String, i64, i64)>> {
    Ok(sqlx::query_as("SELECT status, passed, total FROM eval_runs WHERE id = $1")
        .bind(id)
        .fetch_optional(ex)
        .await?)
}
