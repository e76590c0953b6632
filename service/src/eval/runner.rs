//! Executes a run in the background: cases in parallel up to the run's concurrency, each
//! rendered, sent to the model (with retries), and checked; results are written in
//! batches by one recorder, so a thousand cases cost a few dozen commits, not a thousand.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::content::{Content, Rendered};
use domain::eval::{Assertion, AssertionResult, Case, CaseResult, ModelPrice, RunStatus, Suite};
use domain::template::RenderLimits;
use domain::vocabulary::AuditAction;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::assertions::{self, Grading, Observation};
use super::providers::{CallError, Endpoint, RetryPolicy};
use super::split_model;
use crate::store::{NewEvent, WriteGuard, evals as sql};
use crate::{Registry, Result, ServiceError, time};

/// Results written per commit, at most; and the longest a result waits to be written.
const BATCH: usize = 64;
const BATCH_WAIT: Duration = Duration::from_millis(100);

/// Everything a run needs, checked before it is queued.
pub(crate) struct RunSpec {
    pub suite: Suite,
    content: Content,
    config: Map<String, Value>,
    /// The model under test, `provider/model`.
    model: String,
    /// Every provider the run calls (the model's, and judges' or embedders'), by name.
    endpoints: HashMap<String, Endpoint>,
    /// Prices by `provider/model`.
    prices: HashMap<String, ModelPrice>,
}

impl RunSpec {
    pub async fn prepare(
        registry: &Registry,
        model: &str,
        suite: Suite,
        content: Content,
        config: Map<String, Value>,
    ) -> Result<RunSpec> {
        let mut models = vec![model.to_owned()];
        models.extend(suite.cases.iter().flat_map(|c| &c.asserts).filter_map(|a| a.provider.clone()));
        let reader = &registry.store().reader;
        let mut endpoints = HashMap::new();
        let mut prices = HashMap::new();
        for m in &models {
            let (provider, _) = split_model(m)?;
            if !endpoints.contains_key(provider) {
                let Some(p) = sql::provider(reader, provider).await? else {
                    let known: Vec<String> = sql::providers(reader).await?.into_iter().map(|p| p.name).collect();
                    return Err(ServiceError::rule(
                        "unknown_provider",
                        format!(
                            "there is no provider named '{provider}' (known: {}); an admin adds one with `promptledger provider add`",
                            if known.is_empty() { "none yet".into() } else { known.join(", ") }
                        ),
                    ));
                };
                let api_key = match &p.api_key_env {
                    None => None,
                    Some(var) => Some(std::env::var(var).map_err(|_| {
                        ServiceError::rule(
                            "provider_key_missing",
                            format!("the environment variable {var} (the API key of provider '{provider}') is not set where promptledger runs"),
                        )
                    })?),
                };
                endpoints.insert(provider.to_owned(), Endpoint { kind: p.kind, base_url: p.base_url, api_key });
                for price in sql::prices(reader, provider).await? {
                    prices.insert(format!("{provider}/{}", price.model), price);
                }
            }
        }
        Ok(RunSpec { suite, content, config, model: model.to_owned(), endpoints, prices })
    }

    fn endpoint<'a>(&'a self, model: &'a str) -> std::result::Result<(&'a Endpoint, &'a str), String> {
        let (provider, name) = split_model(model).map_err(|e| e.to_string())?;
        self.endpoints.get(provider).map(|e| (e, name)).ok_or_else(|| format!("unknown provider '{provider}'"))
    }

    fn cost(&self, model: &str, tokens: domain::eval::Tokens) -> Option<f64> {
        let p = self.prices.get(model)?;
        Some((tokens.input as f64 * p.input_per_mtok + tokens.output as f64 * p.output_per_mtok) / 1_000_000.0)
    }
}

struct Context {
    spec: RunSpec,
    http: reqwest::Client,
    policy: RetryPolicy,
    cancel: CancellationToken,
}

/// A run ready to execute.
pub(crate) struct Launch {
    pub id: String,
    /// Who started it (the audit names them when it ends).
    pub actor: String,
    /// Bounds its model calls (shared by the runs of a migration).
    pub permits: Arc<Semaphore>,
    pub spec: RunSpec,
    pub cancel: CancellationToken,
    /// Cases recorded already (by a replica that stopped mid-run): not run again.
    pub recorded: HashSet<usize>,
}

/// Runs every case, records the results and ends the run; an internal failure ends it as
/// `error`, with its audit event like any other end.
pub(crate) async fn execute(registry: &Registry, launch: Launch) {
    let (id, actor) = (launch.id.clone(), launch.actor.clone());
    if let Err(e) = try_execute(registry, launch).await {
        tracing::error!(run = id, error = %e, "evaluation run failed");
        let message = "the run stopped on an internal error; it has been logged";
        if let Err(e) = finish(registry, &id, &actor, Some(message)).await {
            tracing::error!(run = id, error = %e, "could not end a failed evaluation run");
        }
    }
}

