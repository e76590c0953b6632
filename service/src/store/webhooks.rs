//! SQL of webhooks: endpoints, and the outbox of deliveries.

use domain::model::{Webhook, WebhookDelivery};
use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::corrupt;
use crate::error::Result;
use crate::time::format_us;

/// Queues a delivery of audit event `seq` to every active webhook that wants `event`,
/// inside the change's own transaction.
pub async fn enqueue(conn: &mut AnyConnection, event: &str, seq: i64, at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, event, audit_seq, status, created_at, next_attempt_at)
         SELECT id, $1, $2, 'pending', $3, $3 FROM webhooks WHERE active = 1 AND events LIKE '%\"' || $1 || '\"%'",
    )
    .bind(event)
    .bind(seq)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct WebhookRow {
    id: String,
    url: String,
    events: String,
    #[sqlx(try_from = "super::Flag")]
    active: bool,
    created_by: String,
    created_at: i64,
}

impl WebhookRow {
    fn view(self) -> Result<Webhook> {
        Ok(Webhook {
            id: self.id,
            url: self.url,
            events: serde_json::from_str(&self.events).map_err(|_| corrupt("webhook events"))?,
            active: self.active,
            created_by: self.created_by,
            created_at: format_us(self.created_at),
        })
    }
}

pub async fn insert(
    conn: &mut AnyConnection,
    id: &str,
    url: &str,
    events: &[String],
    actor: &str,
    at: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO webhooks (id, url, events, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(url)
        .bind(serde_json::to_string(events).map_err(|_| corrupt("webhook events"))?)
        .bind(actor)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn deactivate(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let done =
        sqlx::query("UPDATE webhooks SET active = 0 WHERE id = $1 AND active = 1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn list(ex: impl AnyExecutor<'_>) -> Result<Vec<Webhook>> {
    let rows: Vec<WebhookRow> =
        sqlx::query_as("SELECT id, url, events, active, created_by, created_at FROM webhooks ORDER BY created_at")
            .fetch_all(ex)
            .await?;
    rows.into_iter().map(WebhookRow::view).collect()
}

pub async fn get(ex: impl AnyExecutor<'_>, id: &str) -> Result<Option<Webhook>> {
    let row: Option<WebhookRow> =
        sqlx::query_as("SELECT id, url, events, active, created_by, created_at FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(ex)
            .await?;
    row.map(WebhookRow::view).transpose()
}

#[derive(FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook_id: String,
    pub url: String,
    pub event: String,
    pub audit_seq: i64,
    pub status: String,
    pub attempts: i64,
    pub response_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
}

impl DeliveryRow {
    pub fn view(&self) -> WebhookDelivery {
        WebhookDelivery {
            id: self.id,
            webhook: self.webhook_id.clone(),
            event: self.event.clone(),
            audit_seq: self.audit_seq,
            status: self.status.clone(),
            attempts: self.attempts,
            response_code: self.response_code,
            last_error: self.last_error.clone(),
            created_at: format_us(self.created_at),
            next_attempt_at: (self.status == "pending").then(|| format_us(self.next_attempt_at)),
            delivered_at: self.delivered_at.map(format_us),
        }
    }
}

const DELIVERY: &str = "SELECT d.id, d.webhook_id, w.url, d.event, d.audit_seq, d.status, d.attempts, d.response_code,
    d.last_error, d.created_at, d.next_attempt_at, d.delivered_at FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id";

/// Deliveries due now (pending, next attempt passed), oldest first.
pub async fn due(ex: impl AnyExecutor<'_>, now: i64, limit: i64) -> Result<Vec<DeliveryRow>> {
    let sql = format!("{DELIVERY} WHERE d.status = 'pending' AND d.next_attempt_at <= $1 ORDER BY d.id LIMIT $2");
    Ok(sqlx::query_as(&sql).bind(now).bind(limit).fetch_all(ex).await?)
}

/// A webhook's deliveries, newest first.
pub async fn deliveries(ex: impl AnyExecutor<'_>, webhook: &str, limit: i64) -> Result<Vec<DeliveryRow>> {
    let sql = format!("{DELIVERY} WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT $2");
    Ok(sqlx::query_as(&sql).bind(webhook).bind(limit).fetch_all(ex).await?)
}

/// Records an attempt: delivered, retried at `next` (still pending), or failed for good.
pub async fn record_attempt(
    conn: &mut AnyConnection,
    id: i64,
    status: &str,
    response_code: Option<i64>,
    error: Option<&str>,
    next: i64,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, response_code = $2, last_error = $3,
           next_attempt_at = $4, delivered_at = CASE WHEN $5 = 'delivered' THEN $6 ELSE delivered_at END
         WHERE id = $7",
    )
    .bind(status)
    .bind(response_code)
    .bind(error)
    .bind(next)
    .bind(status)
    .bind(at)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// One audit event, the body of a delivery.
pub async fn audit_event(ex: impl AnyExecutor<'_>, seq: i64) -> Result<Option<super::AuditRow>> {
    Ok(sqlx::query_as(
        "SELECT seq, at, actor, action, prompt, version, label, detail, prev_hash, hash FROM audit_events WHERE seq = $1",
    )
    .bind(seq)
    .fetch_optional(ex)
    .await?)
}

/// Holds due deliveries for `until`, so a slow attempt is not picked up again meanwhile.
pub async fn lease(conn: &mut AnyConnection, ids: &[i64], until: i64) -> Result<()> {
    for id in ids {
        sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE id = $2")
            .bind(until)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
