//! Production telemetry: applications send the generations (model calls) they made with
//! our prompts, and scores on them. Ingest checks a batch whole, prices it, judges drift,
//! and stores it with its rollups in one transaction of the telemetry database; reads
//! reconstruct one call, list calls, and aggregate per-version metrics from the rollups.

mod budgets;
pub(crate) mod metrics;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use domain::access::Action;
use domain::content::Rendered;
use domain::model::Page;
use domain::names::LATEST;
use domain::telemetry::{
    self as wire, Drift, FieldError, Generation, GenerationDetail, GenerationFilter, IngestReport, NewGeneration,
    NewScore, STALE_AFTER_US, Score,
};
use domain::template::RenderLimits;
use domain::vocabulary::AuditAction;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use crate::store::telemetry::{self as sql, GenerationRow, Rollup, RollupKey};
use crate::store::{self, NewEvent};
use crate::{Principal, Registry, Result, ServiceError, page_limit, time};

pub use budgets::Budgets;

/// Rollups are kept per five minutes (the finest `interval` of `/metrics`).
pub const BUCKET_US: i64 = 300_000_000;
/// A generation may say it started at most this far in the future (clock skew).
const FUTURE_SLACK_US: i64 = 86_400_000_000;
/// Drift of one kind on one prompt is reported (webhook `drift.detected`) once an hour.
const DRIFT_REPORT_EVERY_US: i64 = 3_600_000_000;
/// What the registry's own findings are recorded as in the audit log.
pub(crate) const SYSTEM: &str = "system";

/// Retention of raw generations; tests shorten it.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Raw generations and scores older than this are pruned (rollups are kept).
    pub retention: Duration,
    /// How often the retention worker runs.
    pub prune_every: Duration,
    /// Rows deleted per transaction, so pruning never holds the writer for long.
    pub prune_batch: i64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            retention: Duration::from_secs(30 * 86_400),
            prune_every: Duration::from_secs(600),
            prune_batch: 2000,
        }
    }
}

/// In-memory state of telemetry: settings, budgets, and what was already reported.
#[derive(Default)]
pub struct Telemetry {
    pub(crate) settings: parking_lot::RwLock<TelemetrySettings>,
    /// Scores stored before their generation (0 lets ingest skip looking for them).
    pending_scores: AtomicI64,
    pub(crate) budgets: Budgets,
    /// (prompt, kind) -> when drift was last reported.
    drift_reported: Mutex<HashMap<(String, Drift), i64>>,
}

fn item(index: usize, e: FieldError) -> ServiceError {
    ServiceError::InvalidItem { index, field: e.field, message: e.message }
}

fn bad(index: usize, field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidItem { index, field, message: message.into() }
}

fn bucket_of(at: i64) -> i64 {
    at - at.rem_euclid(BUCKET_US)
}

/// What ingest needs to know of one prompt, read once per batch.
struct PromptFacts {
    /// (version, hash, created_at), oldest first.
    versions: Vec<(i64, String, i64)>,
    /// label -> its moves (version, at), oldest first.
    moves: HashMap<String, Vec<(i64, i64)>>,
}

impl PromptFacts {
    fn hash_of(&self, version: i64) -> Option<&str> {
        self.versions.iter().find(|v| v.0 == version).map(|v| v.1.as_str())
    }

    /// Whether `label` had left `version` for more than five minutes at `at`: it did
    /// not point at it at any instant of the five minutes before. A label that had never
    /// pointed anywhere yet says nothing.
    fn stale(&self, label: &str, version: i64, at: i64) -> bool {
        let from = at - STALE_AFTER_US;
        if label == LATEST {
            // `latest` leaves a version when the next one is created.
            return self.versions.iter().any(|v| v.0 > version && v.2 <= from)
                && self.versions.iter().any(|v| v.0 == version);
        }
        let Some(moves) = self.moves.get(label) else { return false };
        if !moves.iter().any(|m| m.1 <= at) {
            return false;
        }
        let at_from = moves.iter().rfind(|m| m.1 <= from).map(|m| m.0);
        let during = moves.iter().any(|m| m.1 > from && m.1 <= at && m.0 == version);
        at_from != Some(version) && !during
    }
}

