//! The lookup API of docs/api.md, for the call and SMS engines. Answered from the cache
//! alone: no database, no regex compilation, one buffer allocated for the answer.

use std::borrow::Cow;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{self, EngineOrAdmin};
use super::error::{ApiError, ErrorBody};
use super::error::{CacheLoading, PayloadTooLarge, Unauthorized};
use super::extract::{AccountPath, StrictQuery};
use super::{AppState, ops, percent};
use crate::cache::Resolved;
use crate::config::Clock;
use crate::routing::{
    self, Caller, CompiledRouting, Decider, Destination, Health, LookupError, LookupInput,
    SelectionKey, printable,
};
use crate::sid::AccountSid;
use jiff::Timestamp;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(voice_get, voice_post))
        .routes(routes!(sms_get))
}

/// Until the first snapshot is in the cache, an answer would say "no configuration" for
/// accounts that have one: 503, as `/health/ready` says.
fn ready(state: &AppState) -> Result<(), ApiError> {
    if state.configs.cache().is_loaded() {
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

/// A JSON answer written by hand, status 200.
pub(super) fn json(body: Vec<u8>) -> Response {
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

/// The routing policy inputs of a voice lookup (docs/api.md): the caller and the key, as
/// given (unchecked until `check_inputs`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Asked<'q> {
    pub from: Option<&'q str>,
    pub key: Option<&'q str>,
}

/// The checked inputs of a voice lookup: every problem of `to`, `from` and `key` at once.
pub(super) fn check_inputs<'q>(
    to: &'q str,
    asked: Asked<'q>,
) -> Result<(Destination<'q>, Option<Caller<'q>>), Vec<LookupError>> {
    let dest = Destination::parse(to);
    let caller = asked.from.map(Caller::parse).transpose();
    let key = asked.key.map(routing::check_key).transpose();
    match (dest, caller, key) {
        (Ok(dest), Ok(caller), Ok(_)) => Ok((dest, caller)),
        (dest, caller, key) => Err([dest.err(), caller.err(), key.err()]
            .into_iter()
            .flatten()
            .collect()),
    }
}

fn lookup_errors(errors: Vec<LookupError>) -> ApiError {
    ApiError::parameters(
        errors
            .into_iter()
            .map(|e| (e.parameter, e.message))
            .collect(),
    )
}

/// The input of one voice lookup through `routing`. The instant (`at`, else the server's
/// clock) and, without a `key`, a random one are only taken when the configuration has a
/// routing policy or the answer is explained: a plain lookup reads neither.
pub(super) fn lookup_input<'a>(
    clock: &Clock,
    routing: Option<&CompiledRouting>,
    input: LookupInput<'a>,
    key: Option<&'a str>,
    at: Option<Timestamp>,
    explain: bool,
) -> LookupInput<'a> {
    if !explain && !routing.is_some_and(|r| r.has_policy()) {
        return input;
    }
    input
        .with_at(at.unwrap_or_else(|| clock.now()))
        .with_key(match key {
            Some(key) => SelectionKey::Given(key),
            None => SelectionKey::Drawn(rand::random()),
        })
}

/// The names each lookup takes (docs/strictness.md); any other is a 400 naming it, with a
/// suggestion when close. Adding a parameter to a route is one name here (and its handling).
pub const VOICE_GET_PARAMETERS: &[&str] = &["to", "header", "from", "key", "explain", "view"];
/// The query string of `POST …/voice-route` (the body has `to` and `headers`).
pub const VOICE_POST_PARAMETERS: &[&str] = &["explain", "view"];
pub const SMS_GET_PARAMETERS: &[&str] = &["explain"];

/// `view` of a voice lookup: the full answer (absent) or the compact one for engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Full,
    /// `view=engine` (docs/api.md): only what an engine applies.
    Engine,
}

fn view_param(query: &StrictQuery) -> Result<View, ApiError> {
    let raw = query.raw();
    if !raw.contains("view") && !raw.contains('%') {
        return Ok(View::Full);
    }
    match query.one("view")?.as_deref() {
        None => Ok(View::Full),
        Some("engine") => Ok(View::Engine),
        Some(_) => Err(ApiError::parameter(
            "view",
            "must be engine (or absent for the full answer)",
        )),
    }
}

/// Every problem of a lookup's parameters in one 400 (at least one is given): the unknown
/// names first, then each parameter's own; a problem of the whole body is named `body`.
fn gather(unknown: Vec<(String, String)>, errors: Vec<ApiError>) -> ApiError {
    if unknown.is_empty() && errors.len() == 1 {
        return errors.into_iter().next().expect("one error");
    }
    let mut problems = unknown;
    for error in errors {
        if error.errors.is_empty() {
            problems.push(("body".to_owned(), error.message));
        }
        for entry in error.errors {
            match entry {
                super::error::ErrorEntry::Parameter { parameter, message } => {
                    problems.push((parameter, message))
                }
                super::error::ErrorEntry::Pointer { pointer, message } => {
                    problems.push((pointer, message))
                }
            }
        }
    }
    ApiError::parameters(problems)
}

