//! Webhooks: admins register endpoints for events; every matching change queues a
//! delivery in its own transaction (an outbox), and a worker sends them signed with
//! HMAC-SHA256, retries failures with backoff and records every attempt. A failing
//! endpoint never slows or blocks the change that raised the event.
//!
//! Signature: `X-Promptledger-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is
//! HMAC-SHA256 keyed with the webhook's secret over `<t>.<body>`. The secret
//! (`whsec_...`, shown once at creation) is derived from the server's key and the
//! webhook's id; it is never stored.

use std::time::Duration;

use domain::access::Action;
use domain::model::{AuditEvent, CreatedWebhook, NewWebhook, Webhook, WebhookDelivery};
use domain::vocabulary::{AuditAction, WebhookEvent};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::store::{NewEvent, webhooks as sql};
use crate::{Principal, Registry, Result, ServiceError, time};

/// Delivery timing; tests shorten it.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// How often the worker looks for due deliveries.
    pub poll: Duration,
    /// Per attempt.
    pub timeout: Duration,
    /// The first retry waits about this long; each next one twice as long (with jitter).
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            poll: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            max_attempts: 8,
        }
    }
}

/// Deliveries sent per pass of the worker, at most.
const BATCH: i64 = 64;
const LIST: i64 = 200;

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// `t=<t>,v1=<hex>` for `body` sent at `t` with `secret`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", hmac_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes()))
}

impl Registry {
    pub fn configure_webhooks(&self, settings: WebhookSettings) {
        *self.inner.webhook_settings.write() = settings;
    }

    fn webhook_secret(&self, id: &str) -> String {
        format!("whsec_{}", hmac_hex(&self.inner.server_key, format!("webhook:{id}").as_bytes()))
    }

