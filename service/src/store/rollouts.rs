//! SQL of rollouts: the plan and state, the phases (stretches at one weight) and the
//! judge's verdicts. In the registry's file: every change is audited with it.

use domain::rollout::{Guard, Outcome, RolloutStatus, Verdict};
use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::corrupt;
use crate::error::Result;
use crate::time::format_us;

#[derive(Debug, Clone, FromRow)]
pub struct RolloutRow {
    pub id: String,
    pub prompt_id: i64,
    pub prompt: String,
    pub label: String,
    pub base_version: i64,
    pub candidate_version: i64,
    pub steps: String,
    pub step_seconds: i64,
    pub min_samples: i64,
    pub guards: String,
    pub reason: String,
    pub status: String,
    pub step: i64,
    pub weight: i64,
    pub step_started_at: i64,
    pub note: Option<String>,
    pub created_by: String,
    pub creator_user_id: Option<i64>,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub ended_by: Option<String>,
}

impl RolloutRow {
    pub fn status(&self) -> Result<RolloutStatus> {
        RolloutStatus::parse(&self.status).ok_or_else(|| corrupt("rollout status"))
    }

    pub fn steps(&self) -> Result<Vec<u32>> {
        serde_json::from_str(&self.steps).map_err(|_| corrupt("rollout steps"))
    }

    pub fn guards(&self) -> Result<Vec<Guard>> {
        serde_json::from_str(&self.guards).map_err(|_| corrupt("rollout guards"))
    }
}

const COLUMNS: &str = "r.id, r.prompt_id, p.name AS prompt, r.label, r.base_version, r.candidate_version, r.steps,
    r.step_seconds, r.min_samples, r.guards, r.reason, r.status, r.step, r.weight, r.step_started_at, r.note,
    r.created_by, r.creator_user_id, r.created_at, r.ended_at, r.ended_by";

pub async fn insert(conn: &mut AnyConnection, r: &RolloutRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO rollouts (id, prompt_id, label, base_version, candidate_version, steps, step_seconds, min_samples,
             guards, reason, status, step, weight, step_started_at, note, created_by, creator_user_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&r.id)
    .bind(r.prompt_id)
    .bind(&r.label)
    .bind(r.base_version)
    .bind(r.candidate_version)
    .bind(&r.steps)
    .bind(r.step_seconds)
    .bind(r.min_samples)
    .bind(&r.guards)
    .bind(&r.reason)
    .bind(&r.status)
    .bind(r.step)
    .bind(r.weight)
    .bind(r.step_started_at)
    .bind(&r.note)
    .bind(&r.created_by)
    .bind(r.creator_user_id)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes where a rollout is now (status, step, weight, note, end).
pub async fn update(conn: &mut AnyConnection, r: &RolloutRow) -> Result<()> {
    sqlx::query(
        "UPDATE rollouts SET status = $1, step = $2, weight = $3, step_started_at = $4, note = $5, ended_at = $6, ended_by = $7
         WHERE id = $8",
    )
    .bind(&r.status)
    .bind(r.step)
    .bind(r.weight)
    .bind(r.step_started_at)
    .bind(&r.note)
    .bind(r.ended_at)
    .bind(&r.ended_by)
    .bind(&r.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(ex: impl AnyExecutor<'_>, id: &str) -> Result<Option<RolloutRow>> {
    let sql = format!("SELECT {COLUMNS} FROM rollouts r JOIN prompts p ON p.id = r.prompt_id WHERE r.id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(ex).await?)
}

/// Running and paused rollouts.
pub async fn live(ex: impl AnyExecutor<'_>) -> Result<Vec<RolloutRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM rollouts r JOIN prompts p ON p.id = r.prompt_id WHERE r.status IN ('running', 'paused')"
    );
    Ok(sqlx::query_as(&sql).fetch_all(ex).await?)
}

/// The live rollout of a prompt's label, if any.
pub async fn live_on(ex: impl AnyExecutor<'_>, prompt_id: i64, label: &str) -> Result<Option<RolloutRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM rollouts r JOIN prompts p ON p.id = r.prompt_id
         WHERE r.prompt_id = $1 AND r.label = $2 AND r.status IN ('running', 'paused')"
    );
    Ok(sqlx::query_as(&sql).bind(prompt_id).bind(label).fetch_optional(ex).await?)
}

/// A prompt's rollouts, newest first.
pub async fn of_prompt(ex: impl AnyExecutor<'_>, prompt_id: i64, limit: i64) -> Result<Vec<RolloutRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM rollouts r JOIN prompts p ON p.id = r.prompt_id
         WHERE r.prompt_id = $1 ORDER BY r.created_at DESC, r.id LIMIT $2"
    );
    Ok(sqlx::query_as(&sql).bind(prompt_id).bind(limit).fetch_all(ex).await?)
}

#[derive(Debug, Clone, FromRow)]
pub struct PhaseRow {
    pub phase: i64,
    pub step: i64,
    pub weight: i64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

/// Ends the current phase (if any) at `at` and starts the next at `weight`.
pub async fn start_phase(
    conn: &mut AnyConnection,
    rollout: &str,
    step: i64,
    weight: i64,
    at: i64,
    actor: &str,
) -> Result<i64> {
    end_phase(conn, rollout, at).await?;
    let phase: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(phase) + 1, 0) FROM rollout_phases WHERE rollout_id = $1")
        .bind(rollout)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO rollout_phases (rollout_id, phase, step, weight, started_at, actor) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(rollout)
    .bind(phase)
    .bind(step)
    .bind(weight)
    .bind(at)
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(phase)
}

pub async fn end_phase(conn: &mut AnyConnection, rollout: &str, at: i64) -> Result<()> {
    sqlx::query("UPDATE rollout_phases SET ended_at = $1 WHERE rollout_id = $2 AND ended_at IS NULL")
        .bind(at)
        .bind(rollout)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn phases(ex: impl AnyExecutor<'_>, rollout: &str) -> Result<Vec<PhaseRow>> {
    Ok(sqlx::query_as(
        "SELECT phase, step, weight, started_at, ended_at FROM rollout_phases WHERE rollout_id = $1 ORDER BY phase",
    )
    .bind(rollout)
    .fetch_all(ex)
    .await?)
}

/// The phase of a rollout on `prompt_id`'s `label` serving at instant `at`, with its
/// rollout (for `at=`): (rollout id, candidate version, weight).
pub async fn serving_at(
    ex: impl AnyExecutor<'_>,
    prompt_id: i64,
    label: &str,
    at: i64,
) -> Result<Option<(String, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT r.id, r.candidate_version, f.weight FROM rollout_phases f JOIN rollouts r ON r.id = f.rollout_id
         WHERE r.prompt_id = $1 AND r.label = $2 AND f.started_at <= $3 AND (f.ended_at IS NULL OR f.ended_at > $4)
         ORDER BY f.started_at DESC LIMIT 1",
    )
    .bind(prompt_id)
    .bind(label)
    .bind(at)
    .bind(at)
    .fetch_optional(ex)
    .await?)
}