fn answer_voice(
    state: &AppState,
    account: AccountSid,
    to: &str,
    headers: &[(&str, &str)],
    asked: Asked<'_>,
    explain: bool,
    view: View,
) -> Result<Response, ApiError> {
    let (dest, caller) = check_inputs(to, asked).map_err(lookup_errors)?;
    routing::check_supplied_headers(headers).map_err(lookup_error)?;
    if explain && view == View::Engine {
        return Err(ApiError::parameter(
            "view",
            "engine cannot be combined with explain=true: the explanation is part of the full answer",
        ));
    }
    ready(state)?;
    if view == View::Engine {
        return Ok(json(engine_voice(
            state, account, &dest, headers, caller, asked.key,
        )));
    }
    if explain {
        let mut sid_buf = [0; 34];
        let (resolved, decider) = state.configs.cache().resolve_explained(&account);
        let sid = account.encode(&mut sid_buf);
        let input = lookup_input(
            &state.settings.clock,
            resolved.routing.as_deref(),
            LookupInput::new(&dest, headers).with_caller(caller),
            asked.key,
            None,
            true,
        );
        return Ok(json(explained_voice(
            Some(sid),
            &resolved,
            &|i| resolved.health.get(i),
            input,
            decider,
        )));
    }
    Ok(json(plain_voice(
        state, account, &dest, headers, caller, asked.key,
    )))
}

/// The voice answer without `explain`: what every engine asks, all day.
fn plain_voice(
    state: &AppState,
    account: AccountSid,
    dest: &Destination<'_>,
    headers: &[(&str, &str)],
    caller: Option<Caller<'_>>,
    key: Option<&str>,
) -> Vec<u8> {
    let mut sid_buf = [0; 34];
    let Resolved {
        source,
        revision,
        routing,
        health,
        capacity,
    } = state.configs.cache().resolve(&account);
    let sid = account.encode(&mut sid_buf);
    let routing = routing.as_deref();
    let input = lookup_input(
        &state.settings.clock,
        routing,
        LookupInput::new(dest, headers).with_caller(caller),
        key,
        None,
        false,
    );
    // docs/operations.md: each proxy's health is one atomic read.
    routing::voice_answer(
        Some(sid),
        source,
        revision,
        routing,
        input,
        |i| health.get(i),
        &capacity,
        None,
    )
}

/// The compact voice answer of `view=engine` (docs/api.md).
fn engine_voice(
    state: &AppState,
    account: AccountSid,
    dest: &Destination<'_>,
    headers: &[(&str, &str)],
    caller: Option<Caller<'_>>,
    key: Option<&str>,
) -> Vec<u8> {
    let Resolved {
        source,
        revision,
        routing,
        health,
        capacity,
    } = state.configs.cache().resolve(&account);
    match routing.as_deref() {
        Some(r) => {
            let input = lookup_input(
                &state.settings.clock,
                Some(r),
                LookupInput::new(dest, headers).with_caller(caller),
                key,
                None,
                false,
            );
            let answer = r.resolve_with_capacity(input, |i| health.get(i), &capacity);
            routing::voice_engine_json(source, revision, &answer)
        }
        None => routing::voice_engine_json(source, revision, &routing::VoiceAnswer::none()),
    }
}

/// The lookups engines send all day — a GET with the engine token, well-formed, nothing to
/// explain, the cache loaded — answered without axum's routing, extractors and layers
/// (about a third of a lookup's cost, BENCHMARKS.md), with the same answer, latency sample
/// and request count. `None` for anything else, errors included: the router answers those,
/// so that every error has one definition. At log level debug everything takes the router,
/// for its request span.
pub(super) fn fast(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Response> {
    if method != Method::GET || super::request_logged() {
        return None;
    }
    let (sid, route) = uri.path().strip_prefix("/v1/accounts/")?.split_once('/')?;
    let kind = match route {
        "voice-route" => Kind::Voice,
        "sms-route" => Kind::Sms,
        _ => return None,
    };
    let started = Instant::now();
    let account = AccountSid::parse(sid)?;
    if !state.configs.cache().is_loaded() || !auth::bears_engine_token(state, headers) {
        return None;
    }
    let query = uri.query().unwrap_or("");
    // A panic is the router's to answer (500, logged), like any other failure: it runs the
    // same input again, so a panic is reported twice, which is worth one definition of errors.
    let body = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match kind {
        Kind::Voice => fast_voice(state, account, query),
        Kind::Sms => fast_sms(state, account, query),
    }))
    .ok()??;
    observe(kind, started);
    let route = match kind {
        Kind::Voice => "/v1/accounts/{account_sid}/voice-route",
        Kind::Sms => "/v1/accounts/{account_sid}/sms-route",
    };
    ops::count_request(route, &Method::GET, StatusCode::OK);
    Some(json(body))
}

