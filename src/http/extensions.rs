//! The admin resource `ExtensionsConfiguration` (SPEC §3), Restcomm compatible.
//!
//! Every handler checks in the order SPEC §3 fixes: credentials (401/403, the `SuperAdmin`
//! extractor, before the body is read), body size (413), content type (415), the extension
//! (404), then the parameters (400: every problem in one answer). Parameters are parsed from
//! the raw bytes rather than with axum's `Form`, which would silently keep the last of two
//! values where SPEC §3 wants a 400.
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
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use super::auth::SuperAdmin;
use super::error::{ApiError, ErrorEntry, MAX_BODY_BYTES};
use super::repr::{self, ADMIN_PREFIXES, Format, PageInfo};
use crate::cache::RoutingCache;
use crate::routing::{self, CompiledRouting};
use crate::sid::AccountSid;
use crate::store::{ConfigRecord, EXTENSION_NAME, Write};

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 1000;

const EXTENSION_NAME_P: &str = "ExtensionName";
const ENABLED_P: &str = "Enabled";
const CONFIGURATION_P: &str = "ConfigurationData";
const ACCOUNT_P: &str = "AccountSid";
const POST_PARAMETERS: [&str; 4] = [EXTENSION_NAME_P, ENABLED_P, CONFIGURATION_P, ACCOUNT_P];

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ADMIN_PREFIXES {
        for (collection, accounts) in [
            ("ExtensionsConfiguration.json", "Accounts.json"),
            ("ExtensionsConfiguration", "Accounts"),
        ] {
            router = router
                .route(&format!("{prefix}/{collection}"), post(create))
                .route(
                    &format!("{prefix}/{collection}/{{extension_id}}"),
                    get(read).post(update).delete(remove),
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

/// `POST /ExtensionsConfiguration.json`: create or replace a configuration.
async fn create(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = form_body(&headers, body)?;
    let (write, compiled) = post_parameters(&body, uri.query(), None, &state.cache)?;
    upsert(&state, write, compiled, format).await
}

/// `POST /ExtensionsConfiguration.json/{ExtensionId}`: update (or create) a configuration.
async fn update(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    extension_id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = form_body(&headers, body)?;
    let extension = find_extension(&state, extension_id).await?;
    let (write, compiled) =
        post_parameters(&body, uri.query(), Some(extension.name()), &state.cache)?;
    upsert(&state, write, compiled, format).await
}

/// `GET /ExtensionsConfiguration.json/{ExtensionId}[?AccountSid=…]`.
async fn read(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    format: Format,
    extension_id: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let extension = find_extension(&state, extension_id).await?;
    let query = Parameters::parse(uri.query().unwrap_or("").as_bytes())?.unique()?;
    let record = match account_parameter(query.get(ACCOUNT_P))? {
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
    extension_id: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    find_extension(&state, extension_id).await?;
    let query = Parameters::parse(uri.query().unwrap_or("").as_bytes())?.unique()?;
    let Some(account) = account_parameter(query.get(ACCOUNT_P))? else {
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
    extension_id: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let extension = find_extension(&state, extension_id).await?;
    let Some(global) = extension.global else {
        return Err(ApiError::not_found(
            "the extension has not been created yet",
        ));
    };
    let query = Parameters::parse(uri.query().unwrap_or("").as_bytes())?.unique()?;
    let mut problems = Vec::new();
    let page = integer_parameter(&query, "Page", 0, 0, i64::MAX, &mut problems);
    let page_size = integer_parameter(
        &query,
        "PageSize",
        DEFAULT_PAGE_SIZE,
        1,
        MAX_PAGE_SIZE,
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

/// Commits a validated write, updates the cache, answers the stored representation.
async fn upsert(
    state: &AppState,
    write: Write,
    compiled: Option<Arc<CompiledRouting>>,
    format: Format,
) -> Result<Response, ApiError> {
    let record: ConfigRecord = state.store.upsert(&write).await?;
    tracing::info!(
        account_sid = ?record.account_sid,
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

/// The extension named by the path: its Sid or its name. `global` is the stored extension
/// record (the global configuration), `None` when it was never created.
struct Extension {
    global: Option<ConfigRecord>,
}

impl Extension {
    fn name(&self) -> &str {
        self.global
            .as_ref()
            .map_or(EXTENSION_NAME, |g| g.extension_name.as_str())
    }
}

async fn find_extension(
    state: &AppState,
    extension_id: Result<Path<String>, PathRejection>,
) -> Result<Extension, ApiError> {
    let unknown = || {
        ApiError::not_found(format!(
            "no such extension; use its Sid or its name {EXTENSION_NAME}"
        ))
    };
    let Ok(Path(id)) = extension_id else {
        return Err(unknown());
    };
    let global = state.store.global().await?;
    let known = match &global {
        Some(g) => id == g.extension_name || id.eq_ignore_ascii_case(&g.extension_sid),
        None => id == EXTENSION_NAME,
    };
    if known {
        Ok(Extension { global })
    } else {
        Err(unknown())
    }
}

/// The body of a POST: at most `MAX_BODY_BYTES` (413), form-encoded (415).
fn form_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large());
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large()
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""));
    let form = match content_type {
        // Nothing to misread in an empty body without a type (`curl -X POST` alone).
        None => body.is_empty(),
        Some(ct) => ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded"),
    };
    if !form {
        return Err(ApiError::unsupported_media_type(
            "the body must be application/x-www-form-urlencoded (what curl -d sends)",
        ));
    }
    Ok(body)
}

/// Validates the parameters of either POST into a store write, collecting every problem.
/// `stored_name` is `None` on the collection POST (ExtensionName required there).
fn post_parameters(
    body: &[u8],
    query: Option<&str>,
    stored_name: Option<&str>,
    cache: &RoutingCache,
) -> Result<(Write, Option<Arc<CompiledRouting>>), ApiError> {
    let form = Parameters::parse(body)?;
    let query = Parameters::parse(query.unwrap_or("").as_bytes())?;
    let mut problems: Vec<(String, String)> = Vec::new();
    form.check(&POST_PARAMETERS, &mut problems);
    query.check(&[], &mut problems);

    match (form.first(EXTENSION_NAME_P), stored_name) {
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

    let enabled = match form.first(ENABLED_P) {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => {
            problems.push((ENABLED_P.into(), "must be true or false".into()));
            None
        }
    };

    let account_sid = match (form.first(ACCOUNT_P), query.first(ACCOUNT_P)) {
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
    let configuration = form.first(CONFIGURATION_P).map(str::to_owned);
    let mut configuration_invalid = false;
    let mut compiled = None;
    if let Some(config) = &configuration {
        match validate_configuration(config, cache) {
            Ok(c) => compiled = Some(c),
            Err(config_problems) => {
                configuration_invalid = true;
                entries.extend(config_problems.into_iter().map(ErrorEntry::from));
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

const ACCOUNT_SID_RULE: &str = "must be AC followed by 32 hexadecimal digits";

fn validate_configuration(
    config: &str,
    cache: &RoutingCache,
) -> Result<Arc<CompiledRouting>, Vec<routing::Problem>> {
    if config.len() > routing::MAX_CONFIGURATION_BYTES {
        return Err(vec![routing::Problem {
            pointer: String::new(),
            message: format!(
                "ConfigurationData is {} bytes; at most {} are allowed",
                config.len(),
                routing::MAX_CONFIGURATION_BYTES
            ),
        }]);
    }
    cache.compile_configuration(config)
}

fn account_parameter(value: Option<&str>) -> Result<Option<AccountSid>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) => AccountSid::parse(v)
            .map(Some)
            .ok_or_else(|| ApiError::parameter(ACCOUNT_P, ACCOUNT_SID_RULE)),
    }
}

fn integer_parameter(
    query: &UniqueParameters,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
    problems: &mut Vec<(String, String)>,
) -> i64 {
    let Some(raw) = query.get(name) else {
        return default;
    };
    match raw.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            let rule = if max == i64::MAX {
                format!("must be an integer of at least {min}")
            } else {
                format!("must be an integer from {min} to {max}")
            };
            problems.push((name.to_owned(), rule));
            default
        }
    }
}

/// `application/x-www-form-urlencoded` pairs in order, duplicates kept (to be refused).
struct Parameters(Vec<(String, String)>);

/// Parameters known to be given at most once each.
struct UniqueParameters(Vec<(String, String)>);

impl Parameters {
    /// Decodes `+` and `%XX`; a `%` not followed by two hex digits is kept as is (as
    /// browsers and the `url` crate do). Names and values must be UTF-8.
    fn parse(raw: &[u8]) -> Result<Parameters, ApiError> {
        let mut pairs = Vec::new();
        for piece in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match piece.iter().position(|b| *b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &piece[piece.len()..]),
            };
            let name = String::from_utf8(percent_decode(name))
                .map_err(|_| ApiError::bad_request("a parameter name is not valid UTF-8"))?;
            let value = String::from_utf8(percent_decode(value))
                .map_err(|_| ApiError::parameter(&name, "not valid UTF-8"))?;
            pairs.push((name, value));
        }
        Ok(Parameters(pairs))
    }

    fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Problems: parameters given more than once, and (when `known` is not empty) names
    /// outside `known`.
    fn check(&self, known: &[&str], problems: &mut Vec<(String, String)>) {
        for (i, (name, _)) in self.0.iter().enumerate() {
            let first = self.0.iter().position(|(n, _)| n == name) == Some(i);
            if !first {
                if self.0[..i].iter().filter(|(n, _)| n == name).count() == 1 {
                    problems.push((name.clone(), "given more than once".into()));
                }
            } else if !known.is_empty() && !known.contains(&name.as_str()) {
                problems.push((
                    name.clone(),
                    format!("unknown parameter; expected {}", known.join(", ")),
                ));
            }
        }
    }

    fn unique(self) -> Result<UniqueParameters, ApiError> {
        let mut problems = Vec::new();
        self.check(&[], &mut problems);
        if problems.is_empty() {
            Ok(UniqueParameters(self.0))
        } else {
            Err(ApiError::parameters(problems))
        }
    }
}

impl UniqueParameters {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).and_then(|b| hex(*b)),
                input.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a+b%20c%2B%7b"), b"a b c+{");
        assert_eq!(percent_decode(b"100%"), b"100%");
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
    }

    #[test]
    fn duplicates_and_unknown_names_are_problems() {
        let p = Parameters::parse(b"Enabled=true&Enabled=false&Enabled=x&Enable=true").unwrap();
        let mut problems = Vec::new();
        p.check(&POST_PARAMETERS, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].0, "Enabled");
        assert_eq!(problems[1].0, "Enable");
    }

    #[test]
    fn form_values_keep_their_bytes() {
        let p = Parameters::parse(b"ConfigurationData={\"a\": [1, 2]}\n&x").unwrap();
        assert_eq!(p.first("ConfigurationData"), Some("{\"a\": [1, 2]}\n"));
        assert_eq!(p.first("x"), Some(""));
        assert!(Parameters::parse(b"a=%ff").is_err());
    }
}
