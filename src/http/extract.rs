//! Typed extractors whose rejection is our `ApiError`, so that handlers receive checked
//! values and every refusal leaves in the error body of docs/api.md.
//!
//! Every parser here is linear in its input: names are counted in a hash map, never compared
//! pair by pair (a 240 KB body of `a&a&a…` must cost milliseconds, not seconds).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;

use axum::RequestExt as _;
use axum::body::Bytes;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};

use super::AppState;
use super::error::{ApiError, MAX_BODY_BYTES};
use super::percent;
use crate::routing::printable;
use crate::sid::AccountSid;
use crate::store::{Condition, ConfigRecord, EXTENSION_NAME, Origin, Tags};

/// Items on a list page when `PageSize` is not given, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 1000;

/// What an `AccountSid` must look like, wherever it is given.
pub const ACCOUNT_SID_RULE: &str = "must be AC followed by 32 hexadecimal digits";

/// Parses an `AccountSid` parameter (docs/api.md: either case, answered in lowercase).
pub fn account_sid(value: &str) -> Result<AccountSid, ApiError> {
    AccountSid::parse(value).ok_or_else(|| ApiError::parameter("AccountSid", ACCOUNT_SID_RULE))
}

/// Form-encoded parameters in their order, decoded (form rules: `+` is a space), duplicates
/// kept so that they can be refused together with every other problem.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Name → index of its first occurrence.
    first: HashMap<String, usize>,
}

impl Params {
    /// Decodes `a=1&b=2&c`; a component that is not UTF-8 once decoded is a 400.
    pub fn parse(raw: &[u8]) -> Result<Params, ApiError> {
        let mut params = Params::default();
        for piece in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match piece.iter().position(|b| *b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &piece[piece.len()..]),
            };
            let name = percent::form_component(name)
                .ok_or_else(|| ApiError::bad_request("a parameter name is not valid UTF-8"))?
                .into_owned();
            let value = percent::form_component(value)
                .ok_or_else(|| ApiError::parameter(&name, "not valid UTF-8"))?
                .into_owned();
            let index = params.pairs.len();
            if !params.first.contains_key(&name) {
                params.first.insert(name.clone(), index);
            }
            params.pairs.push((name, value));
        }
        Ok(params)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.first.get(name).map(|&i| self.pairs[i].1.as_str())
    }

    /// Names given more than once (reported once each, at their second occurrence) and
    /// names outside `known` (the route's accepted names: anything else is a 400, with a
    /// suggestion when close, docs/api.md); in the order they appear.
    ///
    /// A form of tens of thousands of stray names (a script gone wrong) would make an error
    /// body of megabytes: the first `MAX_LISTED` are listed, and one more entry counts the
    /// rest.
    pub fn problems(&self, known: &[&str]) -> Vec<(String, String)> {
        self.problems_among(Some(known))
    }

    /// Names given more than once only.
    pub fn duplicates(&self) -> Vec<(String, String)> {
        self.problems_among(None)
    }

    fn problems_among(&self, known: Option<&[&str]>) -> Vec<(String, String)> {
        const MAX_LISTED: usize = 100;
        let mut seen: HashMap<&str, u32> = HashMap::with_capacity(self.first.len());
        let mut problems = Vec::new();
        let mut unlisted: Option<(&str, usize)> = None;
        for (name, _) in &self.pairs {
            let count = seen.entry(name.as_str()).or_insert(0);
            *count += 1;
            let problem = match known {
                _ if *count == 2 => ("given more than once").to_owned(),
                Some(known) if *count == 1 && !known.contains(&name.as_str()) => {
                    unknown_parameter(name, known).1
                }
                _ => continue,
            };
            if problems.len() < MAX_LISTED {
                problems.push((printable(name), problem));
            } else {
                unlisted.get_or_insert((name.as_str(), 0)).1 += 1;
            }
        }
        if let Some((first, more)) = unlisted {
            problems.push((
                first.to_owned(),
                format!(
                    "this and {} more parameters are unknown or repeated; only the first \
                     {MAX_LISTED} problems are listed",
                    more - 1
                ),
            ));
        }
        problems
    }
}

