//! All SQL lives in this module, one file per area (prompts, labels, audit, accounts,
//! sessions, leases, evals, governance, rollouts, telemetry, webhooks), written once for
//! SQLite and PostgreSQL through sqlx's `Any` driver. Functions take any executor so
//! they run inside the caller's transaction; they speak rows and domain values, never
//! HTTP. This file opens the databases and hands out write transactions.

mod accounts;
mod audit;
pub mod evals;
pub mod governance;
pub mod impacts;
mod labels;
mod leases;
mod prompts;
pub mod releases;
pub mod rollouts;
mod sessions;
mod sql;
pub mod telemetry;
pub mod webhooks;

use std::path::{Path, PathBuf};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};

use crate::error::{Result, ServiceError};

pub use accounts::*;
pub use audit::*;
pub use labels::*;
pub use leases::*;
pub use prompts::*;
pub use sessions::*;
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
    /// Woken when a change is committed and in the index (the event stream waits on it).
    pub changed: tokio::sync::Notify,
}

/// A write transaction. A change to the registry commits only together with its audit
/// event: `audit` appends the event in the transaction, and `commit` refuses (and rolls
/// back) a change that recorded none. Bookkeeping that is no change to the registry
/// (sessions, run progress, deliveries, telemetry, leases) is written under
/// `Store::bookkeeping` instead, which says so at the call site.
///
/// The guard holds this replica's write lock until it is dropped, after the commit: the
/// caller puts the change into the in-memory index meanwhile, so the index takes this
/// replica's commits in commit order.
pub struct WriteGuard<'a> {
    /// `None` once committed or rolled back.
    tx: Option<Transaction<'static, Any>>,
    _lock: tokio::sync::MutexGuard<'a, ()>,
    changed: &'a tokio::sync::Notify,
    /// Committed with audit events: the event stream is woken when the guard is dropped
    /// (once the caller has put the change into the index).
    announce: bool,
    audited: bool,
    events: usize,
    /// The chain's head (seq, hash), when the write has read it already.
    head: Option<(i64, String)>,
}

impl WriteGuard<'_> {
    /// The transaction's connection, for the statements of the write.
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.tx.as_mut().expect("a write's statements come before its commit")
    }

    /// Appends the change's audit event to the chain, in this transaction; its seq.
    pub async fn audit(&mut self, at: i64, e: NewEvent<'_>) -> Result<i64> {
        let known = self.head.take();
        let head = audit::append_event(self.conn(), known, at, e).await?;
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

    /// Commits the write: a change must have recorded its audit event. The lock stays
    /// held until the guard is dropped.
    pub async fn commit(&mut self) -> Result<()> {
        let tx = self.tx.take().expect("a write commits once");
        if self.audited && self.events == 0 {
            tx.rollback().await?;
            return Err(ServiceError::internal("a change without its audit event was refused"));
        }
        tx.commit().await?;
        self.announce = self.events > 0;
        Ok(())
    }

    /// Ends a write whose change may turn out to be none (a state that already held, a
    /// suite saved unchanged): committed with its events, or rolled back without any.
    pub async fn end(&mut self) -> Result<()> {
        if self.audited && self.events == 0 {
            Ok(self.tx.take().expect("a write ends once").rollback().await?)
        } else {
            self.commit().await
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.announce {
            self.changed.notify_one();
        }
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
            changed: Default::default(),
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
            changed: Default::default(),
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
        Ok(WriteGuard { tx: Some(tx), _lock: lock, changed: &self.changed, announce: false, audited, events: 0, head: None })
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

// ---------------------------------------------------------------- shared by the areas

pub(crate) fn corrupt(what: &str) -> ServiceError {
    ServiceError::Internal(format!("stored {what} does not parse"))
}

/// The row id of an insert, or `NameTaken` with `taken` when a unique name clashes.
pub(crate) fn inserted(result: std::result::Result<i64, sqlx::Error>, taken: impl FnOnce() -> String) -> Result<i64> {
    match result {
        Ok(id) => Ok(id),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ServiceError::NameTaken(taken())),
        Err(e) => Err(e.into()),
    }
}

/// Rows read for verification come in chunks: the database packs each chunk into one
/// JSON array, so a read of the whole history pays sqlx's per-row cost (a few µs) once
/// per chunk instead of once per row. JSON round-trips every value exactly.
pub const CHUNK: i64 = 2000;

/// The statement that reads `columns` of `from` (a table and its condition) as one JSON
/// array of arrays, ordered by `order`, at most `limit` rows: each backend has its own
/// JSON functions.
pub(crate) fn chunk_sql(conn: &AnyConnection, columns: &str, from: &str, order: &str, limit: &str) -> String {
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

#[cfg(test)]
mod tests {
    use domain::vocabulary::AuditAction;
    use serde_json::Value;

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
        drop(w); // the write lock is held until the guard goes
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
