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
use super::lookup::{
    Asked, SmsAnswerSchema, VoiceAnswerSchema, check_inputs, explained_voice, json, lookup_input,
    sms_answer,
};
use super::mask;
use crate::cache::Resolved;
use crate::health::ProxyStates;
use crate::routing::{
    self, Caller, CompiledRouting, Decider, Destination, Health, LookupError, LookupInput,
    SelectionKey, Source, printable,
};
use jiff::Timestamp;

/// The query parameters a simulation takes (docs/strictness.md): none; the body carries
/// everything. Any name is a 400 naming it.
const QUERY: &[&str] = &[];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(simulate_voice))
        .routes(routes!(simulate_sms))
}

/// A ConfigurationData document, as a JSON object or as its text.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = Draft)]
#[allow(dead_code)]
enum DraftSchema {
    Document(ConfigurationDataSchema),
    Text(String),
}

/// ConfigurationData (docs/routing.md): every member optional, no others.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConfigurationData)]
#[allow(dead_code)]
struct ConfigurationDataSchema {
    /// Exactly one object.
    #[serde(rename = "outbound-voice", skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 1)]
    outbound_voice: Option<Vec<VoiceSectionSchema>>,
    /// Exactly one object.
    #[serde(rename = "outbound-sms", skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 1)]
    outbound_sms: Option<Vec<SmsSectionSchema>>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceSection)]
#[allow(dead_code)]
struct VoiceSectionSchema {
    /// 1 to 100 proxies.
    #[schema(min_items = 1, max_items = 100)]
    proxy: Vec<ProxyConfigSchema>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SmsSection)]
#[allow(dead_code)]
struct SmsSectionSchema {
    /// 0 to 2147483647, a JSON integer or a string of decimal digits.
    #[schema(value_type = Value)]
    destination_network_id: serde_json::Value,
}

/// One proxy of `outbound-voice`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProxyConfig)]
#[allow(dead_code)]
struct ProxyConfigSchema {
    /// `[sip:|sips:]host[:port][;param[=value]]*`.
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    password: Option<String>,
    /// A regular expression covering the whole target, case-insensitive (default `.*`).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 50)]
    headers: Option<Vec<HeaderRuleSchema>>,
    /// Lower goes first (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000)]
    priority: Option<u16>,
    /// Within one priority all proxies have one or none does; 0: standby.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10000)]
    weight: Option<u16>,
    /// A regular expression (the rules of `match`) covering the whole caller (`from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    caller: Option<String>,
    /// When the proxy may be chosen, in local wall-clock time.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<ScheduleSchema>,
    /// The carrier's calls-per-second limit, for the whole cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<LimitsSchema>,
}

/// A proxy's `limits`: routes per second and the bucket's size (default `cps`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Limits)]
#[allow(dead_code)]
struct LimitsSchema {
    #[schema(minimum = 1, maximum = 100000)]
    cps: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000000)]
    burst: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HeaderRule)]
#[allow(dead_code)]
struct HeaderRuleSchema {
    #[serde(rename = "headerName")]
    header_name: String,
    key: String,
    value: String,
}

/// A proxy's `schedule`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Schedule)]
#[allow(dead_code)]
struct ScheduleSchema {
    /// An IANA time zone name (default `UTC`).
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[schema(min_items = 1, max_items = 20)]
    windows: Vec<WindowSchema>,
    /// Local dates on which no window starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 366, value_type = Option<Vec<String>>)]
    except: Option<Vec<String>>,
}

/// `start` ≤ t < `end` on the `days`; `end` ≤ `start` runs past midnight (equal: 24 hours).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Window)]
#[allow(dead_code)]
struct WindowSchema {
    /// A non-empty set of `mon` … `sun`.
    #[schema(min_items = 1, max_items = 7)]
    days: Vec<String>,
    /// `HH:MM`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    start: String,
    /// `HH:MM`, or `24:00`.
    #[schema(pattern = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
    end: String,
}

/// The body of `POST /v1/simulate/voice-route`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceSimulation)]
#[allow(dead_code)]
struct VoiceSimulationSchema {
    /// A ConfigurationData document (docs/routing.md), as a JSON object or as a string.
    configuration: DraftSchema,
    /// The destination: a `sip:`/`sips:` URI, a `tel:` URI or a number.
    #[schema(min_length = 1, max_length = 2048)]
    to: String,
    /// Headers the engine is about to send: name → current value. Optional.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The caller, as a lookup's `from`. Optional.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// The selection key, as a lookup's `key`. Optional: without it, one is drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    key: Option<String>,
    /// The instant schedules are read at, RFC 3339 (default: now).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    at: Option<String>,
    /// Also route this many random keys and answer their `split`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100000)]
    samples: Option<u32>,
}

