//! SQL of production telemetry. Generations, scores and rollups live in their own SQLite
//! file (`<db>.telemetry`, opened with [`Store::open_telemetry`](super::Store)) with its own
//! writer, so heavy ingest never waits for, or delays, a change to the registry. Budgets
//! and their alerts are registry changes (audited) and live in the registry's file.

use domain::telemetry::{
    Arm, Budget, BudgetWindow, Drift, Generation, GenerationFilter, Histogram, OnExceed, Score, Status,
};
use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::Sql;

use super::corrupt;
use crate::error::Result;
use crate::time::format_us;

/// A generation ready to store: checked, costed, cut and judged for drift.
#[derive(Debug, Clone, FromRow)]
pub struct GenerationRow {
    pub seq: i64,
    pub id: String,
    pub prompt: String,
    pub version: i64,
    pub hash: Option<String>,
    pub label: Option<String>,
    pub rollout: Option<String>,
    pub arm: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost: Option<f64>,
    pub cost_source: Option<String>,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub status: String,
    pub error: Option<String>,
    pub finish_reason: Option<String>,
    pub variables: Option<String>,
    pub output: Option<String>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub metadata: Option<String>,
    pub drift: Option<String>,
    pub truncated: Option<String>,
    pub started_at: i64,
    pub received_at: i64,
    /// The phase of its rollout it counts in (a live rollout's stretch at one weight).
    pub phase: Option<i64>,
}

const COLUMNS: &str = "seq, id, prompt, version, hash, label, rollout, arm, model, input_tokens, output_tokens, cost,
    cost_source, latency_ms, ttft_ms, status, error, finish_reason, variables, output, \"user\", session, metadata, drift,
    truncated, started_at, received_at, phase";

impl GenerationRow {
    pub fn view(&self) -> Result<Generation> {
        fn object<T: serde::de::DeserializeOwned>(text: &Option<String>, what: &str) -> Result<Option<T>> {
            text.as_deref().map(|t| serde_json::from_str(t).map_err(|_| corrupt(what))).transpose()
        }
        Ok(Generation {
            id: self.id.clone(),
            prompt: self.prompt.clone(),
            version: self.version,
            hash: self.hash.clone(),
            label: self.label.clone(),
            rollout: self.rollout.clone(),
            arm: self.arm.as_deref().and_then(Arm::parse),
            model: self.model.clone(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost: self.cost,
            cost_source: self.cost_source.clone(),
            latency_ms: self.latency_ms,
            ttft_ms: self.ttft_ms,
            status: Status::parse(&self.status).ok_or_else(|| corrupt("generation status"))?,
            error: self.error.clone(),
            finish_reason: self.finish_reason.clone(),
            variables: object(&self.variables, "generation variables")?,
            output: self.output.clone(),
            user: self.user.clone(),
            session: self.session.clone(),
            metadata: object(&self.metadata, "generation metadata")?,
            started_at: format_us(self.started_at),
            received_at: format_us(self.received_at),
            drift: self.drift.as_deref().and_then(Drift::parse),
            truncated: object(&self.truncated, "generation truncation")?.unwrap_or_default(),
        })
    }
}

/// Stores a batch in few statements: many rows per `INSERT`, every value bound (a
/// statement per row would cost more than the rows do). A request id already stored, or
/// repeated in the batch, is skipped; returns the ids that were stored.
pub async fn insert_generations(conn: &mut AnyConnection, rows: &[GenerationRow]) -> Result<Vec<String>> {
    let mut stored = Vec::with_capacity(rows.len());
    // 27 values a row, under SQLite's limit of 32,766 bound values a statement
    // (PostgreSQL's is 65,535).
    for chunk in rows.chunks(1000) {
        let mut q = Sql::on(conn, format!("INSERT INTO generations ({}) VALUES ", COLUMNS.trim_start_matches("seq, ")));
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.tuple(|b| {
                b.bind(&r.id)
                    .bind(&r.prompt)
                    .bind(r.version)
                    .bind(&r.hash)
                    .bind(&r.label)
                    .bind(&r.rollout)
                    .bind(&r.arm)
                    .bind(&r.model)
                    .bind(r.input_tokens)
                    .bind(r.output_tokens)
                    .bind(super::Double(r.cost))
                    .bind(&r.cost_source)
                    .bind(super::Double(r.latency_ms))
                    .bind(super::Double(r.ttft_ms))
                    .bind(&r.status)
                    .bind(&r.error)
                    .bind(&r.finish_reason)
                    .bind(&r.variables)
                    .bind(&r.output)
                    .bind(&r.user)
                    .bind(&r.session)
                    .bind(&r.metadata)
                    .bind(&r.drift)
                    .bind(&r.truncated)
                    .bind(r.started_at)
                    .bind(r.received_at)
                    .bind(r.phase);
            });
        }
        q.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
        let (sql, args) = q.build()?;
        stored.extend(sqlx::query_scalar_with::<_, String, _>(&sql, args).fetch_all(&mut *conn).await?);
    }
    Ok(stored)
}