/// A parameter the route does not take (docs/api.md): its name, and a message with a
/// suggestion when a known name differs only in case or by one edit ("`AccountSID`: did you
/// mean `AccountSid`?"), else the names the route takes.
pub fn unknown_parameter(name: &str, known: &[&str]) -> (String, String) {
    let shown = printable(name);
    let close = known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .or_else(|| known.iter().find(|k| within_one_edit(k, name)));
    let message = match (close, known) {
        (Some(k), _) => format!("`{shown}`: unknown parameter; did you mean `{k}`?"),
        (None, []) => format!("`{shown}`: unknown parameter; this route takes no parameters"),
        (None, _) => format!(
            "`{shown}`: unknown parameter; this route takes {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    (shown, message)
}

/// Whether `a` and `b` are at most one insertion, deletion, substitution or swap of
/// neighbours apart, ignoring ASCII case. Linear in the shorter name.
fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let same = |x: &u8, y: &u8| x.eq_ignore_ascii_case(y);
    let prefix = short
        .iter()
        .zip(long)
        .take_while(|(x, y)| same(x, y))
        .count();
    if prefix == short.len() {
        return true;
    }
    let rest_same = |a: &[u8], b: &[u8]| a.iter().zip(b).all(|(x, y)| same(x, y));
    if short.len() < long.len() {
        // An insertion into `short`.
        return rest_same(&short[prefix..], &long[prefix + 1..]);
    }
    // A substitution, or two neighbours swapped (`explian`).
    rest_same(&short[prefix + 1..], &long[prefix + 1..])
        || (prefix + 1 < short.len()
            && same(&short[prefix], &long[prefix + 1])
            && same(&short[prefix + 1], &long[prefix])
            && rest_same(&short[prefix + 2..], &long[prefix + 2..]))
}

/// The query string of an admin GET or DELETE (form rules): every name at most once (400,
/// by the extractor); names the route does not take are a 400 too (`unknown`, which each
/// handler calls with its route's list of names).
#[derive(Debug)]
pub struct AdminQuery(Params);

impl AdminQuery {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }

    /// The names outside `known`, as problems (empty when every name is known).
    pub fn unknown(&self, known: &[&str]) -> Vec<(String, String)> {
        self.0.problems(known)
    }

    /// 400 for every name outside `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        let problems = self.unknown(known);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::parameters(problems))
        }
    }

    /// `AccountSid`, when given.
    pub fn account(&self) -> Result<Option<AccountSid>, ApiError> {
        self.get("AccountSid").map(account_sid).transpose()
    }

    /// `Page` (≥ 0, default 0) and `PageSize` (1 to `MAX_PAGE_SIZE`, default
    /// `DEFAULT_PAGE_SIZE`) of a Restcomm list; problems are added to `problems`.
    pub fn paging(&self, problems: &mut Vec<(String, String)>) -> (i64, i64) {
        let before = problems.len();
        let page = self.integer("Page", 0, (0, i64::MAX), problems);
        let page_size = self.integer("PageSize", DEFAULT_PAGE_SIZE, (1, MAX_PAGE_SIZE), problems);
        if problems.len() == before && page.checked_mul(page_size).is_none() {
            problems.push(("Page".to_owned(), "too large".to_owned()));
        }
        (page, page_size)
    }

    /// An integer parameter in `min..=max`; the problem is added to `problems` (and the
    /// default returned) when it is out of range or not an integer.
    fn integer(
        &self,
        name: &str,
        default: i64,
        (min, max): (i64, i64),
        problems: &mut Vec<(String, String)>,
    ) -> i64 {
        let Some(raw) = self.get(name) else {
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
}

impl<S: Send + Sync> FromRequestParts<S> for AdminQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<AdminQuery, ApiError> {
        let params = Params::parse(parts.uri.query().unwrap_or("").as_bytes())?;
        let problems = params.duplicates();
        if problems.is_empty() {
            Ok(AdminQuery(params))
        } else {
            Err(ApiError::parameters(problems))
        }
    }
}

