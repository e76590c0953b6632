//! Time as stored (microseconds since the epoch, UTC) and as served (RFC 3339).

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// `2026-03-15T14:47:00.000000Z`: fixed width, so it sorts as text too.
pub fn format_us(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 instant with any offset.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc).timestamp_micros())
}

/// An optional RFC 3339 parameter named `name`, refused in words when it does not parse.
pub fn parse_param(name: &str, value: Option<&str>) -> crate::Result<Option<i64>> {
    value
        .map(|v| {
            parse_rfc3339(v).ok_or_else(|| {
                crate::ServiceError::BadRequest(format!(
                    "`{name}` must be an RFC 3339 time such as 2026-03-15T14:47:00Z (got '{v}')"
                ))
            })
        })
        .transpose()
}
