//! A real server on a loopback port with a temporary SQLite file (or, when
//! `PROMPTLEDGER_TEST_POSTGRES` names a PostgreSQL server, a fresh database on it), and a
//! small client.
#![allow(dead_code)]

pub mod hooks;
pub mod provider;

use std::path::PathBuf;

use domain::access::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{Durability, Location, Principal, Registry};
use tokio::sync::oneshot;

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    /// An admin-scope service key.
    pub admin: String,
    pub registry: Registry,
    /// The SQLite file (meaningless on PostgreSQL: see `location`).
    pub db: PathBuf,
    pub location: Location,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `error.code` of an error body, after checking the body has the spec's shape.
    pub fn code(&self) -> &str {
        let error = &self.body["error"];
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "no message in {}", self.text);
        error["code"].as_str().unwrap_or_else(|| panic!("no error code in {}", self.text))
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        // The server's own log, shown for a failing test (`RUST_LOG` to choose how much).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("registry.db");
        let location = match postgres() {
            Some(server) => Location::Postgres(fresh_database(&server).await),
            None => Location::File(db.clone()),
        };
        let registry = Registry::open(&location, Durability::Normal).await.unwrap();
        let admin = registry.create_key(&Principal::operator(), "test-admin", Scope::Admin, None).await.unwrap().key;
        Self::serve(dir, db, location, registry, admin).await
    }

    /// Another replica: a second server on the same database (PostgreSQL), with its own
    /// resolve index, workers and port.
    pub async fn replica(&self) -> TestServer {
        let registry = Registry::open(&self.location, Durability::Normal).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        Self::serve(dir, self.db.clone(), self.location.clone(), registry, self.admin.clone()).await
    }

    /// Stops the server and starts a new process's worth of it on the same database
    /// (a new port; keys made before still work).
    pub async fn restart(mut self) -> TestServer {
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        let (db, location, admin) = (self.db.clone(), self.location.clone(), self.admin.clone());
        self.stop().await;
        let registry = Registry::open(&location, Durability::Normal).await.unwrap();
        Self::serve(dir, db, location, registry, admin).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        db: PathBuf,
        location: Location,
        registry: Registry,
        admin: String,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(registry.clone(), None);
        let serving = registry.clone();
        let task = tokio::spawn(async move {
            server::serve(listener, serving, app, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            base,
            http: reqwest::Client::new(),
            admin,
            registry,
            db,
            location,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.registry.close().await;
    }

    /// A connection to the server's database itself, as an operator with the file (or
    /// psql) has: for tests that age rows or read what is stored.
    pub async fn sql(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url = match &self.location {
            Location::File(path) => format!("sqlite://{}", path.display()),
            Location::Postgres(url) => url.clone(),
        };
        sqlx::AnyConnection::connect(&url).await.unwrap()
    }

    /// What `--db` takes to reach this server's database.
    pub fn db_arg(&self) -> String {
        match &self.location {
            Location::File(path) => path.display().to_string(),
            Location::Postgres(url) => url.clone(),
        }
    }

    /// A new key with `scope`, acting as `user` when given.
    pub async fn key(&self, name: &str, scope: Scope, user: Option<&str>) -> String {
        self.registry.create_key(&Principal::operator(), name, scope, user).await.unwrap().key
    }

    pub async fn user(&self, name: &str, role: Role) {
        self.registry.add_user(&Principal::operator(), name, role, None).await.unwrap();
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                req = req.header("content-type", "application/json");
            }
            req = req.body(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_client_error() || status.is_server_error() {
            assert!(body["error"]["code"].is_string(), "{status} without a JSON error body: {text}");
        }
        assert!(!status.is_server_error(), "5xx from {path}: {text}");
        Reply { status, headers, body, text }
    }

    pub async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Reply {
        self.raw(method, path, Some(key), body.map(|b| b.to_string()), &[]).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call(Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call(Method::POST, path, key, Some(body)).await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, key, Some(body)).await
    }

    /// Creates a text prompt as the admin key and returns its version 1.
    pub async fn create_text(&self, name: &str, template: &str) -> Value {
        let r = self
            .post(
                "/api/v1/prompts",
                &self.admin,
                json!({"name": name, "type": "text", "template": template,
                "config": {"model": "gpt-4o-mini"}, "message": "first"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body
    }

    /// Saves the next version of a text prompt as the admin key; returns it.
    pub async fn save(&self, name: &str, base: i64, template: &str) -> Value {
        let path = format!("/api/v1/prompts/{}/versions", enc(name));
        let r = self.post(&path, &self.admin, json!({"base_version": base, "template": template})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body
    }

    /// Moves a label as the admin key.
    pub async fn promote(&self, name: &str, label: &str, version: i64) {
        let path = format!("/api/v1/prompts/{}/labels/{label}", enc(name));
        let r = self.put(&path, &self.admin, json!({"version": version})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    pub async fn healthy(&self) -> bool {
        let r = self.http.get(format!("{}/healthz", self.base)).send().await.unwrap();
        r.status() == StatusCode::OK && r.text().await.unwrap() == "ok"
    }
}

/// A prompt name as one percent-encoded path segment.
pub fn enc(name: &str) -> String {
    name.replace('/', "%2F")
}

/// Now, as the API writes times.
pub fn now() -> String {
    service::time::format_us(service::time::now_us())
}

/// One generation of a rollout of v2 over v1 on `stable`, served by `arm`; `error`,
/// latency and cost as given.
pub fn call(name: &str, id: &str, arm: &str, n: usize, error: bool, latency: f64, cost: f64) -> Value {
    let version = if arm == "candidate" { 2 } else { 1 };
    json!({"id": format!("{id}-{arm}-{n}-{}", service::time::now_us()), "prompt": name, "version": version,
           "label": "stable", "rollout": id, "arm": arm, "status": if error { "error" } else { "ok" },
           "latency_ms": latency, "cost": cost, "started_at": now()})
}

/// Sends generations with an `app` key, 1,000 a batch; each batch must be accepted.
pub async fn send(s: &TestServer, key: &str, items: Vec<Value>) {
    for chunk in items.chunks(1000) {
        let r = s.post("/api/v1/generations", key, json!({ "items": chunk })).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
}

/// The PostgreSQL server the tests run against (`PROMPTLEDGER_TEST_POSTGRES`, an admin
/// URL), if any: `scripts/test.sh` starts a throwaway one and runs the integration tests
/// a second time with it.
pub fn postgres() -> Option<String> {
    std::env::var("PROMPTLEDGER_TEST_POSTGRES").ok().filter(|u| !u.is_empty())
}

/// Says why a test that works on the SQLite file itself does not run on PostgreSQL.
pub fn sqlite_only(why: &str) -> bool {
    if postgres().is_some() {
        eprintln!("not on PostgreSQL: {why}");
        return false;
    }
    true
}

/// A new, empty database on `server`; its URL.
pub async fn fresh_database(server: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
    let name = format!("t_{:016x}", fastrand::u64(..));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&name);
    url.to_string()
}
