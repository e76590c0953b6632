//! Evaluations: model providers and their prices, suites per prompt, and runs executed in
//! the background (API.md "Evaluations"). Every change is an audit event; a provider's API
//! key is read from its environment variable when a run starts and is never stored.

pub mod assertions;
pub mod io;
mod providers;
mod runner;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use domain::access::Action;
use domain::eval::{
    Change, EvalRun, Migration, MigrationItem, ModelPrice, NewMigration, NewRun, Provider, RunBrief, RunComparison,
    RunStatus, Suite, SuiteView,
};
use domain::model::{Page, Selector};
use domain::names;
use domain::vocabulary::AuditAction;
use parking_lot::{Mutex, RwLock};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use providers::RetryPolicy;

use crate::index::PromptEntry;
use crate::store::{self, Backend, NewEvent, WriteGuard, evals as sql};
use crate::{Principal, Registry, Result, ServiceError, detached, page_limit, time};

/// How runs behave; tests shorten the times.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    pub retry: RetryPolicy,
    /// How often a live run writes its heartbeat.
    pub heartbeat: Duration,
    /// A queued or running run without a heartbeat for this long was interrupted.
    pub stale_after: Duration,
    pub default_concurrency: u32,
    pub max_concurrency: u32,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            retry: RetryPolicy::default(),
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            default_concurrency: 4,
            max_concurrency: 64,
        }
    }
}

/// The evaluation state of a registry: one HTTP client, settings, and the runs this
/// process is executing.
pub(crate) struct Evals {
    http: reqwest::Client,
    settings: RwLock<EvalSettings>,
    active: Mutex<HashMap<String, CancellationToken>>,
}

impl Default for Evals {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("promptledger/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Evals { http, settings: RwLock::default(), active: Mutex::default() }
    }
}

/// Cases per suite, at most.
const MAX_CASES: usize = 5_000;
/// How long a stopping server waits for its runs to record what they have.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
const SUITE_NAME_MAX: usize = 64;
const RUNS_PAGE: i64 = 50;

/// `provider/model` → (`provider`, `model`); the model part may contain `/`.
pub(crate) fn split_model(model: &str) -> Result<(&str, &str)> {
    model.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty()).ok_or_else(|| {
        ServiceError::rule(
            "invalid_model",
            format!("'{model}' is not a model name: write it as provider/model, like local/gpt-4o-mini"),
        )
    })
}

fn validate_suite_name(name: &str) -> Result<()> {
    let ok = name.len() <= SUITE_NAME_MAX
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::rule(
            "invalid_name",
            format!(
                "'{name}' is not a valid suite name: 1 to {SUITE_NAME_MAX} characters of a-z 0-9 _ . - starting with a letter or digit"
            ),
        ))
    }
}

fn validate_provider(p: &Provider) -> Result<()> {
    names::validate_label(&p.name).map_err(|_| {
        ServiceError::rule(
            "invalid_name",
            format!("'{}' is not a valid provider name: 1 to 36 characters of a-z 0-9 _ . - (no /)", p.name),
        )
    })?;
    if !crate::is_http_url(&p.base_url) {
        return Err(ServiceError::rule(
            "invalid_base_url",
            format!("'{}' is not an http(s) URL, like https://api.openai.com/v1", p.base_url),
        ));
    }
    if let Some(var) = &p.api_key_env {
        let ok = var.len() <= 128
            && var.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(ServiceError::rule(
                "invalid_api_key_env",
                format!(
                    "'{var}' is not an environment variable name (letters, digits and _; give the name, never the key)"
                ),
            ));
        }
    }
    Ok(())
}

/// A run, checked and ready to start.
pub(crate) struct Plan {
    prompt: String,
    prompt_id: i64,
    version: i64,
    hash: String,
    suite: SuiteView,
    model: String,
    spec: runner::RunSpec,
}

impl Registry {
    pub(crate) fn evals(&self) -> &Evals {
        &self.inner.evals
    }

    /// The one HTTP client for model providers and webhooks.
    pub(crate) fn evals_http(&self) -> &reqwest::Client {
        &self.evals().http
    }

    /// Replaces the evaluation settings (timeouts, retries, heartbeat).
    pub fn configure_evals(&self, settings: EvalSettings) {
        *self.evals().settings.write() = settings;
    }

