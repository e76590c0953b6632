//! promptledger's service layer. Every read and every change goes through [`Registry`]:
//! it checks the caller's permission, writes the change and its audit event in the same
//! transaction, keeps the resolve index in step, and returns typed errors. The REST API
//! and the console's server functions are thin callers of it.

mod accounts;
mod audit;
mod compose;
pub mod events;
pub mod copy;
pub mod error;
pub mod eval;
mod gitops;
mod governance;
mod impact;
mod index;
mod labels;
mod prompts;
mod releases;
mod replicas;
mod rollouts;
mod sessions;
mod store;
pub mod telemetry;
pub mod time;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::access::{Action, Grant, Role, Scope};
use domain::model::PromptSummary;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

pub use accounts::UserChange;
pub use domain::model::{CreatedKey, KeyInfo, UserInfo};
pub use error::{Result, ServiceError};
pub use index::ServedVersion;
pub use prompts::{PromptQuery, check_tags};
pub use sessions::{NewSession, SESSION_ABSOLUTE, SESSION_IDLE};
pub use store::{AuditFilter, Backend, Durability, Location, telemetry_path};
pub use telemetry::TelemetrySettings;

use index::{Index, PromptEntry, VersionBase};
use store::Store;

/// Who is asking, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name the audit log records: a username, `key:NAME` or `cli:USER`.
    pub actor: String,
    pub grant: Grant,
    /// The person behind the request, if any (a user, or a key acting as one).
    pub user_id: Option<i64>,
}

impl Principal {
    /// The registry itself, acting on its own findings (the rollout judge).
    pub(crate) fn system() -> Self {
        Principal {
            actor: telemetry::SYSTEM.to_owned(),
            grant: Grant { role: Some(Role::Admin), scope: None },
            user_id: None,
        }
    }

    /// The operator at the command line, who has the database file itself.
    pub fn operator() -> Self {
        let who = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Principal { actor: format!("cli:{who}"), grant: Grant { role: Some(Role::Admin), scope: None }, user_id: None }
    }

    fn require(&self, action: Action) -> Result<()> {
        if self.grant.allows(action) {
            return Ok(());
        }
        let what = match action {
            Action::Serve => "resolve or render prompts",
            Action::Ingest => "send generations or scores",
            Action::Read => {
                "read the registry (history, audit, generations, metrics: it needs a read-scope key or more)"
            }
            Action::Write => "create prompts, save versions or move labels",
            Action::MoveProtectedLabel => {
                "move a protected label (it needs a publisher, an admin or an admin-scope key)"
            }
            Action::Administer => "manage users, keys and label policies (it needs an admin)",
        };
        Err(ServiceError::Forbidden(format!("{} may not {what}", self.describe())))
    }

    fn describe(&self) -> String {
        match (self.grant.role, self.grant.scope) {
            (Some(role), Some(scope)) => {
                format!("a {}-scope key acting as {} ({})", scope.as_str(), self.actor, role.as_str())
            }
            (None, Some(scope)) => format!("a {}-scope key", scope.as_str()),
            (Some(role), None) => format!("{} ({})", self.actor, role.as_str()),
            (None, None) => "this caller".into(),
        }
    }
}

/// How long a verified key is trusted before it is looked up again, so a key revoked by
/// another process stops working within this time.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// SHA-256 of a key -> who it acts as, and when that was last looked up.
type KeyCache = HashMap<[u8; 32], (Arc<Principal>, Instant)>;

/// The registry: storage, the resolve index and the key cache behind one handle.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    location: Location,
    store: Store,
    /// The last audit seq this replica's index has applied (see `replicas`).
    applied_seq: std::sync::atomic::AtomicI64,
    index: Index,
    keys: RwLock<KeyCache>,
    evals: eval::Evals,
    /// Derives secrets that are never stored (webhook signing keys).
    server_key: [u8; 32],
    webhook_settings: RwLock<webhooks::WebhookSettings>,
    /// Generations, scores and rollups: a database file of its own (`<db>.telemetry`).
    telemetry_store: Store,
    telemetry: telemetry::Telemetry,
    rollouts: rollouts::Rollouts,
    events: events::Hub,
}

