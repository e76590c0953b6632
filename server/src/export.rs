//! The audit log as a download for the console: `GET /export/audit.csv` and
//! `GET /export/audit.json`, with the audit page's filters (`prompt`, `actor`, `action`,
//! `since`, `until`; times in RFC 3339 or as a date picker writes them, read as UTC).
//! Authenticated by the console's session cookie, so the page's plain links work; every
//! matching event is read through the service, a page of 1,000 at a time, newest first.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::model::AuditEvent;
use serde::{Deserialize, Serialize};
use service::{AuditFilter, Registry, ServiceError};

use crate::AppState;
use crate::api::error::ApiError;
use crate::api::extract::Query;

/// Events read per call to the service (its largest page).
const CHUNK: i64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/export/audit.csv", get(csv)).route("/export/audit.json", get(json))
}

/// The audit page's filters; anything else is a 400, as on `/api/v1/audit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    prompt: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

async fn csv(
    State(r): State<Registry>,
    headers: HeaderMap,
    Query(p): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let events = matching_events(&r, &headers, p).await?;
    let mut out = String::from("seq,at,actor,action,prompt,version,label,detail,hash,prev_hash\r\n");
    for e in &events {
        let row = [
            e.seq.to_string(),
            e.at.clone(),
            e.actor.clone(),
            e.action.clone(),
            e.prompt.clone().unwrap_or_default(),
            e.version.map(|v| v.to_string()).unwrap_or_default(),
            e.label.clone().unwrap_or_default(),
            e.detail.to_string(),
            e.hash.clone(),
            e.prev_hash.clone(),
        ];
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Ok(download("text/csv; charset=utf-8", "promptledger-audit.csv", out))
}

async fn json(
    State(r): State<Registry>,
    headers: HeaderMap,
    Query(p): Query<ExportParams>,
) -> Result<Response, ApiError> {
    /// `{"items": [...]}`, each event's fields in the API's order.
    #[derive(Serialize)]
    struct Export {
        items: Vec<AuditEvent>,
    }
    let items = matching_events(&r, &headers, p).await?;
    let body = serde_json::to_string(&Export { items }).map_err(|e| ApiError::from(ServiceError::internal(e)))?;
    Ok(download("application/json", "promptledger-audit.json", body))
}

fn download(content_type: &'static str, filename: &'static str, body: String) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("a plain file name")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// Every event the filters match, newest first, for the person behind the session cookie.
async fn matching_events(r: &Registry, headers: &HeaderMap, p: ExportParams) -> Result<Vec<AuditEvent>, ApiError> {
    let Some(token) = app::auth::ssr::token(headers) else {
        return Err(ServiceError::Unauthenticated("sign in to the console to export the audit log".into()).into());
    };
    let who = r.authenticate_session(&token).await?;
    let text = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let filter = AuditFilter {
        prompt: text(p.prompt),
        actor: text(p.actor),
        action: text(p.action),
        since: instant("since", text(p.since))?,
        until: instant("until", text(p.until))?,
        before_seq: None,
    };
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = r.audit(&who, filter.clone(), Some(CHUNK), cursor.as_deref()).await?;
        events.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(events),
        }
    }
}

/// `2026-03-15T14:47:00Z`, or `2026-03-15T14:47` as a date picker writes it (UTC).
fn instant(field: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            app::pages::audit::utc_instant(&v).and_then(|s| service::time::parse_rfc3339(&s)).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{field}` must be a time such as 2026-03-15T14:47:00Z or 2026-03-15T14:47 (UTC), not '{v}'"
                ))
            })
        })
        .transpose()
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a double quote, CR or LF,
/// with inner quotes doubled.
///
/// Spreadsheets also run a cell that starts with `=`, `+`, `-` or `@` (and, in some, a
/// tab or CR) as a formula, so an actor name, label or reason written to attack whoever
/// opens the export could run there ("CSV injection"). Such a cell is prefixed with `'`,
/// which spreadsheets show as text and do not evaluate. The JSON export is unchanged.
pub fn csv_cell(value: &str) -> String {
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let value = if risky { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\r', '\n']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_as_rfc_4180_says() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell(""), "");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(csv_cell(r#"{"message":"fix, typo"}"#), r#""{""message"":""fix, typo""}""#);
        assert_eq!(csv_cell("sha256:00ab"), "sha256:00ab");
    }

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(csv_cell("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("=a,b"), "\"'=a,b\"");
        // Only the first character counts.
        assert_eq!(csv_cell("a=b"), "a=b");
        assert_eq!(csv_cell("2026-03-15T14:47:00.000000Z"), "2026-03-15T14:47:00.000000Z");
    }

    #[test]
    fn times_from_the_date_picker_are_utc() {
        assert_eq!(instant("since", None).unwrap(), None);
        let picker = instant("since", Some("2026-03-15T14:47".into())).unwrap();
        assert_eq!(picker, instant("since", Some("2026-03-15T14:47:00Z".into())).unwrap());
        assert!(picker.is_some());
        assert!(instant("until", Some("last tuesday".into())).is_err());
        assert!(instant("until", Some("2026-02-30T10:00".into())).is_err());
    }
}