/// `voice_get` for a query the fast path takes: `to` once, `header`s, `view=engine` at most
/// once, nothing to explain. Any other name (unknown, `explain`, or one that hides its
/// letters behind a `%`) is the router's: it refuses unknown names.
fn fast_voice(state: &AppState, account: AccountSid, query: &str) -> Option<Vec<u8>> {
    let (mut to, mut from, mut key) = (None, None, None);
    let mut view = None;
    let mut raw_headers = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "to" if to.is_none() => to = Some(percent::strict_component(value)?),
            "from" if from.is_none() => from = Some(percent::strict_component(value)?),
            "key" if key.is_none() => key = Some(percent::strict_component(value)?),
            "header" => raw_headers.push(percent::strict_component(value)?),
            "from" if from.is_none() => from = Some(percent::strict_component(value)?),
            "key" if key.is_none() => key = Some(percent::strict_component(value)?),
            "view" if view.is_none() && value == "engine" => view = Some(View::Engine),
            _ => return None,
        }
    }
    let to = to?;
    let headers = header_parameters(&raw_headers).ok()?;
    let asked = Asked {
        from: from.as_deref(),
        key: key.as_deref(),
    };
    let (dest, caller) = check_inputs(&to, asked).ok()?;
    Some(match view {
        Some(View::Engine) => engine_voice(state, account, &dest, &headers, caller, asked.key),
        _ => plain_voice(state, account, &dest, &headers, caller, asked.key),
    })
}

/// `sms_get` without parameters (anything else is the router's).
fn fast_sms(state: &AppState, account: AccountSid, query: &str) -> Option<Vec<u8>> {
    if !query.is_empty() {
        return None;
    }
    let mut sid_buf = [0; 34];
    let sid = account.encode(&mut sid_buf);
    Some(sms_answer(
        Some(sid),
        &state.configs.cache().resolve(&account),
        None,
    ))
}

/// A voice answer with its `explain` (docs/api.md): what `resolved` routes for `input`, each
/// proxy's health by index from `health`, and why. Off the hot path: a lookup asked to
/// explain, and every simulation.
pub(super) fn explained_voice(
    account_sid: Option<&str>,
    resolved: &Resolved,
    health: &dyn Fn(usize) -> Health,
    input: LookupInput<'_>,
    decider: Decider,
) -> Vec<u8> {
    routing::voice_answer(
        account_sid,
        resolved.source,
        resolved.revision,
        resolved.routing.as_deref(),
        input,
        health,
        &resolved.capacity,
        Some(decider),
    )
}

/// An SMS answer, with its `explain` when `decider` is given (docs/api.md).
pub(super) fn sms_answer(
    account_sid: Option<&str>,
    resolved: &Resolved,
    decider: Option<Decider>,
) -> Vec<u8> {
    let routing = resolved.routing.as_deref();
    let tlvs = routing.map(|r| r.sms_tlvs()).unwrap_or_default();
    let body = routing::sms_response_json(account_sid, resolved.source, resolved.revision, tlvs);
    match decider {
        Some(decider) => routing::with_explain(body, |out| {
            routing::write_sms_explain(out, decider, routing)
        }),
        None => body,
    }
}

/// `explain=true` (docs/api.md); `false` or absent: the plain answer.
fn explain_flag(query: &StrictQuery) -> Result<bool, ApiError> {
    // Most lookups have no `explain`: not even a pass over the pairs for them (a name
    // could only hide its letters behind a `%`).
    let raw = query.raw();
    if !raw.contains("explain") && !raw.contains('%') {
        return Ok(false);
    }
    match query.one("explain")?.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::parameter("explain", "must be true or false")),
    }
}

/// At most this many `header` parameters in one GET (their names are compared pairwise).
pub const MAX_HEADER_PARAMETERS: usize = 64;

