//! A configuration's history (docs/api.md): its revisions, one revision, and rollback — under
//! both admin prefixes, JSON and XML, with the admin API's rules (docs/api.md status order, then
//! 412 last).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Reader, Writer};
use super::error::{ApiError, ErrorBody};
use super::error::{
    DatabaseUnavailable, EngineTokenForbidden, PayloadTooLarge, PreconditionFailed, Unauthorized,
    UnsupportedMediaType,
};
use super::extensions::{
    AccountQuery, ExtensionId, PageQuery, Preconditions, log_write, method_not_allowed, variant,
};
use super::extract::{AdminForm, AdminQuery, Extension};
use super::format::{ADMIN_PREFIXES, Format, json_response};
use super::mask;
use super::repr::{self, API_VERSION, ConfigurationJson, PageInfo, Paging, restcomm_list};
use super::xml::{element, xml_close, xml_open, xml_response};
use crate::sid::AccountSid;
use crate::store::{Condition, Origin, Revision};

// The names each route takes (docs/strictness.md); any other is a 400 naming it.
const HISTORY_QUERY: &[&str] = &["AccountSid", "Page", "PageSize"];
const REVISION_QUERY: &[&str] = &["AccountSid"];
const ROLLBACK_PARAMETERS: &[&str] = &["AccountSid", "Revision"];
const ROLLBACK_QUERY: &[&str] = &["AccountSid"];

/// The routes of docs/api.md under both prefixes and in both formats, as the admin API's.
pub fn router() -> OpenApiRouter<AppState> {
    let operations = [routes!(list), routes!(one), routes!(rollback_to)];
    let mut router = OpenApiRouter::new();
    for operation in &operations {
        for prefix in ADMIN_PREFIXES {
            for format in [Format::Json, Format::Xml] {
                router = router.routes(variant(operation, prefix, format));
            }
        }
    }
    let (router, api) = router.split_for_parts();
    let mut router = OpenApiRouter::from(router.method_not_allowed_fallback(method_not_allowed));
    *router.get_openapi_mut() = api;
    router
}

/// `{revision}`: a revision number, `3` or `3.json`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct RevisionPath {
    /// The revision's number, with or without `.json` (a route parameter cannot carry a suffix).
    #[param(pattern = "^[0-9]+(\\.json)?$")]
    revision: String,
}

/// The form of `Rollback.json`.
#[derive(Serialize, ToSchema)]
#[allow(non_snake_case, dead_code)]
#[serde(deny_unknown_fields)]
struct RollbackForm {
    /// The revision to restore (not a delete).
    #[schema(pattern = "^[1-9][0-9]{0,17}$")]
    Revision: String,
    /// Whose configuration (absent: the global one); also accepted in the query string.
    #[schema(pattern = "^[Aa][Cc][0-9a-fA-F]{32}$")]
    #[serde(default)]
    AccountSid: String,
}

/// `GET …/{ExtensionId}/History.json?AccountSid=&Page=&PageSize=`: newest first.
#[utoipa::path(
    get,
    path = "/2012-04-24/ExtensionsConfiguration.json/{extension_id}/History.json",
    tag = "admin",
    operation_id = "configuration_history",
    params(ExtensionId, AccountQuery, PageQuery),
    responses(
        (status = 200, description = "The configuration's revisions, newest first", body = HistoryJson),
        (status = 400, description = "Invalid AccountSid, Page or PageSize", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EngineTokenForbidden),
        (status = 404, description = "Unknown extension, or a configuration that never existed", body = ErrorBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin" = []))
)]
async fn list(
    State(state): State<AppState>,
    Reader(caller): Reader,
    format: Format,
    extension: Extension,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    query.only(HISTORY_QUERY)?;
    let account = query.account()?;
    let mut problems = Vec::new();
    let (page, page_size) = query.paging(&mut problems);
    if !problems.is_empty() {
        return Err(ApiError::parameters(problems));
    }
    let extension_sid = known_sid(&extension)?;
    let mut history = state
        .configs
        .store()
        .history(account, page, page_size)
        .await?;
    if caller.masks() {
        history.revisions.iter_mut().for_each(mask::revision);
    }
    let info = PageInfo {
        page,
        page_size,
        total: history.total,
        items: history.revisions.len() as i64,
    };
    let mut base =
        format!("/{API_VERSION}/ExtensionsConfiguration.json/{extension_sid}/History.json");
    if let Some(account) = account {
        base.push_str(&format!("?AccountSid={account}&"));
    }
    let revisions = history
        .revisions
        .iter()
        .map(|r| RevisionJson::of(r, extension_sid))
        .collect::<Result<_, _>>()?;
    let body = HistoryJson::new(Paging::new(&base, info), revisions);
    Ok(match format {
        Format::Json => json_response(StatusCode::OK, &body),
        Format::Xml => {
            let mut out = xml_open();
            body.paging().open_xml(&mut out, "ConfigurationRevisions");
            for revision in &body.revisions {
                revision.write_xml(&mut out);
            }
            out.push_str("</ConfigurationRevisions>");
            xml_close(&mut out);
            xml_response(StatusCode::OK, &out)
        }
    })
}

