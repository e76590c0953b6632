//! All SQL lives here (and in `evals`, `governance` and `webhooks`). SQLite in WAL mode: one writer connection, taken with
//! `BEGIN IMMEDIATE` behind a lock, and a pool of read-only connections. Functions take
//! any executor so they run inside the caller's transaction; they speak rows and domain
//! values, never HTTP.

pub mod evals;
pub mod governance;
pub mod rollouts;
mod sql;
pub mod telemetry;
pub mod webhooks;

use std::path::{Path, PathBuf};

use domain::audit::{EventFields, GENESIS};
use domain::content::{Content, Message, Parts, PromptBody};
use domain::model::{AuditEvent, LabelMove, VersionView};
use domain::vocabulary::AuditAction;
use serde_json::{Map, Value};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyExecutor, AnyPool, Executor, FromRow, Transaction};

use crate::error::{Result, ServiceError};
use crate::time::format_us;

pub use sql::{Double, Flag, Sql, Tuple};

/// How much to trade durability for speed on power loss (never on a process crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync at every commit (`synchronous=FULL`): survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints (`synchronous=NORMAL`): survives a crash of the process.
    Normal,
}

/// Where the registry lives: a SQLite file (the default), or a PostgreSQL database that
/// several replicas share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else is a file path
    /// (`sqlite:` prefix allowed).
    pub fn parse(db: &str) -> Location {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            Location::Postgres(db.to_owned())
        } else {
            Location::File(PathBuf::from(db.strip_prefix("sqlite://").or(db.strip_prefix("sqlite:")).unwrap_or(db)))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }

    /// What to show people: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) if u.password().is_some() => {
                    let _ = u.set_password(Some("***"));
                    u.to_string()
                }
                _ => url.clone(),
            },
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::File(path.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Location {
        Location::File(path.clone())
    }
}

impl From<&Location> for Location {
    fn from(at: &Location) -> Location {
        at.clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The two databases of a registry: the registry itself, and telemetry (generations,
/// scores, rollups), which is written far more often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Registry,
    Telemetry,
}

/// The key of the advisory lock that orders writes across PostgreSQL replicas.
const WRITE_LOCK_KEY: i64 = 0x7072_6f6d_7074_6c67; // "promptlg"

/// One registry database, through sqlx's `Any` driver: every query is written once in
/// the SQL both backends speak (`$1` placeholders, integers for times and flags).
///
/// SQLite: WAL mode, one writer connection taken with `BEGIN IMMEDIATE`, and a pool of
/// read-only connections. PostgreSQL: one pool; every write transaction first takes a
/// transaction-scoped advisory lock, so writes from every replica are ordered as
/// SQLite's are (the audit chain's head is read and extended under it).
pub struct Store {
    pub reader: AnyPool,
    writer: AnyPool,
    pub backend: Backend,
    /// This process among the replicas: its connections' `application_name` on
    /// PostgreSQL (recorded with each audit event) and what its leases are held under.
    pub replica: String,
    /// PostgreSQL: the advisory lock this database's writes take (the registry's and
    /// telemetry's are apart, so ingest never waits for a label move).
    lock_key: i64,
    /// Held from the start of a write until the in-memory index has the change, so the
    /// index sees this replica's commits in commit order.
    write_lock: tokio::sync::Mutex<()>,
}

/// A write transaction. A change to the registry commits only together with its audit
/// event: `audit` appends the event in the transaction, and `commit` refuses (and rolls
/// back) a change that recorded none. Bookkeeping that is no change to the registry
/// (sessions, run progress, deliveries, telemetry, leases) is written under
/// `Store::bookkeeping` instead, which says so at the call site.
pub struct WriteGuard<'a> {
    tx: Transaction<'static, Any>,
    _lock: tokio::sync::MutexGuard<'a, ()>,
    audited: bool,
    events: usize,
    /// The chain's head (seq, hash), when the write has read it already.
    head: Option<(i64, String)>,
}

impl WriteGuard<'_> {
    /// The transaction's connection, for the statements of the write.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Appends the change's audit event to the chain, in this transaction; its seq.
    pub async fn audit(&mut self, at: i64, e: NewEvent<'_>) -> Result<i64> {
        let head = append_event(&mut self.tx, self.head.take(), at, e).await?;
        self.events += 1;
        let seq = head.0;
        self.head = Some(head);
        Ok(seq)
    }

    /// Records the chain's head as read under this write's lock (none: read it when
    /// needed).
    pub fn knows_head(&mut self, head: Option<(i64, String)>) {
        self.head = head;
    }

