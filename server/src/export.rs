//! Files for the console, authenticated by its session cookie so plain links and forms
//! work without JavaScript:
//! - the audit log as `GET /export/audit.csv` and `GET /export/audit.json`, with the audit
//!   page's filters (`prompt`, `actor`, `action`, `since`, `until`; times in RFC 3339 or as
//!   a date picker writes them, read as UTC); every matching event is read through the
//!   service, a page of 1,000 at a time, newest first;
//! - a suite's cases as `GET /export/suite.csv` / `.jsonl` (`prompt`, `suite`), and
//!   `POST /import/suite` (a multipart form: `prompt`, `suite`, `file`, `append`), which
//!   goes back to the prompt's evaluations page with the outcome.

use axum::Router;
use axum::extract::Multipart;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::model::AuditEvent;
use serde::{Deserialize, Serialize};
use service::eval::io::Format;
use service::{AuditFilter, Registry, ServiceError};

use crate::AppState;
use crate::api::error::ApiError;
use crate::api::extract::Query;

/// Events read per call to the service (its largest page).
const CHUNK: i64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/export/audit.csv", get(csv))
        .route("/export/audit.json", get(json))
        .route("/export/suite.csv", get(|s, h, q| suite_file(s, h, q, Format::Csv)))
        .route("/export/suite.jsonl", get(|s, h, q| suite_file(s, h, q, Format::Jsonl)))
        .route("/import/suite", post(import_suite))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteParams {
    prompt: String,
    suite: String,
}

async fn suite_file(
    State(r): State<Registry>,
    headers: HeaderMap,
    Query(p): Query<SuiteParams>,
    format: Format,
) -> Result<Response, ApiError> {
    let who = session(&r, &headers).await?;
    let body = r.export_cases(&who, &p.prompt, &p.suite, format).await?;
    let file = match format {
        Format::Csv => format!("{}.csv", p.suite),
        Format::Jsonl => format!("{}.jsonl", p.suite),
    };
    Ok(download(format.content_type(), &file, body))
}

/// Reads the import form, imports through the service, and sends the person back to the
/// prompt's evaluations page with the number imported or what went wrong, in words.
async fn import_suite(
    State(r): State<Registry>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let who = session(&r, &headers).await?;
    let (mut prompt, mut suite, mut file, mut file_name, mut append) = (None, None, None, String::new(), false);
    while let Some(field) =
        form.next_field().await.map_err(|e| ApiError::bad_request(format!("the form could not be read: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            file_name = field.file_name().unwrap_or_default().to_owned();
        }
        let text = field.text().await.map_err(|e| ApiError::bad_request(format!("the form could not be read: {e}")))?;
        match name.as_str() {
            "prompt" => prompt = Some(text),
            "suite" => suite = Some(text.trim().to_owned()),
            "file" => file = Some(text),
            "append" => append = true,
            other => return Err(ApiError::bad_request(format!("the form has an unknown field '{other}'"))),
        }
    }
    let (Some(prompt), Some(suite), Some(file)) = (prompt, suite, file) else {
        return Err(ApiError::bad_request("the form needs prompt, suite and file"));
    };
    let format =
        if file_name.ends_with(".jsonl") || file_name.ends_with(".ndjson") { Format::Jsonl } else { Format::Csv };
    let back = |query: String| {
        let location = format!("/evals/{prompt}?{query}");
        (axum::http::StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
    };
    let imported = service::eval::io::read(format, &file);
    let outcome = match imported {
        Ok(cases) => r.import_cases(&who, &prompt, &suite, format, append, &file).await.map(|_| cases.len()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(count) => Ok(back(format!("imported={count}"))),
        Err(e @ (ServiceError::Rule { .. } | ServiceError::InvalidName(_) | ServiceError::BadRequest(_))) => {
            Ok(back(format!("import_error={}", percent_encode(&e.to_string()))))
        }
        Err(e) => Err(e.into()),
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The person behind the console's session cookie.
async fn session(r: &Registry, headers: &HeaderMap) -> Result<std::sync::Arc<service::Principal>, ApiError> {
    let Some(token) = app::auth::ssr::token(headers) else {
        return Err(ServiceError::Unauthenticated("sign in to the console first".into()).into());
    };
    Ok(r.authenticate_session(&token).await?)
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

fn download(content_type: &'static str, filename: &str, body: String) -> Response {
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
    let who = session(r, headers).await?;
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