/// A phase of a rollout with its rollout's plan, for the label history.
#[derive(Debug, Clone, FromRow)]
pub struct WeightRow {
    pub rollout: String,
    pub label: String,
    pub base_version: i64,
    pub candidate_version: i64,
    pub weight: i64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub actor: String,
    pub reason: String,
}

/// Every phase of a prompt's rollouts, newest first (the label history).
pub async fn weight_history(ex: impl AnyExecutor<'_>, prompt_id: i64, limit: i64) -> Result<Vec<WeightRow>> {
    Ok(sqlx::query_as(
        "SELECT r.id AS rollout, r.label, r.base_version, r.candidate_version, f.weight, f.started_at, f.ended_at,
                f.actor, r.reason
         FROM rollout_phases f JOIN rollouts r ON r.id = f.rollout_id
         WHERE r.prompt_id = $1 ORDER BY f.started_at DESC, f.phase DESC LIMIT $2",
    )
    .bind(prompt_id)
    .bind(limit)
    .fetch_all(ex)
    .await?)
}

pub async fn insert_verdict(conn: &mut AnyConnection, rollout: &str, at: i64, v: &Verdict) -> Result<()> {
    let outcome = match v.outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Insufficient => "insufficient",
    };
    sqlx::query(
        "INSERT INTO rollout_verdicts (rollout_id, at, step, guard, base, candidate, outcome, p_value, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(rollout)
    .bind(at)
    .bind(v.step)
    .bind(&v.guard)
    .bind(super::Double(v.base))
    .bind(super::Double(v.candidate))
    .bind(outcome)
    .bind(super::Double(v.p_value))
    .bind(&v.message)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct VerdictRow {
    at: i64,
    step: i64,
    guard: String,
    base: Option<f64>,
    candidate: Option<f64>,
    outcome: String,
    p_value: Option<f64>,
    message: String,
}

pub async fn verdicts(ex: impl AnyExecutor<'_>, rollout: &str) -> Result<Vec<Verdict>> {
    let rows: Vec<VerdictRow> = sqlx::query_as(
        "SELECT at, step, guard, base, candidate, outcome, p_value, message FROM rollout_verdicts
         WHERE rollout_id = $1 ORDER BY id",
    )
    .bind(rollout)
    .fetch_all(ex)
    .await?;
    rows.into_iter()
        .map(|r| {
            let outcome = match r.outcome.as_str() {
                "pass" => Outcome::Pass,
                "fail" => Outcome::Fail,
                "insufficient" => Outcome::Insufficient,
                _ => return Err(corrupt("verdict outcome")),
            };
            Ok(Verdict {
                at: format_us(r.at),
                step: r.step,
                guard: r.guard,
                base: r.base,
                candidate: r.candidate,
                outcome,
                p_value: r.p_value,
                message: r.message,
            })
        })
        .collect()
}
