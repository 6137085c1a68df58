//! One error type for every failure the HTTP layer answers, in the error body of docs/api.md.
//!
//! `ApiError::into_response` renders JSON and leaves the error in the response's extensions;
//! the `render_errors` middleware then re-renders it as XML when the request negotiated XML,
//! and turns any other error response (axum's 404/405, a body-limit or timeout answer from a
//! layer, a caught panic) into the same format. So no response leaves the server in another
//! error format, whichever layer produced it.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

use super::format::{Format, json_response};
use super::xml::{attribute, element, escape, xml_close, xml_open, xml_response};
use crate::routing::Problem;
use crate::store::StoreError;

/// The largest request body accepted (docs/api.md: 413 above it).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// One entry of `errors`: a problem in `ConfigurationData` at an RFC 6901 JSON pointer, or a
/// problem of one parameter (form, query or body member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum ErrorEntry {
    Pointer { pointer: String, message: String },
    Parameter { parameter: String, message: String },
}

impl From<Problem> for ErrorEntry {
    fn from(p: Problem) -> ErrorEntry {
        ErrorEntry::Pointer {
            pointer: p.pointer,
            message: p.message,
        }
    }
}

/// An error answer: status, message, problems. Build it with the constructors below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub errors: Vec<ErrorEntry>,
}

/// The error body of every error answer (docs/api.md), in JSON.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    message: &'a str,
    /// Every problem found, in one answer (may be empty).
    errors: &'a [ErrorEntry],
}

// The answers many routes share, defined once for the OpenAPI document
// (`components/responses`), each the error body above.

/// Missing or wrong credentials: the message names the credentials the route takes, never
/// which part of those given was wrong.
#[derive(ToResponse)]
#[response(
    description = "Missing or wrong credentials (the message names those the route takes)",
    content_type = "application/json",
    headers(("WWW-Authenticate" = String, description = "`Basic realm=\"Restcomm realm\"`"))
)]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody<'static>);