    /// Commits the write: a change must have recorded its audit event.
    pub async fn commit(self) -> Result<()> {
        if self.audited && self.events == 0 {
            self.tx.rollback().await?;
            return Err(ServiceError::internal("a change without its audit event was refused"));
        }
        Ok(self.tx.commit().await?)
    }

    /// Ends a write whose change may turn out to be none (a state that already held, a
    /// suite saved unchanged): committed with its events, or rolled back without any.
    pub async fn end(self) -> Result<()> {
        if self.audited && self.events == 0 { Ok(self.tx.rollback().await?) } else { self.commit().await }
    }
}

impl Store {
    /// The registry's database.
    pub async fn open(at: &Location, durability: Durability) -> Result<Store> {
        Self::connect(at, durability, Part::Registry).await
    }

    /// The telemetry database: a file of its own beside SQLite's (`<db>.telemetry`), a
    /// schema of its own (`telemetry`) in PostgreSQL.
    pub async fn open_telemetry(at: &Location, durability: Durability) -> Result<Store> {
        Self::connect(at, durability, Part::Telemetry).await
    }

    async fn connect(at: &Location, durability: Durability, part: Part) -> Result<Store> {
        sqlx::any::install_default_drivers();
        match at {
            Location::File(path) => {
                let path = match part {
                    Part::Registry => path.clone(),
                    Part::Telemetry => telemetry_path(path),
                };
                Self::connect_sqlite(&path, durability, part).await
            }
            Location::Postgres(url) => Self::connect_postgres(url, part).await,
        }
    }

    async fn connect_sqlite(path: &Path, durability: Durability, part: Part) -> Result<Store> {
        let absolute = std::path::absolute(path).map_err(ServiceError::internal)?;
        let url = url::Url::from_file_path(absolute)
            .map_err(|()| ServiceError::BadRequest(format!("'{}' is not a usable file path", path.display())))?;
        let url = format!("sqlite://{}", url.path());
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        // Ingest writes large batches into tables of millions of rows: a 64 MiB page
        // cache keeps the indexes' hot pages in the writer (SQLite's default is 2 MiB),
        // and checkpoints come every 40 MB of WAL rather than every 4 MB.
        let tuning = match part {
            Part::Registry => "",
            Part::Telemetry => "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 10000;",
        };
        let setup = format!(
            "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous}; {tuning}"
        );
        let writer_setup = setup.clone();
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |conn, _| {
                let setup = writer_setup.clone();
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(setup.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options(&format!("{url}?mode=rwc"))?)
            .await?;
        migrator(Backend::Sqlite, part).run(&writer).await?;
        let reader = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move {
                    conn.execute(setup.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options(&format!("{url}?mode=ro"))?)
            .await?;
        Ok(Store {
            reader,
            writer,
            backend: Backend::Sqlite,
            replica: replica_id(),
            lock_key: 0,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    async fn connect_postgres(url: &str, part: Part) -> Result<Store> {
        let schema = match part {
            Part::Registry => "public",
            Part::Telemetry => "telemetry",
        };
        let replica = replica_id();
        let name = replica.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .after_connect(move |conn, _| {
                let set = format!("SET search_path TO {schema}; SET application_name TO '{name}'");
                Box::pin(async move {
                    conn.execute(set.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options(url)?)
            .await?;
        {
            // Replicas starting together migrate one at a time.
            let mut conn = pool.acquire().await?;
            conn.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str()).await?;
            sqlx::query("SELECT pg_advisory_lock($1)").bind(WRITE_LOCK_KEY + 1).execute(&mut *conn).await?;
            let migrated = migrator(Backend::Postgres, part).run(&mut *conn).await;
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(WRITE_LOCK_KEY + 1).execute(&mut *conn).await?;
            migrated?;
        }
        let lock_key = match part {
            Part::Registry => WRITE_LOCK_KEY,
            Part::Telemetry => WRITE_LOCK_KEY + 2,
        };
        Ok(Store {
            reader: pool.clone(),
            writer: pool,
            backend: Backend::Postgres,
            replica,
            lock_key,
            write_lock: Default::default(),
        })
    }

    /// Starts a change: a write transaction (the only one on SQLite, the only one across
    /// every replica on PostgreSQL) that commits only with its audit event.
    pub async fn write(&self) -> Result<WriteGuard<'_>> {
        self.begin(true).await
    }

    /// Starts a write of bookkeeping, which is no change to the registry and has no
    /// audit event.
    pub async fn bookkeeping(&self) -> Result<WriteGuard<'_>> {
        self.begin(false).await
    }

    async fn begin(&self, audited: bool) -> Result<WriteGuard<'_>> {
        let lock = self.write_lock.lock().await;
        let tx = match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.writer.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(self.lock_key).execute(&mut *tx).await?;
                tx
            }
        };
        Ok(WriteGuard { tx, _lock: lock, audited, events: 0, head: None })
    }

    /// A read-only transaction that sees one snapshot from its first read to its end
    /// (SQLite's deferred transactions do; PostgreSQL needs REPEATABLE READ for it).
    pub async fn snapshot(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.reader.begin().await?,
            Backend::Postgres => self.reader.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
        })
    }

    /// Holds off this replica's writes (while it applies other replicas' changes).
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

fn replica_id() -> String {
    format!("promptledger-{:016x}", fastrand::u64(..))
}

fn options(url: &str) -> Result<AnyConnectOptions> {
    Ok(url.parse::<AnyConnectOptions>()?)
}

fn migrator(backend: Backend, part: Part) -> &'static sqlx::migrate::Migrator {
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
    static SQLITE_TELEMETRY: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_telemetry");
    static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_postgres");
    static POSTGRES_TELEMETRY: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_postgres_telemetry");
    match (backend, part) {
        (Backend::Sqlite, Part::Registry) => &SQLITE,
        (Backend::Sqlite, Part::Telemetry) => &SQLITE_TELEMETRY,
        (Backend::Postgres, Part::Registry) => &POSTGRES,
        (Backend::Postgres, Part::Telemetry) => &POSTGRES_TELEMETRY,
    }
}

/// The telemetry database beside the registry's: `<db>.telemetry`.
pub fn telemetry_path(db: &Path) -> PathBuf {
    let mut file = db.as_os_str().to_owned();
    file.push(".telemetry");
    file.into()
}

// ---------------------------------------------------------------- prompts and versions

#[derive(Debug, Clone, FromRow)]
pub struct PromptRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub tags: String,
    pub updated_at: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub prompt_id: i64,
    pub version: i64,
    pub hash: String,
    #[sqlx(rename = "type")]
    pub prompt_type: String,
    pub template: Option<String>,
    pub messages: Option<String>,
    pub config: String,
    pub variables: String,
    pub message: String,
    pub created_by: String,
    pub created_at: i64,
}

