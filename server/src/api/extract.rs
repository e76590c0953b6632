//! Extractors whose rejections are JSON errors (axum's defaults answer in plain text),
//! and the caller's identity from `Authorization: Bearer <key>`.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use std::sync::Arc;

use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use service::{Principal, Registry};

use super::BODY_LIMIT;
use super::error::ApiError;

/// A request body of at most `LIMIT` bytes (after gzip, when the client compressed it):
/// over the limit is 413, a body that cannot be read or unzipped 400.
pub struct Body<const LIMIT: usize = BODY_LIMIT>(pub bytes::Bytes);

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {} KiB", limit / 1024),
    )
}

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for Body<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let gzip =
            match req.headers().get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase()) {
                None => false,
                Some(e) if e == "gzip" => true,
                Some(e) if e == "identity" => false,
                Some(e) => {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_encoding",
                        format!("Content-Encoding '{e}' is not supported (send gzip or nothing)"),
                    ));
                }
            };
        // The limit is applied here rather than by a layer, so requests without a body
        // (resolve) pay nothing for it.
        let bytes = axum::body::to_bytes(req.into_body(), LIMIT).await.map_err(|e| {
            let over = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            if over {
                too_large(LIMIT)
            } else {
                ApiError::bad_request(format!("the request body could not be read: {e}"))
            }
        })?;
        if !gzip {
            return Ok(Body(bytes));
        }
        // Read one byte past the limit to tell a body that fits from a zip bomb.
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(flate2::read::GzDecoder::new(&bytes[..]), LIMIT as u64 + 1),
            &mut out,
        )
        .map_err(|_| ApiError::bad_request("the body is not valid gzip"))?;
        if out.len() > LIMIT {
            return Err(too_large(LIMIT));
        }
        Ok(Body(out.into()))
    }
}

/// A JSON body. Malformed JSON is 400, JSON of the wrong shape 422, over the limit 413.
pub struct Json<T>(pub T);

/// Parses JSON: malformed is 400 `invalid_json`, the wrong shape 422 `invalid_body`.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the request body does not have the expected fields: {e}"),
            ),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {e}"),
            ),
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(bytes) = Body::<BODY_LIMIT>::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Query parameters; anything unparsable is 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {}", e.body_text())))
    }
}

/// Path parameters (percent-decoded); anything unparsable is 400.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}

/// Who is calling: an API key now; the console's session cookie joins later.
pub struct Caller(pub Arc<Principal>);

/// The `If-None-Match` header alone (taking the whole `HeaderMap` would copy it).
pub struct IfNoneMatch(pub Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(parts.headers.get(IF_NONE_MATCH).cloned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    Registry: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthorized("send an API key as `Authorization: Bearer <key>`"))?;
        let text = header.to_str().unwrap_or_default();
        // Borrowed for Bearer (every request of an application): no allocation.
        let key: Option<std::borrow::Cow<'_, str>> = match text.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => Some(key.trim().into()),
            // HTTP Basic as Langfuse's SDKs send it: the password is the key.
            Some((scheme, credentials)) if scheme.eq_ignore_ascii_case("basic") => {
                basic_password(credentials.trim()).map(Into::into)
            }
            _ => None,
        };
        let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
            unauthorized("the Authorization header must be `Bearer <key>` (or Basic with the key as the password)")
        })?;
        let registry = Registry::from_ref(state);
        Ok(Caller(registry.authenticate_key(&key).await?))
    }
}

/// The password of HTTP Basic credentials (`base64(user:password)`).
fn basic_password(credentials: &str) -> Option<String> {
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, password)| password.to_owned())
}

/// An optional JSON body: nothing (or whitespace) is `T::default()`; `shape` tells a
/// caller what was expected.
pub fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body must be {shape} or empty: {e}")))
}

/// `X-Promptledger-Unit`: a rollout's unit (a user id...), when not in the query.
pub struct UnitHeader(pub Option<String>);

pub const UNIT_HEADER: HeaderName = HeaderName::from_static("x-promptledger-unit");
pub const ARM_HEADER: HeaderName = HeaderName::from_static("x-promptledger-arm");

impl<S: Send + Sync> FromRequestParts<S> for UnitHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(&UNIT_HEADER) {
            None => Ok(UnitHeader(None)),
            Some(v) => v
                .to_str()
                .map(|u| UnitHeader(Some(u.to_owned())))
                .map_err(|_| ApiError::bad_request("X-Promptledger-Unit must be printable ASCII")),
        }
    }
}