    pub fn eval_settings(&self) -> EvalSettings {
        self.evals().settings.read().clone()
    }

    /// Registers or changes a model provider (admins).
    pub async fn put_provider(&self, who: &Principal, provider: Provider) -> Result<Provider> {
        who.require(Action::Administer)?;
        validate_provider(&provider)?;
        let mut w = self.write().await?;
        let at = time::now_us();
        let created = sql::put_provider(w.conn(), &provider, &who.actor, at).await?;
        let detail = json!({"provider": provider.name, "kind": provider.kind.as_str(), "base_url": provider.base_url,
                            "api_key_env": provider.api_key_env, "created": created});
        w.audit(at, event(who, AuditAction::ProviderSaved, None, detail)).await?;
        w.commit().await?;
        Ok(provider)
    }

    pub async fn providers(&self, who: &Principal) -> Result<Vec<Provider>> {
        who.require(Action::Read)?;
        sql::providers(&self.store().reader).await
    }

    /// Sets the price of a provider's model (admins).
    pub async fn put_price(&self, who: &Principal, provider: &str, price: ModelPrice) -> Result<ModelPrice> {
        who.require(Action::Administer)?;
        if price.model.is_empty() || price.model.len() > 200 {
            return Err(ServiceError::rule("invalid_model", "a model name is 1 to 200 characters"));
        }
        for (what, v) in [("input_per_mtok", price.input_per_mtok), ("output_per_mtok", price.output_per_mtok)] {
            if !v.is_finite() || v < 0.0 {
                return Err(ServiceError::rule(
                    "invalid_price",
                    format!("{what} must be a number of dollars, 0 or more"),
                ));
            }
        }
        let mut w = self.write().await?;
        if sql::provider(w.conn(), provider).await?.is_none() {
            return Err(ServiceError::NotFound(format!("there is no provider named '{provider}'")));
        }
        let at = time::now_us();
        sql::put_price(w.conn(), provider, &price, &who.actor, at).await?;
        let detail = json!({"provider": provider, "model": price.model, "input_per_mtok": price.input_per_mtok,
                            "output_per_mtok": price.output_per_mtok});
        w.audit(at, event(who, AuditAction::PriceSaved, None, detail)).await?;
        w.commit().await?;
        Ok(price)
    }

    pub async fn prices(&self, who: &Principal, provider: &str) -> Result<Vec<ModelPrice>> {
        who.require(Action::Read)?;
        sql::prices(&self.store().reader, provider).await
    }

    /// Creates or replaces a suite of a prompt.
    pub async fn put_suite(&self, who: &Principal, prompt: &str, name: &str, suite: Suite) -> Result<SuiteView> {
        who.require(Action::Write)?;
        let entry = self.entry(prompt)?;
        let mut w = self.write().await?;
        let view = write_suite(&mut w, who, &entry, name, suite).await?;
        w.end().await?;
        Ok(view)
    }