/// `GET …/voice-route?to=…&header=Name:value…`: `+` in the query is a literal plus (RFC
/// 3986), not a space. `header` (docs/api.md) is split at its first colon, the whitespace after
/// the colon trimmed; each name at most once (any case), so that which value counts is
/// never a guess.
#[utoipa::path(
    get,
    path = "/v1/accounts/{account_sid}/voice-route",
    tag = "lookup",
    operation_id = "voice_route",
    params(AccountSidPath, VoiceParams, ExplainParam, ViewParam),
    responses(
        (status = 200, description = "The route, its fallbacks, and which configuration decided (with `view=engine`: the compact answer)", body = VoiceLookupSchema),
        (status = 400, description = "Malformed AccountSid, `to` or `header`", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 503, response = CacheLoading),
    ),
    security(("engine" = []), ("admin" = []))
)]
async fn voice_get(
    auth: EngineOrAdmin,
    State(state): State<AppState>,
    AccountPath(account): AccountPath,
    query: StrictQuery,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let unknown = query.unknown(VOICE_GET_PARAMETERS);
    let to = query.one("to").and_then(|to| {
        to.ok_or_else(|| ApiError::parameter("to", "required: the call's destination"))
    });
    let raw_headers = query.all("header");
    let headers = match &raw_headers {
        Ok(raw) => header_parameters(raw),
        Err(e) => Err(e.clone()),
    };
    let explain = explain_flag(&query);
    let view = view_param(&query);
    let (from, key) = (query.one("from"), query.one("key"));
    let (to, headers, explain, view, from, key) = match (to, headers, explain, view, from, key) {
        (Ok(to), Ok(headers), Ok(explain), Ok(view), Ok(from), Ok(key)) if unknown.is_empty() => {
            (to, headers, explain, view, from, key)
        }
        (to, headers, explain, view, from, key) => {
            let errors = [
                to.err(),
                headers.err(),
                explain.err(),
                view.err(),
                from.err(),
                key.err(),
            ];
            return Err(gather(unknown, errors.into_iter().flatten().collect()));
        }
    };
    let asked = Asked {
        from: from.as_deref(),
        key: key.as_deref(),
    };
    let response = answer_voice(&state, account, &to, &headers, asked, explain, view);
    observe(Kind::Voice, started);
    masked(auth, response).await
}

/// A viewer's answer shows proxy passwords as `********` (docs/security.md).
async fn masked(
    auth: EngineOrAdmin,
    response: Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    match response {
        Ok(answer) if auth.masks() => Ok(super::mask::answer(answer).await),
        other => other,
    }
}

/// The `header=Name:value` parameters of a GET, as `(name, value)` pairs.
fn header_parameters<'a>(raw: &'a [Cow<'_, str>]) -> Result<Vec<(&'a str, &'a str)>, ApiError> {
    let problem = |message: String| ApiError::parameter(HEADER_P, message);
    if raw.len() > MAX_HEADER_PARAMETERS {
        return Err(problem(format!(
            "given {} times; at most {MAX_HEADER_PARAMETERS}",
            raw.len()
        )));
    }
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(raw.len());
    for given in raw {
        let Some((name, value)) = given.split_once(':') else {
            return Err(problem(format!(
                "`{}` has no colon; send header=Name:value (url-encoded)",
                printable(given)
            )));
        };
        let value = value.trim_start_matches([' ', '\t']);
        if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(problem(format!(
                "header `{}` given more than once",
                printable(name)
            )));
        }
        headers.push((name, value));
    }
    routing::check_supplied_headers(&headers).map_err(|e| problem(e.message))?;
    Ok(headers)
}

const HEADER_P: &str = "header";

/// `POST …/voice-route` with `{"to": …, "headers": {"To": …}}`. The body is JSON whatever its
/// `Content-Type` says, or if it says nothing (docs/api.md: some engines' HTTP clients cannot
/// choose it); every problem of its shape is named, together.
#[utoipa::path(
    post,
    path = "/v1/accounts/{account_sid}/voice-route",
    tag = "lookup",
    operation_id = "voice_route_with_headers",
    params(AccountSidPath, ExplainParam, ViewParam),
    request_body(
        description = "Read as JSON whatever its Content-Type (absent, text/plain, form…)",
        content(
            (VoiceQuerySchema = "application/json"),
            (VoiceQuerySchema = "*/*")
        )
    ),
    responses(
        (status = 200, description = "The route, its fallbacks, and which configuration decided (with `view=engine`: the compact answer)", body = VoiceLookupSchema),
        (status = 400, description = "Malformed AccountSid, or a body that is not a JSON object of this shape", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = CacheLoading),
    ),
    security(("engine" = []), ("admin" = []))
)]
async fn voice_post(
    auth: EngineOrAdmin,
    State(state): State<AppState>,
    AccountPath(account): AccountPath,
    query: StrictQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let unknown = query.unknown(VOICE_POST_PARAMETERS);
    let (explain, view) = (explain_flag(&query), view_param(&query));
    let value = json_body(&body);
    let checked = value.as_ref().map_err(Clone::clone).and_then(voice_query);
    let (explain, view, body) = match (explain, view, checked) {
        (Ok(explain), Ok(view), Ok(body)) if unknown.is_empty() => (explain, view, body),
        (explain, view, body) => {
            let errors = [explain.err(), view.err(), body.err()];
            return Err(gather(unknown, errors.into_iter().flatten().collect()));
        }
    };
    let response = answer_voice(
        &state,
        account,
        body.to,
        &body.headers,
        body.asked,
        explain,
        view,
    );
    observe(Kind::Voice, started);
    masked(auth, response).await
}