/// The body of `POST /v1/simulate/sms-route`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SmsSimulation)]
#[allow(dead_code)]
struct SmsSimulationSchema {
    /// A ConfigurationData document (docs/routing.md), as a JSON object or as a string.
    configuration: DraftSchema,
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
    Reader(who): Reader,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    only_parameters(uri.query(), QUERY)?;
    let members = body_members(
        &body,
        &[
            "configuration",
            "to",
            "headers",
            "from",
            "key",
            "at",
            "samples",
        ],
    )?;
    let mut problems: Vec<ErrorEntry> = Vec::new();
    let compiled = configuration(&state, &members, &mut problems);
    let mut string = |name: &str, what: &str, required: bool| match members
        .get(name)
        .map(|raw| serde_json::from_str::<String>(raw.get()))
    {
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => {
            problems.push(parameter(name, format!("must be a string: {what}")));
            None
        }
        None if required => {
            problems.push(parameter(name, format!("required: {what}")));
            None
        }
        None => None,
    };
    let to = string("to", "the call's destination", true);
    let from = string("from", "the caller", false);
    let key = string("key", "the selection key", false);
    let at_text = string("at", "the instant, RFC 3339", false);
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
    let at = at_text
        .as_deref()
        .and_then(|at| match routing::parse_at(at) {
            Ok(at) => Some(at),
            Err(e) => {
                problems.push(parameter("at", e));
                None
            }
        });
    let samples =
        members
            .get("samples")
            .and_then(|raw| match serde_json::from_str::<u32>(raw.get()) {
                Ok(n) if (1..=MAX_SAMPLES).contains(&n) => Some(n),
                _ => {
                    problems.push(parameter(
                        "samples",
                        format!("must be an integer from 1 to {MAX_SAMPLES}"),
                    ));
                    None
                }
            });
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let asked = Asked {
        from: from.as_deref(),
        key: key.as_deref(),
    };
    let inputs = to.as_deref().and_then(|to| {
        let checked = check_inputs(to, asked).and_then(|(dest, caller)| {
            routing::check_supplied_headers(&pairs)
                .map(|()| (dest, caller))
                .map_err(|e| vec![e])
        });
        checked
            .map_err(|errors: Vec<LookupError>| {
                problems.extend(
                    errors
                        .into_iter()
                        .map(|e| parameter(&e.parameter, e.message)),
                )
            })
            .ok()
    });
    let (Some(compiled), Some((dest, caller)), true) = (compiled, inputs, problems.is_empty())
    else {
        return Err(invalid(problems));
    };
    let health = live_health(&state, &compiled);
    let at = at.unwrap_or_else(|| state.settings.clock.now());
    let input = lookup_input(
        &state.settings.clock,
        Some(&compiled),
        LookupInput::new(&dest, &pairs).with_caller(caller),
        asked.key,
        Some(at),
        true,
    );
    let health_of = |i: usize| health.get(i).copied().unwrap_or_default();
    let mut body = explained_voice(
        None,
        &draft(compiled.clone()),
        &health_of,
        input,
        Decider::Draft,
    );
    if let Some(samples) = samples {
        let order: Vec<usize> = {
            let answer = compiled.resolve(input, health_of);
            answer
                .route
                .iter()
                .chain(&answer.fallbacks)
                .map(|r| r.proxy.index())
                .collect()
        };
        let (to, headers, from) = (to.unwrap_or_default(), headers.clone(), from.clone());
        let routes = tokio::task::spawn_blocking(move || {
            split(
                &compiled,
                &to,
                &headers,
                from.as_deref(),
                at,
                &health,
                samples,
            )
        })
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the simulation failed"))?;
        body = with_split(body, &order, &routes, samples);
    }
    if who.masks() {
        return Ok(mask::answer(json(body)).await);
    }
    Ok(json(body))
}

/// The most `samples` a simulation takes.
pub const MAX_SAMPLES: u32 = 100_000;

/// How many of `samples` random keys each proxy routes (by index), all else as asked.
fn split(
    compiled: &CompiledRouting,
    to: &str,
    headers: &BTreeMap<String, String>,
    from: Option<&str>,
    at: Timestamp,
    health: &[Health],
    samples: u32,
) -> Vec<u32> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut routes = vec![0u32; compiled.proxies().count()];
    let (Ok(dest), caller) = (
        Destination::parse(to),
        from.and_then(|f| Caller::parse(f).ok()),
    ) else {
        return routes;
    };
    let health = |i: usize| health.get(i).copied().unwrap_or_default();
    for _ in 0..samples {
        let input = LookupInput::new(&dest, &pairs)
            .with_caller(caller)
            .with_at(at)
            .with_key(SelectionKey::Drawn(rand::random()));
        if let Some(route) = compiled.resolve(input, health).route {
            routes[route.proxy.index()] += 1;
        }
    }
    routes
}

/// Appends `"split": [{"proxy_index", "routes", "share"}]` to a finished answer: one entry
/// per matching proxy, in answer order.
fn with_split(mut body: Vec<u8>, order: &[usize], routes: &[u32], samples: u32) -> Vec<u8> {
    let split: Vec<serde_json::Value> = order
        .iter()
        .map(|&i| {
            let n = routes.get(i).copied().unwrap_or(0);
            serde_json::json!({
                "proxy_index": i,
                "routes": n,
                "share": f64::from(n) / f64::from(samples),
            })
        })
        .collect();
    body.pop();
    body.extend_from_slice(b",\"split\":");
    body.extend_from_slice(serde_json::Value::Array(split).to_string().as_bytes());
    body.push(b'}');
    body
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
        // A draft holds no buckets: its limited proxies count as full (nothing is taken).
        capacity: Default::default(),
    }
}

/// The live health of the draft's proxies, by index: what the registry knows of each (`up`
/// for a proxy no stored configuration names), read without registering anything.
fn live_health(state: &AppState, routing: &CompiledRouting) -> Vec<Health> {
    let registry = state.configs.cache().health();
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
    match state.configs.cache().compile_configuration(&text) {
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
