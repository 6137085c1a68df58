//! `POST /v1/outcomes` (docs/operations.md): the engines report what happened when they used a route.
//!
//! The body is read as JSON whatever its `Content-Type` (docs/api.md): one report or an array of
//! at most 1,000. Every report is checked before any is counted, and every problem is
//! answered at once with a JSON pointer into the body, so a batch with one bad entry changes
//! nothing. A report for a proxy that no configuration uses is accepted and ignored.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::EngineOrAdmin;
use super::error::{ApiError, ErrorBody, ErrorEntry};
use super::error::{PayloadTooLarge, Unauthorized};
use super::extract::only_parameters;
use super::format::json_response;
use crate::health::{Observation, now_micros};
use crate::routing::ProxyKey;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_outcomes))
}

/// One report: what happened when an engine used a proxy.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OutcomeReport)]
#[allow(dead_code)]
struct ReportSchema {
    /// `host[:port]`, or a `sip_uri` from an answer (parameters do not matter).
    #[schema(min_length = 1)]
    proxy: String,
    #[schema(pattern = "^(success|failure|timeout)$")]
    outcome: String,
    /// The final SIP status the proxy answered: 408 and 5xx are failures whatever `outcome`
    /// says, any other final status a success.
    #[schema(minimum = 100, maximum = 699)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_status: Option<u16>,
}

/// The body: one report, or an array of at most 1,000.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = OutcomeReports)]
#[allow(dead_code)]
enum ReportsSchema {
    One(ReportSchema),
    /// At most 1,000 reports.
    Many(Vec<ReportSchema>),
}

/// The most reports one request may carry.
pub const MAX_REPORTS: usize = 1000;

const FIELDS: [&str; 3] = ["proxy", "outcome", "sip_status"];

/// One checked report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub proxy: ProxyKey,
    pub observation: Observation,
}

/// What `202 Accepted` says.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OutcomesAccepted)]
struct Accepted {
    /// Reports in the request.
    accepted: usize,
    /// Of those, reports for proxies that no configuration uses (nothing was kept).
    ignored: usize,
}

/// `POST /v1/outcomes`: reports of what happened when engines used routes (docs/operations.md).
#[utoipa::path(
    post,
    path = "/v1/outcomes",
    tag = "health",
    operation_id = "report_outcomes",
    request_body(
        description = "Read as JSON whatever its Content-Type",
        content((ReportsSchema = "application/json"), (ReportsSchema = "*/*"))
    ),
    responses(
        (status = 202, description = "Counted (reports for proxies no configuration uses are ignored)", body = Accepted),
        (status = 400, description = "A bad body: nothing of it is counted; pointers name the bad entries", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
    ),
    security(("engine" = []), ("admin" = []))
)]
async fn post_outcomes(
    auth: EngineOrAdmin,
    State(state): State<AppState>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Reports change proxy health: not for viewers (403 before any 400).
    auth.writer()?;
    // No query parameters (docs/strictness.md): one name here would add one.
    only_parameters(uri.query(), &[])?;
    let reports = parse_reports(&body)?;
    let registry = state.configs.cache().health();
    let now = now_micros();
    let ignored = reports
        .iter()
        .filter(|r| !registry.observe(r.proxy.as_str(), r.observation, now))
        .count();
    Ok(json_response(
        StatusCode::ACCEPTED,
        &Accepted {
            accepted: reports.len(),
            ignored,
        },
    ))
}

/// docs/operations.md: a `sip_status` of 408 or 5xx is a failure whatever `outcome` says, any other
/// final status (200–699) a success (the proxy answered); without one, or with a provisional
/// 1xx, `outcome` decides (`timeout` counts as a failure).
pub fn observation(outcome: &str, sip_status: Option<u16>) -> Observation {
    match sip_status {
        Some(408 | 500..=599) => Observation::Failure,
        Some(200..=699) => Observation::Success,
        _ if outcome == "success" => Observation::Success,
        _ => Observation::Failure,
    }
}

/// Checks the whole body; every problem with its pointer, or every report.
pub fn parse_reports(body: &[u8]) -> Result<Vec<Report>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(vec![problem(
            String::new(),
            format!("the body is not JSON: {e}"),
        )])
    })?;
    let mut problems = Vec::new();
    let mut reports = Vec::new();
    match &value {
        Value::Object(report) => {
            if let Some(r) = check_report(report, "", &mut problems) {
                reports.push(r);
            }
        }
        Value::Array(items) if items.len() > MAX_REPORTS => {
            problems.push(problem(
                String::new(),
                format!(
                    "at most {MAX_REPORTS} reports in one request, got {}",
                    items.len()
                ),
            ));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("/{i}");
                match item {
                    Value::Object(report) => {
                        if let Some(r) = check_report(report, &at, &mut problems) {
                            reports.push(r);
                        }
                    }
                    _ => problems.push(problem(at, "a report must be a JSON object".into())),
                }
            }
        }
        _ => problems.push(problem(
            String::new(),
            format!("the body must be one report object or an array of at most {MAX_REPORTS}"),
        )),
    }
    if problems.is_empty() {
        Ok(reports)
    } else {
        Err(invalid(problems))
    }
}

