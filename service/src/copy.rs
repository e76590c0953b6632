//! `promptledger db copy`: a whole registry from one database to another (SQLite to
//! PostgreSQL and back), row for row, then verified where it arrived: the audit chain
//! and every version's hash, and the same number of rows in every table.

use futures_util::TryStreamExt;
use sqlx::any::AnyTypeInfoKind;
use sqlx::{AnyConnection, Column, Executor, Row, ValueRef};

use crate::store::{Double, Location, Sql, Store, Tuple};
use crate::{Durability, Principal, Registry, Result, ServiceError};

/// The registry's tables, parents before children.
const REGISTRY: &[&str] = &[
    "users",
    "api_keys",
    "prompts",
    "versions",
    "label_moves",
    "label_policies",
    "audit_events",
    "sessions",
    "providers",
    "model_prices",
    "eval_suites",
    "eval_runs",
    "eval_batches",
    "eval_results",
    "label_requests",
    "webhooks",
    "webhook_deliveries",
    "budgets",
    "budget_alerts",
    "rollouts",
    "rollout_phases",
    "rollout_verdicts",
    "releases",
    "release_moves",
    "impacts",
    "impact_runs",
];

const TELEMETRY: &[&str] =
    &["generations", "scores", "rollups", "score_rollups", "rollout_rollups", "rollout_score_rollups"];

/// What a copy moved and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// (table, rows), in copy order.
    pub tables: Vec<(String, u64)>,
    pub events: i64,
    pub versions: i64,
}

/// Copies the registry at `from` into the empty registry at `to` and verifies it there.
pub async fn copy_registry(from: &Location, to: &Location) -> Result<CopyReport> {
    if from == to {
        return Err(ServiceError::BadRequest("--from and --to are the same database".into()));
    }
    let mut tables = Vec::new();
    let mut source_head = None;
    for (tables_of, open) in [(REGISTRY, Part::Registry), (TELEMETRY, Part::Telemetry)] {
        let (source, target) = (open.store(from).await?, open.store(to).await?);
        if open == Part::Registry {
            let existing: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(&target.reader).await?;
            if existing > 0 {
                return Err(ServiceError::BadRequest(format!(
                    "{} already holds a registry ({existing} audit events): copy into an empty database",
                    to.display()
                )));
            }
        }
        let mut read = source.snapshot().await?;
        if open == Part::Registry {
            source_head = sqlx::query_scalar::<_, String>("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *read)
                .await?;
        }
        let mut w = target.bookkeeping().await?;
        // The migrations' own rows (the default label rules) give way to the copied ones.
        if open == Part::Registry {
            sqlx::query("DELETE FROM label_policies").execute(w.conn()).await?;
        }
        for table in tables_of.iter() {
            let rows = copy_table(&mut read, w.conn(), table).await?;
            tables.push(((*table).to_owned(), rows));
        }
        w.commit().await?;
        read.rollback().await?;
        source.close().await;
        target.close().await;
    }
    let copied = Registry::open(to, Durability::Full).await?;
    let report = copied.verify(&Principal::operator()).await?;
    copied.close().await;
    if !report.ok {
        return Err(ServiceError::Internal(format!(
            "the copy does not verify: {}",
            report.message.unwrap_or_else(|| "the chain is broken".into())
        )));
    }
    // The copy's chain ends where the source's did: no event lost or added at the end.
    if source_head.is_some_and(|head| head != report.head) {
        return Err(ServiceError::Internal("the copy's audit chain does not end where the source's does".into()));
    }
    Ok(CopyReport { tables, events: report.events, versions: report.versions })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Registry,
    Telemetry,
}

impl Part {
    async fn store(self, at: &Location) -> Result<Store> {
        match self {
            Part::Registry => Store::open(at, Durability::Full).await,
            Part::Telemetry => Store::open_telemetry(at, Durability::Full).await,
        }
    }
}

/// Copies every row of `table`, a few hundred per statement; how many.
async fn copy_table(from: &mut AnyConnection, to: &mut AnyConnection, table: &str) -> Result<u64> {
    // The target's column types decide how a NULL is sent (PostgreSQL wants it typed).
    let kinds: Vec<(String, AnyTypeInfoKind)> = to
        .describe(&format!("SELECT * FROM {table}"))
        .await?
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_info().kind()))
        .collect();
    let names: Vec<String> = kinds.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let select = format!("SELECT {} FROM {table}", names.join(", "));
    // Streamed a statement's worth at a time: a table of millions of generations is
    // never held in memory whole.
    let mut rows = sqlx::query(&select).fetch(&mut *from).try_chunks((30_000 / kinds.len()).clamp(1, 500));
    let mut copied = 0;
    while let Some(chunk) = rows.try_next().await.map_err(|e| e.1)? {
        copied += chunk.len() as u64;
        let mut q = Sql::on(&*to, format!("INSERT INTO {table} ({}) VALUES ", names.join(", ")));
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            let mut failed = None;
            q.tuple(|t| {
                for (c, (_, kind)) in kinds.iter().enumerate() {
                    if let Err(e) = bind_value(t, row, c, *kind) {
                        failed = Some(e);
                    }
                }
            });
            if let Some(e) = failed {
                return Err(ServiceError::Internal(format!("reading {table}: {e}")));
            }
        }
        let (sql, args) = q.build()?;
        sqlx::query_with(&sql, args).execute(&mut *to).await?;
    }
    if to.backend_name() == "PostgreSQL" {
        // Explicit ids were inserted: identity columns continue after them.
        for column in ["id", "seq"].into_iter().filter(|c| kinds.iter().any(|(n, _)| n == c)) {
            let sequence: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                .bind(table)
                .bind(column)
                .fetch_optional(&mut *to)
                .await?
                .flatten();
            if let Some(sequence) = sequence {
                sqlx::query(&format!(
                    "SELECT setval(CAST($1 AS regclass), COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
                ))
                .bind(sequence)
                .execute(&mut *to)
                .await?;
            }
        }
    }
    Ok(copied)
}

/// Binds column `c` of `row` as the target's column `kind` wants it.
fn bind_value(
    t: &mut Tuple<'_, '_>,
    row: &sqlx::any::AnyRow,
    c: usize,
    kind: AnyTypeInfoKind,
) -> std::result::Result<(), sqlx::Error> {
    use AnyTypeInfoKind as K;
    let null = row.try_get_raw(c)?.is_null();
    let source = row.try_get_raw(c)?.type_info().kind();
    match kind {
        K::Double | K::Real => {
            let v = if null {
                None
            } else if source.is_integer() {
                Some(row.try_get::<i64, _>(c)? as f64)
            } else {
                Some(row.try_get::<f64, _>(c)?)
            };
            t.bind(Double(v));
        }
        K::Blob => {
            t.bind(if null { None } else { Some(row.try_get::<Vec<u8>, _>(c)?) });
        }
        K::Text => {
            t.bind(if null { None } else { Some(row.try_get::<String, _>(c)?) });
        }
        _ => {
            t.bind(if null { None } else { Some(row.try_get::<i64, _>(c)?) });
        }
    }
    Ok(())
}
