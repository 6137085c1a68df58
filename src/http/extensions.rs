//! The admin resource `ExtensionsConfiguration` (docs/api.md), Restcomm compatible.
//!
//! Every handler checks in the order docs/api.md fixes: credentials (401/403, the `Reader`/
//! `Writer` extractors, before the body is read), body size (413), content type (415), the extension
//! (404), then the parameters (400: every problem in one answer). The extractors of
//! `extract` do the first four; this module validates what they hand over.
//!
//! Decisions where docs/api.md is silent:
//! - a parameter a route does not take, in the form or the query string, is a 400 naming it
//!   (a typo such as `Enable=false` or `?AccountSID=` must not pass: docs/strictness.md);
//! - on either POST, `AccountSid` may also come in the query string; given in both places it
//!   must be the same account;
//! - `ExtensionId` matches the stored `EX…` Sid case-insensitively, or the name exactly;
//! - the account list of an extension that was never created is a 404, like its global
//!   configuration; `PageSize` is 1..=1000 (default 50), `Page` ≥ 0 (default 0).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::path::{Operation, Paths};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Reader, Writer};
use super::error::{ApiError, ErrorBody, ErrorEntry};
use super::error::{
    DatabaseUnavailable, EngineTokenForbidden, PayloadTooLarge, PreconditionFailed, Unauthorized,
    UnsupportedMediaType,
};
use super::extract::{AdminForm, AdminQuery, Extension};
use super::format::{ADMIN_PREFIXES, Format};
use super::mask;
use super::repr::{self, ConfigurationJson, ListJson, PageInfo};
use crate::cache::RoutingCache;
use crate::routing::CompiledRouting;
use crate::store::{Condition, EXTENSION_NAME, Origin, Write, Written};

const EXTENSION_NAME_P: &str = "ExtensionName";
const ENABLED_P: &str = "Enabled";
const CONFIGURATION_P: &str = "ConfigurationData";
const ACCOUNT_P: &str = "AccountSid";

// The names each route takes (docs/strictness.md); any other is a 400 naming it. Adding a
// parameter to a route is one name here.
/// The form of either POST.
const POST_PARAMETERS: [&str; 4] = [EXTENSION_NAME_P, ENABLED_P, CONFIGURATION_P, ACCOUNT_P];
/// The query string of either POST.
const POST_QUERY: &[&str] = &[ACCOUNT_P];
/// The query string of a GET or DELETE of one configuration.
const READ_QUERY: &[&str] = &[ACCOUNT_P];
const DELETE_QUERY: &[&str] = &[ACCOUNT_P];
/// The query string of the account list.
const LIST_QUERY: &[&str] = &["Page", "PageSize"];

/// Appended to the JSON syntax error of a `ConfigurationData` that came with unknown form
/// parameters (docs/operations.md).
const SPLIT_FORM_HINT: &str = ". The form also had unknown parameters: an `&` sent unencoded \
     by `curl -d` splits ConfigurationData there (and a `+` arrives as a space); send it with \
     `curl --data-urlencode` (e.g. `--data-urlencode ConfigurationData@config.json`)";

/// The routes of docs/api.md under both prefixes and in both formats: each operation is annotated
/// once, for `/2012-04-24/….json`, and `variant` rewrites its path for the other three forms,
/// so that the router and the OpenAPI document are built from the same paths.
pub fn router() -> OpenApiRouter<AppState> {
    let operations = [
        routes!(create),
        routes!(read, update, remove),
        routes!(list),
    ];
    let mut router = OpenApiRouter::new();
    for operation in &operations {
        for prefix in ADMIN_PREFIXES {
            for format in [Format::Json, Format::Xml] {
                router = router.routes(variant(operation, prefix, format));
            }
        }
    }
    // A wrong method on an admin resource is not revealed before authentication either.
    let (router, api) = router.split_for_parts();
    let mut router = OpenApiRouter::from(router.method_not_allowed_fallback(method_not_allowed));
    *router.get_openapi_mut() = api;
    router
}