    pub async fn suite(&self, who: &Principal, prompt: &str, name: &str) -> Result<SuiteView> {
        who.require(Action::Read)?;
        let entry = self.entry(prompt)?;
        sql::suite(&self.store().reader, entry.id, prompt, name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("'{prompt}' has no suite named '{name}'")))
    }

    pub async fn suites(&self, who: &Principal, prompt: &str) -> Result<Vec<SuiteView>> {
        who.require(Action::Read)?;
        let entry = self.entry(prompt)?;
        sql::suites(&self.store().reader, entry.id, prompt).await
    }

    /// Reads cases from a CSV or JSONL file into a suite (created when missing, with
    /// threshold 1): they replace its cases, or are added after them with `append`. The
    /// suite is read and written in one transaction, so imports at once lose no case.
    pub async fn import_cases(
        &self,
        who: &Principal,
        prompt: &str,
        name: &str,
        format: io::Format,
        append: bool,
        text: &str,
    ) -> Result<SuiteView> {
        who.require(Action::Write)?;
        let cases = io::read(format, text)?;
        let entry = self.entry(prompt)?;
        let mut w = self.write().await?;
        let (threshold, mut all) = match sql::suite(w.conn(), entry.id, prompt, name).await? {
            Some(current) => (current.threshold, current.cases),
            None => (1.0, Vec::new()),
        };
        if !append {
            all.clear();
        }
        all.extend(cases);
        let view = write_suite(&mut w, who, &entry, name, Suite { threshold, cases: all }).await?;
        w.end().await?;
        Ok(view)
    }

    /// A suite's cases as a CSV or JSONL file.
    pub async fn export_cases(&self, who: &Principal, prompt: &str, name: &str, format: io::Format) -> Result<String> {
        io::write(format, &self.suite(who, prompt, name).await?.cases)
    }

    /// Queues a run of a suite against a version (or label) and a model, and starts it in
    /// the background. Everything a run needs is checked here, so a run that starts has
    /// what it needs (a missing key or provider is a 422 now, not a failed run later).
    pub async fn start_run(&self, who: &Principal, prompt: &str, req: NewRun) -> Result<EvalRun> {
        who.require(Action::Write)?;
        let concurrency = self.concurrency(req.concurrency)?;
        let plan = self.plan_run(who, prompt, req).await?;
        self.launch(who, plan, concurrency, Arc::new(Semaphore::new(concurrency as usize)), None).await
    }

    fn concurrency(&self, asked: Option<u32>) -> Result<u32> {
        let settings = self.eval_settings();
        let concurrency = asked.unwrap_or(settings.default_concurrency);
        if !(1..=settings.max_concurrency).contains(&concurrency) {
            return Err(ServiceError::rule(
                "invalid_concurrency",
                format!("concurrency must be 1 to {} (got {concurrency})", settings.max_concurrency),
            ));
        }
        Ok(concurrency)
    }

    /// Everything one run needs, checked, before anything is written.
    async fn plan_run(&self, who: &Principal, prompt: &str, req: NewRun) -> Result<Plan> {
        if req.version.is_some() && req.label.is_some() {
            return Err(ServiceError::BadRequest("give either a version or a label, not both".into()));
        }
        let selector = Selector {
            version: req.version,
            label: req.version.is_none().then(|| req.label.clone().unwrap_or_else(|| names::LATEST.into())),
            ..Default::default()
        };
        let served = self.resolve(who, prompt, &selector).await?;
        let content = crate::compose::evaluated(&served.base.content, served.composed()?);
        let hash = served.base.view.hash.clone();
        self.plan_for(who, prompt, &served.base.view, content, hash, &req.suite, req.model).await
    }

    /// A run of `suite` on a version rendering `content` (the version composed, or composed
    /// with a candidate in place of an include), recorded under `hash`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn plan_for(
        &self,
        who: &Principal,
        prompt: &str,
        view: &domain::model::VersionView,
        content: domain::content::Content,
        hash: String,
        suite: &str,
        model: Option<String>,
    ) -> Result<Plan> {
        let suite = self.suite(who, prompt, suite).await?;
        let Some(model) =
            model.or_else(|| view.config.get("model").and_then(|m| m.as_str()).map(str::to_owned))
        else {
            return Err(ServiceError::rule(
                "no_model",
                format!(
                    "version {} has no `model` in its config: give `model` (provider/model) for the run",
                    view.version
                ),
            ));
        };
        let body = Suite { threshold: suite.threshold, cases: suite.cases.clone() };
        let spec = runner::RunSpec::prepare(self, &model, body, content, view.config.clone()).await?;
        Ok(Plan {
            prompt: prompt.to_owned(),
            prompt_id: self.entry(prompt)?.id,
            version: view.version,
            hash,
            suite,
            model,
            spec,
        })
    }

    /// Records a planned run and starts it; `permits` bound its model calls (shared by the
    /// runs of a migration).
    pub(crate) async fn launch(
        &self,
        who: &Principal,
        plan: Plan,
        concurrency: u32,
        permits: Arc<Semaphore>,
        batch: Option<&str>,
    ) -> Result<EvalRun> {
        let Plan { prompt, prompt_id, version, hash, suite, model, spec } = plan;
        let id = crate::random_id("run")?;
        let suite_body =
            domain::canonical::to_canonical_json(&serde_json::to_value(&spec.suite).map_err(ServiceError::internal)?);
        let at = time::now_us();
        {
            let mut w = self.write().await?;
            let row = sql::NewRunRow {
                id: &id,
                prompt_id,
                version,
                hash: &hash,
                suite: &suite.name,
                suite_hash: &suite.hash,
                suite_body: &suite_body,
                threshold: suite.threshold,
                model: &model,
                concurrency,
                batch,
                total: spec.suite.cases.len(),
                created_by: &who.actor,
                at,
            };
            sql::insert_run(w.conn(), &row).await?;
            // Held from the start: no other replica takes a run over before it begins.
            self.renew(w.conn(), &sql::run_lease(&id), self.eval_settings().stale_after).await?;
            let detail = json!({"run": id, "suite": suite.name, "suite_hash": suite.hash, "model": model, "hash": hash, "batch": batch});
            let mut e = event(who, AuditAction::RunStarted, Some(&prompt), detail);
            e.version = Some(version);
            w.audit(at, e).await?;
            w.commit().await?;
        }
        self.execute(id.clone(), who.actor.clone(), permits, spec, Default::default());
        self.eval_run_summary(&id).await
    }

    /// Executes a run in the background, skipping the cases in `recorded`.
    fn execute(
        &self,
        id: String,
        actor: String,
        permits: Arc<Semaphore>,
        spec: runner::RunSpec,
        recorded: HashSet<usize>,
    ) {
        let cancel = CancellationToken::new();
        self.evals().active.lock().insert(id.clone(), cancel.clone());
        let this = self.clone();
        tokio::spawn(async move {
            let launch = runner::Launch { id: id.clone(), actor, permits, spec, cancel, recorded };
            runner::execute(&this, launch).await;
            this.evals().active.lock().remove(&id);
        });
    }

    /// Two runs side by side: per-case changes (regressions first) and the deltas.
    pub async fn compare_runs(&self, who: &Principal, a: &str, b: &str) -> Result<RunComparison> {
        Ok(RunComparison::new(self.eval_run(who, a).await?, self.eval_run(who, b).await?))
    }

    /// A model migration: every suite of every prompt that has a stable version (in
    /// `folder`, or everywhere) run on the stable version against a candidate model, all
    /// runs sharing `concurrency`. Every run is planned (and so checked) before any starts.
    pub async fn start_migration(&self, who: &Principal, req: NewMigration) -> Result<Migration> {
        who.require(Action::Write)?;
        split_model(&req.model)?;
        let concurrency = self.concurrency(req.concurrency)?;
        let folder = req.folder.as_deref().map(|f| f.trim_matches('/')).filter(|f| !f.is_empty());
        if let Some(f) = folder {
            names::validate_prompt_name(f)?;
        }
        let mut plans = Vec::new();
        for (prompt, suite) in sql::suite_names(&self.store().reader).await? {
            let in_folder = folder.is_none_or(|f| prompt.strip_prefix(f).is_some_and(|rest| rest.starts_with('/')));
            let has_stable = self.entry(&prompt).is_ok_and(|e| e.summary.labels.contains_key(names::STABLE));
            if in_folder && has_stable {
                let req = NewRun {
                    suite,
                    label: Some(names::STABLE.into()),
                    model: Some(req.model.clone()),
                    ..Default::default()
                };
                plans.push(self.plan_run(who, &prompt, req).await?);
            }
        }
        if plans.is_empty() {
            return Err(ServiceError::rule(
                "nothing_to_run",
                format!(
                    "no prompt {} has both a stable version and a suite",
                    folder.map(|f| format!("in {f}/")).unwrap_or_else(|| "here".into())
                ),
            ));
        }
        let id = crate::random_id("mig")?;
        let at = time::now_us();
        {
            let mut w = self.write().await?;
            sql::insert_batch(w.conn(), &id, &req.model, folder, &who.actor, at).await?;
            let detail = json!({"migration": id, "model": req.model, "folder": folder, "runs": plans.len()});
            w.audit(at, event(who, AuditAction::MigrationStarted, None, detail)).await?;
            w.commit().await?;
        }
        let permits = Arc::new(Semaphore::new(concurrency as usize));
        for plan in plans {
            self.launch(who, plan, concurrency, permits.clone(), Some(&id)).await?;
        }
        self.migration(who, &id).await
    }

    /// A migration's report: each run against the latest earlier finished run of the same
    /// suite on the same version, regressions first.
    pub async fn migration(&self, who: &Principal, id: &str) -> Result<Migration> {
        who.require(Action::Read)?;
        let reader = &self.store().reader;
        let batch = sql::batch(reader, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("there is no model migration '{id}'")))?;
        let mut items = Vec::new();
        for row in sql::runs_in_batch(reader, id).await? {
            let candidate = row.view(sql::results(reader, &row.id).await?)?;
            let baseline = match sql::baseline(reader, &row.prompt, &row.hash, &row.suite, id).await? {
                Some(b) => Some(b.view(sql::results(reader, &b.id).await?)?),
                None => None,
            };
            let finished = matches!(candidate.status, RunStatus::Passed | RunStatus::Failed);
            let (regressed, regressed_cases) = match &baseline {
                Some(base) if finished => {
                    let cmp = RunComparison::new(base.clone(), candidate.clone());
                    let cases: Vec<usize> =
                        cmp.cases.iter().filter(|c| c.change == Change::Regressed).map(|c| c.case).collect();
                    (!cases.is_empty() || cmp.pass_rate_delta < -1e-9, cases)
                }
                _ => (candidate.status == RunStatus::Error, Vec::new()),
            };
            items.push(MigrationItem {
                prompt: candidate.prompt.clone(),
                suite: candidate.suite.clone(),
                version: candidate.version,
                candidate: RunBrief::from(&candidate),
                baseline: baseline.as_ref().map(RunBrief::from),
                regressed,
                regressed_cases,
            });
        }
        items.sort_by(|a, b| {
            b.regressed.cmp(&a.regressed).then_with(|| (&a.prompt, &a.suite).cmp(&(&b.prompt, &b.suite)))
        });
        Ok(Migration {
            id: batch.id,
            model: batch.model,
            folder: batch.folder,
            created_by: batch.created_by,
            created_at: time::format_us(batch.created_at),
            finished: items.iter().all(|i| i.candidate.status.is_final()),
            regressions: items.iter().filter(|i| i.regressed).count() as u64,
            items,
        })
    }

    /// A run with every case's result.
    pub async fn eval_run(&self, who: &Principal, id: &str) -> Result<EvalRun> {
        who.require(Action::Read)?;
        let row = sql::run(&self.store().reader, id).await?.ok_or_else(|| run_not_found(id))?;
        row.view(sql::results(&self.store().reader, id).await?)
    }

    async fn eval_run_summary(&self, id: &str) -> Result<EvalRun> {
        sql::run(&self.store().reader, id).await?.ok_or_else(|| run_not_found(id))?.view(Vec::new())
    }

    /// A prompt's runs, newest first, without their results.
    pub async fn eval_runs(
        &self,
        who: &Principal,
        prompt: &str,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<EvalRun>> {
        who.require(Action::Read)?;
        let entry = self.entry(prompt)?;
        let limit = page_limit(limit, RUNS_PAGE, 500)?;
        let before = crate::number_cursor(cursor)?;
        let rows = sql::runs(&self.store().reader, entry.id, before, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        let items = rows.iter().take(limit as usize).map(|r| r.view(Vec::new())).collect::<Result<Vec<_>>>()?;
        let next_cursor = more.then(|| rows[limit as usize - 1].created_at.to_string());
        Ok(Page { items, next_cursor })
    }

    /// The latest finished run of each version of a prompt (for the version timeline).
    pub async fn latest_results(
        &self,
        who: &Principal,
        prompt: &str,
    ) -> Result<std::collections::BTreeMap<i64, EvalRun>> {
        /// Runs looked at, newest first.
        const RECENT: i64 = 1000;
        who.require(Action::Read)?;
        let entry = self.entry(prompt)?;
        let mut latest = std::collections::BTreeMap::new();
        for row in sql::runs(&self.store().reader, entry.id, None, RECENT).await? {
            let run = row.view(Vec::new())?;
            if run.status.is_final() && run.status != RunStatus::Cancelled {
                latest.entry(run.version).or_insert(run);
            }
        }
        Ok(latest)
    }

    /// Stops a queued or running run; what it recorded so far stays.
    pub async fn cancel_run(&self, who: &Principal, id: &str) -> Result<EvalRun> {
        who.require(Action::Write)?;
        let row = sql::run(&self.store().reader, id).await?.ok_or_else(|| run_not_found(id))?;
        let (this, who, id) = (self.clone(), who.clone(), id.to_owned());
        detached(async move {
            let mut w = this.write().await?;
            let at = time::now_us();
            if sql::finish_run(w.conn(), &id, RunStatus::Cancelled, None, at).await? {
                let mut e = event(&who, AuditAction::RunCancelled, Some(&row.prompt), json!({"run": id}));
                e.version = Some(row.version);
                w.audit(at, e).await?;
            }
            w.end().await?;
            if let Some(token) = this.evals().active.lock().get(&id) {
                token.cancel();
            }
            this.eval_run_summary(&id).await
        })
        .await
    }

    /// Ends the runs this process is executing: called when the server shuts down, so
    /// none of them is left "running". On SQLite they end as interrupted; on PostgreSQL
    /// their leases are given up, and another replica (or this one, started again)
    /// carries them on.
    pub async fn interrupt_runs(&self) -> Result<()> {
        let active: Vec<(String, CancellationToken)> =
            self.evals().active.lock().iter().map(|(id, token)| (id.clone(), token.clone())).collect();
        if active.is_empty() {
            return Ok(());
        }
        for (_, token) in &active {
            token.cancel();
        }
        // A moment for the runs to record what they have, so whoever carries them on
        // does not send those cases again; a model call still out is given up.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.evals().active.lock().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.evals().active.lock().clear();
        if self.store().backend == Backend::Postgres {
            for (id, _) in &active {
                self.release(&sql::run_lease(id)).await?;
            }
            tracing::warn!(runs = active.len(), "left evaluation runs to the other replicas at shutdown");
            return Ok(());
        }
        let message = "interrupted: the server stopped while it was running; start the run again";
        let ids: Vec<&str> = active.iter().map(|(id, _)| id.as_str()).collect();
        self.end_interrupted(&ids, message, json!({"reason": "shutdown"})).await?;
        tracing::warn!(runs = active.len(), "interrupted evaluation runs at shutdown");
        Ok(())
    }

    /// Runs whose process stopped (a restart, a crash) without ending them. On SQLite,
    /// where one process serves the file, they end as interrupted, so no run stays
    /// "running" forever. On PostgreSQL a replica whose lease on a run lapsed has
    /// stopped: a live replica takes the lease and carries the run on from the cases it
    /// recorded. Called when the database is opened (on SQLite only: a command that
    /// opens PostgreSQL does not take runs over), and by `serve` every heartbeat.
    pub async fn sweep_interrupted_runs(&self) -> Result<()> {
        let settings = self.eval_settings();
        let reader = &self.store().reader;
        if self.store().backend == Backend::Postgres {
            for id in sql::live_runs(reader).await? {
                let mine = self.evals().active.lock().contains_key(&id);
                if !mine
                    && self.takes_over(&sql::run_lease(&id), settings.stale_after).await?
                    && let Err(e) = self.take_over(&id).await
                {
                    // The others are still taken over; this one is tried again when its
                    // lease lapses.
                    tracing::error!(run = id, error = %e, "could not take over an evaluation run");
                }
            }
            return Ok(());
        }
        let stale_before = time::now_us() - settings.stale_after.as_micros() as i64;
        let stale = sql::interrupted_runs(reader, stale_before).await?;
        if stale.is_empty() {
            return Ok(());
        }
        let message = "interrupted: the process running it stopped (a restart or a crash); start the run again";
        let ids: Vec<&str> = stale.iter().map(|(id, _, _)| id.as_str()).collect();
        self.end_interrupted(&ids, message, json!({})).await?;
        tracing::warn!(runs = stale.len(), "marked interrupted evaluation runs");
        Ok(())
    }

    /// Ends runs as interrupted, each with its audit event.
    async fn end_interrupted(&self, ids: &[&str], message: &str, detail: serde_json::Value) -> Result<()> {
        let mut w = self.write().await?;
        let at = time::now_us();
        for id in ids {
            let prompt = sql::run(w.conn(), id).await?.map(|r| r.prompt);
            if sql::finish_run(w.conn(), id, RunStatus::Error, Some(message), at).await? {
                let mut detail = detail.clone();
                detail["run"] = json!(id);
                let e = NewEvent {
                    actor: "system",
                    action: AuditAction::RunInterrupted,
                    prompt: prompt.as_deref(),
                    version: None,
                    label: None,
                    detail,
                };
                w.audit(at, e).await?;
            }
        }
        w.end().await
    }

    /// Carries on a run whose replica stopped (this replica holds its lease now): the
    /// cases it recorded stay, the rest run here. A run that cannot go on here (its
    /// provider's key is not set on this replica) ends with the reason.
    async fn take_over(&self, id: &str) -> Result<()> {
        let reader = &self.store().reader;
        let Some(order) = sql::run_order(reader, id).await? else { return Ok(()) };
        let version = store::version(reader, order.prompt_id, order.version)
            .await?
            .ok_or_else(|| ServiceError::internal("a run's version is missing"))?;
        let suite: Suite = serde_json::from_str(&order.suite_body).map_err(ServiceError::internal)?;
        let recorded: HashSet<usize> = sql::recorded_cases(reader, id).await?.into_iter().map(|i| i as usize).collect();
        let base = crate::version_base(&order.prompt, &version)?;
        let composition = self.composition_of(&base, None, &Default::default()).await??;
        let content = crate::compose::evaluated(&base.content, composition.as_ref());
        let config = content.config.clone();
        let spec = match runner::RunSpec::prepare(self, &order.model, suite, content, config).await {
            Ok(spec) => spec,
            Err(e) => {
                let message = format!("the replica that took this run over cannot run it: {e}");
                return runner::finish(self, id, &order.created_by, Some(&message)).await;
            }
        };
        {
            let mut w = self.write().await?;
            // The run may have ended between the sweep's read and the lease (its end frees
            // the lease): then there is nothing to carry on, and the lease goes again.
            let live = sql::run(w.conn(), id).await?.is_some_and(|r| matches!(r.status.as_str(), "queued" | "running"));
            if !live {
                w.end().await?;
                drop(w);
                return self.release(&sql::run_lease(id)).await;
            }
            let detail = json!({"run": id, "recorded": recorded.len(), "replica": self.replica()});
            let e = NewEvent {
                actor: "system",
                action: AuditAction::RunResumed,
                prompt: Some(&order.prompt),
                version: Some(order.version),
                label: None,
                detail,
            };
            w.audit(time::now_us(), e).await?;
            w.commit().await?;
        }
        tracing::warn!(run = id, recorded = recorded.len(), "took over an evaluation run whose replica stopped");
        let permits = Arc::new(Semaphore::new(order.concurrency.max(1) as usize));
        self.execute(id.to_owned(), order.created_by, permits, spec, recorded);
        Ok(())
    }
}

fn run_not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("there is no evaluation run '{id}'"))
}