impl Registry {
    /// Opens (creating and migrating if needed) the registry `at` a SQLite file or a
    /// PostgreSQL URL, and builds the resolve index from it.
    pub async fn open(at: impl Into<Location>, durability: Durability) -> Result<Registry> {
        let at = at.into();
        let server_key = server_key(&at)?;
        let store = Store::open(&at, durability).await?;
        let telemetry_store = Store::open_telemetry(&at, durability).await?;
        let registry = Registry {
            inner: Arc::new(Inner {
                location: at,
                applied_seq: Default::default(),
                store,
                index: Index::default(),
                keys: RwLock::default(),
                evals: Default::default(),
                server_key,
                webhook_settings: RwLock::default(),
                telemetry_store,
                telemetry: Default::default(),
                rollouts: Default::default(),
                events: Default::default(),
            }),
        };
        // Read before the index is built: a change committed meanwhile is caught up later.
        let seq = store::last_seq(&registry.store().reader).await?;
        registry.inner.applied_seq.store(seq, std::sync::atomic::Ordering::Release);
        registry.rebuild_index().await?;
        registry.load_rollouts().await?;
        registry.load_telemetry().await?;
        if registry.store().backend == store::Backend::Sqlite {
            registry.sweep_interrupted_runs().await?;
        }
        Ok(registry)
    }

    pub async fn close(&self) {
        self.inner.store.close().await;
        self.inner.telemetry_store.close().await;
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn index(&self) -> &Index {
        &self.inner.index
    }

    async fn rebuild_index(&self) -> Result<()> {
        let reader = &self.store().reader;
        let prompts = store::all_prompts(reader).await?;
        let mut labels: HashMap<i64, BTreeMap<String, i64>> = HashMap::new();
        for (prompt_id, label, version) in store::current_labels(reader).await? {
            labels.entry(prompt_id).or_default().insert(label, version);
        }
        let mut served: HashMap<i64, Vec<store::VersionRow>> = HashMap::new();
        for row in store::served_versions(reader).await? {
            served.entry(row.prompt_id).or_default().push(row);
        }
        let mut entries = BTreeMap::new();
        let mut composing = Vec::new();
        for p in prompts {
            let (labels, rows) = (labels.remove(&p.id).unwrap_or_default(), served.remove(&p.id).unwrap_or_default());
            let name = p.name.clone();
            let (id, summary, bases) = prompt_parts(p, labels, &rows)?;
            composing.extend(bases.iter().filter(|b| !b.includes.is_empty()).cloned());
            // Includes are resolved once every entry is in (`replace_all`).
            let entry = PromptEntry::new(id, summary, bases, Vec::new(), &mut |_| Err(String::new()));
            entries.insert(name, Arc::new(entry));
        }
        self.index().replace_all(entries);
        if !composing.is_empty() {
            self.prepare_includes(&composing).await?;
            self.index().recompose_all();
        }
        Ok(())
    }

    /// Checks an API key (`Authorization: Bearer ...`) and returns who it acts as.
    /// Called on every request: a cache hit is a hash and a map lookup.
    pub async fn authenticate_key(&self, key: &str) -> Result<Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some((principal, at)) = self.inner.keys.read().get(&digest)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(principal.clone());
        }
        let bad = || ServiceError::Unauthenticated("this API key is not valid (unknown or revoked)".into());
        let row = store::key_by_hash(&self.store().reader, &digest).await?.ok_or_else(bad)?;
        if row.revoked_at.is_some() {
            self.inner.keys.write().remove(&digest);
            return Err(bad());
        }
        let scope = Scope::parse(&row.scope).ok_or_else(|| ServiceError::internal("stored scope"))?;
        let principal = Arc::new(match (&row.username, &row.user_role) {
            (Some(username), Some(role)) => {
                if row.user_disabled {
                    return Err(ServiceError::Unauthenticated(format!(
                        "this API key acts for '{username}', whose account is disabled"
                    )));
                }
                Principal {
                    actor: username.clone(),
                    grant: Grant { role: Role::parse(role), scope: Some(scope) },
                    user_id: row.user_id,
                }
            }
            _ => Principal {
                actor: format!("key:{}", row.name),
                grant: Grant { role: None, scope: Some(scope) },
                user_id: None,
            },
        });
        self.inner.keys.write().insert(digest, (principal.clone(), Instant::now()));
        Ok(principal)
    }

    /// Forgets every cached key, after a revocation or a change to a user.
    fn forget_keys(&self) {
        self.inner.keys.write().clear();
    }

    /// Whether the database has no user yet (the operator then needs `user add`).
    pub async fn has_no_users(&self) -> Result<bool> {
        Ok(store::count_users(&self.store().reader).await? == 0)
    }
}