fn corrupt(what: &str) -> ServiceError {
    ServiceError::Internal(format!("stored {what} does not parse"))
}

impl VersionRow {
    /// The content as stored (not re-parsed: it was checked when saved).
    pub fn content(&self) -> Result<Content> {
        let body = match (self.prompt_type.as_str(), &self.template, &self.messages) {
            ("text", Some(t), _) => PromptBody::Text(t.clone()),
            ("chat", _, Some(m)) => {
                PromptBody::Chat(serde_json::from_str::<Vec<Message>>(m).map_err(|_| corrupt("messages"))?)
            }
            _ => return Err(corrupt("version body")),
        };
        let config: Map<String, Value> = serde_json::from_str(&self.config).map_err(|_| corrupt("config"))?;
        let variables: Vec<String> = serde_json::from_str(&self.variables).map_err(|_| corrupt("variables"))?;
        Ok(Content::stored(body, config, variables))
    }

    /// The stored parts, for recomputing the hash exactly over what is stored.
    pub fn parts(&self) -> Parts<'_> {
        Parts {
            prompt_type: &self.prompt_type,
            template: self.template.as_deref(),
            messages: self.messages.as_deref(),
            config: &self.config,
            variables: &self.variables,
        }
    }

    /// The version object without labels (the caller knows them).
    pub fn view(&self, name: &str, content: &Content) -> VersionView {
        VersionView {
            name: name.to_owned(),
            version: self.version,
            hash: self.hash.clone(),
            prompt_type: content.body.prompt_type(),
            template: content.body.template().map(str::to_owned),
            messages: content.body.messages().map(<[Message]>::to_vec),
            config: content.config.clone(),
            variables: content.variables.clone(),
            labels: Vec::new(),
            message: self.message.clone(),
            created_by: self.created_by.clone(),
            created_at: format_us(self.created_at),
            unchanged: None,
            rollout: None,
        }
    }
}

/// The row id of an insert, or `NameTaken` with `taken` when a unique name clashes.
fn inserted(result: std::result::Result<i64, sqlx::Error>, taken: impl FnOnce() -> String) -> Result<i64> {
    match result {
        Ok(id) => Ok(id),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ServiceError::NameTaken(taken())),
        Err(e) => Err(e.into()),
    }
}