/// The extension named by `{extension_id}`: its stored `EX…` Sid (any case) or its name.
/// `global` is the stored extension record (the global configuration), `None` before the
/// extension was first created (then only the name is known). Unknown: 404.
#[derive(Debug)]
pub struct Extension {
    pub global: Option<ConfigRecord>,
}

impl Extension {
    pub fn name(&self) -> &str {
        self.global
            .as_ref()
            .map_or(EXTENSION_NAME, |g| g.extension_name.as_str())
    }

    /// Resolves `id` against the store; `None` (a path that does not decode) is unknown.
    async fn resolve(state: &AppState, id: Option<&str>) -> Result<Extension, ApiError> {
        let unknown = || {
            ApiError::not_found(format!(
                "no such extension; use its Sid or its name {EXTENSION_NAME}"
            ))
        };
        let id = id.ok_or_else(unknown)?;
        let global = state.configs.store().global().await?;
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
}

/// The decoded `{extension_id}` of the route: `Ok(None)` on a route without one, `Err(())`
/// when it does not decode to UTF-8 (an unknown extension).
fn extension_id(
    params: Result<RawPathParams, RawPathParamsRejection>,
) -> Result<Option<String>, ()> {
    match params {
        Ok(params) => Ok(params
            .iter()
            .find(|(key, _)| *key == "extension_id")
            .map(|(_, value)| value.to_owned())),
        Err(RawPathParamsRejection::InvalidUtf8InPathParam(_)) => Err(()),
        Err(_) => Ok(None),
    }
}

impl FromRequestParts<AppState> for Extension {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Extension, ApiError> {
        let id = extension_id(RawPathParams::from_request_parts(parts, state).await);
        Extension::resolve(state, id.ok().flatten().as_deref()).await
    }
}

/// The parameters of an admin POST, checked in the order of docs/api.md: body size (413), content
/// type (415), the extension of the path if the route names one (404), then decoded (400
/// only for text that is not UTF-8: duplicates and unknown names are reported by the
/// handler together with every other problem).
#[derive(Debug)]
pub struct AdminForm {
    /// `Some` on `POST …/{ExtensionId}`.
    pub extension: Option<Extension>,
    pub body: Params,
    /// `AccountSid` may also be given in the query string of a POST.
    pub query: Params,
}

impl FromRequest<AppState> for AdminForm {
    type Rejection = ApiError;

    async fn from_request(mut request: Request, state: &AppState) -> Result<AdminForm, ApiError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::payload_too_large());
        }
        let path_id = extension_id(request.extract_parts::<RawPathParams>().await);
        let query = request.uri().query().unwrap_or("").as_bytes().to_vec();
        let headers: HeaderMap = std::mem::take(request.headers_mut());
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large()
                } else {
                    ApiError::bad_request("the request body could not be read")
                }
            })?;
        if !is_form(&headers, &body) {
            return Err(ApiError::unsupported_media_type(
                "the body must be application/x-www-form-urlencoded (what curl -d sends)",
            ));
        }
        let extension = match path_id {
            Ok(None) => None,
            Ok(Some(id)) => Some(Extension::resolve(state, Some(&id)).await?),
            Err(()) => Some(Extension::resolve(state, None).await?),
        };
        Ok(AdminForm {
            extension,
            body: Params::parse(&body)?,
            query: Params::parse(&query)?,
        })
    }
}

