//! The live event stream (API.md "Event stream"): every committed change that alters what
//! a prompt serves, as it commits, read from the audit log, so a subscriber that
//! reconnects with the last seq it saw misses nothing, and every replica streams the
//! same changes whichever replica made them.
//!
//! One task per process (`stream_changes`) wakes when a write's guard is dropped (the
//! change is committed and in the index) or when another replica's changes are applied,
//! reads the new events once and broadcasts them; each subscriber replays what it missed
//! from the log, then takes the broadcast. An idle subscriber holds a channel receiver
//! and nothing else.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use domain::access::Action;
use domain::names::LATEST;
use domain::vocabulary::AuditAction;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::store::{self, AuditRow};
use crate::{Principal, Registry, Result, ServiceError};

/// Batches a slow subscriber may fall behind before it reads the rest from the log.
const CAPACITY: usize = 1024;
/// How often the stream looks at the log without being woken (a safety net).
const TICK: Duration = Duration::from_secs(1);

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub seq: i64,
    /// `version.created`, `label.moved` or `rollout.changed`.
    pub event: &'static str,
    pub prompt: String,
    /// `{"prompt", "label", "version", "hash", "resolved_hash", "seq"}`.
    pub data: String,
    /// The last event of its change (its seq) this subscriber gets: only it carries the
    /// seq as its event id, so a client that reconnects after part of a change's events
    /// gets that change again rather than loses the rest of it.
    pub last_of_change: bool,
}

pub(crate) struct Hub {
    tx: broadcast::Sender<Arc<[StreamEvent]>>,
    /// The newest seq broadcast.
    last: AtomicI64,
    /// Set when the server stops: every subscription ends, so the server's graceful
    /// shutdown does not wait on streams that never end by themselves.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub { tx: broadcast::channel(CAPACITY).0, last: AtomicI64::new(-1), closing: tokio::sync::watch::channel(false).0 }
    }
}

/// A subscriber: what it missed first, then the live events, each once, filtered.
pub struct Subscription {
    registry: Registry,
    rx: broadcast::Receiver<Arc<[StreamEvent]>>,
    closing: tokio::sync::watch::Receiver<bool>,
    pending: std::collections::VecDeque<StreamEvent>,
    /// The newest seq handed out (or replayed past).
    seen: i64,
    /// Reading the log after `seen`, a page at a time (a replay, or a subscriber that
    /// fell behind the broadcast), before taking live events again.
    replaying: bool,
    prompts: Option<BTreeSet<String>>,
}