/// The prefix the operations are annotated with.
const ANNOTATED_PREFIX: &str = "/2012-04-24";

/// `operation` (annotated for `/2012-04-24/….json`) under `prefix`, in `format`: the XML form
/// drops `.json` from the path and answers `application/xml` (JSON with
/// `Accept: application/json`); each form has its own `operationId`.
pub(super) fn variant(
    (schemas, paths, methods): &UtoipaMethodRouter<AppState>,
    prefix: &str,
    format: Format,
) -> UtoipaMethodRouter<AppState> {
    let mut suffix = String::new();
    if prefix != ANNOTATED_PREFIX {
        suffix.push_str("_restcomm");
    }
    if format == Format::Xml {
        suffix.push_str("_xml");
    }
    let mut rewritten = Paths::new();
    for (path, item) in &paths.paths {
        let mut path = path.replacen(ANNOTATED_PREFIX, prefix, 1);
        let mut item = item.clone();
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.delete,
            &mut item.put,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if let Some(id) = &mut operation.operation_id {
                id.push_str(&suffix);
            }
            if format == Format::Xml {
                answer_xml_too(operation);
            }
        }
        if format == Format::Xml {
            path = path.replace(".json", "");
        }
        rewritten.paths.insert(path, item);
    }
    (schemas.clone(), rewritten, methods.clone())
}

/// The XML form answers `<RestcommResponse>` documents (docs/api.md), and JSON when asked with
/// `Accept: application/json`: every JSON answer of `operation` gains an XML twin.
fn answer_xml_too(operation: &mut Operation) {
    let xml = ContentBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "an XML document: <RestcommResponse>…</RestcommResponse>",
                )),
        ))
        .build();
    let shared = super::error::shared_responses();
    for response in operation.responses.responses.values_mut() {
        // A shared response (`components/responses`) is JSON only: inlined here with its twin.
        if let RefOr::Ref(reference) = response
            && let Some((_, RefOr::T(inlined))) = shared
                .iter()
                .find(|(name, _)| reference.ref_location.ends_with(&format!("/{name}")))
        {
            *response = RefOr::T(inlined.clone());
        }
        if let RefOr::T(response) = response
            && response.content.contains_key(JSON)
        {
            response
                .content
                .insert(XML.to_owned(), RefOr::T(xml.clone()));
        }
    }
}

const JSON: &str = "application/json";
const XML: &str = "application/xml";

pub(super) async fn method_not_allowed(_reader: Reader) -> ApiError {
    ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// The form of an admin POST (docs/api.md), `application/x-www-form-urlencoded`.
#[derive(Serialize, ToSchema)]
#[allow(non_snake_case, dead_code)]
#[serde(deny_unknown_fields)]
struct ConfigurationForm {
    /// Required on the collection POST; if given, must name the extension.
    #[schema(pattern = "^multi_provider$")]
    #[serde(default)]
    ExtensionName: String,
    /// `true` or `false`, any case. Absent: `true` for a new configuration, unchanged otherwise.
    #[schema(pattern = "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$")]
    #[serde(default)]
    Enabled: String,
    /// The ConfigurationData JSON document (docs/routing.md); required when the configuration does not
    /// exist yet, absent: unchanged.
    #[schema(min_length = 1)]
    #[serde(default)]
    ConfigurationData: String,
    /// The account whose configuration this is (absent: the global one); also accepted in the
    /// query string.
    #[schema(pattern = "^[Aa][Cc][0-9a-fA-F]{32}$")]
    #[serde(default)]
    AccountSid: String,
}

/// `POST /ExtensionsConfiguration.json`: create or replace a configuration.
#[utoipa::path(
    post,
    path = "/2012-04-24/ExtensionsConfiguration.json",
    tag = "admin",
    operation_id = "store_configuration",
    params(AccountQuery, Preconditions),
    request_body(content = ConfigurationForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Stored (also on create, as Restcomm answers); a write that changes nothing stores nothing and answers the current state", body = ConfigurationJson, headers(("ETag" = String, description = "The revision, quoted"))),
        (status = 400, description = "Invalid parameters or ConfigurationData: every problem, with its JSON pointer", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EngineTokenForbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 412, response = PreconditionFailed),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin" = []))
)]
async fn create(
    state: State<AppState>,
    admin: Writer,
    format: Format,
    origin: Origin,
    condition: Condition,
    form: AdminForm,
) -> Result<Response, ApiError> {
    upsert(state, admin, format, origin, condition, form).await
}