/// What the POST body must be, said in every error about its syntax.
const BODY_SHAPE: &str =
    r#"the body must be a JSON object {"to": "<destination>", "headers": {"<Name>": "<value>"}}"#;

/// The body as JSON, whatever its declared type.
fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if body.iter().all(u8::is_ascii_whitespace) {
            ApiError::bad_request(format!("the body is empty; {BODY_SHAPE}"))
        } else {
            ApiError::bad_request(format!("the body is not JSON ({e}); {BODY_SHAPE}"))
        }
    })
}

/// A POST voice-route body, checked.
struct VoiceQuery<'a> {
    to: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    asked: Asked<'a>,
}

/// Checks a POST body: a JSON object with a string `to` and an optional object `headers` of
/// string values, nothing else. Each problem names the member at fault.
fn voice_query(value: &serde_json::Value) -> Result<VoiceQuery<'_>, ApiError> {
    use serde_json::Value;
    let Value::Object(members) = value else {
        return Err(ApiError::bad_request(format!(
            "the body is {}; {BODY_SHAPE}",
            json_kind(value)
        )));
    };
    let mut problems = Vec::new();
    for name in members
        .keys()
        .filter(|n| !["to", "headers", "from", "key"].contains(&n.as_str()))
    {
        problems.push((
            printable(name),
            "unknown member; expected `to` and optionally `headers`, `from`, `key`".to_owned(),
        ));
    }
    let mut optional_string = |name: &str| match members.get(name) {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            problems.push((
                name.to_owned(),
                format!("must be a string, not {}", json_kind(other)),
            ));
            None
        }
    };
    let asked = Asked {
        from: optional_string("from"),
        key: optional_string("key"),
    };
    let to = match members.get("to") {
        Some(Value::String(to)) => to.as_str(),
        Some(other) => {
            problems.push((
                "to".into(),
                format!("must be a string, not {}", json_kind(other)),
            ));
            ""
        }
        None => {
            problems.push(("to".into(), "required: the call's destination".into()));
            ""
        }
    };
    let mut headers = Vec::new();
    match members.get("headers") {
        None => {}
        Some(Value::Object(given)) => {
            headers.reserve_exact(given.len());
            for (name, value) in given {
                match value {
                    Value::String(v) => headers.push((name.as_str(), v.as_str())),
                    other => problems.push((
                        "headers".into(),
                        format!(
                            "the value of header `{}` must be a string, not {}",
                            printable(name),
                            json_kind(other)
                        ),
                    )),
                }
            }
        }
        Some(other) => problems.push((
            "headers".into(),
            format!(
                "must be an object of header name to value, not {}",
                json_kind(other)
            ),
        )),
    }
    if !problems.is_empty() {
        // With the other problems, those of the new inputs' values too (the destination is
        // checked after the body's shape, as before).
        let checks = [
            asked.from.map(|from| Caller::parse(from).err()),
            asked.key.map(|key| routing::check_key(key).err()),
        ];
        for e in checks.into_iter().flatten().flatten() {
            problems.push((e.parameter, e.message));
        }
    }
    if problems.is_empty() {
        Ok(VoiceQuery { to, headers, asked })
    } else {
        Err(ApiError::parameters(problems))
    }
}

/// "an array", "a number"…: what a JSON value is, for error messages.
fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `GET …/sms-route`: the TLVs to add to the SMPP `submit_sm`.
#[utoipa::path(
    get,
    path = "/v1/accounts/{account_sid}/sms-route",
    tag = "lookup",
    operation_id = "sms_route",
    params(AccountSidPath, ExplainParam),
    responses(
        (status = 200, description = "The TLVs, and which configuration decided", body = SmsAnswerSchema),
        (status = 400, description = "Malformed AccountSid", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 503, response = CacheLoading),
    ),
    security(("engine" = []), ("admin" = []))
)]
async fn sms_get(
    _auth: EngineOrAdmin,
    State(state): State<AppState>,
    AccountPath(account): AccountPath,
    query: StrictQuery,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let unknown = query.unknown(SMS_GET_PARAMETERS);
    let explain = match explain_flag(&query) {
        Ok(explain) if unknown.is_empty() => explain,
        explain => return Err(gather(unknown, explain.err().into_iter().collect())),
    };
    ready(&state)?;
    let mut sid_buf = [0; 34];
    let sid = account.encode(&mut sid_buf);
    let body = if explain {
        let (resolved, decider) = state.configs.cache().resolve_explained(&account);
        sms_answer(Some(sid), &resolved, Some(decider))
    } else {
        sms_answer(Some(sid), &state.configs.cache().resolve(&account), None)
    };
    observe(Kind::Sms, started);
    Ok(json(body))
}