pub async fn prompt_by_name(ex: impl AnyExecutor<'_>, name: &str) -> Result<Option<PromptRow>> {
    Ok(sqlx::query_as::<_, PromptRow>(
        "SELECT id, name, description, tags, updated_at, updated_by FROM prompts WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(ex)
    .await?)
}

pub async fn all_prompts(ex: impl AnyExecutor<'_>) -> Result<Vec<PromptRow>> {
    Ok(sqlx::query_as::<_, PromptRow>("SELECT id, name, description, tags, updated_at, updated_by FROM prompts")
        .fetch_all(ex)
        .await?)
}

pub async fn insert_prompt(
    conn: &mut AnyConnection,
    name: &str,
    description: &str,
    tags: &[String],
    actor: &str,
    at: i64,
) -> Result<i64> {
    let tags = serde_json::to_string(tags).map_err(ServiceError::internal)?;
    let result = sqlx::query_scalar(
        "INSERT INTO prompts (name, description, tags, created_by, created_at, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(name)
    .bind(description)
    .bind(tags)
    .bind(actor)
    .bind(at)
    .bind(at)
    .bind(actor)
    .fetch_one(conn)
    .await;
    inserted(result, || format!("a prompt named '{name}' already exists"))
}

pub async fn touch_prompt(conn: &mut AnyConnection, prompt_id: i64, at: i64, actor: &str) -> Result<()> {
    sqlx::query("UPDATE prompts SET updated_at = $1, updated_by = $2 WHERE id = $3")
        .bind(at)
        .bind(actor)
        .bind(prompt_id)
        .execute(conn)
        .await?;
    Ok(())
}

const VERSION_COLUMNS: &str =
    "prompt_id, version, hash, type, template, messages, config, variables, message, created_by, created_at";

pub async fn insert_version(conn: &mut AnyConnection, row: &VersionRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(row.prompt_id)
    .bind(row.version)
    .bind(&row.hash)
    .bind(&row.prompt_type)
    .bind(&row.template)
    .bind(&row.messages)
    .bind(&row.config)
    .bind(&row.variables)
    .bind(&row.message)
    .bind(&row.created_by)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn version(ex: impl AnyExecutor<'_>, prompt_id: i64, version: i64) -> Result<Option<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE prompt_id = $1 AND version = $2"
    ))
    .bind(prompt_id)
    .bind(version)
    .fetch_optional(ex)
    .await?)
}

pub async fn latest_version(ex: impl AnyExecutor<'_>, prompt_id: i64) -> Result<Option<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE prompt_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(prompt_id)
    .fetch_optional(ex)
    .await?)
}

/// Versions older than `before` (all when `None`), newest first.
pub async fn versions_page(
    ex: impl AnyExecutor<'_>,
    prompt_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE prompt_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3"
    ))
    .bind(prompt_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(ex)
    .await?)
}

/// The versions the index serves at start-up: the newest of each prompt and every
/// version a label points at.
pub async fn served_versions(ex: impl AnyExecutor<'_>) -> Result<Vec<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "WITH current AS (
             SELECT prompt_id, version FROM label_moves
             WHERE id IN (SELECT MAX(id) FROM label_moves GROUP BY prompt_id, label)
             UNION SELECT prompt_id, MAX(version) FROM versions GROUP BY prompt_id)
         SELECT {VERSION_COLUMNS} FROM versions WHERE (prompt_id, version) IN (SELECT prompt_id, version FROM current)"
    ))
    .fetch_all(ex)
    .await?)
}

/// Rows read for verification come in chunks: the database packs each chunk into one
/// JSON array, so a read of the whole history pays sqlx's per-row cost (a few µs) once
/// per chunk instead of once per row. JSON round-trips every value exactly.
pub const CHUNK: i64 = 2000;

/// The statement that reads `columns` of `from` (a table and its condition) as one JSON
/// array of arrays, ordered by `order`, at most `limit` rows: each backend has its own
/// JSON functions.
fn chunk_sql(conn: &AnyConnection, columns: &str, from: &str, order: &str, limit: &str) -> String {
    if conn.backend_name() == "PostgreSQL" {
        format!(
            "SELECT COALESCE(json_agg(json_build_array({columns}) ORDER BY {order}), '[]')::text
             FROM (SELECT * FROM {from} ORDER BY {order} LIMIT {limit}) AS chunk"
        )
    } else {
        format!(
            "SELECT json_group_array(json_array({columns})) FROM (SELECT * FROM {from} ORDER BY {order} LIMIT {limit})"
        )
    }
}

type VersionTuple = (i64, i64, String, String, Option<String>, Option<String>, String, String, String, String, i64);