/// Prices by `provider/model`, and by bare model name when one provider alone has it.
struct Prices {
    by_full: HashMap<String, (f64, f64)>,
    by_model: HashMap<String, Option<(f64, f64)>>,
}

impl Prices {
    fn new(rows: Vec<(String, String, f64, f64)>) -> Prices {
        let mut by_full = HashMap::new();
        let mut by_model: HashMap<String, Option<(f64, f64)>> = HashMap::new();
        for (provider, model, input, output) in rows {
            by_full.insert(format!("{provider}/{model}"), (input, output));
            by_model
                .entry(model)
                .and_modify(|p| *p = None) // named by two providers: ambiguous
                .or_insert(Some((input, output)));
        }
        Prices { by_full, by_model }
    }

    fn cost(&self, model: &str, input: Option<i64>, output: Option<i64>) -> Option<f64> {
        if input.is_none() && output.is_none() {
            return None;
        }
        let (i, o) = self.by_full.get(model).copied().or_else(|| self.by_model.get(model).copied().flatten())?;
        Some((input.unwrap_or(0) as f64 * i + output.unwrap_or(0) as f64 * o) / 1_000_000.0)
    }
}

impl Registry {
    pub fn configure_telemetry(&self, settings: TelemetrySettings) {
        *self.inner.telemetry.settings.write() = settings;
    }

    pub(crate) fn telemetry_store(&self) -> &crate::store::Store {
        &self.inner.telemetry_store
    }

    /// Loads what telemetry keeps in memory (at open).
    pub(crate) async fn load_telemetry(&self) -> Result<()> {
        let pending = sql::count_pending_scores(&self.telemetry_store().reader).await?;
        self.inner.telemetry.pending_scores.store(pending, Ordering::Relaxed);
        self.load_budgets().await
    }

    async fn prompt_facts(&self, name: &str, labels: &HashSet<String>) -> Result<Option<PromptFacts>> {
        let Ok(entry) = self.entry(name) else { return Ok(None) };
        let reader = &self.store().reader;
        let versions = sql::version_hashes(reader, entry.id).await?;
        let mut moves = HashMap::new();
        for label in labels {
            if label != LATEST {
                moves.insert(label.clone(), sql::label_moves(reader, entry.id, label).await?);
            }
        }
        Ok(Some(PromptFacts { versions, moves }))
    }