// ---- The answers' schemas (OpenAPI). The answers are written by hand (`routing::answer`);
// these types only describe them, and the tests validate every answer they get against the
// document, so a writer that drifts fails them.

/// `{account_sid}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct AccountSidPath {
    /// `AC` + 32 hex digits, either case.
    #[param(pattern = "^[Aa][Cc][0-9a-fA-F]{32}$")]
    account_sid: String,
}

/// The query of `GET …/voice-route`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct VoiceParams {
    /// The destination: a `sip:`/`sips:` URI, a `tel:` URI or a number, percent-encoded
    /// (RFC 3986: `+` is a literal plus).
    #[param(min_length = 1, max_length = 2048)]
    to: String,
    /// A header the engine is about to send, `Name:value` percent-encoded (a `&` in the value
    /// as `%26`); repeatable, each name once, at most 64.
    #[param(explode, style = Form, max_items = 64, pattern = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\\r\\n]*$")]
    header: Option<Vec<String>>,
    /// The caller, for proxies with a `caller` rule (docs/routing.md): a `sip:`/`sips:` URI
    /// (its user part), a `tel:` URI (its number) or a number or name with the rules of
    /// `to`. Without it, no proxy that has a `caller` matches.
    from: Option<String>,
    /// The selection key for weighted proxies, normally the call's Call-ID: 1 to 256
    /// characters from `!` to `~`. The same key gets the same order on every instance;
    /// without one, each lookup draws a random key.
    #[param(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    key: Option<String>,
}

/// The body of `POST …/voice-route`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceQuery)]
#[allow(dead_code)]
pub(super) struct VoiceQuerySchema {
    /// The destination: a `sip:`/`sips:` URI, a `tel:` URI or a number.
    #[schema(min_length = 1, max_length = 2048)]
    to: String,
    /// Headers the engine is about to send: name → current value (no CR or LF). Optional.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// The caller (docs/routing.md): a `sip:`/`sips:` URI, a `tel:` URI or a number. Optional.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// The selection key, normally the Call-ID: 1 to 256 characters from `!` to `~`.
    /// Optional: without it, a random one is drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    key: Option<String>,
}

/// Which configuration decided.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Source)]
#[allow(dead_code)]
enum SourceSchema {
    Account,
    Global,
    None,
    /// A simulation (`POST /v1/simulate/…`).
    Draft,
}

/// `?view=engine` of a voice lookup (docs/api.md).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ViewParam {
    /// `engine`: the compact answer (`VoiceEngineAnswer`), only what an engine applies, at
    /// most half the bytes of the full answer; absent: the full answer. Not with
    /// `explain=true`.
    #[param(inline)]
    view: Option<ViewSchema>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ViewSchema {
    Engine,
}

/// A voice answer: the full one, or the compact one of `view=engine`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = VoiceLookupAnswer)]
#[allow(dead_code)]
pub(super) enum VoiceLookupSchema {
    Full(Box<VoiceAnswerSchema>),
    Engine(VoiceEngineAnswerSchema),
}

/// The compact voice answer of `view=engine` (docs/api.md).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceEngineAnswer)]
#[allow(dead_code)]
pub(super) struct VoiceEngineAnswerSchema {
    /// The route first, then the fallbacks, in the order of the full answer.
    routes: Vec<EngineRouteSchema>,
    /// The revision of the configuration that decided; absent when nothing decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    revision: Option<i64>,
    /// Only when every matching proxy was left out for capacity (`routes` is then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable: Option<UnavailableSchema>,
}

/// One route of `view=engine`: what the engine applies, nothing more.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EngineRoute)]
#[allow(dead_code)]
struct EngineRouteSchema {
    /// The next hop (`sip_uri` of the full answer).
    hop: String,
    /// The final Request-URI.
    ruri: String,
    /// The proxy's user name, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    /// The proxy's password, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<String>,
    /// The headers to set, in first-configured order (`header_list` of the full answer).
    headers: Vec<HeaderSchema>,
    /// `Route` headers to add, in order.
    route: Vec<String>,
}