/// Up to `CHUNK` versions after `(prompt_id, version)`, in key order.
pub async fn versions_after(conn: &mut AnyConnection, after: (i64, i64)) -> Result<Vec<VersionRow>> {
    let sql = chunk_sql(
        conn,
        "prompt_id, version, hash, type, template, messages, config, variables, message, created_by, created_at",
        "versions WHERE (prompt_id, version) > ($1, $2)",
        "prompt_id, version",
        "$3",
    );
    let json: String = sqlx::query_scalar(&sql).bind(after.0).bind(after.1).bind(CHUNK).fetch_one(&mut *conn).await?;
    let rows: Vec<VersionTuple> = serde_json::from_str(&json).map_err(|_| corrupt("version chunk"))?;
    Ok(rows
        .into_iter()
        .map(|r| VersionRow {
            prompt_id: r.0,
            version: r.1,
            hash: r.2,
            prompt_type: r.3,
            template: r.4,
            messages: r.5,
            config: r.6,
            variables: r.7,
            message: r.8,
            created_by: r.9,
            created_at: r.10,
        })
        .collect())
}

/// One prompt's served versions (as `served_versions`, for one prompt).
pub async fn served_versions_of(ex: impl AnyExecutor<'_>, prompt_id: i64) -> Result<Vec<VersionRow>> {
    Ok(sqlx::query_as::<_, VersionRow>(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE prompt_id = $1 AND version IN (
             SELECT version FROM label_moves
             WHERE id IN (SELECT MAX(id) FROM label_moves WHERE prompt_id = $1 GROUP BY label)
             UNION SELECT MAX(version) FROM versions WHERE prompt_id = $1)"
    ))
    .bind(prompt_id)
    .fetch_all(ex)
    .await?)
}

/// The newest version created at or before `at`.
pub async fn latest_at(ex: impl AnyExecutor<'_>, prompt_id: i64, at: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MAX(version) FROM versions WHERE prompt_id = $1 AND created_at <= $2",
    )
    .bind(prompt_id)
    .bind(at)
    .fetch_one(ex)
    .await?)
}

// ---------------------------------------------------------------- labels

#[derive(Debug, Clone, FromRow)]
pub struct LabelMoveRow {
    pub prompt_id: i64,
    pub label: String,
    pub version: i64,
    pub previous_version: Option<i64>,
    pub actor: String,
    pub reason: String,
    pub at: i64,
}

impl From<LabelMoveRow> for LabelMove {
    fn from(r: LabelMoveRow) -> Self {
        LabelMove {
            label: r.label,
            version: r.version,
            previous_version: r.previous_version,
            actor: r.actor,
            reason: r.reason,
            at: format_us(r.at),
        }
    }
}

/// The label each prompt's labels point at now: the last move of each.
pub async fn current_labels(ex: impl AnyExecutor<'_>) -> Result<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT prompt_id, label, version FROM label_moves
         WHERE id IN (SELECT MAX(id) FROM label_moves GROUP BY prompt_id, label)",
    )
    .fetch_all(ex)
    .await?)
}

/// Where one prompt's labels point now.
pub async fn labels_of(ex: impl AnyExecutor<'_>, prompt_id: i64) -> Result<std::collections::BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT label, version FROM label_moves
         WHERE id IN (SELECT MAX(id) FROM label_moves WHERE prompt_id = $1 GROUP BY label)",
    )
    .bind(prompt_id)
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().collect())
}

pub async fn insert_label_move(conn: &mut AnyConnection, m: &LabelMoveRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO label_moves (prompt_id, label, version, previous_version, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(m.prompt_id)
    .bind(&m.label)
    .bind(m.version)
    .bind(m.previous_version)
    .bind(&m.actor)
    .bind(&m.reason)
    .bind(m.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where `label` pointed at instant `at` (the last move at or before it).
pub async fn label_at(ex: impl AnyExecutor<'_>, prompt_id: i64, label: &str, at: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT version FROM label_moves WHERE prompt_id = $1 AND label = $2 AND at <= $3 ORDER BY at DESC, id DESC LIMIT 1",
    )
    .bind(prompt_id)
    .bind(label)
    .bind(at)
    .fetch_optional(ex)
    .await?)
}

pub async fn label_history(ex: impl AnyExecutor<'_>, prompt_id: i64, limit: i64) -> Result<Vec<LabelMoveRow>> {
    Ok(sqlx::query_as::<_, LabelMoveRow>(
        "SELECT prompt_id, label, version, previous_version, actor, reason, at FROM label_moves
         WHERE prompt_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(prompt_id)
    .bind(limit)
    .fetch_all(ex)
    .await?)
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub prompt: Option<String>,
    pub version: Option<i64>,
    pub label: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The hash this row should have, recomputed from its fields.
    pub fn computed_hash(&self) -> String {
        let at = format_us(self.at);
        EventFields {
            seq: self.seq,
            at: &at,
            actor: &self.actor,
            action: &self.action,
            prompt: self.prompt.as_deref(),
            version: self.version,
            label: self.label.as_deref(),
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        }
        .hash()
    }
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            seq: r.seq,
            at: format_us(r.at),
            actor: r.actor,
            action: r.action,
            prompt: r.prompt,
            version: r.version,
            label: r.label,
            detail: serde_json::from_str(&r.detail).unwrap_or(Value::Null),
            hash: r.hash,
            prev_hash: r.prev_hash,
        }
    }
}

