//! SQL of evaluations: providers, prices, suites, runs and their results.

use domain::eval::{
    AssertionResult, CaseResult, EvalRun, ModelPrice, Provider, ProviderKind, RunStatus, Suite, SuiteView, Tokens,
};
use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::corrupt;
use crate::error::Result;
use crate::time::format_us;

// ---------------------------------------------------------------- providers and prices

#[derive(FromRow)]
struct ProviderRow {
    name: String,
    kind: String,
    base_url: String,
    api_key_env: Option<String>,
}

impl ProviderRow {
    fn into_provider(self) -> Result<Provider> {
        let kind = ProviderKind::parse(&self.kind).ok_or_else(|| corrupt("provider kind"))?;
        Ok(Provider { name: self.name, kind, base_url: self.base_url, api_key_env: self.api_key_env })
    }
}

pub async fn put_provider(conn: &mut AnyConnection, p: &Provider, actor: &str, at: i64) -> Result<bool> {
    let existed = provider(&mut *conn, &p.name).await?.is_some();
    sqlx::query(
        "INSERT INTO providers (name, kind, base_url, api_key_env, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, base_url = excluded.base_url,
           api_key_env = excluded.api_key_env, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(&p.name)
    .bind(p.kind.as_str())
    .bind(&p.base_url)
    .bind(&p.api_key_env)
    .bind(actor)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(!existed)
}

pub async fn provider(db: impl AnyExecutor<'_>, name: &str) -> Result<Option<Provider>> {
    let row: Option<ProviderRow> =
        sqlx::query_as("SELECT name, kind, base_url, api_key_env FROM providers WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?;
    row.map(ProviderRow::into_provider).transpose()
}

pub async fn providers(db: impl AnyExecutor<'_>) -> Result<Vec<Provider>> {
    let rows: Vec<ProviderRow> =
        sqlx::query_as("SELECT name, kind, base_url, api_key_env FROM providers ORDER BY name").fetch_all(db).await?;
    rows.into_iter().map(ProviderRow::into_provider).collect()
}

pub async fn put_price(conn: &mut AnyConnection, provider: &str, p: &ModelPrice, actor: &str, at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO model_prices (provider, model, input_per_mtok, output_per_mtok, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (provider, model) DO UPDATE SET input_per_mtok = excluded.input_per_mtok,
           output_per_mtok = excluded.output_per_mtok, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(provider)
    .bind(&p.model)
    .bind(p.input_per_mtok)
    .bind(p.output_per_mtok)
    .bind(actor)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Prices of a provider's models.
pub async fn prices(db: impl AnyExecutor<'_>, provider: &str) -> Result<Vec<ModelPrice>> {
    let rows: Vec<(String, f64, f64)> = sqlx::query_as(
        "SELECT model, input_per_mtok, output_per_mtok FROM model_prices WHERE provider = $1 ORDER BY model",
    )
    .bind(provider)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(model, i, o)| ModelPrice { model, input_per_mtok: i, output_per_mtok: o }).collect())
}

// ---------------------------------------------------------------- suites

#[derive(FromRow)]
struct SuiteRow {
    name: String,
    hash: String,
    body: String,
    updated_by: String,
    updated_at: i64,
}

impl SuiteRow {
    fn view(self, prompt: &str) -> Result<SuiteView> {
        let suite: Suite = serde_json::from_str(&self.body).map_err(|_| corrupt("suite"))?;
        Ok(SuiteView {
            prompt: prompt.to_owned(),
            name: self.name,
            hash: self.hash,
            threshold: suite.threshold,
            cases: suite.cases,
            updated_by: self.updated_by,
            updated_at: format_us(self.updated_at),
        })
    }
}

/// Saves a suite; false when it was already exactly this.
pub async fn put_suite(
    conn: &mut AnyConnection,
    prompt_id: i64,
    name: &str,
    suite: &Suite,
    actor: &str,
    at: i64,
) -> Result<bool> {
    let hash = suite.hash();
    let current: Option<(String,)> = sqlx::query_as("SELECT hash FROM eval_suites WHERE prompt_id = $1 AND name = $2")
        .bind(prompt_id)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    if current.is_some_and(|(h,)| h == hash) {
        return Ok(false);
    }
    let body = domain::canonical::to_canonical_json(&serde_json::to_value(suite).map_err(|_| corrupt("suite"))?);
    sqlx::query(
        "INSERT INTO eval_suites (prompt_id, name, hash, body, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (prompt_id, name) DO UPDATE SET hash = excluded.hash, body = excluded.body,
           updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(prompt_id)
    .bind(name)
    .bind(&hash)
    .bind(body)
    .bind(actor)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(true)
}

pub async fn suite(db: impl AnyExecutor<'_>, prompt_id: i64, prompt: &str, name: &str) -> Result<Option<SuiteView>> {
    let row: Option<SuiteRow> = sqlx::query_as(
        "SELECT name, hash, body, updated_by, updated_at FROM eval_suites WHERE prompt_id = $1 AND name = $2",
    )
    .bind(prompt_id)
    .bind(name)
    .fetch_optional(db)
    .await?;
    row.map(|r| r.view(prompt)).transpose()
}

pub async fn suites(db: impl AnyExecutor<'_>, prompt_id: i64, prompt: &str) -> Result<Vec<SuiteView>> {
    let rows: Vec<SuiteRow> = sqlx::query_as(
        "SELECT name, hash, body, updated_by, updated_at FROM eval_suites WHERE prompt_id = $1 ORDER BY name",
    )
    .bind(prompt_id)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(|r| r.view(prompt)).collect()
}

// ---------------------------------------------------------------- runs

/// A run as inserted.
pub struct NewRunRow<'a> {
    pub id: &'a str,
    pub prompt_id: i64,
    pub version: i64,
    pub hash: &'a str,
    pub suite: &'a str,
    pub suite_hash: &'a str,
    pub suite_body: &'a str,
    pub threshold: f64,
    pub model: &'a str,
    pub concurrency: u32,
    pub batch: Option<&'a str>,
    pub total: usize,
    pub created_by: &'a str,
    pub at: i64,
}

pub async fn insert_run(conn: &mut AnyConnection, r: &NewRunRow<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO eval_runs (id, prompt_id, version, hash, suite, suite_hash, suite_body, threshold, model,
           concurrency, batch, status, total, created_by, created_at, heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'queued', $12, $13, $14, $15)",
    )
    .bind(r.id)
    .bind(r.prompt_id)
    .bind(r.version)
    .bind(r.hash)
    .bind(r.suite)
    .bind(r.suite_hash)
    .bind(r.suite_body)
    .bind(r.threshold)
    .bind(r.model)
    .bind(i64::from(r.concurrency))
    .bind(r.batch)
    .bind(r.total as i64)
    .bind(r.created_by)
    .bind(r.at)
    .bind(r.at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(FromRow)]
pub struct RunRow {
    pub id: String,
    pub prompt: String,
    pub version: i64,
    pub hash: String,
    pub suite: String,
    pub suite_hash: String,
    pub threshold: f64,
    pub model: String,
    pub status: String,
    pub total: i64,
    pub done: i64,
    pub passed: i64,
    pub failed: i64,
    pub errors: i64,
    pub cost: f64,
    pub latency_sum: i64,
    pub latency_n: i64,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl RunRow {
    pub fn view(&self, results: Vec<CaseResult>) -> Result<EvalRun> {
        let count = |n: i64| n.max(0) as u64;
        Ok(EvalRun {
            id: self.id.clone(),
            prompt: self.prompt.clone(),
            version: self.version,
            hash: self.hash.clone(),
            suite: self.suite.clone(),
            suite_hash: self.suite_hash.clone(),
            model: self.model.clone(),
            status: RunStatus::parse(&self.status).ok_or_else(|| corrupt("run status"))?,
            threshold: self.threshold,
            total: count(self.total),
            done: count(self.done),
            passed: count(self.passed),
            failed: count(self.failed),
            errors: count(self.errors),
            pass_rate: if self.total > 0 { self.passed as f64 / self.total as f64 } else { 0.0 },
            cost: self.cost,
            latency_ms: (self.latency_n > 0).then(|| self.latency_sum as f64 / self.latency_n as f64),
            error: self.error.clone(),
            created_by: self.created_by.clone(),
            created_at: format_us(self.created_at),
            started_at: self.started_at.map(format_us),
            finished_at: self.finished_at.map(format_us),
            results,
        })
    }
}

const RUN_COLUMNS: &str = "r.id, p.name AS prompt, r.version, r.hash, r.suite, r.suite_hash, r.threshold, r.model, r.status, r.total, r.done, r.passed, r.failed, r.errors, r.cost,
    r.latency_sum, r.latency_n, r.error, r.created_by, r.created_at, r.started_at, r.finished_at";

pub async fn run(db: impl AnyExecutor<'_>, id: &str) -> Result<Option<RunRow>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM eval_runs r JOIN prompts p ON p.id = r.prompt_id WHERE r.id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(db).await?)
}

/// A prompt's runs, newest first; `before` is a `created_at` cursor.
pub async fn runs(db: impl AnyExecutor<'_>, prompt_id: i64, before: Option<i64>, limit: i64) -> Result<Vec<RunRow>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM eval_runs r JOIN prompts p ON p.id = r.prompt_id
         WHERE r.prompt_id = $1 AND r.created_at < $2 ORDER BY r.created_at DESC, r.id DESC LIMIT $3"
    );
    Ok(sqlx::query_as(&sql).bind(prompt_id).bind(before.unwrap_or(i64::MAX)).bind(limit).fetch_all(db).await?)
}

/// Marks a queued run running (a run taken over is running already); false when it has
/// ended meanwhile (cancelled).
pub async fn mark_running(conn: &mut AnyConnection, id: &str, at: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE eval_runs SET status = 'running', started_at = COALESCE(started_at, $1), heartbeat_at = $2
         WHERE id = $3 AND status IN ('queued', 'running')",
    )
    .bind(at)
    .bind(at)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records finished cases and the run's new counters; false when the run is no longer
/// running (cancelled meanwhile, perhaps by another process).
pub async fn record_results(conn: &mut AnyConnection, id: &str, results: &[CaseResult], at: i64) -> Result<bool> {
    let passed = results.iter().filter(|r| r.passed).count() as i64;
    let errors = results.iter().filter(|r| r.error.is_some()).count() as i64;
    let cost: f64 = results.iter().filter_map(|r| r.cost).sum();
    let latencies: Vec<i64> = results.iter().filter_map(|r| r.latency_ms.map(|v| v as i64)).collect();
    let updated = sqlx::query(
        "UPDATE eval_runs SET done = done + $1, passed = passed + $2, failed = failed + $3, errors = errors + $4,
           cost = cost + $5, latency_sum = latency_sum + $6, latency_n = latency_n + $7, heartbeat_at = $8
         WHERE id = $9 AND status = 'running'",
    )
    .bind(results.len() as i64)
    .bind(passed)
    .bind(results.len() as i64 - passed)
    .bind(errors)
    .bind(cost)
    .bind(latencies.iter().sum::<i64>())
    .bind(latencies.len() as i64)
    .bind(at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    // Counters first: a run cancelled meanwhile takes no more results, so the results
    // stored always match `done`.
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    for r in results {
        sqlx::query(
            "INSERT INTO eval_results (run_id, case_index, description, input, output, passed, score,
               latency_ms, input_tokens, output_tokens, cost, finish_reason, error, assertions)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (run_id, case_index) DO UPDATE SET description = excluded.description, input = excluded.input, output = excluded.output, passed = excluded.passed, score = excluded.score, latency_ms = excluded.latency_ms, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, cost = excluded.cost, finish_reason = excluded.finish_reason, error = excluded.error, assertions = excluded.assertions",
        )
        .bind(id)
        .bind(r.case as i64)
        .bind(&r.description)
        .bind(r.input.to_string())
        .bind(&r.output)
        .bind(super::Flag(r.passed))
        .bind(r.score)
        .bind(r.latency_ms.map(|v| v as i64))
        .bind(r.tokens.map(|t| t.input as i64))
        .bind(r.tokens.map(|t| t.output as i64))
        .bind(super::Double(r.cost))
        .bind(&r.finish_reason)
        .bind(&r.error)
        .bind(serde_json::to_string(&r.assertions).map_err(|_| corrupt("assertions"))?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

/// Ends a run that is still queued or running; false when it had already ended.
pub async fn finish_run(
    conn: &mut AnyConnection,
    id: &str,
    status: RunStatus,
    error: Option<&str>,
    at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE eval_runs SET status = $1, error = $2, finished_at = $3, heartbeat_at = $4
         WHERE id = $5 AND status IN ('queued', 'running')",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(at)
    .bind(at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    // An ended run needs no replica to hold it.
    sqlx::query("DELETE FROM leases WHERE name = $1").bind(run_lease(id)).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// The lease a replica holds on a run it executes (PostgreSQL).
pub fn run_lease(id: &str) -> String {
    format!("eval-run:{id}")
}

/// The ids of every queued or running run.
pub async fn live_runs(db: impl AnyExecutor<'_>) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT id FROM eval_runs WHERE status IN ('queued', 'running') ORDER BY created_at")
        .fetch_all(db)
        .await?)
}

/// What a run was started with, to carry it on elsewhere.
#[derive(FromRow)]
pub struct RunOrder {
    pub prompt_id: i64,
    pub prompt: String,
    pub version: i64,
    pub model: String,
    pub concurrency: i64,
    pub suite_body: String,
    pub created_by: String,
}

pub async fn run_order(db: impl AnyExecutor<'_>, id: &str) -> Result<Option<RunOrder>> {
    Ok(sqlx::query_as(
        "SELECT r.prompt_id, p.name AS prompt, r.version, r.model, r.concurrency, r.suite_body, r.created_by
         FROM eval_runs r JOIN prompts p ON p.id = r.prompt_id WHERE r.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// The indexes of the cases a run has recorded.
pub async fn recorded_cases(db: impl AnyExecutor<'_>, id: &str) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar("SELECT case_index FROM eval_results WHERE run_id = $1").bind(id).fetch_all(db).await?)
}

/// Runs whose process stopped: queued or running with a heartbeat older than `stale_before`.
pub async fn interrupted_runs(db: impl AnyExecutor<'_>, stale_before: i64) -> Result<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT r.id, p.name, r.created_by FROM eval_runs r JOIN prompts p ON p.id = r.prompt_id
         WHERE r.status IN ('queued', 'running') AND r.heartbeat_at < $1",
    )
    .bind(stale_before)
    .fetch_all(db)
    .await?)
}

pub async fn heartbeat(db: impl AnyExecutor<'_>, id: &str, at: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE eval_runs SET heartbeat_at = $1 WHERE id = $2 AND status = 'running'")
        .bind(at)
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(FromRow)]
struct ResultRow {
    case_index: i64,
    description: String,
    input: String,
    output: Option<String>,
    #[sqlx(try_from = "super::Flag")]
    passed: bool,
    score: f64,
    latency_ms: Option<i64>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cost: Option<f64>,
    finish_reason: Option<String>,
    error: Option<String>,
    assertions: String,
}

pub async fn results(db: impl AnyExecutor<'_>, id: &str) -> Result<Vec<CaseResult>> {
    let rows: Vec<ResultRow> = sqlx::query_as(
        "SELECT case_index, description, input, output, passed, score, latency_ms, input_tokens, output_tokens, cost,
           finish_reason, error, assertions FROM eval_results WHERE run_id = $1 ORDER BY case_index",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(CaseResult {
                case: r.case_index.max(0) as usize,
                description: r.description,
                input: serde_json::from_str(&r.input).map_err(|_| corrupt("case input"))?,
                output: r.output,
                passed: r.passed,
                score: r.score,
                latency_ms: r.latency_ms.map(|v| v.max(0) as u64),
                tokens: match (r.input_tokens, r.output_tokens) {
                    (Some(i), Some(o)) => Some(Tokens { input: i.max(0) as u64, output: o.max(0) as u64 }),
                    _ => None,
                },
                cost: r.cost,
                finish_reason: r.finish_reason,
                error: r.error,
                assertions: serde_json::from_str::<Vec<AssertionResult>>(&r.assertions)
                    .map_err(|_| corrupt("assertion results"))?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------- model migrations

/// Every (prompt, suite) pair, by prompt name.
pub async fn suite_names(db: impl AnyExecutor<'_>) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT p.name, s.name FROM eval_suites s JOIN prompts p ON p.id = s.prompt_id ORDER BY p.name, s.name",
    )
    .fetch_all(db)
    .await?)
}

pub async fn insert_batch(
    conn: &mut AnyConnection,
    id: &str,
    model: &str,
    folder: Option<&str>,
    actor: &str,
    at: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO eval_batches (id, model, folder, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(model)
        .bind(folder)
        .bind(actor)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(FromRow)]
pub struct BatchRow {
    pub id: String,
    pub model: String,
    pub folder: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

pub async fn batch(db: impl AnyExecutor<'_>, id: &str) -> Result<Option<BatchRow>> {
    Ok(sqlx::query_as("SELECT id, model, folder, created_by, created_at FROM eval_batches WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn runs_in_batch(db: impl AnyExecutor<'_>, id: &str) -> Result<Vec<RunRow>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM eval_runs r JOIN prompts p ON p.id = r.prompt_id WHERE r.batch = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_all(db).await?)
}

/// The latest finished run of `suite` on the version with `hash`, outside `batch`.
pub async fn baseline(
    db: impl AnyExecutor<'_>,
    prompt: &str,
    hash: &str,
    suite: &str,
    batch: &str,
) -> Result<Option<RunRow>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM eval_runs r JOIN prompts p ON p.id = r.prompt_id
         WHERE p.name = $1 AND r.hash = $2 AND r.suite = $3 AND r.status IN ('passed', 'failed')
           AND (r.batch IS NULL OR r.batch != $4)
         ORDER BY r.created_at DESC LIMIT 1"
    );
    Ok(sqlx::query_as(&sql).bind(prompt).bind(hash).bind(suite).bind(batch).fetch_optional(db).await?)
}

/// The finished run of `suite` on the version with `hash` with the best pass rate:
/// (run id, pass rate).
pub async fn best_run(
    ex: impl AnyExecutor<'_>,
    prompt_id: i64,
    hash: &str,
    suite: &str,
) -> Result<Option<(String, f64)>> {
    Ok(sqlx::query_as(
        "SELECT id, CAST(passed AS REAL) / total AS rate FROM eval_runs
         WHERE prompt_id = $1 AND hash = $2 AND suite = $3 AND status IN ('passed', 'failed') AND total > 0
         ORDER BY rate DESC, created_at DESC LIMIT 1",
    )
    .bind(prompt_id)
    .bind(hash)
    .bind(suite)
    .fetch_optional(ex)
    .await?)
}