impl AdminForm {
    /// `AccountSid`, from the body or the query string (both: they must agree); a problem is
    /// added to `problems` when it is malformed.
    pub fn account(&self, problems: &mut Vec<(String, String)>) -> Option<AccountSid> {
        const NAME: &str = "AccountSid";
        let mut parse = |value: &str| {
            let parsed = AccountSid::parse(value);
            if parsed.is_none() {
                problems.push((NAME.into(), ACCOUNT_SID_RULE.into()));
            }
            parsed
        };
        match (self.body.get(NAME), self.query.get(NAME)) {
            (Some(body), Some(query)) => {
                match (AccountSid::parse(body), AccountSid::parse(query)) {
                    (Some(a), Some(b)) if a == b => Some(a),
                    (Some(_), Some(_)) => {
                        problems.push((
                            NAME.into(),
                            "given in the body and the query string with different values".into(),
                        ));
                        None
                    }
                    _ => parse(""),
                }
            }
            (one, other) => one.or(other).and_then(parse),
        }
    }
}

/// A form body, or an empty body without a type (`curl -X POST` alone: nothing to misread).
fn is_form(headers: &HeaderMap, body: &[u8]) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        None => body.is_empty(),
        Some(ct) => ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded"),
    }
}

/// The `{account_sid}` of a lookup path: 400 when it is not an account Sid.
#[derive(Debug, Clone, Copy)]
pub struct AccountPath(pub AccountSid);

impl<S: Send + Sync> FromRequestParts<S> for AccountPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<AccountPath, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state).await.ok();
        let raw = params
            .as_ref()
            .and_then(|p| p.iter().find(|(key, _)| *key == "account_sid"))
            .map_or("", |(_, value)| value);
        account_sid(raw).map(AccountPath)
    }
}

/// A lookup's query string under RFC 3986 (`+` is a literal plus, docs/routing.md). Values are
/// decoded when asked for; names that are not asked for are ignored.
#[derive(Debug, Clone)]
pub struct StrictQuery(Uri);

impl StrictQuery {
    /// The query string as received (empty when there is none).
    pub fn raw(&self) -> &str {
        self.0.query().unwrap_or("")
    }

    /// The one value of `name`: given twice, or not well-formed once decoded, is a 400.
    pub fn one(&self, name: &str) -> Result<Option<Cow<'_, str>>, ApiError> {
        let mut found = None;
        for pair in self.0.query().unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if percent::strict_component(key).as_deref() != Some(name) {
                continue;
            }
            if found.is_some() {
                return Err(ApiError::parameter(name, "given more than once"));
            }
            found =
                Some(percent::strict_component(value).ok_or_else(|| {
                    ApiError::parameter(name, "is not valid percent-encoded UTF-8")
                })?);
        }
        Ok(found)
    }

    /// Every value of `name`, in order (the repeatable `header` of docs/api.md); one that is not
    /// well-formed once decoded is a 400. No allocation when `name` is absent.
    pub fn all(&self, name: &str) -> Result<Vec<Cow<'_, str>>, ApiError> {
        let mut found = Vec::new();
        for pair in self.0.query().unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if percent::strict_component(key).as_deref() != Some(name) {
                continue;
            }
            found.push(
                percent::strict_component(value).ok_or_else(|| {
                    ApiError::parameter(name, "is not valid percent-encoded UTF-8")
                })?,
            );
        }
        Ok(found)
    }
}

impl StrictQuery {
    /// The names outside `known`, each once, as problems; a name that does not decode is
    /// one too. Allocates nothing when every name is known and plain.
    pub fn unknown(&self, known: &[&str]) -> Vec<(String, String)> {
        const MAX_LISTED: usize = 100;
        let mut problems: Vec<(String, String)> = Vec::new();
        for pair in self.raw().split('&').filter(|p| !p.is_empty()) {
            let key = pair.split_once('=').map_or(pair, |(key, _)| key);
            let problem = match percent::strict_component(key) {
                Some(name) if known.contains(&name.as_ref()) => continue,
                Some(name) => unknown_parameter(&name, known),
                None => (
                    printable(key),
                    "a parameter name that is not valid percent-encoded UTF-8".to_owned(),
                ),
            };
            if problems.len() == MAX_LISTED {
                break;
            }
            if !problems.iter().any(|(name, _)| *name == problem.0) {
                problems.push(problem);
            }
        }
        problems
    }
}

