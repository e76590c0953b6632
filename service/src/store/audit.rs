//! The hash-chained audit log.

use domain::audit::{EventFields, GENESIS};
use domain::model::AuditEvent;
use domain::vocabulary::AuditAction;
use serde_json::Value;
use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::{CHUNK, Sql, chunk_sql, corrupt, webhooks};
use crate::error::Result;
use crate::time::format_us;

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub prompt: Option<String>,
    pub version: Option<i64>,
    pub label: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The hash this row should have, recomputed from its fields.
    pub fn computed_hash(&self) -> String {
        let at = format_us(self.at);
        EventFields {
            seq: self.seq,
            at: &at,
            actor: &self.actor,
            action: &self.action,
            prompt: self.prompt.as_deref(),
            version: self.version,
            label: self.label.as_deref(),
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        }
        .hash()
    }
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            seq: r.seq,
            at: format_us(r.at),
            actor: r.actor,
            action: r.action,
            prompt: r.prompt,
            version: r.version,
            label: r.label,
            detail: serde_json::from_str(&r.detail).unwrap_or(Value::Null),
            hash: r.hash,
            prev_hash: r.prev_hash,
        }
    }
}

/// What a change records; the store adds seq, time and the chain.
pub struct NewEvent<'a> {
    pub actor: &'a str,
    pub action: AuditAction,
    pub prompt: Option<&'a str>,
    pub version: Option<i64>,
    pub label: Option<&'a str>,
    pub detail: Value,
}

/// Appends one event to the chain after `head` (read here when not known), inside the
/// caller's write transaction (through `WriteGuard::audit`); the new head.
pub(super) async fn append_event(
    conn: &mut AnyConnection,
    head: Option<(i64, String)>,
    at: i64,
    e: NewEvent<'_>,
) -> Result<(i64, String)> {
    let head = match head {
        Some(head) => Some(head),
        None => {
            sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let detail = domain::canonical::to_canonical_json(&e.detail);
    let row = AuditRow {
        seq,
        at,
        actor: e.actor.to_owned(),
        action: e.action.as_str().to_owned(),
        prompt: e.prompt.map(str::to_owned),
        version: e.version,
        label: e.label.map(str::to_owned),
        detail,
        prev_hash,
        hash: String::new(),
    };
    let hash = row.computed_hash();
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, prompt, version, label, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(row.seq)
    .bind(row.at)
    .bind(&row.actor)
    .bind(&row.action)
    .bind(&row.prompt)
    .bind(row.version)
    .bind(&row.label)
    .bind(&row.detail)
    .bind(&row.prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    if let Some(event) = e.action.webhook() {
        webhooks::enqueue(conn, event.as_str(), seq, at).await?;
    }
    // On PostgreSQL the insert's trigger announces the event to every replica, when (and
    // only if) the transaction commits.
    Ok((seq, hash))
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub prompt: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before_seq: Option<i64>,
}

pub async fn audit_page(ex: impl AnyExecutor<'_>, f: &AuditFilter, limit: i64) -> Result<Vec<AuditRow>> {
    let mut q = Sql::new(
        "SELECT seq, at, actor, action, prompt, version, label, detail, prev_hash, hash FROM audit_events WHERE 1 = 1",
    );
    if let Some(p) = &f.prompt {
        q.push(" AND prompt = ").bind(p.clone());
    }
    if let Some(a) = &f.actor {
        q.push(" AND actor = ").bind(a.clone());
    }
    if let Some(a) = &f.action {
        q.push(" AND action = ").bind(a.clone());
    }
    if let Some(t) = f.since {
        q.push(" AND at >= ").bind(t);
    }
    if let Some(t) = f.until {
        q.push(" AND at <= ").bind(t);
    }
    if let Some(s) = f.before_seq {
        q.push(" AND seq < ").bind(s);
    }
    q.push(" ORDER BY seq DESC LIMIT ").bind(limit);
    let (sql, args) = q.build()?;
    Ok(sqlx::query_as_with::<_, AuditRow, _>(&sql, args).fetch_all(ex).await?)
}

/// An event as a replica catching up reads it.
#[derive(FromRow)]
pub struct Change {
    pub seq: i64,
    pub action: String,
    pub prompt: Option<String>,
    pub version: Option<i64>,
    /// The replica that wrote it (PostgreSQL).
    pub replica: Option<String>,
    pub hash: String,
}

/// Every event after `seq`, oldest first; with the chain's head (seq, hash) as it is
/// now, when the log is not empty.
pub async fn changes_after(ex: impl AnyExecutor<'_>, seq: i64) -> Result<(Vec<Change>, Option<(i64, String)>)> {
    let mut rows: Vec<Change> = sqlx::query_as(
        "SELECT seq, action, prompt, version, replica, hash FROM audit_events WHERE seq >= $1 ORDER BY seq",
    )
    .bind(seq)
    .fetch_all(ex)
    .await?;
    let head = rows.last().map(|c| (c.seq, c.hash.clone()));
    rows.retain(|c| c.seq > seq);
    Ok((rows, head))
}

/// The newest event's hash (the chain's head), when there is one.
pub async fn head_hash(ex: impl AnyExecutor<'_>) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetch_optional(ex).await?)
}

/// The newest event's seq (0 when there is none).
pub async fn last_seq(ex: impl AnyExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetch_one(ex).await?)
}

type EventTuple = (i64, i64, String, String, Option<String>, Option<i64>, Option<String>, String, String, String);

/// Up to `CHUNK` events after `seq`, oldest first, for verification.
pub async fn events_after(conn: &mut AnyConnection, seq: i64) -> Result<Vec<AuditRow>> {
    let sql = chunk_sql(
        conn,
        "seq, at, actor, action, prompt, version, label, detail, prev_hash, hash",
        "audit_events WHERE seq > $1",
        "seq",
        "$2",
    );
    let json: String = sqlx::query_scalar(&sql).bind(seq).bind(CHUNK).fetch_one(&mut *conn).await?;
    let rows: Vec<EventTuple> = serde_json::from_str(&json).map_err(|_| corrupt("audit chunk"))?;
    Ok(rows
        .into_iter()
        .map(|r| AuditRow {
            seq: r.0,
            at: r.1,
            actor: r.2,
            action: r.3,
            prompt: r.4,
            version: r.5,
            label: r.6,
            detail: r.7,
            prev_hash: r.8,
            hash: r.9,
        })
        .collect())
}