/// The engine token (Bearer, or Basic with the user `engine`) on a super-admin route.
#[derive(ToResponse)]
#[response(
    description = "The engine token on a route of the super-admin",
    content_type = "application/json"
)]
#[allow(dead_code)]
pub struct EngineTokenForbidden(ErrorBody<'static>);

/// A request body over `MAX_BODY_BYTES`.
#[derive(ToResponse)]
#[response(description = "Body over 256 KiB", content_type = "application/json")]
#[allow(dead_code)]
pub struct PayloadTooLarge(ErrorBody<'static>);

/// An admin POST whose body is not form-encoded.
#[derive(ToResponse)]
#[response(
    description = "Body not application/x-www-form-urlencoded",
    content_type = "application/json"
)]
#[allow(dead_code)]
pub struct UnsupportedMediaType(ErrorBody<'static>);

/// `If-Match` / `If-None-Match` that do not hold.
#[derive(ToResponse)]
#[response(
    description = "If-Match / If-None-Match did not hold: nothing was written",
    content_type = "application/json"
)]
#[allow(dead_code)]
pub struct PreconditionFailed(ErrorBody<'static>);

/// The database cannot answer (nothing was written).
#[derive(ToResponse)]
#[response(
    description = "The database is unavailable: nothing was written",
    content_type = "application/json"
)]
#[allow(dead_code)]
pub struct DatabaseUnavailable(ErrorBody<'static>);

/// A lookup before the routing cache was first filled.
#[derive(ToResponse)]
#[response(
    description = "The routing cache is not loaded yet; retry shortly",
    content_type = "application/json"
)]
#[allow(dead_code)]
pub struct CacheLoading(ErrorBody<'static>);

/// A query parameter on a route that takes none (docs/api.md).
#[derive(ToResponse)]
#[response(
    description = "A query parameter: this route takes none",
    content_type = "application/json"
)]
#[allow(dead_code)]
pub struct NoParameters(ErrorBody<'static>);

/// The shared responses by name, as `components/responses` holds them (the admin API's XML
/// forms inline them, with an XML twin of the body).
pub fn shared_responses() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Response>)> {
    fn one<'a, R: ToResponse<'a>>() -> (String, utoipa::openapi::RefOr<utoipa::openapi::Response>) {
        let (name, response) = R::response();
        (name.to_string(), response)
    }
    vec![
        one::<Unauthorized>(),
        one::<EngineTokenForbidden>(),
        one::<PayloadTooLarge>(),
        one::<UnsupportedMediaType>(),
        one::<PreconditionFailed>(),
        one::<DatabaseUnavailable>(),
        one::<CacheLoading>(),
        one::<NoParameters>(),
    ]
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 401; the response carries `WWW-Authenticate: Basic realm="Restcomm realm"`.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required: the super-admin's HTTP Basic credentials (the admin Sid \
             and auth token)",
        )
    }

    /// 401 of the routes the engines call (lookups, outcomes, proxies): says which
    /// credentials they take, never which part of the given ones was wrong.
    pub fn unauthorized_engine() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required: the engine token (Authorization: Bearer <token>, or \
             HTTP Basic with the user `engine` and the token as password) or the \
             super-admin's HTTP Basic credentials",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 for one form or query parameter.
    pub fn parameter(parameter: &str, message: impl Into<String>) -> ApiError {
        ApiError::parameters(vec![(parameter.to_owned(), message.into())])
    }

    /// 400 for several parameters at once (every problem in one answer).
    pub fn parameters(problems: Vec<(String, String)>) -> ApiError {
        let message = match problems.as_slice() {
            [(name, _)] => format!("{name} is invalid"),
            _ => {
                let names: Vec<&str> = problems.iter().map(|(n, _)| n.as_str()).collect();
                format!("invalid parameters: {}", names.join(", "))
            }
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
            errors: problems
                .into_iter()
                .map(|(parameter, message)| ErrorEntry::Parameter { parameter, message })
                .collect(),
        }
    }

    /// 400 "ConfigurationData is invalid" with every problem and its pointer.
    pub fn configuration(problems: Vec<Problem>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: "ConfigurationData is invalid".into(),
            errors: problems.into_iter().map(ErrorEntry::from).collect(),
        }
    }

    pub fn payload_too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; nothing was changed",
        )
    }

    /// 500 without details (they go to the log, never to the client).
    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// The generic answer for an error status that no handler described.
    pub fn from_status(status: StatusCode) -> ApiError {
        let message = match status {
            StatusCode::NOT_FOUND => "no such resource".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this resource".to_owned(),
            StatusCode::PAYLOAD_TOO_LARGE => return ApiError::payload_too_large(),
            StatusCode::REQUEST_TIMEOUT => "request timed out".to_owned(),
            StatusCode::UNAUTHORIZED => return ApiError::unauthorized(),
            s if s.is_server_error() => s
                .canonical_reason()
                .unwrap_or("server error")
                .to_ascii_lowercase(),
            s => s
                .canonical_reason()
                .unwrap_or("request refused")
                .to_ascii_lowercase(),
        };
        ApiError::new(status, message)
    }

    /// The docs/api.md JSON error body (also printed by the CLI's `validate` and `resolve`).
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::json!(self.json())
    }

    fn json(&self) -> ErrorBody<'_> {
        ErrorBody {
            status: self.status.as_u16(),
            message: &self.message,
            errors: &self.errors,
        }
    }

    /// This error as a body in `format`.
    pub fn render(&self, format: Format) -> Response {
        let mut response = match format {
            Format::Json => json_response(self.status, &self.json()),
            Format::Xml => xml_response(self.status, &error_xml(self)),
        };
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Restcomm realm\""),
            );
        }
        response
            .extensions_mut()
            .insert(Rendered(Arc::new(self.clone())));
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // JSON by default; `render_errors` switches to XML where the request asked for it.
        self.render(Format::Json)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                // `ops::database_error`, which imports this module: counted here directly.
                metrics::counter!("multiprovider_database_errors_total").increment(1);
                ApiError::unavailable()
            }
            StoreError::MissingConfiguration => ApiError::parameter(
                "ConfigurationData",
                "required: the target configuration does not exist yet",
            ),
            StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "stored data could not be read");
                ApiError::internal()
            }
            e @ StoreError::PreconditionFailed { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("{e}; nothing was written (read it again, then retry with its ETag)"),
            ),
            StoreError::NeverExisted => {
                ApiError::not_found("this configuration has no history: it never existed")
            }
            e @ (StoreError::NoSuchRevision(_) | StoreError::RevisionIsDelete(_)) => {
                ApiError::parameter("Revision", e.to_string())
            }
        }
    }
}