/// `GET …/{ExtensionId}/History/{Revision}.json?AccountSid=`.
#[utoipa::path(
    get,
    path = "/2012-04-24/ExtensionsConfiguration.json/{extension_id}/History/{revision}",
    tag = "admin",
    operation_id = "configuration_revision",
    params(ExtensionId, RevisionPath, AccountQuery),
    responses(
        (status = 200, description = "One revision", body = RevisionJson),
        (status = 400, description = "Invalid AccountSid", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EngineTokenForbidden),
        (status = 404, description = "Unknown extension, or no such revision (never written, or pruned)", body = ErrorBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin" = []))
)]
async fn one(
    State(state): State<AppState>,
    Reader(caller): Reader,
    format: Format,
    extension: Extension,
    Path((_, revision)): Path<(String, String)>,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    query.only(REVISION_QUERY)?;
    let account = query.account()?;
    let extension_sid = known_sid(&extension)?;
    let number = revision.strip_suffix(".json").unwrap_or(&revision);
    let unknown = || ApiError::not_found(format!("no revision {number} of this configuration"));
    let number: i64 = number.parse().map_err(|_| unknown())?;
    let mut revision = state
        .configs
        .store()
        .revision(account, number)
        .await?
        .ok_or_else(unknown)?;
    if caller.masks() {
        mask::revision(&mut revision);
    }
    let body = RevisionJson::of(&revision, extension_sid)?;
    Ok(match format {
        Format::Json => json_response(StatusCode::OK, &body),
        Format::Xml => {
            let mut out = xml_open();
            body.write_xml(&mut out);
            xml_close(&mut out);
            xml_response(StatusCode::OK, &out)
        }
    })
}

/// `POST …/{ExtensionId}/Rollback.json` with `AccountSid` (optional) and `Revision`.
#[utoipa::path(
    post,
    path = "/2012-04-24/ExtensionsConfiguration.json/{extension_id}/Rollback.json",
    tag = "admin",
    operation_id = "rollback_configuration",
    params(ExtensionId, AccountQuery, Preconditions),
    request_body(content = RollbackForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Rolled back (or already in that state: unchanged)", body = ConfigurationJson, headers(("ETag" = String, description = "The revision, quoted"))),
        (status = 400, description = "Invalid parameters, or a revision that does not exist or is a delete", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EngineTokenForbidden),
        (status = 404, description = "Unknown extension, or a configuration that never existed", body = ErrorBody),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin" = []))
)]
async fn rollback_to(
    State(state): State<AppState>,
    _admin: Writer,
    format: Format,
    origin: Origin,
    condition: Condition,
    form: AdminForm,
) -> Result<Response, ApiError> {
    let (account, revision) = rollback_parameters(&form)?;
    let written = state
        .configs
        .rollback(account, revision, &condition, &origin)
        .await?;
    log_write(&written);
    Ok(repr::configuration(&written.record, format))
}

/// `AccountSid` (body or query, as on the other POSTs) and `Revision`, every problem at once.
fn rollback_parameters(form: &AdminForm) -> Result<(Option<AccountSid>, i64), ApiError> {
    let mut problems = form.body.problems(ROLLBACK_PARAMETERS);
    problems.extend(form.query.problems(ROLLBACK_QUERY));
    let account = form.account(&mut problems);
    let revision = match form.body.get("Revision").map(str::parse::<i64>) {
        Some(Ok(n)) if n >= 1 => Some(n),
        Some(_) => {
            problems.push((
                "Revision".into(),
                "must be a revision number (1, 2, …)".into(),
            ));
            None
        }
        None => {
            problems.push((
                "Revision".into(),
                "required: the revision to roll back to".into(),
            ));
            None
        }
    };
    match revision {
        Some(revision) if problems.is_empty() => Ok((account, revision)),
        _ => Err(ApiError::parameters(problems)),
    }
}

