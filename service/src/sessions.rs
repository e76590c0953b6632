//! Console sign-in: password login with a rate limit, sessions stored in the database
//! (only the SHA-256 of the cookie value), idle and absolute expiry, logout.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use domain::access::{Grant, Role};
use sha2::{Digest, Sha256};

use crate::accounts::{DUMMY_HASH, verify_password};
use crate::store;
use crate::{Principal, Registry, Result, ServiceError, detached, time};

/// A session ends after this long without a request...
pub const SESSION_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// ...and in any case this long after sign-in.
pub const SESSION_ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Failed sign-ins counted over this window...
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// ...lock an account after this many...
const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
/// ...and an address after this many (across accounts).
const MAX_FAILURES_PER_ADDRESS: i64 = 20;

/// A new session: the cookie value (shown to the browser once, never stored) and who it is.
pub struct NewSession {
    pub token: String,
    pub principal: Principal,
}

/// The rate limit's keys for a sign-in: the account and the address, each with its limit.
fn limit_keys(username: &str, addr: Option<IpAddr>) -> [(String, i64); 2] {
    let addr = addr.map(|a| a.to_string()).unwrap_or_else(|| "unknown".into());
    [
        (format!("user:{}", username.to_lowercase()), MAX_FAILURES_PER_ACCOUNT),
        (format!("addr:{addr}"), MAX_FAILURES_PER_ADDRESS),
    ]
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A signed-in person: their role, no key scope.
fn person(username: &str, role: &str, user_id: i64) -> Principal {
    Principal {
        actor: username.to_owned(),
        grant: Grant { role: Role::parse(role), scope: None },
        user_id: Some(user_id),
    }
}

fn us(d: Duration) -> i64 {
    d.as_micros() as i64
}

impl Registry {
    /// Seconds until a locked account or address may try again, if either is locked
    /// (counted in the database: the limit holds across replicas).
    async fn locked_for(&self, keys: &[(String, i64); 2]) -> Result<Option<u64>> {
        let now = time::now_us();
        let mut wait = None;
        for (key, max) in keys {
            let (count, oldest) = store::login_failures(&self.store().reader, key, now - us(FAILURE_WINDOW)).await?;
            if count >= *max {
                let left = (oldest + us(FAILURE_WINDOW) - now).max(1_000_000) / 1_000_000;
                wait = wait.max(Some(left as u64));
            }
        }
        Ok(wait)
    }

    async fn record_failure(&self, keys: &[(String, i64); 2]) -> Result<()> {
        let (this, keys) = (self.clone(), keys.clone());
        detached(async move {
            let now = time::now_us();
            let mut w = this.bookkeeping().await?;
            store::insert_login_failures(w.conn(), &[&keys[0].0, &keys[1].0], now, now - us(FAILURE_WINDOW)).await?;
            w.commit().await
        })
        .await
    }

    async fn clear_failures(&self, key: &str) -> Result<()> {
        let (this, key) = (self.clone(), key.to_owned());
        detached(async move {
            let mut w = this.bookkeeping().await?;
            store::delete_login_failures(w.conn(), &key).await?;
            w.commit().await
        })
        .await
    }

    /// Signs a person in. Refused with `RateLimited` after repeated failures for the
    /// account or the address; a wrong name and a wrong password look the same (and take
    /// the same time). `previous` is the session cookie the browser already had: it is
    /// ended, so a session id is never reused across sign-ins.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        addr: Option<IpAddr>,
        previous: Option<&str>,
    ) -> Result<NewSession> {
        let keys = limit_keys(username, addr);
        if let Some(retry_after) = self.locked_for(&keys).await? {
            return Err(ServiceError::RateLimited { retry_after });
        }
        let user = store::user_by_name(&self.store().reader, username).await?;
        let usable = user.as_ref().filter(|u| !u.disabled && u.password_hash.is_some());
        let hash = usable.and_then(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
        let password_ok = verify_password(hash, password.to_owned()).await?;
        let Some(user) = usable.filter(|_| password_ok) else {
            self.record_failure(&keys).await?;
            tracing::info!(username, ?addr, "sign-in refused");
            return Err(ServiceError::Unauthenticated("the username or password is not right".into()));
        };
        self.clear_failures(&keys[0].0).await?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(ServiceError::internal)?;
        let token = hex::encode(bytes);
        let (this, user_id, id_hash, previous) = (self.clone(), user.id, digest(&token), previous.map(digest));
        detached(async move {
            let now = time::now_us();
            let mut w = this.bookkeeping().await?;
            if let Some(previous) = previous {
                store::delete_session(w.conn(), &previous).await?;
            }
            store::delete_expired_sessions(w.conn(), now - us(SESSION_IDLE), now - us(SESSION_ABSOLUTE)).await?;
            store::insert_session(w.conn(), &id_hash, user_id, now).await?;
            w.commit().await
        })
        .await?;
        tracing::info!(username = user.username, "signed in");
        Ok(NewSession { token, principal: person(&user.username, &user.role, user.id) })
    }

    /// Who a session cookie belongs to; `Unauthenticated` when it is unknown, expired
    /// or its account is disabled.
    pub async fn authenticate_session(&self, token: &str) -> Result<Arc<Principal>> {
        let id_hash = digest(token);
        let ended = || ServiceError::Unauthenticated("your session has ended; sign in again".into());
        let row = store::session(&self.store().reader, &id_hash).await?.ok_or_else(ended)?;
        let now = time::now_us();
        if row.disabled || now - row.last_seen_at > us(SESSION_IDLE) || now - row.created_at > us(SESSION_ABSOLUTE) {
            return Err(ended());
        }
        if now - row.last_seen_at > us(TOUCH_EVERY) {
            let this = self.clone();
            detached(async move {
                let mut w = this.bookkeeping().await?;
                store::touch_session(w.conn(), &id_hash, now).await?;
                w.commit().await
            })
            .await?;
        }
        Ok(Arc::new(person(&row.username, &row.role, row.user_id)))
    }

    /// Ends a session (unknown ones are ignored: signing out twice is fine).
    pub async fn logout(&self, token: &str) -> Result<()> {
        let (this, id_hash) = (self.clone(), digest(token));
        detached(async move {
            let mut w = this.bookkeeping().await?;
            store::delete_session(w.conn(), &id_hash).await?;
            w.commit().await
        })
        .await
    }
}
