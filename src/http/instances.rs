//! `GET /v1/instances` (docs/api.md): the live instances that share the carrier limits, in
//! the Restcomm list shape with the items in `instances`. Answered from memory (the last
//! heartbeat's view), so it answers while the database is away.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;
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
use crate::store::InstanceRow;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

const PATH: &str = "/v1/instances";

/// One live instance.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Instance)]
pub struct InstanceJson<'a> {
    /// Random, chosen at start.
    id: &'a str,
    /// RFC 3339.
    started_at: String,
    /// RFC 3339: its last heartbeat (one a second; silent for 5 s, it is not live).
    last_seen: String,
    /// The release it runs.
    version: &'a str,
}

restcomm_list!(
    /// A page of the live instances (docs/api.md).
    ListJson as InstanceList,
    instances: InstanceJson<'a>
);

fn rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl<'a> InstanceJson<'a> {
    fn of(row: &'a InstanceRow) -> InstanceJson<'a> {
        InstanceJson {
            id: &row.id,
            started_at: rfc3339(row.started_at),
            last_seen: rfc3339(row.last_seen),
            version: &row.version,
        }
    }
}

/// The names `GET /v1/instances` takes (docs/strictness.md).
const QUERY: &[&str] = &["Page", "PageSize"];

/// `GET /v1/instances?Page=&PageSize=`.
#[utoipa::path(
    get,
    path = "/v1/instances",
    tag = "health",
    operation_id = "instances",
    params(PageQuery),
    responses(
        (status = 200, description = "The live instances (N, by which each divides the carrier limits), by start", body = ListJson),
        (status = 400, description = "Invalid Page or PageSize", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
    security(("engine" = []), ("admin" = []))
)]
async fn list(
    _auth: EngineOrAdmin,
    State(state): State<AppState>,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    let mut problems = query.unknown(QUERY);
    let (page, page_size) = query.paging(&mut problems);
    if !problems.is_empty() {
        return Err(ApiError::parameters(problems));
    }
    let all = state.configs.cache().capacity().members().live();
    let (items, info) = PageInfo::slice(all.iter().collect(), page, page_size, InstanceJson::of);
    Ok(json_response(
        StatusCode::OK,
        &ListJson::new(Paging::new(PATH, info), items),
    ))
}
