//! Several replicas on one PostgreSQL database. Every change appends an audit event, and
//! on PostgreSQL the event's transaction also sends `NOTIFY promptledger_changes` with
//! its seq (delivered at commit, never before). Each replica listens, and after every
//! notification, at start and after a lost connection (notifications are not replayed)
//! it catches up from the audit log by seq: the prompts named since are reloaded into
//! the resolve index, with their live rollouts, and cached keys are dropped.
//!
//! Writes are ordered by one advisory lock across replicas, so seqs commit in order and
//! "every event after seq N" is exactly what this replica has not applied yet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use domain::vocabulary::AuditAction;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use crate::index::{PromptEntry, VersionBase};
use crate::store::{self, Backend, Location, WriteGuard};
use crate::{Registry, Result, ServiceError};

/// The channel every change is announced on.
pub(crate) const CHANNEL: &str = "promptledger_changes";

/// How long a lease on background work lasts unless renewed: how long work stops when
/// the replica doing it dies, before another takes it over.
const LEASE: Duration = Duration::from_secs(5);

/// How often a replica looks for changes even without a notification: a safety net, the
/// notification is what makes a change visible within milliseconds.
const POLL: Duration = Duration::from_secs(2);

impl Registry {
    /// Follows the changes other replicas make (run by `server::serve`, which stops it).
    /// Does nothing on SQLite, where one process owns the file.
    pub async fn follow_replicas(self) {
        let Location::Postgres(url) = self.inner.location.clone() else { return };
        loop {
            if let Err(e) = self.listen(&url).await {
                tracing::warn!(error = %e, "lost the change notifications; reconnecting");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn listen(&self, url: &str) -> Result<()> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.application_name("promptledger-listener"))
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(CHANNEL).await?;
        // Anything committed before LISTEN took effect is read now.
        self.catch_up().await?;
        loop {
            match tokio::time::timeout(POLL, listener.try_recv()).await {
                // A notification, or the safety net's turn.
                Ok(Ok(Some(_))) | Err(_) => self.catch_up().await?,
                // The connection dropped: notifications sent meanwhile are gone.
                Ok(Ok(None)) => {
                    tracing::warn!("the change notification connection dropped; catching up from the audit log");
                    self.catch_up().await?;
                }
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// What this replica's leases are held under.
    pub fn replica(&self) -> &str {
        &self.store().replica
    }

    /// Whether this replica should do the background work `work` now: always on SQLite;
    /// on PostgreSQL when it holds (or takes, or renews) the work's lease. Called at every
    /// pass of the work, which renews the lease.
    pub(crate) async fn holds(&self, work: &str) -> bool {
        let taken = async {
            let mut conn = self.store().reader.acquire().await?;
            self.renew(&mut conn, work, LEASE).await
        };
        match taken.await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, work, "could not renew a lease; leaving the work to another replica");
                false
            }
        }
    }

    /// Takes or renews the lease on `work` for `ttl`, on `conn` (inside a write, the lease
    /// and the write commit together); always held on SQLite.
    pub(crate) async fn renew(&self, conn: &mut sqlx::AnyConnection, work: &str, ttl: Duration) -> Result<bool> {
        match self.store().backend {
            Backend::Sqlite => Ok(true),
            Backend::Postgres => store::take_lease(conn, work, self.replica(), ttl.as_micros() as i64, true).await,
        }
    }

    /// Extends this replica's lease on `work` by `ttl`, on `conn`, if it still holds it (a
    /// lease given up at shutdown, or taken over, stays so); always held on SQLite.
    pub(crate) async fn keeps(&self, conn: &mut sqlx::AnyConnection, work: &str, ttl: Duration) -> Result<bool> {
        match self.store().backend {
            Backend::Sqlite => Ok(true),
            Backend::Postgres => store::keep_lease(conn, work, self.replica(), ttl.as_micros() as i64).await,
        }
    }

    /// Takes the lease on `work` for `ttl` when it is free or has lapsed (PostgreSQL): the
    /// work of a replica that stopped. Never true for a lease this replica holds already.
    pub(crate) async fn takes_over(&self, work: &str, ttl: Duration) -> Result<bool> {
        let mut conn = self.store().reader.acquire().await?;
        store::take_lease(&mut conn, work, self.replica(), ttl.as_micros() as i64, false).await
    }

    /// Gives the lease on `work` up at once, so another replica takes the work over
    /// without waiting for the lease to lapse.
    pub(crate) async fn release(&self, work: &str) -> Result<()> {
        match self.store().backend {
            Backend::Sqlite => Ok(()),
            // One pool on PostgreSQL: the reader writes too.
            Backend::Postgres => store::release_lease(&self.store().reader, work, self.replica()).await,
        }
    }

    /// Starts a write of bookkeeping (no change to the registry, no audit event) on the
    /// registry's database; it needs no catching up.
    pub(crate) async fn bookkeeping(&self) -> Result<WriteGuard<'_>> {
        self.store().bookkeeping().await
    }