    /// Stores a batch of generations. The batch is checked whole: an invalid item stores
    /// nothing. Ids already stored (or repeated in the batch) count as duplicates.
    pub async fn ingest(&self, who: &Principal, items: Vec<NewGeneration>) -> Result<IngestReport> {
        who.require(Action::Ingest)?;
        if items.is_empty() || items.len() > wire::MAX_BATCH {
            return Err(ServiceError::rule(
                "invalid_batch",
                format!("`items` must hold 1 to {} generations (got {})", wire::MAX_BATCH, items.len()),
            ));
        }
        let now = time::now_us();
        // Every rule that needs no storage first, so a bad batch costs nothing more.
        let mut starts = Vec::with_capacity(items.len());
        let mut labels: HashMap<String, HashSet<String>> = HashMap::new();
        for (i, g) in items.iter().enumerate() {
            g.check().map_err(|e| item(i, e))?;
            let at = time::parse_rfc3339(&g.started_at).ok_or_else(|| {
                bad(i, "started_at", format!("`started_at` must be an RFC 3339 time (got '{}')", g.started_at))
            })?;
            if at > now + FUTURE_SLACK_US {
                return Err(bad(i, "started_at", "`started_at` is more than a day in the future"));
            }
            starts.push(at);
            let wanted = labels.entry(g.prompt.clone()).or_default();
            wanted.extend(g.label.clone());
        }
        let mut facts: HashMap<String, PromptFacts> = HashMap::new();
        for (name, wanted) in labels {
            if let Some(f) = self.prompt_facts(&name, &wanted).await? {
                facts.insert(name, f);
            }
        }
        let mut prices: Option<Prices> = None;
        let mut rows = Vec::with_capacity(items.len());
        for (i, (g, started_at)) in items.into_iter().zip(starts).enumerate() {
            let f = facts
                .get(g.prompt.as_str())
                .ok_or_else(|| bad(i, "prompt", format!("there is no prompt named '{}'", g.prompt)))?;
            let (version, drift) = match (g.version, &g.hash) {
                (Some(v), hash) => {
                    let registered =
                        f.hash_of(v).ok_or_else(|| bad(i, "version", format!("'{}' has no version {v}", g.prompt)))?;
                    (v, hash.as_deref().filter(|h| *h != registered).map(|_| Drift::HashMismatch))
                }
                (None, Some(h)) => {
                    let v = f.versions.iter().rev().find(|v| &v.1 == h).map(|v| v.0).ok_or_else(|| {
                        bad(i, "hash", format!("no version of '{}' has this hash; send `version` too", g.prompt))
                    })?;
                    (v, None)
                }
                (None, None) => unreachable!("checked: version or hash"),
            };
            // A call that names a live rollout of its prompt is judged against what the
            // rollout serves (the arm's version) and counts as its evidence; one naming an
            // ended (or another prompt's) rollout is neither (it may arrive late).
            let live = g.rollout.as_deref().and_then(|id| self.live_rollout(id)).filter(|l| l.row.prompt == g.prompt);
            let drift = drift.or_else(|| match (&g.label, &g.rollout, &live) {
                (Some(label), None, _) if f.stale(label, version, started_at) => Some(Drift::StaleLabel),
                (_, Some(_), Some(live)) => {
                    let served = match g.arm {
                        Some(arm) => version == live.version_of(arm),
                        None => version == live.row.base_version || version == live.row.candidate_version,
                    };
                    (!served).then_some(Drift::StaleLabel)
                }
                _ => None,
            });
            // Evidence is what an arm served: a call with its arm's version, undrifted.
            let phase = live.as_ref().filter(|_| g.arm.is_some() && drift.is_none()).map(|l| l.phase);
            let (cost, cost_source) = match g.cost {
                Some(c) => (Some(c), Some("sent")),
                None => {
                    let computed = match g.model.as_deref() {
                        Some(model) => {
                            if prices.is_none() {
                                prices = Some(Prices::new(sql::all_prices(&self.store().reader).await?));
                            }
                            prices.as_ref().and_then(|p| p.cost(model, g.input_tokens, g.output_tokens))
                        }
                        None => None,
                    };
                    (computed, computed.map(|_| "price_table"))
                }
            };
            let mut truncated = Vec::new();
            let mut variables = g.variables;
            if let Some(v) = variables.as_mut()
                && wire::cut_object(v, wire::KEEP_BYTES)
            {
                truncated.push("variables");
            }
            let mut output = g.output;
            if let Some(o) = output.as_mut()
                && wire::cut_text(o, wire::KEEP_BYTES)
            {
                truncated.push("output");
            }
            let mut error = g.error;
            if let Some(e) = error.as_mut()
                && wire::cut_text(e, 4096)
            {
                truncated.push("error");
            }
            let to_json = |v: Option<serde_json::Map<String, Value>>| v.map(|m| Value::Object(m).to_string());
            rows.push(GenerationRow {
                seq: 0,
                id: g.id,
                prompt: g.prompt,
                version,
                hash: g.hash,
                label: g.label,
                rollout: g.rollout,
                arm: g.arm.map(|a| a.as_str().to_owned()),
                model: g.model,
                input_tokens: g.input_tokens,
                output_tokens: g.output_tokens,
                cost,
                cost_source: cost_source.map(str::to_owned),
                latency_ms: g.latency_ms,
                ttft_ms: g.ttft_ms,
                status: g.status.as_str().to_owned(),
                error,
                finish_reason: g.finish_reason,
                variables: to_json(variables),
                output,
                user: g.user,
                session: g.session,
                metadata: to_json(g.metadata),
                drift: drift.map(|d| d.as_str().to_owned()),
                truncated: (!truncated.is_empty()).then(|| json!(truncated).to_string()),
                started_at,
                received_at: now,
                phase,
            });
        }
        let total = rows.len() as i64;
        let this = self.clone();
        let stored = crate::detached(async move { this.store_generations(rows).await }).await?;
        self.after_ingest(&stored, now).await;
        Ok(IngestReport { accepted: stored.len() as i64, duplicates: total - stored.len() as i64 })
    }

