//! Mounts the console (Leptos SSR + hydration) when its compiled assets are found, and
//! otherwise answers `/` with how to build them, so the API-only binary still works.

use std::path::{Path, PathBuf};

use app::{App, shell};
use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::response::Html;
use leptos::config::{Env, LeptosOptions};
use leptos::nonce::use_nonce;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{LeptosRoutes, ResponseOptions, file_and_error_handler_with_context, generate_route_list};

use crate::AppState;

/// The name cargo-leptos gives the compiled assets (`output-name` in Cargo.toml).
pub const OUTPUT_NAME: &str = "promptledger";

fn has_assets(root: &Path) -> bool {
    root.join("pkg").join(format!("{OUTPUT_NAME}.js")).is_file()
}

/// Where the console's assets are: the given directory, else `site/` beside the
/// binary's target directory (`target/release/../site`), else `./target/site`.
pub fn find_site_root(explicit: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(root) = explicit {
        return has_assets(&root).then_some(root);
    }
    let exe = std::env::current_exe().ok();
    let beside_exe = exe.as_deref().and_then(Path::parent).and_then(Path::parent).map(|t| t.join("site"));
    [beside_exe, Some(PathBuf::from("target/site"))].into_iter().flatten().find(|p| has_assets(p))
}

pub fn options(site_root: Option<&Path>) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(site_root.map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into()))
        .site_pkg_dir("pkg")
        .env(Env::PROD)
        .build()
}

/// The console's routes, or the build hint when there are no assets.
pub fn router(state: &AppState, have_assets: bool) -> Router<AppState> {
    if !have_assets {
        return Router::new().route("/", axum::routing::get(|| async { Html(NO_CONSOLE) }));
    }
    let routes = generate_route_list(App);
    let registry = state.registry.clone();
    let context = move || {
        provide_context(registry.clone());
        // A page render has a nonce (leptos puts it on its scripts); server functions
        // do not and keep the default policy.
        if let (Some(nonce), Some(options)) = (use_nonce(), use_context::<ResponseOptions>())
            && let Ok(policy) = HeaderValue::from_str(&crate::security::page_policy(&nonce.to_string()))
        {
            options.insert_header(CONTENT_SECURITY_POLICY, policy);
        }
    };
    let options = (*state.leptos_options).clone();
    Router::new()
        .leptos_routes_with_context(state, routes, context.clone(), move || shell(options.clone()))
        .fallback(file_and_error_handler_with_context::<AppState, _>(context, shell))
}

const NO_CONSOLE: &str = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>promptledger</title></head>\
<body><main><h1>promptledger</h1><p>The API is running at <code>/api/v1</code>. The console's files were not found: \
build them with <code>cargo leptos build --release</code> and start the server from the project directory, \
or point <code>--site-root</code> (<code>PROMPTLEDGER_SITE_ROOT</code>) at the <code>target/site</code> folder.</p></main></body></html>";
