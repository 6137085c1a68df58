//! Trying a configuration before saving it (docs/api.md): `POST /v1/simulate/voice-route` and
//! `/v1/simulate/sms-route`, super-admin only. The draft is validated exactly as the admin API
//! validates `ConfigurationData` and answered as a lookup would answer with it as an
//! account's enabled configuration, always explained; nothing is stored or cached.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Reader;
use super::error::{ApiError, ErrorBody, ErrorEntry};
use super::error::{PayloadTooLarge, Unauthorized};
use super::extract::only_parameters;
use super::lookup::{SmsAnswerSchema, VoiceAnswerSchema, explained_voice, json, sms_answer};
use super::mask;
use crate::cache::Resolved;
use crate::health::ProxyStates;
use crate::routing::{
    self, CompiledRouting, Decider, Destination, Health, LookupError, Source, printable,
};

/// The query parameters a simulation takes (docs/strictness.md): none; the body carries
/// everything. Any name is a 400 naming it.
const QUERY: &[&str] = &[];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(simulate_voice))
        .routes(routes!(simulate_sms))
}

/// The body of `POST /v1/simulate/voice-route`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceSimulation)]
#[allow(dead_code)]
struct VoiceSimulationSchema {
    /// A ConfigurationData document (docs/routing.md), as a JSON object or as a string.
    #[schema(value_type = Object)]
    configuration: serde_json::Value,
    /// The destination: a `sip:`/`sips:` URI, a `tel:` URI or a number.
    #[schema(min_length = 1, max_length = 2048)]
    to: String,
    /// Headers the engine is about to send: name → current value. Optional.
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The body of `POST /v1/simulate/sms-route`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SmsSimulation)]
#[allow(dead_code)]
struct SmsSimulationSchema {
    /// A ConfigurationData document (docs/routing.md), as a JSON object or as a string.
    #[schema(value_type = Object)]
    configuration: serde_json::Value,
}

/// `POST /v1/simulate/voice-route`.
#[utoipa::path(
    post,
    path = "/v1/simulate/voice-route",
    tag = "admin",
    operation_id = "simulate_voice_route",
    request_body(
        description = "Read as JSON whatever its Content-Type",
        content((VoiceSimulationSchema = "application/json"), (VoiceSimulationSchema = "*/*"))
    ),
    responses(
        (status = 200, description = "The answer a lookup would give with this configuration (source `draft`), explained", body = VoiceAnswerSchema),
        (status = 400, description = "An invalid configuration (the admin API's error body, pointers into it), destination or body", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The engine token: simulation is for the super-admin and operators", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
    ),
    security(("admin" = []))
)]
async fn simulate_voice(
    State(state): State<AppState>,
    Reader(caller): Reader,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    only_parameters(uri.query(), QUERY)?;
    let members = body_members(&body, &["configuration", "to", "headers"])?;
    let mut problems: Vec<ErrorEntry> = Vec::new();
    let compiled = configuration(&state, &members, &mut problems);
    let to = match members
        .get("to")
        .map(|raw| serde_json::from_str::<String>(raw.get()))
    {
        Some(Ok(to)) => Some(to),
        Some(Err(_)) => {
            problems.push(parameter(
                "to",
                "must be a string: the call's destination".into(),
            ));
            None
        }
        None => {
            problems.push(parameter("to", "required: the call's destination".into()));
            None
        }
    };
    let headers: BTreeMap<String, String> = match members.get("headers") {
        None => BTreeMap::new(),
        Some(raw) => serde_json::from_str(raw.get()).unwrap_or_else(|_| {
            problems.push(parameter(
                "headers",
                "must be an object of header name to string value".into(),
            ));
            BTreeMap::new()
        }),
    };
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let dest = to.as_deref().and_then(|to| {
        Destination::parse(to)
            .and_then(|dest| routing::check_supplied_headers(&pairs).map(|()| dest))
            .map_err(|e: LookupError| problems.push(parameter(&e.parameter, e.message)))
            .ok()
    });
    let (Some(compiled), Some(dest), true) = (compiled, dest, problems.is_empty()) else {
        return Err(invalid(problems));
    };
    let health = live_health(&state, &compiled);
    let body = explained_voice(
        None,
        &draft(compiled.clone()),
        &|i| health.get(i).copied().unwrap_or_default(),
        &dest,
        &pairs,
        Decider::Draft,
    );
    if caller.masks() {
        return Ok(mask::answer(json(body)).await);
    }
    Ok(json(body))
}