fn check_report(
    report: &Map<String, Value>,
    at: &str,
    problems: &mut Vec<ErrorEntry>,
) -> Option<Report> {
    let before = problems.len();
    for name in report.keys() {
        if !FIELDS.contains(&name.as_str()) {
            problems.push(problem(
                format!("{at}/{}", escape_pointer(name)),
                format!("unknown field `{name}`; expected {}", FIELDS.join(", ")),
            ));
        }
    }
    for name in ["proxy", "outcome"] {
        if !report.contains_key(name) {
            problems.push(problem(at.to_owned(), format!("missing field `{name}`")));
        }
    }
    let proxy = match report.get("proxy") {
        Some(Value::String(s)) => match ProxyKey::parse(s) {
            Ok(key) => Some(key),
            Err(e) => {
                problems.push(problem(
                    format!("{at}/proxy"),
                    format!("not host[:port] nor a proxy sip_uri: {e}"),
                ));
                None
            }
        },
        Some(_) => {
            problems.push(problem(
                format!("{at}/proxy"),
                "must be a string: host[:port] or a sip_uri from an answer".into(),
            ));
            None
        }
        None => None,
    };
    let outcome = match report.get("outcome") {
        Some(Value::String(s)) if matches!(s.as_str(), "success" | "failure" | "timeout") => {
            Some(s.as_str())
        }
        Some(_) => {
            problems.push(problem(
                format!("{at}/outcome"),
                "must be \"success\", \"failure\" or \"timeout\"".into(),
            ));
            None
        }
        None => None,
    };
    let sip_status = match report.get("sip_status") {
        None => None,
        Some(v) => match v.as_u64().filter(|n| (100..=699).contains(n)) {
            Some(n) => Some(n as u16),
            None => {
                problems.push(problem(
                    format!("{at}/sip_status"),
                    "must be a SIP status code, an integer from 100 to 699".into(),
                ));
                None
            }
        },
    };
    if problems.len() > before {
        return None;
    }
    Some(Report {
        proxy: proxy?,
        observation: observation(outcome?, sip_status),
    })
}

/// RFC 6901: `~` → `~0`, `/` → `~1`.
fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn problem(pointer: String, message: String) -> ErrorEntry {
    ErrorEntry::Pointer { pointer, message }
}

fn invalid(errors: Vec<ErrorEntry>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: "the outcome reports are invalid; none was counted".into(),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(body: &str) -> Vec<(String, String)> {
        parse_reports(body.as_bytes())
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| match e {
                ErrorEntry::Pointer { pointer, message } => (pointer, message),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn status_decides_over_outcome() {
        use Observation::*;
        assert_eq!(observation("success", Some(503)), Failure);
        assert_eq!(observation("success", Some(408)), Failure);
        assert_eq!(observation("timeout", Some(200)), Success);
        assert_eq!(observation("failure", Some(486)), Success);
        assert_eq!(observation("failure", Some(404)), Success);
        assert_eq!(observation("failure", Some(603)), Success);
        assert_eq!(observation("success", Some(183)), Success);
        assert_eq!(observation("failure", Some(180)), Failure);
        assert_eq!(observation("timeout", None), Failure);
        assert_eq!(observation("success", None), Success);
    }

    #[test]
    fn one_or_many_reports() {
        let one =
            parse_reports(br#"{"proxy": "sip:GW.example.com;lr", "outcome": "success"}"#).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].proxy.as_str(), "gw.example.com:5060");
        let many = parse_reports(
            br#"[{"proxy": "10.0.0.1:5080", "outcome": "timeout"},
                 {"proxy": "sips:10.0.0.1", "outcome": "failure", "sip_status": 200}]"#,
        )
        .unwrap();
        assert_eq!(
            many,
            vec![
                Report {
                    proxy: ProxyKey::parse("10.0.0.1:5080").unwrap(),
                    observation: Observation::Failure
                },
                Report {
                    proxy: ProxyKey::parse("10.0.0.1:5061").unwrap(),
                    observation: Observation::Success
                },
            ]
        );
        assert!(parse_reports(b"[]").unwrap().is_empty());
    }

    #[test]
    fn every_problem_has_a_pointer() {
        let got = pointers(
            r#"[{"proxy": "10.0.0.1", "outcome": "success"},
                {"proxy": "10.0.0.1", "outcome": "maybe", "sip_status": 99, "extra/~": 1},
                7,
                {"outcome": "success"},
                {"proxy": "a b", "outcome": "failure"}]"#,
        );
        let at: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            at,
            [
                "/1/extra~1~0",
                "/1/outcome",
                "/1/sip_status",
                "/2",
                "/3",
                "/4/proxy"
            ],
            "{got:?}"
        );
        assert!(got[4].1.contains("missing field `proxy`"));
        assert_eq!(pointers(r#"{"proxy": 1, "outcome": "up"}"#).len(), 2);
        assert_eq!(pointers(r#"{"proxy": "x"#)[0].0, "");
        assert!(pointers(r#"{"proxy": "x"#)[0].1.contains("line 1"));
        assert_eq!(pointers("\"text\"")[0].0, "");
        let big = format!(
            "[{}]",
            vec![r#"{"proxy": "a.b", "outcome": "success"}"#; MAX_REPORTS + 1].join(",")
        );
        assert!(pointers(&big)[0].1.contains("at most 1000"));
    }
}