/// What a change records; the store adds seq, time and the chain.
pub struct NewEvent<'a> {
    pub actor: &'a str,
    pub action: AuditAction,
    pub prompt: Option<&'a str>,
    pub version: Option<i64>,
    pub label: Option<&'a str>,
    pub detail: Value,
}

/// Appends one event to the chain after `head` (read here when not known), inside the
/// caller's write transaction (through `WriteGuard::audit`); the new head.
async fn append_event(
    conn: &mut AnyConnection,
    head: Option<(i64, String)>,
    at: i64,
    e: NewEvent<'_>,
) -> Result<(i64, String)> {
    let head = match head {
        Some(head) => Some(head),
        None => {
            sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let detail = domain::canonical::to_canonical_json(&e.detail);
    let row = AuditRow {
        seq,
        at,
        actor: e.actor.to_owned(),
        action: e.action.as_str().to_owned(),
        prompt: e.prompt.map(str::to_owned),
        version: e.version,
        label: e.label.map(str::to_owned),
        detail,
        prev_hash,
        hash: String::new(),
    };
    let hash = row.computed_hash();
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, prompt, version, label, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(row.seq)
    .bind(row.at)
    .bind(&row.actor)
    .bind(&row.action)
    .bind(&row.prompt)
    .bind(row.version)
    .bind(&row.label)
    .bind(&row.detail)
    .bind(&row.prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    if let Some(event) = e.action.webhook() {
        webhooks::enqueue(conn, event.as_str(), seq, at).await?;
    }
    // On PostgreSQL the insert's trigger announces the event to every replica, when (and
    // only if) the transaction commits.
    Ok((seq, hash))
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub prompt: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before_seq: Option<i64>,
}

pub async fn audit_page(ex: impl AnyExecutor<'_>, f: &AuditFilter, limit: i64) -> Result<Vec<AuditRow>> {
    let mut q = Sql::new(
        "SELECT seq, at, actor, action, prompt, version, label, detail, prev_hash, hash FROM audit_events WHERE 1 = 1",
    );
    if let Some(p) = &f.prompt {
        q.push(" AND prompt = ").bind(p.clone());
    }
    if let Some(a) = &f.actor {
        q.push(" AND actor = ").bind(a.clone());
    }
    if let Some(a) = &f.action {
        q.push(" AND action = ").bind(a.clone());
    }
    if let Some(t) = f.since {
        q.push(" AND at >= ").bind(t);
    }
    if let Some(t) = f.until {
        q.push(" AND at <= ").bind(t);
    }
    if let Some(s) = f.before_seq {
        q.push(" AND seq < ").bind(s);
    }
    q.push(" ORDER BY seq DESC LIMIT ").bind(limit);
    let (sql, args) = q.build()?;
    Ok(sqlx::query_as_with::<_, AuditRow, _>(&sql, args).fetch_all(ex).await?)
}

pub type Change = (i64, String, Option<String>, Option<String>);

/// Takes or renews the lease on `work` for `holder`, for `ttl_us` from the database's
/// clock (replicas' clocks may disagree; the database's is one); whether it is held.
pub async fn take_lease(conn: &mut AnyConnection, work: &str, holder: &str, ttl_us: i64) -> Result<bool> {
    let now: i64 = sqlx::query_scalar("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)")
        .fetch_one(&mut *conn)
        .await?;
    let held: Option<String> = sqlx::query_scalar(
        "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE leases.holder = excluded.holder OR leases.until < $4
         RETURNING holder",
    )
    .bind(work)
    .bind(holder)
    .bind(now + ttl_us)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.is_some())
}

/// Ends `holder`'s lease on `work` now.
pub async fn release_lease(ex: impl AnyExecutor<'_>, work: &str, holder: &str) -> Result<()> {
    sqlx::query("UPDATE leases SET until = 0 WHERE name = $1 AND holder = $2")
        .bind(work)
        .bind(holder)
        .execute(ex)
        .await?;
    Ok(())
}

/// (seq, action, prompt, replica) of every event after `seq`, oldest first.
/// With the chain's head (seq, hash) as it is now, when the log is not empty.
pub async fn changes_after(ex: impl AnyExecutor<'_>, seq: i64) -> Result<(Vec<Change>, Option<(i64, String)>)> {
    let rows: Vec<(i64, String, Option<String>, Option<String>, String)> =
        sqlx::query_as("SELECT seq, action, prompt, replica, hash FROM audit_events WHERE seq >= $1 ORDER BY seq")
            .bind(seq)
            .fetch_all(ex)
            .await?;
    let head = rows.last().map(|r| (r.0, r.4.clone()));
    let changes = rows.into_iter().filter(|r| r.0 > seq).map(|r| (r.0, r.1, r.2, r.3)).collect();
    Ok((changes, head))
}

/// The newest event's seq (0 when there is none).
pub async fn last_seq(ex: impl AnyExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetch_one(ex).await?)
}

type EventTuple = (i64, i64, String, String, Option<String>, Option<i64>, Option<String>, String, String, String);

/// Up to `CHUNK` events after `seq`, oldest first, for verification.
pub async fn events_after(conn: &mut AnyConnection, seq: i64) -> Result<Vec<AuditRow>> {
    let sql = chunk_sql(
        conn,
        "seq, at, actor, action, prompt, version, label, detail, prev_hash, hash",
        "audit_events WHERE seq > $1",
        "seq",
        "$2",
    );
    let json: String = sqlx::query_scalar(&sql).bind(seq).bind(CHUNK).fetch_one(&mut *conn).await?;
    let rows: Vec<EventTuple> = serde_json::from_str(&json).map_err(|_| corrupt("audit chunk"))?;
    Ok(rows
        .into_iter()
        .map(|r| AuditRow {
            seq: r.0,
            at: r.1,
            actor: r.2,
            action: r.3,
            prompt: r.4,
            version: r.5,
            label: r.6,
            detail: r.7,
            prev_hash: r.8,
            hash: r.9,
        })
        .collect())
}

// ---------------------------------------------------------------- users and keys

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub password_hash: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub disabled: bool,
    pub created_at: i64,
}

