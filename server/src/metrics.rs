//! Request counts and latencies by route, in the Prometheus text format at `/metrics`.
//! Routes are the matched route patterns, never raw paths, so the series stay few.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::{Mutex, RwLock};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Default)]
struct RouteStats {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
    statuses: Mutex<BTreeMap<u16, u64>>,
}

type ByMethod = Vec<(Method, Arc<RouteStats>)>;

/// Per route pattern, per method: looked up without allocating on every request.
#[derive(Default)]
pub struct Metrics {
    routes: RwLock<HashMap<String, ByMethod>>,
}

impl Metrics {
    fn stats(&self, method: &Method, route: &str) -> Arc<RouteStats> {
        if let Some(methods) = self.routes.read().get(route)
            && let Some((_, s)) = methods.iter().find(|(m, _)| m == method)
        {
            return s.clone();
        }
        let mut routes = self.routes.write();
        let methods = routes.entry(route.to_owned()).or_default();
        if let Some((_, s)) = methods.iter().find(|(m, _)| m == method) {
            return s.clone();
        }
        let stats = Arc::new(RouteStats::default());
        methods.push((method.clone(), stats.clone()));
        stats
    }

    fn record(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let stats = self.stats(method, route);
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            stats.buckets[i].fetch_add(1, Relaxed);
        }
        stats.count.fetch_add(1, Relaxed);
        stats.sum_ns.fetch_add((seconds * 1e9) as u64, Relaxed);
        *stats.statuses.lock().entry(status).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut series: Vec<(String, String, Arc<RouteStats>)> = self
            .routes
            .read()
            .iter()
            .flat_map(|(route, methods)| methods.iter().map(move |(m, s)| (m.to_string(), route.clone(), s.clone())))
            .collect();
        series.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut out = String::new();
        out.push_str("# HELP http_requests_total HTTP requests answered, by route and status.\n# TYPE http_requests_total counter\n");
        for (method, route, s) in &series {
            for (status, n) in s.statuses.lock().iter() {
                let _ = writeln!(
                    out,
                    "http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP http_request_duration_seconds Time to answer, by route.\n# TYPE http_request_duration_seconds histogram\n");
        for (method, route, s) in &series {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += bucket.load(Relaxed);
                let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let count = s.count.load(Relaxed);
            let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ =
                writeln!(out, "http_request_duration_seconds_sum{{{labels}}} {}", s.sum_ns.load(Relaxed) as f64 / 1e9);
            let _ = writeln!(out, "http_request_duration_seconds_count{{{labels}}} {count}");
        }
        out
    }
}

/// Middleware: times every request and counts it under its route pattern.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.record(&method, route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

pub async fn handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render())
}