    /// One transaction of the telemetry database: the new rows, their rollups, and the
    /// scores that were waiting for them. Returns the rows that were new.
    async fn store_generations(&self, rows: Vec<GenerationRow>) -> Result<Vec<GenerationRow>> {
        let mut w = self.telemetry_store().bookkeeping().await?;
        let mut stored: HashSet<String> = sql::insert_generations(w.conn(), &rows).await?.into_iter().collect();
        // The first of each stored id (a repeat in the batch was skipped by the insert).
        let fresh: Vec<GenerationRow> = rows.into_iter().filter(|r| stored.remove(&r.id)).collect();
        let mut groups: HashMap<RollupKey, Rollup> = HashMap::new();
        for row in &fresh {
            groups.entry(rollup_key(row)).or_default().add(row);
        }
        for (key, add) in &groups {
            sql::add_to_rollup(w.conn(), key, add).await?;
        }
        let mut evidence: HashMap<(&str, i64, &str), Rollup> = HashMap::new();
        for row in &fresh {
            if let (Some(rollout), Some(phase), Some(arm)) = (&row.rollout, row.phase, &row.arm) {
                evidence.entry((rollout, phase, arm)).or_default().add(row);
            }
        }
        for ((rollout, phase, arm), add) in &evidence {
            sql::add_to_rollout_rollup(w.conn(), rollout, *phase, arm, add).await?;
        }
        let mut joined = 0;
        if self.inner.telemetry.pending_scores.load(Ordering::Relaxed) > 0 {
            let by_id: HashMap<&str, &GenerationRow> = fresh.iter().map(|r| (r.id.as_str(), r)).collect();
            let mut done = Vec::new();
            for score in sql::pending_scores(w.conn()).await? {
                if let Some(row) = by_id.get(score.generation.as_str()) {
                    count_score(w.conn(), row, &score.name, score.value).await?;
                    done.push(score.seq);
                }
            }
            sql::mark_rolled_up(w.conn(), &done).await?;
            joined = done.len() as i64;
        }
        w.commit().await?;
        self.inner.telemetry.pending_scores.fetch_sub(joined, Ordering::Relaxed);
        if !evidence.is_empty() {
            self.wake_judge();
        }
        Ok(fresh)
    }

    /// After a batch is stored: budgets and drift reports (registry changes, audited).
    /// Their failure never fails the ingest that is already stored; it is logged.
    async fn after_ingest(&self, rows: &[GenerationRow], now: i64) {
        if let Err(e) = self.count_spend(rows, now).await {
            tracing::error!(error = %e, "budget alerts failed");
        }
        if let Err(e) = self.report_drift(rows, now).await {
            tracing::error!(error = %e, "drift reports failed");
        }
    }