pub async fn user_by_name(ex: impl AnyExecutor<'_>, username: &str) -> Result<Option<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(
        "SELECT id, username, role, password_hash, disabled, created_at FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(ex)
    .await?)
}

pub async fn users(ex: impl AnyExecutor<'_>) -> Result<Vec<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(
        "SELECT id, username, role, password_hash, disabled, created_at FROM users ORDER BY username",
    )
    .fetch_all(ex)
    .await?)
}

pub async fn count_users(ex: impl AnyExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(ex).await?)
}

pub async fn insert_user(
    conn: &mut AnyConnection,
    username: &str,
    role: &str,
    password_hash: Option<&str>,
    at: i64,
) -> Result<i64> {
    let result = sqlx::query_scalar(
        "INSERT INTO users (username, role, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(username)
    .bind(role)
    .bind(password_hash)
    .bind(at)
    .fetch_one(conn)
    .await;
    inserted(result, || format!("a user named '{username}' already exists"))
}

#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub scope: String,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub user_role: Option<String>,
    /// Whether the key's user is disabled (false for a service key).
    #[sqlx(try_from = "Flag")]
    pub user_disabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const KEY_SELECT: &str = "SELECT k.id, k.name, k.prefix, k.scope, k.user_id, u.username, u.role AS user_role,
    COALESCE(u.disabled, 0) AS user_disabled, k.created_by, k.created_at, k.revoked_at
    FROM api_keys k LEFT JOIN users u ON u.id = k.user_id";

pub async fn key_by_hash(ex: impl AnyExecutor<'_>, key_hash: &[u8]) -> Result<Option<KeyRow>> {
    Ok(sqlx::query_as::<_, KeyRow>(&format!("{KEY_SELECT} WHERE k.key_hash = $1"))
        .bind(key_hash)
        .fetch_optional(ex)
        .await?)
}

pub async fn key_by_name(ex: impl AnyExecutor<'_>, name: &str) -> Result<Option<KeyRow>> {
    Ok(sqlx::query_as::<_, KeyRow>(&format!("{KEY_SELECT} WHERE k.name = $1")).bind(name).fetch_optional(ex).await?)
}

pub async fn keys(ex: impl AnyExecutor<'_>) -> Result<Vec<KeyRow>> {
    Ok(sqlx::query_as::<_, KeyRow>(&format!("{KEY_SELECT} ORDER BY k.name")).fetch_all(ex).await?)
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_key(
    conn: &mut AnyConnection,
    name: &str,
    prefix: &str,
    key_hash: &[u8],
    scope: &str,
    user_id: Option<i64>,
    created_by: &str,
    at: i64,
) -> Result<i64> {
    let result = sqlx::query_scalar(
        "INSERT INTO api_keys (name, prefix, key_hash, scope, user_id, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(name)
    .bind(prefix)
    .bind(key_hash)
    .bind(scope)
    .bind(user_id)
    .bind(created_by)
    .bind(at)
    .fetch_one(conn)
    .await;
    inserted(result, || format!("an API key named '{name}' already exists"))
}

pub async fn revoke_key(conn: &mut AnyConnection, id: i64, at: i64) -> Result<()> {
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_user(conn: &mut AnyConnection, id: i64, role: &str, disabled: bool) -> Result<()> {
    sqlx::query("UPDATE users SET role = $1, disabled = $2 WHERE id = $3")
        .bind(role)
        .bind(Flag(disabled))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_password(conn: &mut AnyConnection, id: i64, password_hash: &str) -> Result<()> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(password_hash).bind(id).execute(conn).await?;
    Ok(())
}

// ---------------------------------------------------------------- console sessions

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub username: String,
    pub role: String,
    #[sqlx(try_from = "Flag")]
    pub disabled: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
}

pub async fn session(ex: impl AnyExecutor<'_>, id_hash: &[u8]) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as::<_, SessionRow>(
        "SELECT s.user_id, u.username, u.role, u.disabled, s.created_at, s.last_seen_at
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
    )
    .bind(id_hash)
    .fetch_optional(ex)
    .await?)
}

pub async fn insert_session(conn: &mut AnyConnection, id_hash: &[u8], user_id: i64, at: i64) -> Result<()> {
    sqlx::query("INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4)")
        .bind(id_hash)
        .bind(user_id)
        .bind(at)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn touch_session(conn: &mut AnyConnection, id_hash: &[u8], at: i64) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(at)
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_session(conn: &mut AnyConnection, id_hash: &[u8]) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(conn).await?;
    Ok(())
}

pub async fn delete_user_sessions(conn: &mut AnyConnection, user_id: i64) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(conn).await?;
    Ok(())
}

