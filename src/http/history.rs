//! A configuration's history (SPEC §10): its revisions, one revision, and rollback — under
//! both admin prefixes, JSON and XML, with the admin API's rules (SPEC §3 status order, then
//! 412 last).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::value::RawValue;

use super::AppState;
use super::auth::SuperAdmin;
use super::error::ApiError;
use super::extensions::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, log_write, method_not_allowed};
use super::extract::{AdminForm, AdminQuery, Extension};
use super::format::{ADMIN_PREFIXES, Format, json_response};
use super::repr::{self, API_VERSION, PageInfo, Paging};
use super::xml::{element, xml_close, xml_open, xml_response};
use crate::sid::AccountSid;
use crate::store::{Condition, Origin, Revision};

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ADMIN_PREFIXES {
        for (collection, history, rollback) in [
            (
                "ExtensionsConfiguration.json",
                "History.json",
                "Rollback.json",
            ),
            ("ExtensionsConfiguration", "History", "Rollback"),
        ] {
            let base = format!("{prefix}/{collection}/{{extension_id}}");
            router = router
                .route(&format!("{base}/{history}"), get(list))
                // `{revision}` is `3` or `3.json` (a route parameter cannot have a suffix).
                .route(&format!("{base}/History/{{revision}}"), get(one))
                .route(&format!("{base}/{rollback}"), post(rollback_to));
        }
    }
    router.method_not_allowed_fallback(method_not_allowed)
}

/// `GET …/{ExtensionId}/History.json?AccountSid=&Page=&PageSize=`: newest first.
async fn list(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    extension: Extension,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    let account = query.account()?;
    let mut problems = Vec::new();
    let page = query.integer("Page", 0, (0, i64::MAX), &mut problems);
    let page_size = query.integer(
        "PageSize",
        DEFAULT_PAGE_SIZE,
        (1, MAX_PAGE_SIZE),
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(ApiError::parameters(problems));
    }
    let extension_sid = known_sid(&extension)?;
    let history = state.store.history(account, page, page_size).await?;
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
    let body = HistoryJson {
        paging: Paging::new(&base, info),
        revisions: history
            .revisions
            .iter()
            .map(|r| RevisionJson::of(r, extension_sid))
            .collect::<Result<_, _>>()?,
    };
    Ok(match format {
        Format::Json => json_response(StatusCode::OK, &body),
        Format::Xml => {
            let mut out = xml_open();
            body.paging.open_xml(&mut out, "ConfigurationRevisions");
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
async fn one(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    extension: Extension,
    Path((_, revision)): Path<(String, String)>,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    let account = query.account()?;
    let extension_sid = known_sid(&extension)?;
    let number = revision.strip_suffix(".json").unwrap_or(&revision);
    let unknown = || ApiError::not_found(format!("no revision {number} of this configuration"));
    let number: i64 = number.parse().map_err(|_| unknown())?;
    let revision = state
        .store
        .revision(account, number)
        .await?
        .ok_or_else(unknown)?;
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
async fn rollback_to(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    origin: Origin,
    condition: Condition,
    form: AdminForm,
) -> Result<Response, ApiError> {
    let (account, revision) = rollback_parameters(&form)?;
    let written = state
        .store
        .rollback(account, revision, &condition, &origin)
        .await?;
    if written.changed {
        state.cache.apply(&written.record);
    }
    log_write(&written);
    Ok(repr::configuration(&written.record, format))
}

/// `AccountSid` (body or query, as on the other POSTs) and `Revision`, every problem at once.
fn rollback_parameters(form: &AdminForm) -> Result<(Option<AccountSid>, i64), ApiError> {
    let mut problems = form.body.problems(&["AccountSid", "Revision"]);
    problems.extend(form.query.problems(&[]));
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

#[derive(Serialize)]
struct HistoryJson<'a> {
    #[serde(flatten)]
    paging: Paging,
    revisions: Vec<RevisionJson<'a>>,
}

/// One revision as SPEC §10 lists its members, then `account_sid` and `uri`.
#[derive(Serialize)]
struct RevisionJson<'a> {
    revision: i64,
    action: &'static str,
    date_created: String,
    actor: &'a str,
    remote_addr: Option<&'a str>,
    enabled: bool,
    configuration: Option<&'a str>,
    rollback_of: Option<i64>,
    changes: Option<Box<RawValue>>,
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
