//! SQL of governance: label policies and label requests.

use domain::model::{EvalGate, LabelPolicy, LabelRequest, ReleasePlan, RequestStatus};
use domain::rollout::NewRollout;
use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::corrupt;
use crate::error::Result;
use crate::time::format_us;

pub async fn policy(ex: impl AnyExecutor<'_>, label: &str) -> Result<LabelPolicy> {
    let row: Option<(super::Flag, Option<String>, super::Flag)> =
        sqlx::query_as("SELECT protected, require_eval, require_approval FROM label_policies WHERE label = $1")
            .bind(label)
            .fetch_optional(ex)
            .await?;
    let Some((protected, gate, require_approval)) = row else { return Ok(LabelPolicy::default()) };
    let require_eval =
        gate.map(|g| serde_json::from_str::<EvalGate>(&g).map_err(|_| corrupt("eval gate"))).transpose()?;
    Ok(LabelPolicy { protected: protected.0, require_eval, require_approval: require_approval.0 })
}

pub async fn set_policy(conn: &mut AnyConnection, label: &str, p: &LabelPolicy) -> Result<()> {
    let gate = p
        .require_eval
        .as_ref()
        .map(|g| serde_json::json!({"suite": g.suite, "min_pass_rate": g.min_pass_rate}).to_string());
    sqlx::query(
        "INSERT INTO label_policies (label, protected, require_eval, require_approval) VALUES ($1, $2, $3, $4)
         ON CONFLICT (label) DO UPDATE SET protected = excluded.protected, require_eval = excluded.require_eval,
           require_approval = excluded.require_approval",
    )
    .bind(label)
    .bind(super::Flag(p.protected))
    .bind(gate)
    .bind(super::Flag(p.require_approval))
    .execute(conn)
    .await?;
    Ok(())
}

pub struct NewRequest<'a> {
    pub id: &'a str,
    pub prompt_id: i64,
    pub label: &'a str,
    pub version: i64,
    pub reason: &'a str,
    pub requested_by: &'a str,
    pub requester_user_id: Option<i64>,
    pub at: i64,
    pub expires_at: i64,
    /// The plan, as JSON, when the request is for a gradual rollout.
    pub rollout: Option<&'a str>,
    /// The plan, as JSON, when the request is for a whole release.
    pub release: Option<&'a str>,
}

pub async fn insert_request(conn: &mut AnyConnection, r: &NewRequest<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO label_requests (id, prompt_id, label, version, reason, requested_by, requester_user_id, status,
           created_at, expires_at, rollout, release_plan)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11)",
    )
    .bind(r.id)
    .bind(r.prompt_id)
    .bind(r.label)
    .bind(r.version)
    .bind(r.reason)
    .bind(r.requested_by)
    .bind(r.requester_user_id)
    .bind(r.at)
    .bind(r.expires_at)
    .bind(r.rollout)
    .bind(r.release)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(FromRow)]
pub struct RequestRow {
    pub id: String,
    pub prompt: String,
    pub label: String,
    pub version: i64,
    pub reason: String,
    pub requested_by: String,
    pub requester_user_id: Option<i64>,
    pub status: String,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    pub rollout: Option<String>,
    pub release_plan: Option<String>,
}

impl RequestRow {
    /// The rollout plan, when the request is for a gradual rollout.
    pub fn rollout_plan(&self) -> Result<Option<NewRollout>> {
        self.rollout.as_deref().map(|p| serde_json::from_str(p).map_err(|_| corrupt("request rollout"))).transpose()
    }

    /// The release plan, when the request is for a whole release.
    pub fn release(&self) -> Result<Option<ReleasePlan>> {
        self.release_plan.as_deref().map(|p| serde_json::from_str(p).map_err(|_| corrupt("request release"))).transpose()
    }

    pub fn view(&self) -> Result<LabelRequest> {
        Ok(LabelRequest {
            id: self.id.clone(),
            prompt: self.prompt.clone(),
            label: self.label.clone(),
            version: self.version,
            reason: self.reason.clone(),
            requested_by: self.requested_by.clone(),
            status: RequestStatus::parse(&self.status).ok_or_else(|| corrupt("request status"))?,
            decided_by: self.decided_by.clone(),
            comment: self.comment.clone(),
            created_at: format_us(self.created_at),
            expires_at: format_us(self.expires_at),
            decided_at: self.decided_at.map(format_us),
            rollout: self.rollout_plan()?,
            release: self.release()?,
        })
    }
}

const COLUMNS: &str = "q.id, p.name AS prompt, q.label, q.version, q.reason, q.requested_by, q.requester_user_id,
    q.status, q.decided_by, q.comment, q.created_at, q.expires_at, q.decided_at, q.rollout, q.release_plan";

pub async fn request(ex: impl AnyExecutor<'_>, id: &str) -> Result<Option<RequestRow>> {
    let sql = format!("SELECT {COLUMNS} FROM label_requests q JOIN prompts p ON p.id = q.prompt_id WHERE q.id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(ex).await?)
}

/// Requests, newest first, optionally of one status.
pub async fn requests(ex: impl AnyExecutor<'_>, status: Option<RequestStatus>, limit: i64) -> Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM label_requests q JOIN prompts p ON p.id = q.prompt_id
         WHERE ($1 IS NULL OR q.status = $1) ORDER BY q.created_at DESC LIMIT $2"
    );
    Ok(sqlx::query_as(&sql).bind(status.map(RequestStatus::as_str)).bind(limit).fetch_all(ex).await?)
}

/// Closes a pending request; false when it was no longer pending.
pub async fn decide(
    conn: &mut AnyConnection,
    id: &str,
    status: RequestStatus,
    decided_by: &str,
    comment: Option<&str>,
    at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE label_requests SET status = $1, decided_by = $2, comment = $3, decided_at = $4 WHERE id = $5 AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(decided_by)
    .bind(comment)
    .bind(at)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Pending requests past their expiry.
pub async fn due(ex: impl AnyExecutor<'_>, now: i64) -> Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM label_requests q JOIN prompts p ON p.id = q.prompt_id
         WHERE q.status = 'pending' AND q.expires_at <= $1"
    );
    Ok(sqlx::query_as(&sql).bind(now).fetch_all(ex).await?)
}

/// Every label that has a policy row, by label.
pub async fn policies(ex: impl AnyExecutor<'_>) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT label FROM label_policies ORDER BY label").fetch_all(ex).await?)
}