/// `?explain=true` (docs/api.md).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct ExplainParam {
    /// `true`: the answer also says why (`explain`); absent or `false`: the plain answer.
    explain: Option<bool>,
}

/// Why a voice answer is what it is (docs/api.md).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceExplain)]
#[allow(dead_code)]
pub(super) struct VoiceExplainSchema {
    /// What the proxies' expressions were matched against.
    target: String,
    #[schema(pattern = "^(sip|tel|number)$")]
    target_kind: String,
    /// The caller target (`from`'s user part or number); `null` without `from`.
    #[schema(required = true)]
    caller: Option<String>,
    /// The selection key given; `null` when none was (then one was drawn at random).
    #[schema(required = true)]
    key: Option<String>,
    /// The instant schedules were read at: RFC 3339, UTC.
    #[schema(format = DateTime)]
    at: String,
    /// The deciding configuration.
    #[schema(pattern = "^(account|global|none|draft)$")]
    configuration: String,
    /// Its revision; `null` for none or a draft.
    #[schema(required = true, minimum = 1)]
    revision: Option<i64>,
    /// Every proxy of the deciding configuration, in configured order (`[]` when nothing
    /// decided).
    candidates: Vec<CandidateSchema>,
    /// One plain sentence.
    reason: String,
}

/// One proxy, as the lookup weighed it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Candidate)]
#[allow(dead_code)]
struct CandidateSchema {
    #[schema(minimum = 0, maximum = 99)]
    proxy_index: u32,
    /// JSON pointer to the proxy in ConfigurationData.
    #[schema(pattern = "^/outbound-voice/0/proxy/[0-9]+$")]
    pointer: String,
    /// As configured (`.*` when absent).
    #[serde(rename = "match")]
    pattern: String,
    /// Whether it covers the whole target.
    matched: bool,
    #[schema(required = true, pattern = "^(route|fallback)$")]
    chosen: Option<String>,
    #[schema(pattern = "^(up|down|probing)$")]
    health: String,
    /// Its `priority` (0 when not configured).
    #[schema(minimum = 0, maximum = 1000)]
    priority: u16,
    /// Its `weight`; `null` when not configured.
    #[schema(required = true, minimum = 0, maximum = 10000)]
    weight: Option<u16>,
    /// Its weighted rendezvous score for the key (`-ln(u) / weight`, lowest first); `null`
    /// when it did not match, has no weight or is standby.
    #[schema(required = true, exclusive_minimum = 0)]
    score: Option<f64>,
    /// Its weight over the sum of the weights of the matching proxies of its priority; `0`
    /// for standby; `null` without weights or when it did not match.
    #[schema(required = true, minimum = 0, maximum = 1)]
    share: Option<f64>,
    /// Each condition: `null` where the proxy has none; `matched` is their conjunction.
    conditions: ConditionsSchema,
    /// This instance's share of its bucket; `null` without `limits`.
    #[schema(required = true)]
    capacity: Option<CapacitySchema>,
}

/// A limited proxy's bucket as this instance holds it: `cps / N`, `max(1, burst / N)` for N
/// live instances (docs/routing.md, capacity).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Capacity)]
#[allow(dead_code)]
struct CapacitySchema {
    #[schema(exclusive_minimum = 0)]
    cps: f64,
    #[schema(minimum = 1)]
    burst: f64,
    /// Tokens now (fractional: refilled continuously).
    #[schema(minimum = 0)]
    tokens: f64,
    /// Fewer than one token: left out of the answer.
    exhausted: bool,
}

/// Why a voice answer has no route although proxies matched (docs/api.md).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Unavailable)]
#[allow(dead_code)]
struct UnavailableSchema {
    /// `capacity`: every matching proxy's bucket is empty.
    #[schema(pattern = "^capacity$")]
    reason: String,
    /// Milliseconds until the first token returns.
    #[schema(minimum = 1)]
    retry_after_ms: u64,
}

/// How one proxy fared against its conditions.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Conditions)]
#[allow(dead_code)]
struct ConditionsSchema {
    /// Its `match` covers the whole target.
    #[serde(rename = "match")]
    matched: bool,
    /// Its `caller` covers the whole caller; `null` without `caller`.
    #[schema(required = true)]
    caller: Option<bool>,
    /// The instant falls in one of its `schedule` windows; `null` without `schedule`.
    #[schema(required = true)]
    schedule: Option<bool>,
}

/// One proxy's part of a simulation's random keys.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SplitEntry)]
#[allow(dead_code)]
struct SplitSchema {
    #[schema(minimum = 0, maximum = 99)]
    proxy_index: u32,
    /// How many of the samples it was the route of.
    #[schema(minimum = 0)]
    routes: u32,
    /// `routes / samples`, observed.
    #[schema(minimum = 0, maximum = 1)]
    share: f64,
}