/// Removes sessions idle since `idle_before` or created before `created_before`.
pub async fn delete_expired_sessions(conn: &mut AnyConnection, idle_before: i64, created_before: i64) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
        .bind(idle_before)
        .bind(created_before)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- sign-in rate limit

/// Failed sign-ins for `key` since `since`: how many, and when the oldest was.
pub async fn login_failures(ex: impl AnyExecutor<'_>, key: &str, since: i64) -> Result<(i64, i64)> {
    let (count, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM login_failures WHERE key = $1 AND at > $2")
            .bind(key)
            .bind(since)
            .fetch_one(ex)
            .await?;
    Ok((count, oldest.unwrap_or(since)))
}

/// Records a failed sign-in under each of `keys`, and forgets failures before `forget_before`.
pub async fn insert_login_failures(conn: &mut AnyConnection, keys: &[&str], at: i64, forget_before: i64) -> Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE at < $1").bind(forget_before).execute(&mut *conn).await?;
    for key in keys {
        sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
            .bind(key)
            .bind(at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn delete_login_failures(conn: &mut AnyConnection, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1").bind(key).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change that commits without its audit event is refused and leaves nothing
    /// behind; one with its event commits both; bookkeeping needs none.
    #[tokio::test]
    async fn a_change_commits_only_with_its_audit_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Location::File(dir.path().join("r.db")), Durability::Normal).await.unwrap();
        let leases = || async {
            sqlx::query_scalar::<_, String>("SELECT name FROM leases ORDER BY name")
                .fetch_all(&store.reader)
                .await
                .unwrap()
        };

        let refused = lease(&store, "unaudited").await.commit().await;
        assert!(refused.unwrap_err().to_string().contains("without its audit event"));
        assert!(leases().await.is_empty());
        assert!(lease(&store, "ended").await.end().await.is_ok());
        assert!(leases().await.is_empty(), "a write that recorded no event ends rolled back");

        let mut w = lease(&store, "audited").await;
        let e = NewEvent {
            actor: "t",
            action: AuditAction::ProviderSaved,
            prompt: None,
            version: None,
            label: None,
            detail: Value::Null,
        };
        assert_eq!(w.audit(1, e).await.unwrap(), 1);
        w.commit().await.unwrap();
        assert_eq!(leases().await, ["audited"]);
        assert_eq!(last_seq(&store.reader).await.unwrap(), 1);

        let mut w = store.bookkeeping().await.unwrap();
        sqlx::query("INSERT INTO leases (name, holder, until) VALUES ('kept', 'me', 0)")
            .execute(w.conn())
            .await
            .unwrap();
        w.commit().await.unwrap();
        assert_eq!(leases().await, ["audited", "kept"]);
        store.close().await;
    }

    /// A change that writes a lease row, not yet committed.
    async fn lease<'a>(store: &'a Store, name: &str) -> WriteGuard<'a> {
        let mut w = store.write().await.unwrap();
        sqlx::query("INSERT INTO leases (name, holder, until) VALUES ($1, 'me', 0)")
            .bind(name)
            .execute(w.conn())
            .await
            .unwrap();
        w
    }
}