/// `POST /ExtensionsConfiguration.json/{ExtensionId}`: update (or create) a configuration.
#[utoipa::path(
    post,
    path = "/2012-04-24/ExtensionsConfiguration.json/{extension_id}",
    tag = "admin",
    operation_id = "update_configuration",
    params(ExtensionId, AccountQuery, Preconditions),
    request_body(content = ConfigurationForm, content_type = "application/x-www-form-urlencoded", description = "Optional (required: false in the document): an empty POST stores nothing new"),
    responses(
        (status = 200, description = "Stored (or unchanged: the current state)", body = ConfigurationJson, headers(("ETag" = String, description = "The revision, quoted"))),
        (status = 400, description = "Invalid parameters or ConfigurationData", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EngineTokenForbidden),
        (status = 404, description = "Unknown extension", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 412, response = PreconditionFailed),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin" = []))
)]
async fn update(
    state: State<AppState>,
    admin: Writer,
    format: Format,
    origin: Origin,
    condition: Condition,
    form: AdminForm,
) -> Result<Response, ApiError> {
    upsert(state, admin, format, origin, condition, form).await
}

/// Both POSTs: one set of rules.
async fn upsert(
    State(state): State<AppState>,
    _admin: Writer,
    format: Format,
    origin: Origin,
    condition: Condition,
    form: AdminForm,
) -> Result<Response, ApiError> {
    let (mut write, compiled) = post_parameters(&form, state.configs.cache())?;
    write.condition = condition;
    let written = state.configs.write(&write, compiled, &origin).await?;
    let record = &written.record;
    log_write(&written);
    Ok(repr::configuration(record, format))
}

/// One line per stored configuration at `info`; a write that changed nothing at `debug`.
pub(super) fn log_write(written: &Written) {
    let record = &written.record;
    let scope = crate::sid::Scope(record.account_sid.as_ref());
    if written.changed {
        tracing::info!(
            account_sid = %scope,
            enabled = record.enabled,
            revision = record.revision,
            "configuration stored"
        );
    } else {
        tracing::debug!(account_sid = %scope, revision = record.revision, "configuration unchanged");
    }
}

/// `If-Match` / `If-None-Match` (docs/api.md): write only at this revision, or only if absent.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct Preconditions {
    /// `"<revision>"` (several, comma-separated) or `*`: the configuration must be at one of
    /// these revisions (`*`: must exist); otherwise 412 and nothing is written.
    #[param(rename = "If-Match")]
    if_match: Option<String>,
    /// `*`: the configuration must not exist (create, never replace); otherwise 412.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

/// `{extension_id}`: the extension's Sid or its name.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct ExtensionId {
    /// The extension's Sid (`EX` + 32 hex digits, any case) or its name `multi_provider`.
    extension_id: String,
}

/// `?AccountSid=`: whose configuration (absent: the global one).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case, dead_code)]
pub(super) struct AccountQuery {
    /// `AC` + 32 hex digits, either case.
    #[param(pattern = "^[Aa][Cc][0-9a-fA-F]{32}$")]
    AccountSid: Option<String>,
}

/// `?AccountSid=` of a DELETE: required (the global configuration is switched off, never
/// deleted).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case, dead_code)]
pub(super) struct RequiredAccountQuery {
    /// `AC` + 32 hex digits, either case.
    #[param(pattern = "^[Aa][Cc][0-9a-fA-F]{32}$")]
    AccountSid: String,
}

