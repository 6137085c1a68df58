//! The admin resource `ExtensionsConfiguration` (SPEC §3), Restcomm compatible.
//!
//! Every handler checks in the order SPEC §3 fixes: credentials (401/403, the `SuperAdmin`
//! extractor, before the body is read), body size (413), content type (415), the extension
//! (404), then the parameters (400: every problem in one answer). The extractors of
//! `extract` do the first four; this module validates what they hand over.
//!
//! Decisions where SPEC §3 is silent:
//! - an unknown POST body parameter is a 400 (a typo such as `Enable=false` must not pass);
//!   unknown query parameters are ignored, as they change nothing;
//! - on either POST, `AccountSid` may also come in the query string; given in both places it
//!   must be the same account;
//! - `ExtensionId` matches the stored `EX…` Sid case-insensitively, or the name exactly;
//! - the account list of an extension that was never created is a 404, like its global
//!   configuration; `PageSize` is 1..=1000 (default 50), `Page` ≥ 0 (default 0).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use super::auth::SuperAdmin;
use super::error::{ApiError, ErrorEntry};
use super::extract::{ACCOUNT_SID_RULE, AdminForm, AdminQuery, Extension};
use super::format::{ADMIN_PREFIXES, Format};
use super::repr::{self, PageInfo};
use crate::cache::RoutingCache;
use crate::routing::CompiledRouting;
use crate::sid::AccountSid;
use crate::store::{EXTENSION_NAME, Write};

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 1000;

const EXTENSION_NAME_P: &str = "ExtensionName";
const ENABLED_P: &str = "Enabled";
const CONFIGURATION_P: &str = "ConfigurationData";
const ACCOUNT_P: &str = "AccountSid";
const POST_PARAMETERS: [&str; 4] = [EXTENSION_NAME_P, ENABLED_P, CONFIGURATION_P, ACCOUNT_P];

/// Appended to the JSON syntax error of a `ConfigurationData` that came with unknown form
/// parameters (SPEC §12).
const SPLIT_FORM_HINT: &str = ". The form also had unknown parameters: an `&` sent unencoded \
     by `curl -d` splits ConfigurationData there (and a `+` arrives as a space); send it with \
     `curl --data-urlencode` (e.g. `--data-urlencode ConfigurationData@config.json`)";

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ADMIN_PREFIXES {
        for (collection, accounts) in [
            ("ExtensionsConfiguration.json", "Accounts.json"),
            ("ExtensionsConfiguration", "Accounts"),
        ] {
            router = router
                .route(&format!("{prefix}/{collection}"), post(upsert))
                .route(
                    &format!("{prefix}/{collection}/{{extension_id}}"),
                    get(read).post(upsert).delete(remove),
                )
                .route(
                    &format!("{prefix}/{collection}/{{extension_id}}/{accounts}"),
                    get(list),
                );
        }
    }
    // A wrong method on an admin resource is not revealed before authentication either.
    router.method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed(_admin: SuperAdmin) -> ApiError {
    ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// `POST /ExtensionsConfiguration.json` (create or replace) and
/// `POST /ExtensionsConfiguration.json/{ExtensionId}` (update or create): one set of rules.
async fn upsert(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    form: AdminForm,
) -> Result<Response, ApiError> {
    let (write, compiled) = post_parameters(&form, &state.cache)?;
    let record = state.store.upsert(&write).await?;
    tracing::info!(
        account_sid = %crate::sid::Scope(record.account_sid.as_ref()),
        enabled = record.enabled,
        revision = record.revision,
        "configuration stored"
    );
    // Same request as the commit: a lookup after the 200 sees the new configuration.
    match compiled {
        Some(compiled) if write.configuration.as_deref() == Some(record.configuration.as_str()) => {
            state.cache.apply_compiled(&record, compiled)
        }
        _ => state.cache.apply(&record),
    }
    Ok(repr::configuration(&record, format))
}

/// `GET /ExtensionsConfiguration.json/{ExtensionId}[?AccountSid=…]`.
async fn read(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    extension: Extension,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    let record = match query.account()? {
        None => extension.global.ok_or_else(|| {
            ApiError::not_found("the global configuration has not been created yet")
        })?,
        Some(account) => state
            .store
            .get(account)
            .await?
            .ok_or_else(no_account_configuration)?,
    };
    Ok(repr::configuration(&record, format))
}

/// `DELETE /ExtensionsConfiguration.json/{ExtensionId}?AccountSid=…`.
async fn remove(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    _extension: Extension,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    let Some(account) = query.account()? else {
        return Err(ApiError::parameter(
            ACCOUNT_P,
            "required: only an account's configuration can be deleted; switch the global one off with Enabled=false",
        ));
    };
    let revision = state
        .store
        .delete(account)
        .await?
        .ok_or_else(no_account_configuration)?;
    // Same request as the commit: a lookup after the 204 no longer sees it.
    state.cache.remove(account, revision);
    tracing::info!(account_sid = %account, revision, "configuration deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /ExtensionsConfiguration.json/{ExtensionId}/Accounts.json?Page=&PageSize=`.
async fn list(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    extension: Extension,
    query: AdminQuery,
) -> Result<Response, ApiError> {
    let Some(global) = extension.global else {
        return Err(ApiError::not_found(
            "the extension has not been created yet",
        ));
    };
    let mut problems = Vec::new();
    let page = query.integer("Page", 0, (0, i64::MAX), &mut problems);
    let page_size = query.integer(
        "PageSize",
        DEFAULT_PAGE_SIZE,
        (1, MAX_PAGE_SIZE),
        &mut problems,
    );
    let offset = page.checked_mul(page_size);
    if offset.is_none() && problems.is_empty() {
        problems.push(("Page".to_owned(), "too large".to_owned()));
    }
    if !problems.is_empty() {
        return Err(ApiError::parameters(problems));
    }
    let (records, total) = state
        .store
        .list_accounts(offset.unwrap_or(0), page_size)
        .await?;
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
    problems.extend(query.problems(&[]));

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

    let account_sid = match (body.get(ACCOUNT_P), query.get(ACCOUNT_P)) {
        (Some(body), Some(query)) => match (AccountSid::parse(body), AccountSid::parse(query)) {
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(_), Some(_)) => {
                problems.push((
                    ACCOUNT_P.into(),
                    "given in the body and the query string with different values".into(),
                ));
                None
            }
            _ => {
                problems.push((ACCOUNT_P.into(), ACCOUNT_SID_RULE.into()));
                None
            }
        },
        (one, other) => match one.or(other).map(AccountSid::parse) {
            None => None,
            Some(Some(sid)) => Some(sid),
            Some(None) => {
                problems.push((ACCOUNT_P.into(), ACCOUNT_SID_RULE.into()));
                None
            }
        },
    };

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
                // SPEC §12: JSON cut short and stray parameters beside it is what an `&`
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
