//! A local webhook receiver on loopback that records what it gets, and a poll helper.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use parking_lot::Mutex;

#[derive(Default)]
pub struct Receiver {
    /// Answer 500 to this many requests first.
    pub fail_first: AtomicUsize,
    /// Never answer.
    pub hang: bool,
    /// Every request received: (headers, body).
    pub got: Mutex<Vec<(HeaderMap, String)>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> AxumStatus {
    r.got.lock().push((headers, body));
    if r.hang {
        std::future::pending::<()>().await;
    }
    let failing = r.fail_first.load(Ordering::SeqCst);
    if failing > 0 {
        r.fail_first.store(failing - 1, Ordering::SeqCst);
        return AxumStatus::INTERNAL_SERVER_ERROR;
    }
    AxumStatus::NO_CONTENT
}

pub async fn receiver(fail_first: usize, hang: bool) -> (String, Arc<Receiver>) {
    let state = Arc::new(Receiver { fail_first: AtomicUsize::new(fail_first), hang, ..Default::default() });
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