async fn try_execute(registry: &Registry, launch: Launch) -> Result<()> {
    let Launch { id, actor, permits, spec, cancel, recorded } = launch;
    let (id, actor) = (id.as_str(), actor.as_str());
    {
        let mut w = registry.bookkeeping().await?;
        let running = ours(registry, &mut w, id).await? && sql::mark_running(w.conn(), id, time::now_us()).await?;
        w.commit().await?;
        if !running {
            return Ok(()); // cancelled while queued, or taken over
        }
    }
    let settings = registry.eval_settings();
    let ctx =
        Arc::new(Context { spec, http: registry.evals().http.clone(), policy: settings.retry, cancel: cancel.clone() });
    let (tx, rx) = mpsc::channel::<CaseResult>(BATCH * 4);
    let recorder = tokio::spawn(record(registry.clone(), id.to_owned(), rx, settings.heartbeat, cancel.clone()));
    let mut cases = tokio::task::JoinSet::new();
    for (index, case) in ctx.spec.suite.cases.iter().enumerate().filter(|(i, _)| !recorded.contains(i)) {
        let (ctx, tx, permits) = (ctx.clone(), tx.clone(), permits.clone());
        let case = case.clone();
        cases.spawn(async move {
            let Ok(_permit) = permits.acquire().await else { return };
            if ctx.cancel.is_cancelled() {
                return;
            }
            let result = run_case(&ctx, index, &case).await;
            if !ctx.cancel.is_cancelled() {
                let _ = tx.send(result).await;
            }
        });
    }
    drop(tx);
    while cases.join_next().await.is_some() {}
    recorder.await.map_err(|e| ServiceError::internal(format!("recorder: {e}")))??;
    if cancel.is_cancelled() {
        return Ok(());
    }
    finish(registry, id, actor, None).await
}

/// Ends the run, with its audit event in the same transaction: as `error` with `failure`
/// when given, otherwise with the outcome its recorded counters decide.
pub(crate) async fn finish(registry: &Registry, id: &str, actor: &str, failure: Option<&str>) -> Result<()> {
    let mut w = registry.write().await?;
    if !ours(registry, &mut w, id).await? {
        return Ok(()); // another replica carries it on
    }
    let Some(row) = sql::run(w.conn(), id).await? else { return Ok(()) };
    let run = row.view(Vec::new())?;
    let (status, error) = if let Some(failure) = failure {
        (RunStatus::Error, Some(failure.to_owned()))
    } else if run.total > 0 && run.errors == run.total {
        let first = sql::results(w.conn(), id).await?.into_iter().find_map(|r| r.error).unwrap_or_default();
        (RunStatus::Error, Some(format!("no case got an answer from the model; the first error: {first}")))
    } else if run.pass_rate + 1e-9 >= run.threshold {
        (RunStatus::Passed, None)
    } else {
        (RunStatus::Failed, None)
    };
    let at = time::now_us();
    if sql::finish_run(w.conn(), id, status, error.as_deref(), at).await? {
        let detail = json!({"run": id, "status": status.as_str(), "pass_rate": run.pass_rate, "passed": run.passed,
                            "total": run.total, "cost": run.cost, "model": run.model, "suite": run.suite});
        let e = NewEvent {
            actor,
            action: AuditAction::RunFinished,
            prompt: Some(&run.prompt),
            version: Some(run.version),
            label: None,
            detail,
        };
        w.audit(at, e).await?;
    }
    w.end().await
}

/// Writes results in batches and keeps the heartbeat fresh; cancels the run when it was
/// ended elsewhere (a cancel from another process).
async fn record(
    registry: Registry,
    id: String,
    mut rx: mpsc::Receiver<CaseResult>,
    heartbeat: Duration,
    cancel: CancellationToken,
) -> Result<()> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_write = Instant::now();
    loop {
        let wait = if batch.is_empty() { heartbeat } else { BATCH_WAIT };
        let received = tokio::time::timeout(wait, rx.recv()).await;
        let closed = matches!(received, Ok(None));
        if let Ok(Some(result)) = received {
            batch.push(result);
            if batch.len() < BATCH && last_write.elapsed() < BATCH_WAIT {
                continue;
            }
        }
        let alive = if batch.is_empty() {
            if closed || last_write.elapsed() < heartbeat {
                true
            } else {
                let mut w = registry.bookkeeping().await?;
                let alive =
                    ours(&registry, &mut w, &id).await? && sql::heartbeat(w.conn(), &id, time::now_us()).await?;
                w.commit().await?;
                alive
            }
        } else {
            let mut w = registry.bookkeeping().await?;
            let alive = ours(&registry, &mut w, &id).await?
                && sql::record_results(w.conn(), &id, &batch, time::now_us()).await?;
            w.commit().await?;
            batch.clear();
            alive
        };
        last_write = Instant::now();
        if !alive {
            cancel.cancel();
        }
        if closed || !alive {
            return Ok(());
        }
    }
}

/// Whether this replica still holds the run, extending its lease inside the write `w`
/// (always on SQLite): a replica whose lease was given up or taken over stops without
/// writing.
async fn ours(registry: &Registry, w: &mut WriteGuard<'_>, id: &str) -> Result<bool> {
    registry.keeps(w.conn(), &sql::run_lease(id), registry.eval_settings().stale_after).await
}