/// The extension's Sid, for URIs; the history of an extension never created is a 404.
fn known_sid(extension: &Extension) -> Result<&str, ApiError> {
    extension
        .global
        .as_ref()
        .map(|g| g.extension_sid.as_str())
        .ok_or_else(|| ApiError::not_found("this configuration has no history: it never existed"))
}

restcomm_list!(
    /// A page of a configuration's revisions, newest first (docs/api.md).
    HistoryJson as ConfigurationHistory,
    revisions: RevisionJson<'a>
);

/// One revision as docs/api.md lists its members, then `account_sid` and `uri`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConfigurationRevision)]
pub struct RevisionJson<'a> {
    #[schema(minimum = 1)]
    revision: i64,
    #[schema(pattern = "^(create|update|delete|rollback|import)$")]
    action: &'static str,
    /// RFC 2822, UTC.
    date_created: String,
    /// The admin Sid that wrote it, `cli` for the command line, `migration` for what existed
    /// before revisions.
    actor: &'a str,
    /// The client's IP address for API writes.
    #[schema(required = true)]
    remote_addr: Option<&'a str>,
    enabled: bool,
    /// The ConfigurationData as stored; `null` for a delete.
    #[schema(required = true)]
    configuration: Option<&'a str>,
    /// The revision a rollback restored.
    #[schema(required = true)]
    rollback_of: Option<i64>,
    /// RFC 6902 JSON Patch from the previous revision's ConfigurationData; `[]` when only
    /// `Enabled` changed; `null` with nothing to compare with.
    #[schema(required = true, value_type = Option<Vec<Object>>)]
    changes: Option<Box<RawValue>>,
    /// `null` for the global configuration.
    #[schema(required = true, pattern = "^AC[0-9a-f]{32}$")]
    account_sid: Option<String>,
    uri: String,
}

impl<'a> RevisionJson<'a> {
    fn of(revision: &'a Revision, extension_sid: &str) -> Result<RevisionJson<'a>, ApiError> {
        let changes = revision
            .changes
            .as_ref()
            .map(|c| RawValue::from_string(c.clone()))
            .transpose()
            .map_err(|_| {
                tracing::error!(revision = revision.revision, "stored changes are not JSON");
                ApiError::internal()
            })?;
        let mut uri = format!(
            "/{API_VERSION}/ExtensionsConfiguration.json/{extension_sid}/History/{}.json",
            revision.revision
        );
        if let Some(account) = revision.account_sid {
            uri.push_str(&format!("?AccountSid={account}"));
        }
        Ok(RevisionJson {
            revision: revision.revision,
            action: revision.action.as_str(),
            date_created: repr::date(&revision.date_created),
            actor: &revision.actor,
            remote_addr: revision.remote_addr.as_deref(),
            enabled: revision.enabled,
            configuration: revision.configuration.as_deref(),
            rollback_of: revision.rollback_of,
            changes,
            account_sid: revision.account_sid.map(|a| a.to_string()),
            uri,
        })
    }

    /// `<ConfigurationRevision>` with one element per JSON member (`changes` as JSON text).
    fn write_xml(&self, out: &mut String) {
        let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        out.push_str("<ConfigurationRevision>");
        element(out, "Revision", &self.revision.to_string());
        element(out, "Action", self.action);
        element(out, "DateCreated", &self.date_created);
        element(out, "Actor", self.actor);
        element(out, "RemoteAddr", self.remote_addr.unwrap_or(""));
        element(out, "Enabled", if self.enabled { "true" } else { "false" });
        element(out, "Configuration", self.configuration.unwrap_or(""));
        element(out, "RollbackOf", &number(self.rollback_of));
        element(
            out,
            "Changes",
            self.changes.as_ref().map_or("", |c| c.get()),
        );
        element(out, "AccountSid", self.account_sid.as_deref().unwrap_or(""));
        element(out, "Uri", &self.uri);
        out.push_str("</ConfigurationRevision>");
    }
}