/// `?Page=&PageSize=`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case, dead_code)]
pub(super) struct PageQuery {
    /// 0-based page (default 0).
    #[param(minimum = 0)]
    Page: Option<i64>,
    /// Items per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    PageSize: Option<i64>,
}

/// `GET /ExtensionsConfiguration.json/{ExtensionId}[?AccountSid=…]`: read a configuration.
#[utoipa::path(
    get,
    path = "/2012-04-24/ExtensionsConfiguration.json/{extension_id}",
    tag = "admin",
    operation_id = "read_configuration",
    params(ExtensionId, AccountQuery),
    responses(
        (status = 200, description = "The configuration", body = ConfigurationJson, headers(("ETag" = String, description = "The revision, quoted"))),
        (status = 400, description = "Invalid AccountSid, or a parameter given twice", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EngineTokenForbidden),
        (status = 404, description = "Unknown extension, or no such configuration", body = ErrorBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin" = []))
)]
async fn read(
    State(state): State<AppState>,
    Reader(caller): Reader,
    format: Format,
    extension: Extension,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    query.only(READ_QUERY)?;
    let mut record = match query.account()? {
        None => extension.global.ok_or_else(|| {
            ApiError::not_found("the global configuration has not been created yet")
        })?,
        Some(account) => state
            .configs
            .store()
            .get(account)
            .await?
            .ok_or_else(no_account_configuration)?,
    };
    if caller.masks() {
        mask::record(&mut record);
    }
    Ok(repr::configuration(&record, format))
}