impl Subscription {
    /// The next event for this subscriber; `None` when the server is stopping.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(mut e) = self.pending.pop_front() {
                e.last_of_change = self.pending.front().is_none_or(|next| next.seq != e.seq);
                return Some(e);
            }
            if self.replaying {
                let (events, last, more) = self.registry.events_page(self.seen).await.ok()?;
                self.seen = last;
                self.replaying = more;
                self.pending.extend(events.into_iter().filter(|e| keep(&self.prompts, e)));
                continue;
            }
            let received = tokio::select! {
                received = self.rx.recv() => received,
                _ = self.closing.wait_for(|closing| *closing) => return None,
            };
            match received {
                Ok(batch) => {
                    let fresh = batch.iter().filter(|e| e.seq > self.seen).cloned().collect::<Vec<_>>();
                    if let Some(last) = batch.last() {
                        self.seen = self.seen.max(last.seq);
                    }
                    self.pending.extend(fresh.into_iter().filter(|e| keep(&self.prompts, e)));
                }
                // Too slow: what it missed is in the log.
                Err(broadcast::error::RecvError::Lagged(_)) => self.replaying = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn keep(prompts: &Option<BTreeSet<String>>, e: &StreamEvent) -> bool {
    prompts.as_ref().is_none_or(|p| p.contains(&e.prompt))
}

impl Registry {
    fn hub(&self) -> &Hub {
        &self.inner.events
    }

    /// Subscribes: the events after `since` (replayed from the log), then every new one;
    /// only those of `prompts` when given.
    pub async fn subscribe(&self, who: &Principal, since: Option<i64>, prompts: Option<BTreeSet<String>>) -> Result<Subscription> {
        who.require(Action::Serve)?;
        if since.is_some_and(|s| s < 0) {
            return Err(ServiceError::BadRequest("`since` is an audit seq, 0 or more".into()));
        }
        // Subscribed before the replay is read, so nothing falls between the two.
        let rx = self.hub().tx.subscribe();
        let (seen, replaying) = match since {
            // Replayed a page at a time as the subscriber reads. A seq past the log's head
            // (an id from another registry) replays nothing and must not hide what comes.
            Some(since) => (since.min(store::last_seq(&self.store().reader).await?), true),
            // From what has been broadcast: a change committed but not yet broadcast (nor,
            // perhaps, served) comes to this subscriber too.
            None => match self.hub().last.load(Ordering::Acquire) {
                -1 => (store::last_seq(&self.store().reader).await?, false),
                last => (last, false),
            },
        };
        let closing = self.hub().closing.subscribe();
        let pending = Default::default();
        Ok(Subscription { registry: self.clone(), rx, closing, pending, seen, replaying, prompts })
    }

    /// Ends every subscription (the server is stopping).
    pub fn close_streams(&self) {
        self.hub().closing.send_replace(true);
    }

    /// One page of the stream events after `seq`, from the log: the events, the last seq
    /// read, and whether there may be more.
    async fn events_page(&self, seq: i64) -> Result<(Vec<StreamEvent>, i64, bool)> {
        let mut conn = self.store().reader.acquire().await?;
        let rows = store::events_after(&mut conn, seq).await?;
        drop(conn);
        let last = rows.last().map_or(seq, |r| r.seq);
        let more = rows.len() as i64 >= store::CHUNK;
        Ok((rows.iter().flat_map(|r| self.stream_events(r)).collect(), last, more))
    }

    /// Broadcasts each change as it is committed, until the process stops.
    pub async fn stream_changes(self) {
        let start = store::last_seq(&self.store().reader).await.unwrap_or(0);
        self.hub().last.store(start, Ordering::Release);
        loop {
            let _ = tokio::time::timeout(TICK, self.store().changed.notified()).await;
            if let Err(e) = self.announce().await {
                tracing::warn!(error = %e, "event stream: could not read the audit log");
            }
        }
    }

    async fn announce(&self) -> Result<()> {
        let from = self.hub().last.load(Ordering::Acquire);
        // Under the write lock, so every change read is in the index already (a write
        // holds the lock from before its commit until its index update; on PostgreSQL,
        // what other replicas committed is applied first, and nothing newer is read): a
        // subscriber that fetches on an event gets what the event says.
        let (rows, batch) = {
            let _hold = self.store().hold().await;
            let indexed = self.indexed_seq().await?;
            let mut conn = self.store().reader.acquire().await?;
            let mut rows = store::events_after(&mut conn, from).await?;
            drop(conn);
            rows.retain(|r| indexed.is_none_or(|i| r.seq <= i));
            let batch: Vec<StreamEvent> = rows.iter().flat_map(|r| self.stream_events(r)).collect();
            (rows, batch)
        };
        let Some(last) = rows.last().map(|r| r.seq) else { return Ok(()) };
        self.hub().last.store(last, Ordering::Release);
        // The seq moves on even when nothing in the batch alters what is served, so
        // subscribers skip it; no receiver is not an error.
        let _ = self.hub().tx.send(batch.into());
        if rows.len() as i64 >= store::CHUNK {
            self.store().changed.notify_one();
        }
        Ok(())
    }

    /// The stream events of one audit event: none for a change that alters nothing
    /// served; for a label move (or a new version, which moves `latest`), one for the
    /// prompt and one per label of each prompt that includes it through that label.
    fn stream_events(&self, row: &AuditRow) -> Vec<StreamEvent> {
        let Some(action) = AuditAction::parse(&row.action) else { return Vec::new() };
        let event = match action {
            AuditAction::PromptCreated | AuditAction::VersionCreated => "version.created",
            AuditAction::LabelMoved => "label.moved",
            AuditAction::RolloutStarted
            | AuditAction::RolloutAdvanced
            | AuditAction::RolloutPaused
            | AuditAction::RolloutResumed
            | AuditAction::RolloutCompleted
            | AuditAction::RolloutRolledBack
            | AuditAction::RolloutAborted => "rollout.changed",
            _ => return Vec::new(),
        };
        let Some(prompt) = &row.prompt else { return Vec::new() };
        let detail: Value = serde_json::from_str(&row.detail).unwrap_or(Value::Null);
        let label = if event == "version.created" { Some(LATEST) } else { row.label.as_deref() };
        let hash = detail["hash"].as_str().map(str::to_owned);
        let mut out = vec![self.stream_event(row.seq, event, prompt, label, row.version, hash)];
        if matches!(action, AuditAction::LabelMoved | AuditAction::VersionCreated) {
            for d in detail["dependents"].as_array().into_iter().flatten() {
                let Some(dependent) = d["prompt"].as_str() else { continue };
                for l in d["labels"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                    let version = self.index().get(dependent).and_then(|e| e.label(l));
                    out.push(self.stream_event(row.seq, event, dependent, Some(l), version, None));
                }
            }
        }
        out
    }

    /// One event; `resolved_hash` (and a missing `hash`) as the index serves the version now.
    fn stream_event(
        &self,
        seq: i64,
        event: &'static str,
        prompt: &str,
        label: Option<&str>,
        version: Option<i64>,
        hash: Option<String>,
    ) -> StreamEvent {
        let served = version.and_then(|v| self.index().get(prompt).and_then(|e| e.served.get(&v).cloned()));
        let resolved_hash = served.as_ref().map(|s| s.view.resolved_hash.clone()).or_else(|| hash.clone());
        let hash = hash.or_else(|| served.as_ref().map(|s| s.view.hash.clone()));
        let data = json!({"prompt": prompt, "label": label, "version": version, "hash": hash,
                          "resolved_hash": resolved_hash, "seq": seq});
        StreamEvent { seq, event, prompt: prompt.to_owned(), data: data.to_string(), last_of_change: true }
    }
}
