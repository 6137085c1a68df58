//! `GET /v1/proxies?Page=&PageSize=&health=` (docs/operations.md): the proxies that configurations
//! use, with their health, in the Restcomm list shape (docs/api.md) with the items in `proxies`.
//! Ordered by `proxy`; answered from memory.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::EngineOrAdmin;
use super::error::Unauthorized;
use super::error::{ApiError, ErrorBody};
use super::extensions::PageQuery;
use super::extract::AdminQuery;
use super::format::json_response;
use super::repr::{PageInfo, Paging, restcomm_list};
use crate::health::ProxyView;
use crate::routing::Health;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

const PATH: &str = "/v1/proxies";

/// The names the route takes (docs/strictness.md); any other is a 400 naming it.
const LIST_QUERY: &[&str] = &["Page", "PageSize", "health"];

/// One proxy that configurations use, and its health.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProxyHealth)]
pub struct ProxyJson<'a> {
    /// `host:port`, lowercase (the port 5060, or 5061 for `sips:`, when not configured).
    proxy: String,
    #[schema(pattern = "^(up|down|probing)$")]
    health: &'a str,
    consecutive_failures: u32,
    /// RFC 3339: the last change of `health`; `null` before the first.
    #[schema(required = true)]
    since: Option<String>,
    /// RFC 3339: the last report or probe; `null` before the first.
    #[schema(required = true)]
    last_outcome_at: Option<String>,
    /// How many cached configurations use it.
    configurations: usize,
}

restcomm_list!(
    /// A page of the proxies that configurations use (docs/operations.md).
    ListJson as ProxyList,
    proxies: ProxyJson<'a>
);

/// `?health=`: only the proxies in this state.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct HealthQuery {
    #[param(pattern = "^(up|down|probing)$")]
    health: Option<String>,
}

/// RFC 3339 in UTC with milliseconds (`2026-11-26T14:03:00.123Z`).
fn rfc3339(micros: Option<i64>) -> Option<String> {
    micros
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl ProxyJson<'static> {
    fn of(v: ProxyView) -> ProxyJson<'static> {
        ProxyJson {
            proxy: v.proxy.to_string(),
            health: v.health.as_str(),
            consecutive_failures: v.consecutive_failures,
            since: rfc3339(v.since),
            last_outcome_at: rfc3339(v.last_outcome_at),
            configurations: v.configurations,
        }
    }
}

/// `GET /v1/proxies?Page=&PageSize=&health=`.
#[utoipa::path(
    get,
    path = "/v1/proxies",
    tag = "health",
    operation_id = "proxies",
    params(PageQuery, HealthQuery),
    responses(
        (status = 200, description = "The proxies that configurations use, by `proxy`", body = ListJson),
        (status = 400, description = "Invalid Page, PageSize or health", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
    security(("engine" = []), ("admin" = []))
)]
async fn list(
    _auth: EngineOrAdmin,
    State(state): State<AppState>,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    let mut problems = query.unknown(LIST_QUERY);
    let (page, page_size) = query.paging(&mut problems);
    let health = match query.get("health") {
        None => None,
        Some(h) => match Health::parse(h) {
            Some(h) => Some(h),
            None => {
                problems.push(("health".into(), "must be up, down or probing".into()));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(ApiError::parameters(problems));
    }
    let all: Vec<ProxyView> = state
        .configs
        .cache()
        .health()
        .list()
        .into_iter()
        .filter(|v| health.is_none_or(|h| v.health == h))
        .collect();
    let (items, info) = PageInfo::slice(all, page, page_size, ProxyJson::of);
    let base = match health {
        Some(h) => format!("{PATH}?health={}&", h.as_str()),
        None => PATH.to_owned(),
    };
    Ok(json_response(
        StatusCode::OK,
        &ListJson::new(Paging::new(&base, info), items),
    ))
}