    async fn report_drift(&self, rows: &[GenerationRow], now: i64) -> Result<()> {
        let mut found: HashMap<(String, Drift), (i64, &GenerationRow)> = HashMap::new();
        for row in rows {
            if let Some(kind) = row.drift.as_deref().and_then(Drift::parse) {
                found.entry((row.prompt.clone(), kind)).or_insert((0, row)).0 += 1;
            }
        }
        for ((prompt, kind), (count, example)) in found {
            let key = (prompt.clone(), kind);
            let known = self.inner.telemetry.drift_reported.lock().get(&key).copied();
            let last = match known {
                Some(at) => Some(at),
                None => sql::last_drift_report(&self.store().reader, &prompt, kind.as_str()).await?,
            };
            if last.is_some_and(|at| now - at < DRIFT_REPORT_EVERY_US) {
                self.inner.telemetry.drift_reported.lock().insert(key, last.unwrap_or(now));
                continue;
            }
            {
                // Claimed before writing, so two batches at once report it once.
                let mut reported = self.inner.telemetry.drift_reported.lock();
                if reported.get(&key).is_some_and(|at| now - at < DRIFT_REPORT_EVERY_US) {
                    continue;
                }
                reported.insert(key, now);
            }
            let detail = json!({"kind": kind.as_str(), "calls": count, "request_id": example.id,
                                "label": example.label, "hash": example.hash,
                                "explanation": format!("{count} call(s) {}", kind.explain())});
            let mut w = self.write().await?;
            let e = NewEvent {
                actor: SYSTEM,
                action: AuditAction::DriftDetected,
                prompt: Some(&prompt),
                version: Some(example.version),
                label: example.label.as_deref(),
                detail,
            };
            w.audit(now, e).await?;
            w.commit().await?;
        }
        Ok(())
    }

