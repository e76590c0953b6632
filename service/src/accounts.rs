//! Users and API keys. Keys are random 256-bit secrets shown once and stored as SHA-256
//! (fast, because a key is checked on every request; its entropy makes a slow hash
//! pointless). Passwords are stored as argon2id with OWASP's parameters.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use domain::access::{Action, Role, Scope};
use domain::vocabulary::AuditAction;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use domain::model::{CreatedKey, KeyInfo, UserInfo};

use crate::store::{self, KeyRow, NewEvent, UserRow};
use crate::{Principal, Registry, Result, ServiceError, detached, time};

impl From<KeyRow> for KeyInfo {
    fn from(k: KeyRow) -> Self {
        KeyInfo {
            name: k.name,
            prefix: k.prefix,
            scope: k.scope,
            user: k.username,
            created_by: k.created_by,
            created_at: time::format_us(k.created_at),
            revoked_at: k.revoked_at.map(time::format_us),
        }
    }
}

impl From<UserRow> for UserInfo {
    fn from(u: UserRow) -> Self {
        UserInfo {
            username: u.username,
            role: u.role,
            disabled: u.disabled,
            has_password: u.password_hash.is_some(),
            created_at: time::format_us(u.created_at),
        }
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`: no `:`, so a username never looks like
/// `key:NAME` or `cli:USER` in the audit log.
fn validate_account_name(kind: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::rule(
            "invalid_name",
            format!("a {kind} name is 1 to 64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"),
        ))
    }
}

/// argon2id with the crate's defaults, which are OWASP's recommendation (19 MiB, t=2, p=1).
async fn hash_password(password: String) -> Result<String> {
    if password.chars().count() < 8 {
        return Err(ServiceError::rule("weak_password", "a password needs at least 8 characters"));
    }
    if password.len() > 1024 {
        return Err(ServiceError::rule("too_long", "a password can have at most 1024 bytes"));
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(ServiceError::internal)?
    .map_err(ServiceError::internal)
}

async fn hash_optional(password: Option<String>) -> Result<Option<String>> {
    match password {
        None => Ok(None),
        Some(p) => hash_password(p).await.map(Some),
    }
}

/// A hash no password matches, checked when the account does not exist so that a wrong
/// username takes as long as a wrong password.
pub(crate) static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let mut secret = [0u8; 32];
    let _ = getrandom::fill(&mut secret);
    Argon2::default().hash_password(&secret, &salt).map(|h| h.to_string()).unwrap_or_default()
});

/// Checks a password against a stored argon2 hash, off the async threads.
pub(crate) async fn verify_password(hash: String, password: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .map_err(ServiceError::internal)
}

/// A change to a person's account; fields left out stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub password: Option<String>,
}

fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ServiceError::internal)?;
    Ok(format!("pl_{}", hex::encode(bytes)))
}

impl Registry {
    /// Adds a person. The password, when given, is hashed with argon2id off the async
    /// threads.
    pub async fn add_user(
        &self,
        who: &Principal,
        username: &str,
        role: Role,
        password: Option<String>,
    ) -> Result<UserInfo> {
        who.require(Action::Administer)?;
        validate_account_name("user", username)?;
        let password_hash = hash_optional(password).await?;
        let (this, who, username) = (self.clone(), who.clone(), username.to_owned());
        detached(async move {
            let at = time::now_us();
            let mut w = this.write().await?;
            store::insert_user(w.conn(), &username, role.as_str(), password_hash.as_deref(), at).await?;
            let detail = json!({"username": username, "role": role.as_str()});
            w.audit(
                at,
                NewEvent {
                    actor: &who.actor,
                    action: AuditAction::UserCreated,
                    prompt: None,
                    version: None,
                    label: None,
                    detail,
                },
            )
            .await?;
            w.commit().await?;
            let user = store::user_by_name(&this.store().reader, &username).await?;
            user.map(Into::into).ok_or_else(|| ServiceError::internal("user vanished after insert"))
        })
        .await
    }

    /// Changes a person's role, disables or enables the account, or sets a new password.
    /// Disabling (or a new password) ends the person's sessions; keys acting for a
    /// disabled person stop working. Admins cannot demote or disable themselves, so the
    /// console is never left without the admin who was using it.
    pub async fn update_user(&self, who: &Principal, username: &str, change: UserChange) -> Result<UserInfo> {
        who.require(Action::Administer)?;
        let password_hash = hash_optional(change.password.clone()).await?;
        let (this, who, username) = (self.clone(), who.clone(), username.to_owned());
        detached(async move {
            let at = time::now_us();
            let mut w = this.write().await?;
            let user = store::user_by_name(w.conn(), &username)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("there is no user named '{username}'")))?;
            let role = change.role.map(Role::as_str).unwrap_or(&user.role).to_owned();
            let disabled = change.disabled.unwrap_or(user.disabled);
            let demoted = role != user.role && role != Role::Admin.as_str();
            if who.user_id == Some(user.id) && (demoted || disabled) {
                return Err(ServiceError::rule(
                    "own_account",
                    "you cannot disable your own account or take away your own admin role; ask another admin",
                ));
            }
            store::update_user(w.conn(), user.id, &role, disabled).await?;
            if let Some(hash) = &password_hash {
                store::set_password(w.conn(), user.id, hash).await?;
            }
            if disabled || password_hash.is_some() {
                store::delete_user_sessions(w.conn(), user.id).await?;
            }
            let action = match (disabled != user.disabled, disabled) {
                (true, true) => AuditAction::UserDisabled,
                (true, false) => AuditAction::UserEnabled,
                _ => AuditAction::UserUpdated,
            };
            let detail = json!({
                "username": username,
                "role": role,
                "previous_role": user.role,
                "disabled": disabled,
                "password_changed": password_hash.is_some(),
            });
            let event = NewEvent { actor: &who.actor, action, prompt: None, version: None, label: None, detail };
            w.audit(at, event).await?;
            w.commit().await?;
            this.forget_keys();
            let user = store::user_by_name(&this.store().reader, &username).await?;
            user.map(Into::into).ok_or_else(|| ServiceError::internal("user vanished after update"))
        })
        .await
    }

    pub async fn list_users(&self, who: &Principal) -> Result<Vec<UserInfo>> {
        who.require(Action::Administer)?;
        Ok(store::users(&self.store().reader).await?.into_iter().map(Into::into).collect())
    }

    /// Creates an API key; with `user`, the key acts as that person and can do no more
    /// than their role allows.
    pub async fn create_key(
        &self,
        who: &Principal,
        name: &str,
        scope: Scope,
        user: Option<&str>,
    ) -> Result<CreatedKey> {
        who.require(Action::Administer)?;
        validate_account_name("key", name)?;
        let key = new_secret()?;
        let (this, who, name, user) = (self.clone(), who.clone(), name.to_owned(), user.map(str::to_owned));
        detached(async move {
            let at = time::now_us();
            let mut w = this.write().await?;
            let user_id = match &user {
                None => None,
                Some(u) => Some(
                    store::user_by_name(w.conn(), u)
                        .await?
                        .ok_or_else(|| ServiceError::NotFound(format!("there is no user named '{u}'")))?
                        .id,
                ),
            };
            let prefix = key[..11].to_owned();
            let digest = Sha256::digest(key.as_bytes());
            store::insert_key(w.conn(), &name, &prefix, &digest, scope.as_str(), user_id, &who.actor, at).await?;
            let detail = json!({"name": name, "scope": scope.as_str(), "user": user, "prefix": prefix});
            w.audit(
                at,
                NewEvent {
                    actor: &who.actor,
                    action: AuditAction::KeyCreated,
                    prompt: None,
                    version: None,
                    label: None,
                    detail,
                },
            )
            .await?;
            w.commit().await?;
            Ok(CreatedKey { name, key, scope, user })
        })
        .await
    }

    /// Revokes a key at once (this process) or within the key cache's lifetime (others).
    pub async fn revoke_key(&self, who: &Principal, name: &str) -> Result<KeyInfo> {
        who.require(Action::Administer)?;
        let (this, who, name) = (self.clone(), who.clone(), name.to_owned());
        detached(async move {
            let at = time::now_us();
            let mut w = this.write().await?;
            let key = store::key_by_name(w.conn(), &name)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("there is no API key named '{name}'")))?;
            if key.revoked_at.is_none() {
                store::revoke_key(w.conn(), key.id, at).await?;
                let detail = json!({"name": name, "prefix": key.prefix});
                w.audit(
                    at,
                    NewEvent {
                        actor: &who.actor,
                        action: AuditAction::KeyRevoked,
                        prompt: None,
                        version: None,
                        label: None,
                        detail,
                    },
                )
                .await?;
                w.commit().await?;
                this.forget_keys();
            }
            let key = store::key_by_name(&this.store().reader, &name).await?;
            key.map(Into::into).ok_or_else(|| ServiceError::internal("key vanished"))
        })
        .await
    }

    pub async fn list_keys(&self, who: &Principal) -> Result<Vec<KeyInfo>> {
        who.require(Action::Administer)?;
        Ok(store::keys(&self.store().reader).await?.into_iter().map(Into::into).collect())
    }
}