async fn run_case(ctx: &Context, index: usize, case: &Case) -> CaseResult {
    let mut result = CaseResult {
        case: index,
        description: case.description.clone(),
        input: Value::Null,
        output: None,
        passed: false,
        score: 0.0,
        latency_ms: None,
        tokens: None,
        cost: None,
        finish_reason: None,
        error: None,
        assertions: Vec::new(),
    };
    let messages = match ctx.spec.content.render(&case.vars, true, RenderLimits::default()) {
        Ok(Rendered::Text(text)) => {
            result.input = Value::String(text.clone());
            vec![("user".to_owned(), text)]
        }
        Ok(Rendered::Chat(messages)) => {
            let pairs: Vec<(String, String)> =
                messages.into_iter().map(|m| (m.role.as_str().to_owned(), m.content)).collect();
            result.input = pairs.iter().map(|(r, c)| json!({"role": r, "content": c})).collect();
            pairs
        }
        Err(e) => {
            result.error = Some(format!("the case's variables do not fit the prompt: {e}"));
            return result;
        }
    };
    let (endpoint, model) = match ctx.spec.endpoint(&ctx.spec.model) {
        Ok(found) => found,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    let completion =
        match endpoint.complete(&ctx.http, &ctx.policy, &ctx.cancel, model, &messages, &ctx.spec.config).await {
            Ok(c) => c,
            Err(e) => {
                result.error = Some(e.message());
                return result;
            }
        };
    let latency_ms = completion.latency.as_millis() as u64;
    let cost = ctx.spec.cost(&ctx.spec.model, completion.tokens);
    let observation =
        Observation { output: &completion.text, latency_ms, cost, finish_reason: completion.finish_reason.as_deref() };
    for a in &case.asserts {
        let checked = match assertions::check(a, &observation) {
            Grading::Done(r) => r,
            Grading::Judge { rubric } => judge(ctx, a, &rubric, &completion.text).await,
            Grading::Embed { value, threshold } => similar(ctx, a, &value, threshold, &completion.text).await,
        };
        result.assertions.push(checked);
    }
    let (passed, score) = assertions::case_outcome(&case.asserts, &result.assertions);
    result.passed = passed;
    result.score = score;
    result.latency_ms = Some(latency_ms);
    result.tokens = Some(completion.tokens);
    result.cost = cost;
    result.finish_reason = completion.finish_reason;
    result.output = Some(completion.text);
    result
}

/// A failed assertion that could not be decided (the judge or embedder failed): never a
/// pass, even negated.
fn undecided(a: &Assertion, reason: String) -> AssertionResult {
    AssertionResult { kind: a.kind.clone(), passed: false, score: 0.0, reason }
}

async fn judge(ctx: &Context, a: &Assertion, rubric: &str, output: &str) -> AssertionResult {
    let model = a.provider.as_deref().unwrap_or(&ctx.spec.model);
    let (endpoint, name) = match ctx.spec.endpoint(model) {
        Ok(found) => found,
        Err(e) => return undecided(a, e),
    };
    let messages: Vec<(String, String)> =
        assertions::judge_messages(rubric, output).into_iter().map(|(r, c)| (r.to_owned(), c)).collect();
    let config = Map::from_iter([("temperature".to_owned(), json!(0))]);
    match endpoint.complete(&ctx.http, &ctx.policy, &ctx.cancel, name, &messages, &config).await {
        Ok(answer) => match assertions::parse_verdict(&answer.text) {
            Ok((pass, score, reason)) => {
                let pass = pass && a.threshold.is_none_or(|t| score >= t);
                assertions::finish(a, pass, score, reason)
            }
            Err(e) => undecided(a, format!("the judge ({model}) did not answer with a verdict: {e}")),
        },
        Err(e) => undecided(a, format!("the judge ({model}) could not be asked: {}", e.message())),
    }
}

async fn similar(ctx: &Context, a: &Assertion, value: &str, threshold: f64, output: &str) -> AssertionResult {
    let model = a.provider.as_deref().unwrap_or(&ctx.spec.model);
    let (endpoint, name) = match ctx.spec.endpoint(model) {
        Ok(found) => found,
        Err(e) => return undecided(a, e),
    };
    let expected = endpoint.embed(&ctx.http, &ctx.policy, &ctx.cancel, name, value);
    let actual = endpoint.embed(&ctx.http, &ctx.policy, &ctx.cancel, name, output);
    match tokio::try_join!(expected, actual) {
        Ok((expected, actual)) => {
            let similarity = assertions::cosine(&expected, &actual);
            let reason = format!("similarity {similarity:.3} to the expected text (needs at least {threshold})");
            assertions::finish(a, similarity >= threshold, similarity, reason)
        }
        Err(CallError::Cancelled) => undecided(a, "cancelled".into()),
        Err(e) => undecided(a, format!("the embeddings ({model}) could not be computed: {}", e.message())),
    }
}