/// 400 naming every parameter of `query` (a raw query string, form rules) outside `known`,
/// and every one given twice: for the routes that take no admin query extractor.
pub fn only_parameters(query: Option<&str>, known: &[&str]) -> Result<(), ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(());
    };
    let problems = Params::parse(query.as_bytes())?.problems(known);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::parameters(problems))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for StrictQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<StrictQuery, ApiError> {
        Ok(StrictQuery(parts.uri.clone()))
    }
}

/// `If-Match` / `If-None-Match` of a write (docs/api.md). Entity tags are revisions, written
/// `"3"` (an unquoted `3` is taken too); a tag that is not one of ours never matches, and a
/// weak tag never matches `If-Match` (RFC 9110 strong comparison).
impl<S: Send + Sync> FromRequestParts<S> for Condition {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Condition, std::convert::Infallible> {
        let tags = |name: header::HeaderName, weak_matches: bool| {
            let mut values = parts.headers.get_all(name).iter().peekable();
            values.peek()?;
            let mut revisions = Vec::new();
            for value in values {
                let value = value.to_str().unwrap_or("");
                for tag in value.split(',').map(str::trim) {
                    if tag == "*" {
                        return Some(Tags::Any);
                    }
                    let (weak, tag) = match tag.strip_prefix("W/") {
                        Some(rest) => (true, rest),
                        None => (false, tag),
                    };
                    let bare = tag
                        .strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'))
                        .unwrap_or(tag);
                    if let Ok(revision) = bare.parse::<i64>()
                        && (!weak || weak_matches)
                    {
                        revisions.push(revision);
                    }
                }
            }
            Some(Tags::Revisions(revisions))
        };
        Ok(Condition {
            if_match: tags(header::IF_MATCH, false),
            if_none_match: tags(header::IF_NONE_MATCH, true),
        })
    }
}