/// `<RestcommResponse><Message>…</Message><Error pointer|parameter="…">…</Error>…</RestcommResponse>`
pub fn error_xml(error: &ApiError) -> String {
    let mut out = xml_open();
    element(&mut out, "Message", &error.message);
    for entry in &error.errors {
        let (name, value, message) = match entry {
            ErrorEntry::Pointer { pointer, message } => ("pointer", pointer, message),
            ErrorEntry::Parameter { parameter, message } => ("parameter", parameter, message),
        };
        out.push_str("<Error");
        attribute(&mut out, name, value);
        out.push('>');
        out.push_str(&escape(message, false));
        out.push_str("</Error>");
    }
    xml_close(&mut out);
    out
}

/// Marks a response whose body an `ApiError` rendered (kept for re-rendering).
#[derive(Clone)]
struct Rendered(Arc<ApiError>);

/// The error a response carries, when an `ApiError` rendered it (for the refusal log).
pub fn rendered_error(response: &Response) -> Option<Arc<ApiError>> {
    response
        .extensions()
        .get::<Rendered>()
        .map(|Rendered(error)| error.clone())
}

/// Every error response of the router leaves in the request's `format` (applied by the
/// middleware around every route, `http::finish`).
pub async fn render_errors(format: Format, response: Response) -> Response {
    if let Some(Rendered(error)) = response.extensions().get::<Rendered>().cloned() {
        return if format == Format::Json {
            response
        } else {
            rerender(response, &error, format)
        };
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || has_own_body(&response) {
        return response;
    }
    // An answer from axum or a tower layer (404, 405, 408, 413, a caught panic...), or an
    // axum extractor rejection (text/plain): keep the rejection's explanation when it is a
    // plain client error, since it tells the caller what to fix.
    let mut error = ApiError::from_status(status);
    let (parts, body) = response.into_parts();
    let keeps_text = matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY
    );
    if keeps_text && let Ok(bytes) = axum::body::to_bytes(body, 4096).await {
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        if !text.is_empty() {
            error.message = text.to_owned();
        }
    }
    rerender(
        Response::from_parts(parts, axum::body::Body::empty()),
        &error,
        format,
    )
}

/// True when a handler deliberately answered an error with its own JSON or XML body
/// (e.g. a readiness probe); those are left alone.
fn has_own_body(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| !ct.starts_with("text/plain"))
}

/// `error` in `format`, keeping the original response's other headers (e.g. `Allow`).
fn rerender(original: Response, error: &ApiError, format: Format) -> Response {
    let (parts, _) = original.into_parts();
    let mut response = error.render(format);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response
                .headers_mut()
                .entry(name)
                .or_insert_with(|| value.clone());
        }
    }
    response
}

/// `CatchPanicLayer` handler: a generic 500, the panic itself only in the log.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_message_names_each_parameter() {
        let e = ApiError::parameters(vec![
            ("Enabled".into(), "must be true or false".into()),
            ("AccountSid".into(), "must be AC + 32 hex digits".into()),
        ]);
        assert_eq!(e.message, "invalid parameters: Enabled, AccountSid");
        let json = serde_json::to_value(&e.errors).unwrap();
        assert_eq!(json[0]["parameter"], "Enabled");
    }

    #[test]
    fn error_xml_escapes() {
        let e = ApiError::configuration(vec![Problem {
            pointer: "/a\"b".into(),
            message: "x < y & \u{1}".into(),
        }]);
        let xml = error_xml(&e);
        assert!(
            xml.contains("<Error pointer=\"/a&quot;b\">x &lt; y &amp; \u{FFFD}</Error>"),
            "{xml}"
        );
        assert!(xml.contains("<Message>ConfigurationData is invalid</Message>"));
    }

    #[test]
    fn unauthorized_carries_the_challenge() {
        let r = ApiError::unauthorized().into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"Restcomm realm\""
        );
    }
}