/// Why an SMS answer is what it is (docs/api.md).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SmsExplain)]
#[allow(dead_code)]
pub(super) struct SmsExplainSchema {
    #[schema(pattern = "^(account|global|none|draft)$")]
    configuration: String,
    #[schema(required = true, minimum = 1)]
    revision: Option<i64>,
    /// `/outbound-sms/0/destination_network_id`, or `null` when no TLV is added.
    #[schema(required = true)]
    pointer: Option<String>,
    reason: String,
}

/// The voice answer (docs/api.md).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceAnswer)]
#[allow(dead_code)]
pub(super) struct VoiceAnswerSchema {
    #[schema(required = true, pattern = "^AC[0-9a-f]{32}$")]
    account_sid: Option<String>,
    source: SourceSchema,
    /// The revision of the configuration that decided; `null` when `source` is `none`.
    #[schema(required = true, minimum = 1)]
    revision: Option<i64>,
    /// The first matching proxy; `null` when none matches.
    #[schema(required = true)]
    route: Option<RouteSchema>,
    /// The other matching proxies: in configured order, `down` ones last (docs/operations.md).
    fallbacks: Vec<RouteSchema>,
    /// Only when every matching proxy was left out for capacity (`route` is then `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable: Option<UnavailableSchema>,
    /// With `explain=true` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<VoiceExplainSchema>,
    /// A simulation with `samples` only: one entry per matching proxy in answer order.
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<Vec<SplitSchema>>,
}

/// The route through one proxy.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceRoute)]
#[allow(dead_code)]
struct RouteSchema {
    /// 0-based position of the proxy in the configuration.
    #[schema(minimum = 0, maximum = 99)]
    proxy_index: u32,
    proxy: ProxySchema,
    #[schema(required = true)]
    username: Option<String>,
    #[schema(required = true)]
    password: Option<String>,
    /// The final Request-URI.
    request_uri: String,
    /// Headers changed or added: configured name → final value.
    headers: std::collections::BTreeMap<String, String>,
    /// The same headers as an array, in first-configured order (docs/api.md).
    header_list: Vec<HeaderSchema>,
    /// The configured instructions, in order.
    header_params: Vec<HeaderParamSchema>,
    /// `Route` headers to add, in order: `<sip:…;lr>`.
    routes: Vec<String>,
    /// The proxy's health (docs/operations.md): `down` routes come after the others.
    #[schema(pattern = "^(up|down|probing)$")]
    health: String,
}

/// A proxy as configured and as a next hop.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Proxy)]
#[allow(dead_code)]
struct ProxySchema {
    /// As configured.
    uri: String,
    /// IPv6 with its brackets.
    host: String,
    #[schema(required = true, minimum = 1, maximum = 65535)]
    port: Option<u16>,
    params: Vec<ProxyParamSchema>,
    /// `sip:host[:port];params;lr` (`sips:` when configured): the next hop.
    sip_uri: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProxyParam)]
#[allow(dead_code)]
struct ProxyParamSchema {
    name: String,
    #[schema(required = true)]
    value: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Header)]
#[allow(dead_code)]
struct HeaderSchema {
    name: String,
    value: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HeaderParam)]
#[allow(dead_code)]
struct HeaderParamSchema {
    header: String,
    key: String,
    value: String,
}

/// The SMS answer (docs/routing.md, docs/api.md).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SmsAnswer)]
#[allow(dead_code)]
pub(super) struct SmsAnswerSchema {
    #[schema(required = true, pattern = "^AC[0-9a-f]{32}$")]
    account_sid: Option<String>,
    source: SourceSchema,
    /// The revision of the configuration that decided; `null` when `source` is `none`.
    #[schema(required = true, minimum = 1)]
    revision: Option<i64>,
    /// The TLVs to add to `submit_sm` (empty without `outbound-sms`).
    tlvs: Vec<TlvSchema>,
    /// With `explain=true` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<SmsExplainSchema>,
}

/// TLV 0x060E `dest_network_id`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Tlv)]
#[allow(dead_code)]
struct TlvSchema {
    #[schema(minimum = 1550, maximum = 1550)]
    tag: u16,
    #[schema(pattern = "^dest_network_id$")]
    name: String,
    /// Canonical decimal: for libraries that type the TLV themselves.
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    value: String,
    /// The 4-byte big-endian integer Restcomm sends.
    #[schema(pattern = "^[0-9A-F]{8}$")]
    value_hex: String,
    /// The SMPP 5.0 C-octet string (decimal digits and a NUL): what to send by default.
    #[schema(pattern = "^(3[0-9])+00$")]
    cstring_hex: String,
}