/// Who is writing — the super-admin's Sid or the operator's name (docs/security.md) — from
/// the client's address (the connection's peer; behind a proxy, the proxy's).
impl FromRequestParts<AppState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Origin, ApiError> {
        let caller = super::auth::caller(parts, state).await?;
        let remote_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip().to_string());
        Ok(Origin {
            actor: caller.actor(state),
            remote_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_unknown_names_are_problems() {
        let p = Params::parse(b"Enabled=true&Enabled=false&Enabled=x&Enable=true").unwrap();
        let problems = p.problems(&["Enabled", "ConfigurationData"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].0, "Enabled");
        assert_eq!(problems[1].0, "Enable");
        assert_eq!(p.get("Enabled"), Some("true"));
    }

    #[test]
    fn close_names_are_one_edit_apart() {
        for (a, b) in [
            ("AccountSid", "AccountSID"),
            ("header", "headers"),
            ("Enabled", "Enable"),
            ("explain", "explian"),
            ("PageSize", "PageSise"),
            ("to", "t"),
        ] {
            assert!(within_one_edit(a, b), "{a} {b}");
        }
        for (a, b) in [
            ("header", "head"),
            ("to", "at"),
            ("explain", "xeplian"),
            ("a", "bcd"),
        ] {
            assert!(!within_one_edit(a, b), "{a} {b}");
        }
        let (name, message) = unknown_parameter("AccountSID", &["AccountSid"]);
        assert_eq!(name, "AccountSID");
        assert!(message.contains("did you mean `AccountSid`?"), "{message}");
    }

    #[test]
    fn form_values_keep_their_bytes() {
        let p = Params::parse(b"ConfigurationData={\"a\": [1, 2]}\n&x").unwrap();
        assert_eq!(p.get("ConfigurationData"), Some("{\"a\": [1, 2]}\n"));
        assert_eq!(p.get("x"), Some(""));
        assert!(Params::parse(b"a=%ff").is_err());
    }

    #[test]
    fn a_flood_of_stray_names_lists_a_hundred_and_counts_the_rest() {
        let distinct: String = (0..5_000).map(|i| format!("a{i}&")).collect();
        let problems = Params::parse(distinct.as_bytes()).unwrap().problems(&["b"]);
        assert_eq!(problems.len(), 101);
        assert_eq!(problems[100].0, "a100");
        assert!(
            problems[100].1.starts_with("this and 4899 more"),
            "{:?}",
            problems[100]
        );
    }

    #[test]
    fn repeated_names_cost_linear_time() {
        // 120,000 repeated names: the quadratic check this replaced took 22 s.
        let body = "a&".repeat(120_000);
        let started = std::time::Instant::now();
        let p = Params::parse(body.as_bytes()).unwrap();
        assert_eq!(p.problems(&["b"]).len(), 2);
        let distinct: String = (0..120_000).map(|i| format!("a{i}&")).collect();
        let q = Params::parse(distinct.as_bytes()).unwrap();
        assert_eq!(q.duplicates().len(), 0);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    fn query(q: &str) -> StrictQuery {
        StrictQuery(format!("/x?{q}").parse().unwrap())
    }

    #[test]
    fn plus_is_literal_and_percent_escapes_decode() {
        assert_eq!(
            query("to=+15551234").one("to").unwrap().unwrap(),
            "+15551234"
        );
        assert_eq!(
            query("x=1&to=sip%3Abob%40uri1.com")
                .one("to")
                .unwrap()
                .unwrap(),
            "sip:bob@uri1.com"
        );
        assert_eq!(query("to=%2B1").one("to").unwrap().unwrap(), "+1");
        assert_eq!(query("x=1").one("to").unwrap(), None);
        assert!(query("to=1&to=2").one("to").is_err());
        for bad in ["to=%ZZ", "to=%ff", "to=%4", "to=%+A"] {
            assert!(query(bad).one("to").is_err(), "{bad}");
        }
        assert_eq!(query("to=a%0Db").one("to").unwrap().unwrap(), "a\rb");
    }

    fn condition(headers: &[(&str, &str)]) -> Condition {
        let mut request = axum::http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(Condition::from_request_parts(&mut parts, &()))
            .unwrap()
    }

    #[test]
    fn preconditions_parse() {
        assert_eq!(condition(&[]), Condition::default());
        let c = condition(&[("if-match", "\"3\", \"4\""), ("if-match", "5")]);
        assert_eq!(c.if_match, Some(Tags::Revisions(vec![3, 4, 5])));
        assert_eq!(condition(&[("if-match", "*")]).if_match, Some(Tags::Any));
        assert_eq!(
            condition(&[("if-match", "W/\"3\", \"x\"")]).if_match,
            Some(Tags::Revisions(vec![]))
        );
        assert_eq!(
            condition(&[("if-none-match", "W/\"3\"")]).if_none_match,
            Some(Tags::Revisions(vec![3]))
        );
        assert_eq!(
            condition(&[("if-none-match", "*")]).if_none_match,
            Some(Tags::Any)
        );
    }

    #[test]
    fn repeated_parameters_decode_in_order() {
        let q = query("to=1&header=To%3A%3Csip%3Aa%40b%3E&x=1&header=X-A:+1%26b&header");
        assert_eq!(q.all("header").unwrap(), ["To:<sip:a@b>", "X-A:+1&b", ""]);
        assert!(query("to=1").all("header").unwrap().is_empty());
        assert!(query("header=a%zz").all("header").is_err());
    }
}