pub async fn generation(ex: impl AnyExecutor<'_>, id: &str) -> Result<Option<GenerationRow>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM generations WHERE id = $1")).bind(id).fetch_optional(ex).await?)
}

/// Where a page of generations starts: strictly older than (`started_at`, `seq`).
pub type GenerationCursor = (i64, i64);

/// Newest first, filtered; `since`/`until` are parsed times.
pub async fn generations_page(
    ex: impl AnyExecutor<'_>,
    f: &GenerationFilter,
    since: Option<i64>,
    until: Option<i64>,
    before: Option<GenerationCursor>,
    limit: i64,
) -> Result<Vec<GenerationRow>> {
    let mut q = Sql::new(format!("SELECT {COLUMNS} FROM generations WHERE 1 = 1"));
    if let Some(p) = &f.prompt {
        q.push(" AND prompt = ").bind(p.clone());
    }
    if let Some(v) = f.version {
        q.push(" AND version = ").bind(v);
    }
    if let Some(l) = &f.label {
        q.push(" AND label = ").bind(l.clone());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").bind(s.as_str());
    }
    if let Some(u) = &f.user {
        q.push(" AND \"user\" = ").bind(u.clone());
    }
    if let Some(s) = &f.session {
        q.push(" AND session = ").bind(s.clone());
    }
    if let Some(d) = f.drift {
        q.push(" AND drift = ").bind(d.as_str());
    }
    if let Some(t) = since {
        q.push(" AND started_at >= ").bind(t);
    }
    if let Some(t) = until {
        q.push(" AND started_at < ").bind(t);
    }
    if let Some((at, seq)) = before {
        q.push(" AND (started_at, seq) < (").bind(at).push(", ").bind(seq).push(")");
    }
    q.push(" ORDER BY started_at DESC, seq DESC LIMIT ").bind(limit);
    let (sql, args) = q.build()?;
    Ok(sqlx::query_as_with(&sql, args).fetch_all(ex).await?)
}