/// `DELETE /ExtensionsConfiguration.json/{ExtensionId}?AccountSid=…`: remove an account's
/// configuration (the global one is switched off with `Enabled=false` instead).
#[utoipa::path(
    delete,
    path = "/2012-04-24/ExtensionsConfiguration.json/{extension_id}",
    tag = "admin",
    operation_id = "delete_configuration",
    params(ExtensionId, RequiredAccountQuery, Preconditions),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "AccountSid missing or invalid", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EngineTokenForbidden),
        (status = 404, description = "Unknown extension, or no such configuration", body = ErrorBody),
        (status = 412, response = PreconditionFailed),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin" = []))
)]
async fn remove(
    State(state): State<AppState>,
    _admin: Writer,
    _extension: Extension,
    query: AdminQuery,
    origin: Origin,
    condition: Condition,
) -> Result<Response, ApiError> {
    query.only(DELETE_QUERY)?;
    let Some(account) = query.account()? else {
        return Err(ApiError::parameter(
            ACCOUNT_P,
            "required: only an account's configuration can be deleted; switch the global one off with Enabled=false",
        ));
    };
    // Same request as the commit: a lookup after the 204 no longer sees it.
    let revision = state
        .configs
        .delete(account, &condition, &origin)
        .await?
        .ok_or_else(no_account_configuration)?;
    tracing::info!(account_sid = %account, revision, "configuration deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /ExtensionsConfiguration.json/{ExtensionId}/Accounts.json?Page=&PageSize=`: the
/// account configurations, a page at a time, in Restcomm's list shape.
#[utoipa::path(
    get,
    path = "/2012-04-24/ExtensionsConfiguration.json/{extension_id}/Accounts.json",
    tag = "admin",
    operation_id = "list_configurations",
    params(ExtensionId, PageQuery),
    responses(
        (status = 200, description = "One page of account configurations", body = ListJson),
        (status = 400, description = "Page or PageSize out of range", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = EngineTokenForbidden),
        (status = 404, description = "Unknown extension, or not created yet", body = ErrorBody),
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
    let Some(global) = extension.global else {
        return Err(ApiError::not_found(
            "the extension has not been created yet",
        ));
    };
    let mut problems = query.unknown(LIST_QUERY);
    let (page, page_size) = query.paging(&mut problems);
    if !problems.is_empty() {
        return Err(ApiError::parameters(problems));
    }
    let offset = page.checked_mul(page_size);
    let (mut records, total) = state
        .configs
        .store()
        .list_accounts(offset.unwrap_or(0), page_size)
        .await?;
    if caller.masks() {
        records.iter_mut().for_each(mask::record);
    }
    let info = PageInfo {
        page,
        page_size,
        total,
        items: records.len() as i64,
    };
    Ok(repr::configuration_list(
        &global.extension_sid,
        info,
        &records,
        format,
    ))
}

fn no_account_configuration() -> ApiError {
    ApiError::not_found("this account has no configuration")
}

/// Validates the parameters of either POST into a store write, collecting every problem.
/// Without an extension in the path (the collection POST) `ExtensionName` is required.
fn post_parameters(
    form: &AdminForm,
    cache: &RoutingCache,
) -> Result<(Write, Option<Arc<CompiledRouting>>), ApiError> {
    let (body, query) = (&form.body, &form.query);
    let stored_name = form.extension.as_ref().map(Extension::name);
    let mut problems = body.problems(&POST_PARAMETERS);
    let unknown_in_body = problems
        .iter()
        .any(|(name, _)| !POST_PARAMETERS.contains(&name.as_str()));
    problems.extend(query.problems(POST_QUERY));

    match (body.get(EXTENSION_NAME_P), stored_name) {
        (None, None) => problems.push((
            EXTENSION_NAME_P.into(),
            format!("required; must be {EXTENSION_NAME}"),
        )),
        (Some(name), None) if name != EXTENSION_NAME => {
            problems.push((EXTENSION_NAME_P.into(), format!("must be {EXTENSION_NAME}")))
        }
        (Some(name), Some(stored)) if name != stored => problems.push((
            EXTENSION_NAME_P.into(),
            format!("does not match this extension ({stored})"),
        )),
        _ => {}
    }

    let enabled = match body.get(ENABLED_P) {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => {
            problems.push((ENABLED_P.into(), "must be true or false".into()));
            None
        }
    };

    let account_sid = form.account(&mut problems);

    let mut entries: Vec<ErrorEntry> = problems
        .iter()
        .map(|(parameter, message)| ErrorEntry::Parameter {
            parameter: parameter.clone(),
            message: message.clone(),
        })
        .collect();
    let configuration = body.get(CONFIGURATION_P).map(str::to_owned);
    let mut configuration_invalid = false;
    let mut compiled = None;
    if let Some(config) = &configuration {
        match cache.compile_configuration(config) {
            Ok(c) => compiled = Some(c),
            Err(config_problems) => {
                configuration_invalid = true;
                // docs/operations.md: JSON cut short and stray parameters beside it is what an `&`
                // sent unencoded by `curl -d` does; say so where the JSON error is.
                let split = unknown_in_body
                    && serde_json::from_str::<serde::de::IgnoredAny>(config).is_err();
                entries.extend(config_problems.into_iter().map(|mut problem| {
                    if split && problem.pointer.is_empty() {
                        problem.message.push_str(SPLIT_FORM_HINT);
                    }
                    ErrorEntry::from(problem)
                }));
            }
        }
    }
    if entries.is_empty() {
        let write = Write {
            account_sid,
            enabled,
            configuration,
            ..Write::default()
        };
        return Ok((write, compiled));
    }
    let mut names: Vec<&str> = problems.iter().map(|(name, _)| name.as_str()).collect();
    if configuration_invalid && !names.contains(&CONFIGURATION_P) {
        names.push(CONFIGURATION_P);
    }
    let message = match names.as_slice() {
        [one] => format!("{one} is invalid"),
        many => format!("invalid parameters: {}", many.join(", ")),
    };
    Err(ApiError {
        status: StatusCode::BAD_REQUEST,
        message,
        errors: entries,
    })
}