    /// Registers an endpoint for events (admins); the answer holds its signing secret,
    /// shown this once.
    pub async fn create_webhook(&self, who: &Principal, req: NewWebhook) -> Result<CreatedWebhook> {
        who.require(Action::Administer)?;
        if !crate::is_http_url(&req.url) {
            return Err(ServiceError::rule("invalid_url", format!("'{}' is not an http(s) URL", req.url)));
        }
        let mut events = req.events.clone();
        events.sort();
        events.dedup();
        if events.is_empty() || events.iter().any(|e| WebhookEvent::parse(e).is_none()) {
            return Err(ServiceError::rule(
                "invalid_events",
                format!(
                    "events must be one or more of: {}",
                    WebhookEvent::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let id = crate::random_id("wh")?;
        let at = time::now_us();
        let mut w = self.write().await?;
        sql::insert(w.conn(), &id, &req.url, &events, &who.actor, at).await?;
        let detail = json!({"webhook": id, "url": req.url, "events": events});
        let e = NewEvent {
            actor: &who.actor,
            action: AuditAction::WebhookCreated,
            prompt: None,
            version: None,
            label: None,
            detail,
        };
        w.audit(at, e).await?;
        let webhook = sql::get(w.conn(), &id).await?.ok_or_else(|| ServiceError::internal("webhook vanished"))?;
        w.commit().await?;
        Ok(CreatedWebhook { secret: self.webhook_secret(&id), webhook })
    }

    pub async fn webhooks(&self, who: &Principal) -> Result<Vec<Webhook>> {
        who.require(Action::Administer)?;
        sql::list(&self.store().reader).await
    }

    /// Stops sending to an endpoint (its delivery log stays).
    pub async fn delete_webhook(&self, who: &Principal, id: &str) -> Result<Webhook> {
        who.require(Action::Administer)?;
        let mut w = self.write().await?;
        if !sql::deactivate(w.conn(), id).await? {
            return Err(ServiceError::NotFound(format!("there is no active webhook '{id}'")));
        }
        let at = time::now_us();
        let e = NewEvent {
            actor: &who.actor,
            action: AuditAction::WebhookDeleted,
            prompt: None,
            version: None,
            label: None,
            detail: json!({"webhook": id}),
        };
        w.audit(at, e).await?;
        let webhook = sql::get(w.conn(), id).await?.ok_or_else(|| ServiceError::internal("webhook vanished"))?;
        w.commit().await?;
        Ok(webhook)
    }

    /// An endpoint's deliveries, newest first (admins).
    pub async fn webhook_deliveries(&self, who: &Principal, id: &str) -> Result<Vec<WebhookDelivery>> {
        who.require(Action::Administer)?;
        if sql::get(&self.store().reader, id).await?.is_none() {
            return Err(ServiceError::NotFound(format!("there is no webhook '{id}'")));
        }
        Ok(sql::deliveries(&self.store().reader, id, LIST).await?.iter().map(sql::DeliveryRow::view).collect())
    }

    /// Sends due deliveries until the process ends (run by `serve`).
    pub async fn deliver_webhooks(self) {
        loop {
            let poll = self.inner.webhook_settings.read().poll;
            if let Err(e) = self.deliver_due().await {
                tracing::error!(error = %e, "webhook deliveries failed");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// One pass: leases the due deliveries, then sends them concurrently.
    pub async fn deliver_due(&self) -> Result<()> {
        let settings = self.inner.webhook_settings.read().clone();
        let now = time::now_us();
        if sql::due(&self.store().reader, now, 1).await?.is_empty() {
            return Ok(());
        }
        // Claimed inside the write transaction: on PostgreSQL another replica's claim of
        // the same deliveries either committed before (they are no longer due) or waits.
        let due = {
            let mut w = self.bookkeeping().await?;
            let due = sql::due(w.conn(), now, BATCH).await?;
            let until = now + 2 * settings.timeout.as_micros() as i64;
            sql::lease(w.conn(), &due.iter().map(|d| d.id).collect::<Vec<_>>(), until).await?;
            w.commit().await?;
            due
        };
        let mut sends = tokio::task::JoinSet::new();
        for delivery in due {
            let (this, settings) = (self.clone(), settings.clone());
            sends.spawn(async move { this.send(delivery, &settings).await });
        }
        while let Some(done) = sends.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::error!(error = %e, "recording a webhook delivery failed");
            }
        }
        Ok(())
    }

    async fn send(&self, d: sql::DeliveryRow, settings: &WebhookSettings) -> Result<()> {
        let event = sql::audit_event(&self.store().reader, d.audit_seq)
            .await?
            .map(AuditEvent::from)
            .ok_or_else(|| ServiceError::internal("the audit event of a delivery is missing"))?;
        let body = json!({"id": d.id, "event": d.event, "created_at": time::format_us(d.created_at), "data": event})
            .to_string();
        let t = time::now_us() / 1_000_000;
        let request = self
            .evals_http()
            .post(&d.url)
            .timeout(settings.timeout)
            .header("content-type", "application/json")
            .header("x-promptledger-event", &d.event)
            .header("x-promptledger-delivery", d.id.to_string())
            .header("x-promptledger-signature", signature(&self.webhook_secret(&d.webhook_id), t, &body))
            .body(body);
        let (code, error) = match request.send().await {
            Ok(r) if r.status().is_success() => (Some(r.status().as_u16() as i64), None),
            Ok(r) => (Some(r.status().as_u16() as i64), Some(format!("the endpoint answered {}", r.status()))),
            Err(e) => (
                None,
                Some(if e.is_timeout() {
                    "the endpoint timed out".to_owned()
                } else {
                    "the endpoint could not be reached".to_owned()
                }),
            ),
        };
        let attempts = d.attempts + 1;
        let at = time::now_us();
        let (status, next) = match &error {
            None => ("delivered", at),
            Some(_) if attempts >= settings.max_attempts => ("failed", at),
            Some(_) => {
                // Half the delay fixed, half random: spreads retries, keeps their order.
                let delay = crate::backoff(settings.base_delay, settings.max_delay, attempts as u32, 0.5);
                ("pending", at + delay.as_micros() as i64)
            }
        };
        let mut w = self.bookkeeping().await?;
        sql::record_attempt(w.conn(), d.id, status, code, error.as_deref(), next, at).await?;
        w.commit().await?;
        Ok(())
    }
}