    /// Starts a change on the registry's database. On PostgreSQL, once the write holds the
    /// lock every replica's writes take, the index first takes in what other replicas
    /// committed, so the write's checks (the base version, where a label points) see
    /// the registry as it is, not as this replica last heard.
    pub(crate) async fn write(&self) -> Result<WriteGuard<'_>> {
        self.write_with(None).await
    }

    /// `write`, for a change to the one prompt `name`: under the lock only that prompt is
    /// brought up to date, and the listener applies the rest outside the lock, so writes
    /// to different prompts through different replicas hold every replica's lock for less.
    pub(crate) async fn write_on(&self, name: &str) -> Result<WriteGuard<'_>> {
        self.write_with(Some(name)).await
    }

    async fn write_with(&self, only: Option<&str>) -> Result<WriteGuard<'_>> {
        let mut w = self.store().write().await?;
        if self.store().backend == Backend::Postgres {
            // Read under the lock, the chain's head is the one this write extends.
            w.knows_head(self.apply_changes(only).await?);
        }
        Ok(w)
    }

    /// The prompt's entry; on PostgreSQL one this replica has not heard of yet is looked
    /// for in the database before the answer is "no such prompt".
    pub(crate) async fn known(&self, name: &str) -> Result<Arc<PromptEntry>> {
        if self.index().get(name).is_none() && self.store().backend == Backend::Postgres {
            self.catch_up().await?;
        }
        self.entry(name)
    }

    /// Applies every change committed after the last one this replica applied.
    pub(crate) async fn catch_up(&self) -> Result<()> {
        // One catch-up at a time, and none while this replica's own write is between its
        // commit and its index update.
        let _hold = self.store().hold().await;
        self.apply_changes(None).await.map(drop)
    }

    /// For a caller that holds the write lock: the newest seq whose change is in this
    /// replica's index, on PostgreSQL once what other replicas committed is applied.
    /// `None` on SQLite, where every committed change is indexed once the lock is free.
    pub(crate) async fn indexed_seq(&self) -> Result<Option<i64>> {
        match self.store().backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => {
                self.apply_changes(None).await?;
                Ok(Some(self.inner.applied_seq.load(Ordering::Acquire)))
            }
        }
    }

    /// `catch_up`, for a caller that holds the write lock; with `only`, just that prompt's
    /// changes are applied (and the rest are left for the next catch-up). Returns the
    /// chain's head as read.
    async fn apply_changes(&self, only: Option<&str>) -> Result<Option<(i64, String)>> {
        let from = self.inner.applied_seq.load(Ordering::Acquire);
        let (changes, head) = store::changes_after(&self.store().reader, from).await?;
        let Some(last) = changes.last().map(|c| c.seq) else { return Ok(head) };
        // Per prompt, the versions other replicas saved, or `None` when something else
        // changed and the prompt is reloaded whole.
        let mut prompts: BTreeMap<String, Option<Vec<i64>>> = BTreeMap::new();
        let (mut keys, mut budgets) = (false, false);
        // This replica's own changes are in its index already.
        for change in changes.into_iter().filter(|c| c.replica.as_deref() != Some(self.replica())) {
            let action = AuditAction::parse(&change.action);
            keys |= action.is_none_or(AuditAction::touches_keys);
            budgets |= action.is_none_or(AuditAction::touches_budgets);
            if let Some(prompt) = change.prompt {
                let update = prompts.entry(prompt).or_insert_with(|| Some(Vec::new()));
                match (action, change.version, update.as_mut()) {
                    (Some(AuditAction::VersionCreated), Some(version), Some(versions)) => versions.push(version),
                    _ => *update = None,
                }
            }
        }
        if let Some(name) = only {
            if let Some(update) = prompts.remove(name) {
                self.update_prompt(name, update).await?;
            }
            return Ok(head);
        }
        let mut reloads = tokio::task::JoinSet::new();
        for (name, update) in prompts {
            let this = self.clone();
            reloads.spawn(async move { this.update_prompt(&name, update).await });
        }
        while let Some(reloaded) = reloads.join_next().await {
            reloaded.map_err(ServiceError::internal)??;
        }
        if keys {
            self.inner.keys.write().clear();
        }
        if budgets {
            self.load_budgets().await?;
        }
        self.inner.applied_seq.store(last, Ordering::Release);
        // Other replicas' changes are in the index now: stream them.
        self.store().changed.notify_one();
        Ok(head)
    }

    /// Brings one prompt's entry up to date: versions other replicas saved (the common
    /// change) are read and added, one read each; any other change reloads the prompt.
    async fn update_prompt(&self, name: &str, saved: Option<Vec<i64>>) -> Result<()> {
        let (Some(saved), Some(entry)) = (saved, self.index().get(name)) else {
            return self.reload_prompt(name).await;
        };
        let follows = saved.iter().enumerate().all(|(i, v)| *v == entry.summary.latest_version + 1 + i as i64);
        if !follows {
            return self.reload_prompt(name).await;
        }
        let mut next: Option<Arc<PromptEntry>> = None;
        for version in saved {
            let current = next.as_ref().unwrap_or(&entry);
            let row = store::version(&self.store().reader, current.id, version)
                .await?
                .ok_or_else(|| ServiceError::internal("an audited version is missing"))?;
            let base = Arc::new(crate::version_base(name, &row)?);
            self.prepare_includes([&base]).await?;
            let (at, actor) = (crate::time::format_us(row.created_at), row.created_by.clone());
            let built = self.index().update(|lookup| current.with_version(base, at, actor, lookup));
            next = Some(built);
        }
        Ok(())
    }

    /// Reads one prompt's entry afresh from the database into the index.
    async fn reload_prompt(&self, name: &str) -> Result<()> {
        let reader = &self.store().reader;
        let Some(p) = store::prompt_by_name(reader, name).await? else { return Ok(()) };
        // The reads at once: a catch-up inside a write holds up every replica's writes.
        let (labels, rows, live) = tokio::try_join!(
            store::labels_of(reader, p.id),
            store::served_versions_of(reader, p.id),
            crate::rollouts::live_ids(reader),
        )?;
        let live: Vec<String> = live.into_iter().filter(|(p, _)| p == name).map(|(_, id)| id).collect();
        // Splits of rollouts still live stay served while the entry is replaced; the
        // rollouts are then loaded afresh (weights, and any that ended).
        let had = self.index().get(name).map(|e| e.split_plans()).unwrap_or_default();
        let rollouts = !live.is_empty() || !had.is_empty() || self.has_live_rollout(name);
        let splits: Vec<_> = had.into_iter().filter(|plan| live.contains(&plan.id)).collect();
        let (id, summary, bases) = crate::prompt_parts(p, labels, &rows)?;
        let composing: Vec<Arc<VersionBase>> =
            bases.iter().cloned().chain(splits.iter().map(|s| s.candidate.clone())).collect();
        self.prepare_includes(&composing).await?;
        self.index().update(|lookup| PromptEntry::new(id, summary, bases, splits, lookup));
        if rollouts { self.load_live_rollouts(Some(name)).await } else { Ok(()) }
    }
}