    /// Records a score on a generation; one that arrives first waits for it.
    pub async fn add_score(&self, who: &Principal, generation: &str, score: NewScore) -> Result<Score> {
        who.require(Action::Ingest)?;
        wire::check_request_id(generation).map_err(|e| ServiceError::BadRequest(e.message))?;
        let value = score.check().map_err(|e| ServiceError::rule("invalid_score", e.message))?;
        let at = time::now_us();
        let (this, generation) = (self.clone(), generation.to_owned());
        let name = score.name.clone();
        let comment = score.comment.clone();
        crate::detached(async move {
            let mut w = this.telemetry_store().bookkeeping().await?;
            let row = sql::generation(w.conn(), &generation).await?;
            if let Some(row) = &row {
                count_score(w.conn(), row, &name, value).await?;
            }
            sql::insert_score(w.conn(), &generation, &name, value, comment.as_deref(), at, row.is_some()).await?;
            w.commit().await?;
            if row.is_none() {
                this.inner.telemetry.pending_scores.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .await?;
        Ok(Score { name: score.name, value, comment: score.comment, created_at: time::format_us(at) })
    }

    /// One call reconstructed: the generation, its scores, the version it used (whole),
    /// that version rendered with its variables, and where its label pointed then.
    pub async fn generation(&self, who: &Principal, id: &str) -> Result<GenerationDetail> {
        who.require(Action::Read)?;
        let reader = &self.telemetry_store().reader;
        let row = sql::generation(reader, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no generation has the request id '{id}'")))?;
        let scores = sql::scores_of(reader, id).await?.iter().map(sql::ScoreRow::view).collect();
        let generation = row.view()?;
        let entry = self.entry(&generation.prompt)?;
        let served = self.version_of(&entry, generation.version).await?;
        let (rendered, render_error) = match &generation.variables {
            Some(vars) => match served.base.content.render(vars, true, RenderLimits::default()) {
                Ok(Rendered::Text(t)) => (Some(Value::String(t)), None),
                Ok(Rendered::Chat(m)) => (Some(serde_json::to_value(m).map_err(ServiceError::internal)?), None),
                Err(e) => (None, Some(e.to_string())),
            },
            None => (None, None),
        };
        let label_at_start = match &generation.label {
            Some(l) if l == LATEST => store::latest_at(&self.store().reader, entry.id, row.started_at).await?,
            Some(l) => store::label_at(&self.store().reader, entry.id, l, row.started_at).await?,
            None => None,
        };
        let prompt_version: domain::model::VersionView =
            serde_json::from_slice(&served.json).map_err(ServiceError::internal)?;
        Ok(GenerationDetail {
            generation,
            scores,
            prompt_version: Some(prompt_version),
            rendered,
            render_error,
            label_at_start,
        })
    }

    /// Generations newest first, filtered.
    pub async fn generations(&self, who: &Principal, f: &GenerationFilter) -> Result<Page<Generation>> {
        who.require(Action::Read)?;
        let limit = page_limit(f.limit, 50, 500)?;
        let since = time::parse_param("since", f.since.as_deref())?;
        let until = time::parse_param("until", f.until.as_deref())?;
        let before = match f.cursor.as_deref() {
            None => None,
            Some(c) => Some(
                c.split_once('.')
                    .and_then(|(a, s)| Some((a.parse::<i64>().ok()?, s.parse::<i64>().ok()?)))
                    .ok_or_else(|| ServiceError::BadRequest(format!("'{c}' is not a valid cursor")))?,
            ),
        };
        let rows = sql::generations_page(&self.telemetry_store().reader, f, since, until, before, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        let page: Vec<&GenerationRow> = rows.iter().take(limit as usize).collect();
        let next_cursor = if more { page.last().map(|r| format!("{}.{}", r.started_at, r.seq)) } else { None };
        Ok(Page { items: page.into_iter().map(GenerationRow::view).collect::<Result<_>>()?, next_cursor })
    }

    /// Deletes generations and scores older than the retention period, in small
    /// transactions; how many generations went.
    pub async fn prune_telemetry(&self) -> Result<u64> {
        let settings = self.inner.telemetry.settings.read().clone();
        let before = time::now_us() - settings.retention.as_micros() as i64;
        let mut total = 0;
        loop {
            let mut w = self.telemetry_store().bookkeeping().await?;
            let gone = sql::prune_generations(w.conn(), before, settings.prune_batch).await?;
            let scores = sql::prune_scores(w.conn(), before, settings.prune_batch).await?;
            w.commit().await?;
            total += gone;
            if gone < settings.prune_batch as u64 && scores < settings.prune_batch as u64 {
                return Ok(total);
            }
            // Let ingest in between.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Prunes old telemetry until the process ends (run by `serve`). Wakes at least once
    /// a second, so a change of settings takes effect soon.
    pub async fn run_retention(self) {
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            let every = self.inner.telemetry.settings.read().prune_every;
            if last.is_none_or(|at| at.elapsed() >= every) && self.holds("retention").await {
                last = Some(tokio::time::Instant::now());
                match self.prune_telemetry().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(generations = n, "pruned generations past the retention period"),
                    Err(e) => tracing::error!(error = %e, "pruning telemetry failed"),
                }
            }
            tokio::time::sleep(every.min(Duration::from_secs(1))).await;
        }
    }
}

/// Counts a score in its generation's rollup, and in its rollout's evidence.
async fn count_score(conn: &mut AnyConnection, row: &GenerationRow, name: &str, value: f64) -> Result<()> {
    sql::add_score_to_rollup(&mut *conn, &rollup_key(row), name, value).await?;
    if let (Some(rollout), Some(phase), Some(arm)) = (&row.rollout, row.phase, &row.arm) {
        sql::add_rollout_score(conn, rollout, phase, arm, name, value).await?;
    }
    Ok(())
}

fn rollup_key(row: &GenerationRow) -> RollupKey {
    RollupKey {
        prompt: row.prompt.clone(),
        bucket: bucket_of(row.started_at),
        version: row.version,
        rollout: row.rollout.clone().unwrap_or_default(),
        arm: row.arm.clone().unwrap_or_default(),
    }
}
