//! Who is signed in: sign in, sign out, and the signed-in person the pages adapt to.
//! The session cookie is `HttpOnly` and `SameSite=Strict` (plus `Secure` behind TLS);
//! the server keeps only its SHA-256.

use domain::access::{Action, Grant, Role};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The signed-in person, as the pages see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub username: String,
    pub role: Role,
}

impl Me {
    pub fn can(&self, action: Action) -> bool {
        Grant { role: Some(self.role), scope: None }.allows(action)
    }
}

/// The signed-in person, from the context the app provides once signed in.
pub fn me() -> Me {
    expect_context::<Me>()
}

#[server(endpoint = "console/current_user")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    let (registry, parts) = (ssr::registry(), ssr::parts()?);
    let Some(token) = ssr::token(&parts.headers) else { return Ok(None) };
    match registry.authenticate_session(&token).await {
        Ok(p) => Ok(Some(Me { username: p.actor.clone(), role: p.grant.role.unwrap_or(Role::Viewer) })),
        // Not an error for this call: the page shows the sign-in form.
        Err(service::ServiceError::Unauthenticated(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[server(endpoint = "console/login")]
pub async fn login(username: String, password: String) -> Result<(), AppError> {
    use axum::http::header::{HeaderValue, SET_COOKIE};
    let (registry, parts) = (ssr::registry(), ssr::parts()?);
    let options = expect_context::<leptos_axum::ResponseOptions>();
    let addr = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let previous = ssr::token(&parts.headers);
    let session = registry.login(username.trim(), &password, addr, previous.as_deref()).await?;
    let secure = ssr::behind_tls(&parts.headers);
    let cookie = ssr::cookie(&session.token, service::SESSION_ABSOLUTE.as_secs(), secure);
    options.insert_header(SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| AppError::Internal)?);
    Ok(())
}

#[server(endpoint = "console/logout")]
pub async fn logout() -> Result<(), AppError> {
    use axum::http::header::{HeaderValue, SET_COOKIE};
    let (registry, parts) = (ssr::registry(), ssr::parts()?);
    let options = expect_context::<leptos_axum::ResponseOptions>();
    if let Some(token) = ssr::token(&parts.headers) {
        registry.logout(&token).await?;
    }
    let cookie = ssr::cookie("", 0, ssr::behind_tls(&parts.headers));
    options.insert_header(SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| AppError::Internal)?);
    Ok(())
}

/// Reloads the page in the browser (after signing in or out, every part of it changes).
pub fn reload_to(path: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().set_href(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

#[island(lazy)]
pub fn LoginPage() -> impl IntoView {
    crate::mark_hydrated();
    let action = ServerAction::<Login>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = action.value().get() {
            let path = window().location().pathname().unwrap_or_else(|_| "/".into());
            reload_to(&path);
        }
    });
    view! {
        <section class="login" aria-labelledby="login-title">
            <h1 id="login-title">"Sign in to promptledger"</h1>
            <ActionForm action>
                <label for="username">"Username"</label>
                <input id="username" name="username" autocomplete="username" required autofocus/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required/>
                <button type="submit" class="primary" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Signing in…" } else { "Sign in" }}
                </button>
            </ActionForm>
            {move || action.value().get().and_then(Result::err).map(|e| view! {
                <p class="error" role="alert">{login_error(&e)}</p>
            })}
            <p class="hint">"No account yet? An administrator creates accounts in the console or with "
                <code>"promptledger user add"</code>"."</p>
        </section>
    }
}

fn login_error(e: &AppError) -> String {
    match e {
        AppError::SignedOut(_) => "That username and password do not match. Check them and try again.".into(),
        other => other.to_string(),
    }
}

/// A plain form post (no wasm): the server clears the cookie and sends the browser back
/// to the page, which then shows the sign-in form.
#[component]
pub fn LogoutButton() -> impl IntoView {
    let action = ServerAction::<Logout>::new();
    view! {
        <ActionForm action attr:class="logout">
            <button type="submit" class="link">"Sign out"</button>
        </ActionForm>
    }
}

/// Server-side plumbing: the request, the registry and the session of the caller.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;

    use axum::http::HeaderMap;
    use axum::http::request::Parts;
    use leptos::prelude::*;
    use service::{Principal, Registry};

    use crate::error::AppError;

    pub const COOKIE: &str = "promptledger_session";

    pub fn registry() -> Registry {
        expect_context::<Registry>()
    }

    pub fn parts() -> Result<Parts, AppError> {
        use_context::<Parts>().ok_or(AppError::Internal)
    }

    /// The session cookie's value, if the request has one.
    pub fn token(headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Whether the browser reached us over TLS through a proxy that says so.
    pub fn behind_tls(headers: &HeaderMap) -> bool {
        headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
    }

    pub fn cookie(value: &str, max_age: u64, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// Who is asking (the person behind the session cookie), and the registry to ask.
    /// Contexts are read before the first `.await`: a server function called by a
    /// resource during server rendering is polled later outside its reactive owner.
    pub async fn caller() -> Result<(Arc<Principal>, Registry), AppError> {
        let (registry, parts) = (registry(), parts()?);
        let Some(token) = token(&parts.headers) else {
            return Err(AppError::from(service::ServiceError::Unauthenticated("sign in to continue".into())));
        };
        Ok((registry.authenticate_session(&token).await?, registry))
    }
}
