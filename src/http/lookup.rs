//! The lookup API of SPEC §6, for the call and SMS engines. Answered from the cache alone:
//! no database, no regex compilation, one buffer allocated for the answer.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::AppState;
use super::auth::EngineOrAdmin;
use super::error::ApiError;
use super::extract::{AccountPath, StrictQuery};
use crate::cache::Resolved;
use crate::routing::{self, Destination, LookupError, VoiceAnswer};
use crate::sid::AccountSid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/accounts/{account_sid}/voice-route",
            get(voice_get).post(voice_post),
        )
        .route("/v1/accounts/{account_sid}/sms-route", get(sms_get))
}

/// Until the first snapshot is in the cache, an answer would say "no configuration" for
/// accounts that have one: 503, as `/health/ready` says.
fn ready(state: &AppState) -> Result<(), ApiError> {
    if state.cache.is_loaded() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the routing cache is not loaded yet; retry shortly",
        ))
    }
}

fn lookup_error(e: LookupError) -> ApiError {
    ApiError::parameter(&e.parameter, e.message)
}

fn json(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[derive(Clone, Copy)]
enum Kind {
    Voice,
    Sms,
}

/// Records a lookup's latency. The histogram handles are looked up once, not per request.
fn observe(kind: Kind, started: Instant) {
    static HANDLES: std::sync::OnceLock<[metrics::Histogram; 2]> = std::sync::OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        let name = "multiprovider_lookup_duration_seconds";
        [
            metrics::histogram!(name, "kind" => "voice"),
            metrics::histogram!(name, "kind" => "sms"),
        ]
    });
    handles[kind as usize].record(started.elapsed().as_secs_f64());
}

fn answer_voice(
    state: &AppState,
    account: AccountSid,
    to: &str,
    headers: &[(&str, &str)],
) -> Result<Response, ApiError> {
    let dest = Destination::parse(to).map_err(lookup_error)?;
    routing::check_supplied_headers(headers).map_err(lookup_error)?;
    ready(state)?;
    let Resolved {
        source,
        routing,
        health,
    } = state.cache.resolve(&account);
    let mut sid_buf = [0; 34];
    let sid = account.encode(&mut sid_buf);
    let body = match &routing {
        Some(r) => {
            // SPEC §11: each proxy's health is one atomic read.
            let answer = r.resolve_voice_with_health(&dest, headers, |i| health.get(i));
            routing::voice_response_json(Some(sid), source, &answer)
        }
        None => routing::voice_response_json(Some(sid), source, &VoiceAnswer::none()),
    };
    Ok(json(body))
}

/// `GET …/voice-route?to=…`: `+` in the query is a literal plus (RFC 3986), not a space.
async fn voice_get(
    _auth: EngineOrAdmin,
    State(state): State<AppState>,
    AccountPath(account): AccountPath,
    query: StrictQuery,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let to = query
        .one("to")?
        .ok_or_else(|| ApiError::parameter("to", "required: the call's destination"))?;
    let response = answer_voice(&state, account, &to, &[]);
    observe(Kind::Voice, started);
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoiceQuery {
    to: String,
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
}

/// `POST …/voice-route` with `{"to": …, "headers": {"To": …}}`.
async fn voice_post(
    _auth: EngineOrAdmin,
    State(state): State<AppState>,
    AccountPath(account): AccountPath,
    request_headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    if let Some(ct) = request_headers.get(header::CONTENT_TYPE) {
        let is_json = ct
            .to_str()
            .ok()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::unsupported_media_type(
                "the body must be application/json",
            ));
        }
    }
    let query: VoiceQuery = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a voice-route query: {e}")))?;
    let mut headers = Vec::with_capacity(query.headers.len());
    for (name, value) in &query.headers {
        match value.as_str() {
            Some(v) => headers.push((name.as_str(), v)),
            None => {
                return Err(ApiError::parameter(
                    "headers",
                    format!("the value of header `{name}` must be a string"),
                ));
            }
        }
    }
    let response = answer_voice(&state, account, &query.to, &headers);
    observe(Kind::Voice, started);
    response
}

/// `GET …/sms-route`.
async fn sms_get(
    _auth: EngineOrAdmin,
    State(state): State<AppState>,
    AccountPath(account): AccountPath,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    ready(&state)?;
    let Resolved {
        source, routing, ..
    } = state.cache.resolve(&account);
    let mut sid_buf = [0; 34];
    let sid = account.encode(&mut sid_buf);
    let tlvs = routing.as_deref().map(|r| r.sms_tlvs()).unwrap_or_default();
    let response = json(routing::sms_response_json(Some(sid), source, tlvs));
    observe(Kind::Sms, started);
    Ok(response)
}