/// Deletes up to `limit` generations that started before `before`; how many went.
pub async fn prune_generations(conn: &mut AnyConnection, before: i64, limit: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM generations WHERE seq IN (SELECT seq FROM generations WHERE started_at < $1 ORDER BY started_at LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes up to `limit` scores received before `before`; how many went.
pub async fn prune_scores(conn: &mut AnyConnection, before: i64, limit: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM scores WHERE seq IN (SELECT seq FROM scores WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

// ---------------------------------------------------------------- scores

#[derive(Debug, Clone, FromRow)]
pub struct ScoreRow {
    pub seq: i64,
    pub generation: String,
    pub name: String,
    pub value: f64,
    pub comment: Option<String>,
    pub created_at: i64,
}

impl ScoreRow {
    pub fn view(&self) -> Score {
        Score {
            name: self.name.clone(),
            value: self.value,
            comment: self.comment.clone(),
            created_at: format_us(self.created_at),
        }
    }
}

pub async fn insert_score(
    conn: &mut AnyConnection,
    generation: &str,
    name: &str,
    value: f64,
    comment: Option<&str>,
    at: i64,
    rolled_up: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO scores (generation, name, value, comment, created_at, rolled_up) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(generation)
    .bind(name)
    .bind(value)
    .bind(comment)
    .bind(at)
    .bind(super::Flag(rolled_up))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn scores_of(ex: impl AnyExecutor<'_>, generation: &str) -> Result<Vec<ScoreRow>> {
    Ok(sqlx::query_as(
        "SELECT seq, generation, name, value, comment, created_at FROM scores WHERE generation = $1 ORDER BY seq",
    )
    .bind(generation)
    .fetch_all(ex)
    .await?)
}

/// Scores whose generation had not arrived when they did.
pub async fn pending_scores(ex: impl AnyExecutor<'_>) -> Result<Vec<ScoreRow>> {
    Ok(sqlx::query_as(
        "SELECT seq, generation, name, value, comment, created_at FROM scores WHERE rolled_up = 0 ORDER BY seq",
    )
    .fetch_all(ex)
    .await?)
}

pub async fn count_pending_scores(ex: impl AnyExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM scores WHERE rolled_up = 0").fetch_one(ex).await?)
}

pub async fn mark_rolled_up(conn: &mut AnyConnection, seqs: &[i64]) -> Result<()> {
    for chunk in seqs.chunks(1000) {
        let mut q = Sql::on(conn, "UPDATE scores SET rolled_up = 1 WHERE seq IN ");
        q.tuple(|t| {
            for seq in chunk {
                t.bind(*seq);
            }
        });
        let (sql, args) = q.build()?;
        sqlx::query_with(&sql, args).execute(&mut *conn).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- rollups

/// Which rollup row a generation counts in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    pub prompt: String,
    pub bucket: i64,
    pub version: i64,
    pub rollout: String,
    pub arm: String,
}

/// The additive figures of one rollup row.
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    pub count: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub priced: i64,
    pub unpriced: i64,
    pub cost: f64,
    pub cost_sq: f64,
    pub latency_n: i64,
    pub latency_sum: f64,
    pub latency_sq: f64,
    pub drift_hash: i64,
    pub drift_stale: i64,
    pub latency: Histogram,
    pub ttft: Histogram,
}

impl Rollup {
    pub fn add(&mut self, g: &GenerationRow) {
        self.count += 1;
        self.errors += i64::from(g.status == Status::Error.as_str());
        self.input_tokens += g.input_tokens.unwrap_or(0);
        self.output_tokens += g.output_tokens.unwrap_or(0);
        match g.cost {
            Some(c) => {
                self.priced += 1;
                self.cost += c;
                self.cost_sq += c * c;
            }
            None => self.unpriced += 1,
        }
        if let Some(l) = g.latency_ms {
            self.latency_n += 1;
            self.latency_sum += l;
            self.latency_sq += l * l;
            self.latency.record(l);
        }
        if let Some(t) = g.ttft_ms {
            self.ttft.record(t);
        }
        match g.drift.as_deref().and_then(Drift::parse) {
            Some(Drift::HashMismatch) => self.drift_hash += 1,
            Some(Drift::StaleLabel) => self.drift_stale += 1,
            None => {}
        }
    }

    pub fn merge(&mut self, o: &Rollup) {
        self.count += o.count;
        self.errors += o.errors;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.priced += o.priced;
        self.unpriced += o.unpriced;
        self.cost += o.cost;
        self.cost_sq += o.cost_sq;
        self.latency_n += o.latency_n;
        self.latency_sum += o.latency_sum;
        self.latency_sq += o.latency_sq;
        self.drift_hash += o.drift_hash;
        self.drift_stale += o.drift_stale;
        self.latency.merge(&o.latency);
        self.ttft.merge(&o.ttft);
    }
}

#[derive(FromRow)]
struct RollupRow {
    version: i64,
    bucket: i64,
    count: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    priced: i64,
    unpriced: i64,
    cost: f64,
    cost_sq: f64,
    latency_n: i64,
    latency_sum: f64,
    latency_sq: f64,
    drift_hash: i64,
    drift_stale: i64,
    latency: Vec<u8>,
    ttft: Vec<u8>,
}

impl RollupRow {
    fn rollup(&self) -> Rollup {
        Rollup {
            count: self.count,
            errors: self.errors,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            priced: self.priced,
            unpriced: self.unpriced,
            cost: self.cost,
            cost_sq: self.cost_sq,
            latency_n: self.latency_n,
            latency_sum: self.latency_sum,
            latency_sq: self.latency_sq,
            drift_hash: self.drift_hash,
            drift_stale: self.drift_stale,
            latency: Histogram::from_bytes(&self.latency),
            ttft: Histogram::from_bytes(&self.ttft),
        }
    }
}

const ROLLUP_COLUMNS: &str =
    "version, bucket, count, errors, input_tokens, output_tokens, priced, unpriced, cost, cost_sq,
    latency_n, latency_sum, latency_sq, drift_hash, drift_stale, latency, ttft";

/// Adds `add` to the row of `key` (creating it), inside the ingest transaction.
pub async fn add_to_rollup(conn: &mut AnyConnection, key: &RollupKey, add: &Rollup) -> Result<()> {
    let existing: Option<RollupRow> = sqlx::query_as(&format!(
        "SELECT {ROLLUP_COLUMNS} FROM rollups WHERE prompt = $1 AND bucket = $2 AND version = $3 AND rollout = $4 AND arm = $5"
    ))
    .bind(&key.prompt)
    .bind(key.bucket)
    .bind(key.version)
    .bind(&key.rollout)
    .bind(&key.arm)
    .fetch_optional(&mut *conn)
    .await?;
    let mut total = existing.map(|r| r.rollup()).unwrap_or_default();
    total.merge(add);
    sqlx::query(
        "INSERT INTO rollups (prompt, bucket, version, rollout, arm, count, errors, input_tokens,
             output_tokens, priced, unpriced, cost, cost_sq, latency_n, latency_sum, latency_sq, drift_hash,
             drift_stale, latency, ttft)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
         ON CONFLICT (prompt, bucket, version, rollout, arm) DO UPDATE SET count = excluded.count, errors = excluded.errors, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, priced = excluded.priced, unpriced = excluded.unpriced, cost = excluded.cost, cost_sq = excluded.cost_sq, latency_n = excluded.latency_n, latency_sum = excluded.latency_sum, latency_sq = excluded.latency_sq, drift_hash = excluded.drift_hash, drift_stale = excluded.drift_stale, latency = excluded.latency, ttft = excluded.ttft",
    )
    .bind(&key.prompt)
    .bind(key.bucket)
    .bind(key.version)
    .bind(&key.rollout)
    .bind(&key.arm)
    .bind(total.count)
    .bind(total.errors)
    .bind(total.input_tokens)
    .bind(total.output_tokens)
    .bind(total.priced)
    .bind(total.unpriced)
    .bind(total.cost)
    .bind(total.cost_sq)
    .bind(total.latency_n)
    .bind(total.latency_sum)
    .bind(total.latency_sq)
    .bind(total.drift_hash)
    .bind(total.drift_stale)
    .bind(total.latency.to_bytes())
    .bind(total.ttft.to_bytes())
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `add` to a rollout's evidence for one phase and arm, inside the ingest transaction.
pub async fn add_to_rollout_rollup(
    conn: &mut AnyConnection,
    rollout: &str,
    phase: i64,
    arm: &str,
    add: &Rollup,
) -> Result<()> {
    let existing: Option<(i64, i64, i64, f64, f64, Vec<u8>)> = sqlx::query_as(
        "SELECT count, errors, priced, cost, cost_sq, latency FROM rollout_rollups WHERE rollout = $1 AND phase = $2 AND arm = $3",
    )
    .bind(rollout)
    .bind(phase)
    .bind(arm)
    .fetch_optional(&mut *conn)
    .await?;
    let mut total = existing
        .map(|(count, errors, priced, cost, cost_sq, latency)| Rollup {
            count,
            errors,
            priced,
            cost,
            cost_sq,
            latency: Histogram::from_bytes(&latency),
            ..Rollup::default()
        })
        .unwrap_or_default();
    total.merge(add);
    sqlx::query(
        "INSERT INTO rollout_rollups (rollout, phase, arm, count, errors, priced, cost, cost_sq, latency)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (rollout, phase, arm) DO UPDATE SET count = excluded.count, errors = excluded.errors, priced = excluded.priced, cost = excluded.cost, cost_sq = excluded.cost_sq, latency = excluded.latency",
    )
    .bind(rollout)
    .bind(phase)
    .bind(arm)
    .bind(total.count)
    .bind(total.errors)
    .bind(total.priced)
    .bind(total.cost)
    .bind(total.cost_sq)
    .bind(total.latency.to_bytes())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_rollout_score(
    conn: &mut AnyConnection,
    rollout: &str,
    phase: i64,
    arm: &str,
    name: &str,
    value: f64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO rollout_score_rollups (rollout, phase, arm, name, count, sum, sum_sq) VALUES ($1, $2, $3, $4, 1, $5, $6)
         ON CONFLICT (rollout, phase, arm, name)
         DO UPDATE SET count = rollout_score_rollups.count + 1, sum = rollout_score_rollups.sum + excluded.sum, sum_sq = rollout_score_rollups.sum_sq + excluded.sum_sq",
    )
    .bind(rollout)
    .bind(phase)
    .bind(arm)
    .bind(name)
    .bind(value)
    .bind(value * value)
    .execute(conn)
    .await?;
    Ok(())
}

/// A score's count, sum and sum of squares in one phase and arm of a rollout.
#[derive(Debug, Clone, FromRow)]
pub struct ScoreSums {
    pub phase: i64,
    pub arm: String,
    pub name: String,
    pub count: i64,
    pub sum: f64,
    pub sum_sq: f64,
}

/// (phase, arm, figures) of a rollout, and its scores.
pub type RolloutEvidence = (Vec<(i64, String, Rollup)>, Vec<ScoreSums>);

/// phase, arm, count, errors, priced, cost, cost_sq, latency histogram.
type EvidenceRow = (i64, String, i64, i64, i64, f64, f64, Vec<u8>);

/// A rollout's evidence, phase by phase.
pub async fn rollout_evidence(ex: &sqlx::AnyPool, rollout: &str) -> Result<RolloutEvidence> {
    let rows: Vec<EvidenceRow> = sqlx::query_as(
        "SELECT phase, arm, count, errors, priced, cost, cost_sq, latency FROM rollout_rollups WHERE rollout = $1
         ORDER BY phase, arm",
    )
    .bind(rollout)
    .fetch_all(ex)
    .await?;
    let figures = rows
        .into_iter()
        .map(|(phase, arm, count, errors, priced, cost, cost_sq, latency)| {
            let latency = Histogram::from_bytes(&latency);
            let r = Rollup {
                count,
                errors,
                priced,
                cost,
                cost_sq,
                latency_n: latency.count() as i64,
                latency,
                ..Default::default()
            };
            (phase, arm, r)
        })
        .collect();
    let scores = sqlx::query_as(
        "SELECT phase, arm, name, count, sum, sum_sq FROM rollout_score_rollups WHERE rollout = $1 ORDER BY phase, arm, name",
    )
    .bind(rollout)
    .fetch_all(ex)
    .await?;
    Ok((figures, scores))
}

/// A rollout's rollup rows over its whole life, per arm: (arm, version, figures).
pub async fn rollout_rollups(
    ex: impl AnyExecutor<'_>,
    prompt: &str,
    rollout: &str,
) -> Result<Vec<(String, i64, Rollup)>> {
    let rows: Vec<(String, RollupRow)> = sqlx::query_as::<_, RollupArmRow>(&format!(
        "SELECT arm, {ROLLUP_COLUMNS} FROM rollups WHERE prompt = $1 AND rollout = $2 ORDER BY bucket"
    ))
    .bind(prompt)
    .bind(rollout)
    .fetch_all(ex)
    .await?
    .into_iter()
    .map(|r| (r.arm, r.row))
    .collect();
    Ok(rows.iter().map(|(arm, r)| (arm.clone(), r.version, r.rollup())).collect())
}

#[derive(FromRow)]
struct RollupArmRow {
    arm: String,
    #[sqlx(flatten)]
    row: RollupRow,
}

/// Score count and sum per arm and name over a rollout's life.
pub async fn rollout_score_totals(
    ex: impl AnyExecutor<'_>,
    prompt: &str,
    rollout: &str,
) -> Result<Vec<(String, String, i64, f64)>> {
    Ok(sqlx::query_as(
        "SELECT arm, name, CAST(SUM(count) AS BIGINT), SUM(sum) FROM score_rollups WHERE prompt = $1 AND rollout = $2
         GROUP BY arm, name ORDER BY arm, name",
    )
    .bind(prompt)
    .bind(rollout)
    .fetch_all(ex)
    .await?)
}

/// A prompt's rollup rows in `[since, until)`: (version, bucket, figures).
pub async fn rollups(
    ex: impl AnyExecutor<'_>,
    prompt: &str,
    since: i64,
    until: i64,
) -> Result<Vec<(i64, i64, Rollup)>> {
    let rows: Vec<RollupRow> = sqlx::query_as(&format!(
        "SELECT {ROLLUP_COLUMNS} FROM rollups WHERE prompt = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket"
    ))
    .bind(prompt)
    .bind(since)
    .bind(until)
    .fetch_all(ex)
    .await?;
    Ok(rows.iter().map(|r| (r.version, r.bucket, r.rollup())).collect())
}

/// Dollars spent on a prompt by calls that started in `[since, until)`.
pub async fn spent(ex: impl AnyExecutor<'_>, prompt: &str, since: i64, until: i64) -> Result<f64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(SUM(cost), 0.0) FROM rollups WHERE prompt = $1 AND bucket >= $2 AND bucket < $3",
    )
    .bind(prompt)
    .bind(since)
    .bind(until)
    .fetch_one(ex)
    .await?)
}

pub async fn add_score_to_rollup(conn: &mut AnyConnection, key: &RollupKey, name: &str, value: f64) -> Result<()> {
    sqlx::query(
        "INSERT INTO score_rollups (prompt, bucket, version, rollout, arm, name, count, sum, sum_sq)
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)
         ON CONFLICT (prompt, bucket, version, rollout, arm, name)
         DO UPDATE SET count = score_rollups.count + 1, sum = score_rollups.sum + excluded.sum, sum_sq = score_rollups.sum_sq + excluded.sum_sq",
    )
    .bind(&key.prompt)
    .bind(key.bucket)
    .bind(key.version)
    .bind(&key.rollout)
    .bind(&key.arm)
    .bind(name)
    .bind(value)
    .bind(value * value)
    .execute(conn)
    .await?;
    Ok(())
}

/// Score count and sum per version and name over `[since, until)`.
pub async fn score_totals(
    ex: impl AnyExecutor<'_>,
    prompt: &str,
    since: i64,
    until: i64,
) -> Result<Vec<(i64, String, i64, f64)>> {
    Ok(sqlx::query_as(
        "SELECT version, name, CAST(SUM(count) AS BIGINT), SUM(sum) FROM score_rollups
         WHERE prompt = $1 AND bucket >= $2 AND bucket < $3 GROUP BY version, name ORDER BY version, name",
    )
    .bind(prompt)
    .bind(since)
    .bind(until)
    .fetch_all(ex)
    .await?)
}

// ---------------------------------------------------------------- budgets (registry file)

#[derive(FromRow)]
pub struct BudgetRow {
    pub prompt: String,
    pub window: String,
    pub limit_usd: f64,
    pub alerts: String,
    pub on_exceed: String,
}

impl BudgetRow {
    pub fn budget(&self) -> Result<Budget> {
        Ok(Budget {
            window: BudgetWindow::parse(&self.window).ok_or_else(|| corrupt("budget window"))?,
            limit: self.limit_usd,
            alerts: serde_json::from_str(&self.alerts).map_err(|_| corrupt("budget alerts"))?,
            on_exceed: OnExceed::parse(&self.on_exceed).ok_or_else(|| corrupt("budget mode"))?,
        })
    }
}

pub async fn budgets(ex: impl AnyExecutor<'_>) -> Result<Vec<BudgetRow>> {
    Ok(sqlx::query_as(
        "SELECT p.name AS prompt, b.\"window\", b.limit_usd, b.alerts, b.on_exceed FROM budgets b JOIN prompts p ON p.id = b.prompt_id",
    )
    .fetch_all(ex)
    .await?)
}

pub async fn put_budget(conn: &mut AnyConnection, prompt_id: i64, b: &Budget, actor: &str, at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO budgets (prompt_id, \"window\", limit_usd, alerts, on_exceed, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (prompt_id) DO UPDATE SET \"window\" = excluded.\"window\", limit_usd = excluded.limit_usd, alerts = excluded.alerts, on_exceed = excluded.on_exceed, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(prompt_id)
    .bind(b.window.as_str())
    .bind(b.limit)
    .bind(serde_json::to_string(&b.alerts).map_err(|_| corrupt("budget alerts"))?)
    .bind(b.on_exceed.as_str())
    .bind(actor)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_budget(conn: &mut AnyConnection, prompt_id: i64) -> Result<bool> {
    let done = sqlx::query("DELETE FROM budgets WHERE prompt_id = $1").bind(prompt_id).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// The alert fractions already fired in the window starting at `window_start`.
pub async fn fired_alerts(ex: impl AnyExecutor<'_>, prompt_id: i64, window_start: i64) -> Result<Vec<f64>> {
    Ok(sqlx::query_scalar("SELECT fraction FROM budget_alerts WHERE prompt_id = $1 AND window_start = $2")
        .bind(prompt_id)
        .bind(window_start)
        .fetch_all(ex)
        .await?)
}

/// Records that `fraction` fired in the window; false when it already had.
pub async fn insert_alert(
    conn: &mut AnyConnection,
    prompt_id: i64,
    window_start: i64,
    fraction: f64,
    at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO budget_alerts (prompt_id, window_start, fraction, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
    )
    .bind(prompt_id)
    .bind(window_start)
    .bind(fraction)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// When drift of `kind` was last reported for a prompt (the audit log is the record).
pub async fn last_drift_report(ex: impl AnyExecutor<'_>, prompt: &str, kind: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        // The detail is canonical JSON (no spaces), so the kind reads the same in both backends.
        "SELECT MAX(at) FROM audit_events WHERE action = 'drift.detected' AND prompt = $1 AND detail LIKE $2",
    )
    .bind(prompt)
    .bind(format!("%\"kind\":\"{kind}\"%"))
    .fetch_one(ex)
    .await?)
}

// ---------------------------------------------------------------- registry facts ingest needs

/// Every move of one label of a prompt, oldest first: (version, at).
pub async fn label_moves(ex: impl AnyExecutor<'_>, prompt_id: i64, label: &str) -> Result<Vec<(i64, i64)>> {
    Ok(sqlx::query_as("SELECT version, at FROM label_moves WHERE prompt_id = $1 AND label = $2 ORDER BY at, id")
        .bind(prompt_id)
        .bind(label)
        .fetch_all(ex)
        .await?)
}

/// Each version of a prompt with its hash and creation time, oldest first.
pub async fn version_hashes(ex: impl AnyExecutor<'_>, prompt_id: i64) -> Result<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as("SELECT version, hash, created_at FROM versions WHERE prompt_id = $1 ORDER BY version")
        .bind(prompt_id)
        .fetch_all(ex)
        .await?)
}

/// Every price: (provider, model, input $/Mtok, output $/Mtok).
pub async fn all_prices(ex: impl AnyExecutor<'_>) -> Result<Vec<(String, String, f64, f64)>> {
    Ok(sqlx::query_as("SELECT provider, model, input_per_mtok, output_per_mtok FROM model_prices")
        .fetch_all(ex)
        .await?)
}