/// `POST /v1/simulate/sms-route`.
#[utoipa::path(
    post,
    path = "/v1/simulate/sms-route",
    tag = "admin",
    operation_id = "simulate_sms_route",
    request_body(
        description = "Read as JSON whatever its Content-Type",
        content((SmsSimulationSchema = "application/json"), (SmsSimulationSchema = "*/*"))
    ),
    responses(
        (status = 200, description = "The answer a lookup would give with this configuration (source `draft`), explained", body = SmsAnswerSchema),
        (status = 400, description = "An invalid configuration (the admin API's error body) or body", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The engine token: simulation is for the super-admin and operators", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
    ),
    security(("admin" = []))
)]
async fn simulate_sms(
    State(state): State<AppState>,
    _reader: Reader,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    only_parameters(uri.query(), QUERY)?;
    let members = body_members(&body, &["configuration"])?;
    let mut problems = Vec::new();
    match configuration(&state, &members, &mut problems) {
        Some(compiled) if problems.is_empty() => Ok(json(sms_answer(
            None,
            &draft(compiled),
            Some(Decider::Draft),
        ))),
        _ => Err(invalid(problems)),
    }
}

/// The draft as the deciding configuration of a lookup.
fn draft(routing: Arc<CompiledRouting>) -> Resolved {
    Resolved {
        source: Source::Draft,
        revision: None,
        routing: Some(routing),
        health: ProxyStates::default(),
    }
}

/// The live health of the draft's proxies, by index: what the registry knows of each (`up`
/// for a proxy no stored configuration names), read without registering anything.
fn live_health(state: &AppState, routing: &CompiledRouting) -> Vec<Health> {
    let registry = state.cache.health();
    routing.proxies().map(|p| registry.peek(&p.key())).collect()
}

/// The body's members (JSON whatever the `Content-Type`), every unknown one a problem.
fn body_members(body: &[u8], known: &[&str]) -> Result<BTreeMap<String, Box<RawValue>>, ApiError> {
    let shape = format!(
        "the body must be a JSON object with {}",
        known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let members: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("{shape} ({e})")))?;
    let unknown: Vec<(String, String)> = members
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .map(|name| (printable(name), format!("unknown member; {shape}")))
        .collect();
    if unknown.is_empty() {
        Ok(members)
    } else {
        Err(ApiError::parameters(unknown))
    }
}

/// Validates and compiles `configuration` as the admin API does with `ConfigurationData`: a
/// JSON string is the document's text; an object (or anything else) is taken as written.
fn configuration(
    state: &AppState,
    members: &BTreeMap<String, Box<RawValue>>,
    problems: &mut Vec<ErrorEntry>,
) -> Option<Arc<CompiledRouting>> {
    let Some(raw) = members.get("configuration") else {
        problems.push(parameter(
            "configuration",
            "required: the ConfigurationData document to try".into(),
        ));
        return None;
    };
    let text = match serde_json::from_str::<String>(raw.get()) {
        Ok(text) => text,
        Err(_) => raw.get().to_owned(),
    };
    match state.cache.compile_configuration(&text) {
        Ok(compiled) => Some(compiled),
        Err(found) => {
            problems.extend(found.into_iter().map(ErrorEntry::from));
            None
        }
    }
}

fn parameter(name: &str, message: String) -> ErrorEntry {
    ErrorEntry::Parameter {
        parameter: name.to_owned(),
        message,
    }
}

/// Every problem at once: a configuration's alone are the admin API's error body exactly.
fn invalid(problems: Vec<ErrorEntry>) -> ApiError {
    let mut names: Vec<&str> = Vec::new();
    for problem in &problems {
        let name = match problem {
            ErrorEntry::Pointer { .. } => "ConfigurationData",
            ErrorEntry::Parameter { parameter, .. } => parameter.as_str(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let message = match names.as_slice() {
        [one] => format!("{one} is invalid"),
        many => format!("invalid parameters: {}", many.join(", ")),
    };
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message,
        errors: problems,
    }
}
