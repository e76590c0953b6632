//! The promptledger server: REST API, console, health and metrics on one axum router,
//! and `serve` to run it on any listener (tests bind port 0).

#![recursion_limit = "256"]

pub mod api;
pub mod cli;
pub mod console;
pub mod export;
pub mod files;
pub mod metrics;
pub mod security;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use leptos::config::LeptosOptions;
use service::Registry;
use tokio::net::TcpListener;

/// mimalloc rather than glibc's malloc, for the binary and everything else built on this
/// crate (its tests and benchmarks): a server allocates a little for every request on
/// every thread, and glibc's arenas contend on their locks. In the `replicas` benchmark
/// it served about 55 % more requests a second.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Everything a handler or server function may need. axum clones the state for every
/// request, so each part is cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub registry: Registry,
    pub leptos_options: Arc<LeptosOptions>,
    pub metrics: Arc<metrics::Metrics>,
}

/// The console's rendering asks for the options themselves.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        (*state.leptos_options).clone()
    }
}

/// Builds the whole application. `site_root` is where the console's compiled assets
/// are, if anywhere.
pub fn router(registry: Registry, site_root: Option<PathBuf>) -> Router {
    let state = AppState {
        registry,
        leptos_options: Arc::new(console::options(site_root.as_deref())),
        metrics: Arc::default(),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::handler))
        .merge(api::router())
        .merge(export::router())
        .merge(console::router(&state, site_root.is_some()))
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn(security::guard))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes the requests in
/// flight. The registry's background work runs meanwhile: webhook deliveries, the sweep
/// of evaluation runs whose process died, telemetry retention and the rollout judge.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = registry.clone();
    let workers = [
        tokio::spawn(async move {
            loop {
                if let Err(e) = sweeper.sweep_interrupted_runs().await {
                    tracing::error!(error = %e, "could not check for interrupted evaluation runs");
                }
                tokio::time::sleep(sweeper.eval_settings().heartbeat).await;
            }
        }),
        // Deliveries queued by any process (the CLI's changes too) are sent from here.
        tokio::spawn(registry.clone().deliver_webhooks()),
        tokio::spawn(registry.clone().run_retention()),
        tokio::spawn(registry.clone().run_rollout_judge()),
        // On PostgreSQL: changes made through other replicas, into this one's index.
        tokio::spawn(registry.clone().follow_replicas()),
        // Each committed change to the event stream's subscribers.
        tokio::spawn(registry.clone().stream_changes()),
    ];
    // The peer address feeds the sign-in rate limit.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Event streams end when the server stops, or the graceful shutdown would wait on them.
    let streams = registry.clone();
    let shutdown = async move {
        shutdown.await;
        streams.close_streams();
    };
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    workers.iter().for_each(tokio::task::JoinHandle::abort);
    served
}
