//! The live event stream (API.md "Event stream"): `GET /api/v1/events`, server-sent
//! events of every change that alters what a prompt serves, replayed from
//! `Last-Event-ID` (or `since`) first.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use service::Registry;

use super::error::ApiError;
use super::extract::{Caller, Query};
use crate::AppState;

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events", get(events))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsParams {
    prompts: Option<String>,
    since: Option<String>,
}

fn seq(what: &str, text: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an event id (an audit seq, 0 or more), got '{text}'")))
}

async fn events(
    State(r): State<Registry>,
    Caller(who): Caller,
    Query(p): Query<EventsParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let since = match (last_event_id, p.since.as_deref()) {
        (Some(id), _) => Some(seq("Last-Event-ID", id)?),
        (None, Some(s)) => Some(seq("since", s)?),
        (None, None) => None,
    };
    let prompts: Option<BTreeSet<String>> = p
        .prompts
        .map(|list| list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect());
    let subscription = r.subscribe(&who, since, prompts).await?;
    let stream = futures::stream::unfold(subscription, |mut sub| async move {
        let e = sub.next().await?;
        let event = Event::default().event(e.event).data(e.data);
        let event = if e.last_of_change { event.id(e.seq.to_string()) } else { event };
        Some((Ok::<_, Infallible>(event), sub))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("")).into_response())
}