/// What a prompt's index entry is built from: its id, its summary (without rollouts) and
/// the versions it serves (the newest and every labelled one).
fn prompt_parts(
    p: store::PromptRow,
    labels: BTreeMap<String, i64>,
    rows: &[store::VersionRow],
) -> Result<(i64, PromptSummary, Vec<Arc<VersionBase>>)> {
    let latest = rows.iter().map(|r| r.version).max().unwrap_or(0);
    let bases = rows.iter().map(|row| version_base(&p.name, row).map(Arc::new)).collect::<Result<Vec<_>>>()?;
    let summary = PromptSummary {
        tags: serde_json::from_str(&p.tags).unwrap_or_default(),
        name: p.name,
        description: p.description,
        latest_version: latest,
        labels,
        updated_at: time::format_us(p.updated_at),
        updated_by: p.updated_by,
        rollouts: Default::default(),
    };
    Ok((p.id, summary, bases))
}

/// The server's key: from `PROMPTLEDGER_SECRET` when set, else from the file beside a
/// SQLite database (`<db>.key`, created with mode 0600 on first use). Never in the
/// database. Replicas on PostgreSQL must share it, so there it must be set.
fn server_key(at: &Location) -> Result<[u8; 32]> {
    if let Ok(secret) = std::env::var("PROMPTLEDGER_SECRET")
        && !secret.is_empty()
    {
        return Ok(Sha256::digest(secret.as_bytes()).into());
    }
    let db = match at {
        Location::File(path) => path,
        Location::Postgres(_) => {
            return Err(ServiceError::BadRequest(
                "on PostgreSQL, set PROMPTLEDGER_SECRET to a long random value, the same on every replica \
                 (it signs webhooks and derives keys; it is never stored in the database)"
                    .into(),
            ));
        }
    };
    let mut file = db.as_os_str().to_owned();
    file.push(".key");
    let file = std::path::PathBuf::from(file);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(ServiceError::internal)?;
            let text = hex::encode(bytes);
            let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file);
            match created {
                Ok(mut f) => f
                    .write_all(text.as_bytes())
                    .map_err(|e| ServiceError::internal(format!("writing {}: {e}", file.display())))?,
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(ServiceError::internal(format!("creating {}: {e}", file.display()))),
            }
            std::fs::read_to_string(&file)
                .map_err(|e| ServiceError::internal(format!("reading {}: {e}", file.display())))?
        }
        Err(e) => return Err(ServiceError::internal(format!("reading {}: {e}", file.display()))),
    };
    Ok(Sha256::digest(text.trim().as_bytes()).into())
}

/// Runs a change to completion even if the request that asked for it goes away, so a
/// commit is never separated from its index update by a dropped future.
async fn detached<T, F>(change: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    tokio::spawn(change).await.unwrap_or_else(|e| Err(ServiceError::internal(format!("change task failed: {e}"))))
}

fn version_base(name: &str, row: &store::VersionRow) -> Result<VersionBase> {
    let content = row.content()?;
    Ok(VersionBase::new(row.view(name, &content), content))
}

/// A random id, `<prefix>_` and 24 hex digits.
fn random_id(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(ServiceError::internal)?;
    Ok(format!("{prefix}_{}", hex::encode(bytes)))
}

/// Whether `url` is an absolute http(s) URL with a host, of a sane length.
fn is_http_url(url: &str) -> bool {
    url.len() <= 2000 && reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// Exponential backoff before retry `attempt` (1 for the first retry): `base` doubled per
/// attempt up to `max`, of which the part above `floor` (a fraction) is random (jitter).
fn backoff(base: std::time::Duration, max: std::time::Duration, attempt: u32, floor: f64) -> std::time::Duration {
    let ceiling = base.saturating_mul(1 << attempt.saturating_sub(1).min(20)).min(max);
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    let fraction = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(floor + (1.0 - floor) * fraction)
}

/// Checks a free-text field's length.
fn check_len(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return Err(ServiceError::rule("too_long", format!("{field} is longer than {max} characters")));
    }
    Ok(())
}

/// Reads an opaque cursor that encodes a number.
fn number_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    cursor
        .map(|c| c.parse::<i64>().map_err(|_| ServiceError::BadRequest(format!("'{c}' is not a valid cursor"))))
        .transpose()
}

/// Checks a page size: `default` when absent, 1 to `max`.
fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ServiceError::BadRequest(format!("limit must be between 1 and {max} (got {n})"))),
    }
}
