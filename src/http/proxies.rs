//! `GET /v1/proxies?Page=&PageSize=&health=` (SPEC §11): the proxies that configurations
//! use, with their health, in the Restcomm list shape (SPEC §3) with the items in `proxies`.
//! Ordered by `proxy`; answered from memory.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::AppState;
use super::auth::EngineOrAdmin;
use super::error::ApiError;
use super::extensions::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::extract::AdminQuery;
use super::format::json_response;
use super::repr::{PageInfo, Paging};
use crate::health::ProxyView;
use crate::routing::Health;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/proxies", get(list))
}

const PATH: &str = "/v1/proxies";

#[derive(Serialize)]
struct ProxyJson {
    proxy: String,
    health: &'static str,
    consecutive_failures: u32,
    since: Option<String>,
    last_outcome_at: Option<String>,
    configurations: usize,
}

#[derive(Serialize)]
struct ListJson {
    #[serde(flatten)]
    paging: Paging,
    proxies: Vec<ProxyJson>,
}

/// RFC 3339 in UTC with milliseconds (`2026-11-26T14:03:00.123Z`).
fn rfc3339(micros: Option<i64>) -> Option<String> {
    micros
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl ProxyJson {
    fn of(v: ProxyView) -> ProxyJson {
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

async fn list(
    _auth: EngineOrAdmin,
    State(state): State<AppState>,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    let mut problems = Vec::new();
    let page = query.integer("Page", 0, (0, i64::MAX), &mut problems);
    let page_size = query.integer(
        "PageSize",
        DEFAULT_PAGE_SIZE,
        (1, MAX_PAGE_SIZE),
        &mut problems,
    );
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
        .cache
        .health()
        .list()
        .into_iter()
        .filter(|v| health.is_none_or(|h| v.health == h))
        .collect();
    let total = all.len() as i64;
    let start = usize::try_from(page.saturating_mul(page_size)).unwrap_or(usize::MAX);
    let items: Vec<ProxyJson> = all
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .map(ProxyJson::of)
        .collect();
    let base = match health {
        Some(h) => format!("{PATH}?health={}&", h.as_str()),
        None => PATH.to_owned(),
    };
    let info = PageInfo {
        page,
        page_size,
        total,
        items: items.len() as i64,
    };
    Ok(json_response(
        StatusCode::OK,
        &ListJson {
            paging: Paging::new(&base, info),
            proxies: items,
        },
    ))
}