fn event<'a>(
    who: &'a Principal,
    action: AuditAction,
    prompt: Option<&'a str>,
    detail: serde_json::Value,
) -> NewEvent<'a> {
    NewEvent { actor: &who.actor, action, prompt, version: None, label: None, detail }
}

/// Checks and saves a suite (with its audit event when it changed) in the caller's
/// transaction, and reads it back.
async fn write_suite(
    w: &mut WriteGuard<'_>,
    who: &Principal,
    entry: &PromptEntry,
    name: &str,
    suite: Suite,
) -> Result<SuiteView> {
    validate_suite_name(name)?;
    if suite.cases.is_empty() || suite.cases.len() > MAX_CASES {
        return Err(ServiceError::rule(
            "invalid_suite",
            format!("a suite has 1 to {MAX_CASES} cases (this one has {})", suite.cases.len()),
        ));
    }
    assertions::validate_suite(&suite)?;
    let prompt = &entry.summary.name;
    let at = time::now_us();
    if sql::put_suite(w.conn(), entry.id, name, &suite, &who.actor, at).await? {
        let detail =
            json!({"suite": name, "hash": suite.hash(), "cases": suite.cases.len(), "threshold": suite.threshold});
        w.audit(at, event(who, AuditAction::SuiteSaved, Some(prompt), detail)).await?;
    }
    sql::suite(w.conn(), entry.id, prompt, name).await?.ok_or_else(|| ServiceError::internal("suite vanished"))
}
