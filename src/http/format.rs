//! Which format an answer takes (docs/api.md: `.json` or `Accept: application/json` gives JSON,
//! the admin routes answer XML otherwise), and JSON responses.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The admin API's path prefixes (docs/api.md).
pub const ADMIN_PREFIXES: [&str; 2] = ["/2012-04-24", "/restcomm/2012-04-24"];

/// Response format negotiated from the path and `Accept` (docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// XML only on the admin routes without a `.json` segment and without
    /// `Accept: application/json`; everything else (lookup, operations) speaks JSON.
    pub fn of(path: &str, headers: &HeaderMap) -> Format {
        if !is_admin_path(path) || path.split('/').any(|segment| segment.ends_with(".json")) {
            return Format::Json;
        }
        if accepts_json(headers) {
            Format::Json
        } else {
            Format::Xml
        }
    }
}

/// True for paths under one of the admin prefixes.
pub fn is_admin_path(path: &str) -> bool {
    ADMIN_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|value| {
            value.split(',').any(|media| {
                let media = media.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case("application/json")
            })
        })
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Format, Infallible> {
        Ok(Format::of(parts.uri.path(), &parts.headers))
    }
}

/// `body` as an `application/json` response.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        // Only our own plain structs are serialised here; this cannot fail in practice.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(
            Format::of("/2012-04-24/ExtensionsConfiguration.json/x", &h),
            Format::Json
        );
        assert_eq!(
            Format::of("/restcomm/2012-04-24/ExtensionsConfiguration/x", &h),
            Format::Xml
        );
        assert_eq!(Format::of("/v1/accounts/x/sms-route", &h), Format::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, application/JSON;q=0.9"),
        );
        assert_eq!(
            Format::of("/2012-04-24/ExtensionsConfiguration/x", &h),
            Format::Json
        );
        assert!(!is_admin_path("/2012-04-245/x"));
    }
}
