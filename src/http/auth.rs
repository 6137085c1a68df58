//! Authentication extractors: `Reader` and `Writer` for the admin API, `EngineOrAdmin` for
//! lookups (docs/security.md).
//!
//! The super-admin's credentials are compared in constant time, and the Sid and the token
//! are both compared before deciding, so timing tells nothing about which one was wrong.
//! Sids compare exactly (Restcomm Sids are case-sensitive). Any other basic-auth user is an
//! operator name, decided by `crate::operators` (Argon2id off the async workers, constant
//! time for unknown names, the lockout after repeated failures).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use subtle::{Choice, ConstantTimeEq};

use super::AppState;
use super::error::ApiError;
use crate::operators::{Refusal, Role, Verified};

/// Who called the admin API (docs/security.md): the super-admin or a named operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// `MULTIPROVIDER_ADMIN_SID:MULTIPROVIDER_ADMIN_TOKEN`.
    SuperAdmin,
    /// `NAME:password` of an operator.
    Operator(Verified),
}

impl Caller {
    /// A viewer sees every proxy password as `********`.
    pub fn masks(&self) -> bool {
        matches!(self, Caller::Operator(v) if v.role == Role::Viewer)
    }

    /// The super-admin and editors may change things.
    pub fn may_write(&self) -> bool {
        !self.masks()
    }

    /// The `actor` of the revisions this caller writes: the super-admin's Sid, or the
    /// operator's name.
    pub fn actor(&self, state: &AppState) -> String {
        match self {
            Caller::SuperAdmin => state.settings.admin_sid.clone(),
            Caller::Operator(v) => v.name.to_string(),
        }
    }
}

/// Any caller of the admin API; it may read (a viewer: passwords masked).
#[derive(Debug, Clone)]
pub struct Reader(pub Caller);

/// A caller of the admin API who may change things: the super-admin or an editor. A viewer
/// is answered 403.
#[derive(Debug, Clone)]
pub struct Writer(pub Caller);

/// Who called a lookup endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineOrAdmin {
    /// `Authorization: Bearer $MULTIPROVIDER_ENGINE_TOKEN`, or HTTP Basic with the user
    /// `engine` and the engine token as password.
    Engine,
    /// The super-admin's basic auth, or an editor's.
    Admin,
    /// A viewer's basic auth: answers show proxy passwords as `********`.
    Viewer,
}

impl EngineOrAdmin {
    /// Whether the answer must mask proxy passwords.
    pub fn masks(self) -> bool {
        self == EngineOrAdmin::Viewer
    }

    /// A viewer may look up, explain and simulate, not report or change anything.
    pub fn writer(self) -> Result<EngineOrAdmin, ApiError> {
        match self {
            EngineOrAdmin::Viewer => Err(viewer_forbidden()),
            other => Ok(other),
        }
    }
}

/// The request's credentials, decided once and kept in the request's extensions.
#[derive(Debug, Clone)]
enum Authenticated {
    Engine,
    Caller(Caller),
}

enum Credentials<'a> {
    None,
    Basic { user: String, password: String },
    Bearer(&'a str),
    Malformed,
}

fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Credentials::None;
    };
    if values.next().is_some() {
        return Credentials::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return Credentials::Malformed;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return Credentials::Malformed;
        };
        match decoded.split_once(':') {
            Some((user, password)) => Credentials::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            },
            None => Credentials::Malformed,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Credentials::Bearer(rest)
    } else {
        Credentials::Malformed
    }
}

/// Constant-time equality whose duration depends only on the length of `expected`.
fn ct_eq(given: &[u8], expected: &[u8]) -> Choice {
    let mut same = (given.len() as u64).ct_eq(&(expected.len() as u64));
    for (i, e) in expected.iter().enumerate() {
        same &= given.get(i).copied().unwrap_or(0).ct_eq(e);
    }
    same
}

fn is_admin(state: &AppState, user: &str, password: &str) -> bool {
    let settings = &state.settings;
    // `&` on Choice evaluates both comparisons: no short-circuit on a wrong Sid.
    let ok = ct_eq(user.as_bytes(), settings.admin_sid.as_bytes())
        & ct_eq(password.as_bytes(), settings.admin_token.as_bytes());
    ok.into()
}

/// The user name under which HTTP Basic credentials carry the engine token (docs/security.md:
/// clients whose pooled connections cannot send a Bearer header, such as Kamailio 5.6's
/// named `http_client` connections).
pub const ENGINE_USER: &str = "engine";

/// True when `headers` carry the engine token, as a bearer token or as Basic credentials
/// of the user `engine` (the lookups' fast path; anything else goes through
/// `EngineOrAdmin`).
pub fn bears_engine_token(state: &AppState, headers: &HeaderMap) -> bool {
    is_engine_credentials(state, &credentials(headers))
}

/// The engine token, in either of its two forms; both parts of Basic credentials are
/// compared before deciding.
fn is_engine_credentials(state: &AppState, credentials: &Credentials<'_>) -> bool {
    match credentials {
        Credentials::Bearer(token) => is_engine(state, token),
        Credentials::Basic { user, password } => {
            let user_ok = ct_eq(user.as_bytes(), ENGINE_USER.as_bytes());
            let token_ok = match &state.settings.engine_token {
                Some(expected) => ct_eq(password.as_bytes(), expected.as_bytes()),
                None => Choice::from(0),
            };
            (user_ok & token_ok).into()
        }
        _ => false,
    }
}

fn is_engine(state: &AppState, token: &str) -> bool {
    match &state.settings.engine_token {
        Some(expected) => ct_eq(token.as_bytes(), expected.as_bytes()).into(),
        None => false,
    }
}

/// Decides the request's credentials (once per request: the answer is kept in its
/// extensions, so the extractors of one handler share it).
async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Authenticated, ApiError> {
    if let Some(known) = parts.extensions.get::<Authenticated>() {
        return Ok(known.clone());
    }
    let given = credentials(&parts.headers);
    if is_engine_credentials(state, &given) {
        return Ok(Authenticated::Engine);
    }
    let decided = match given {
        Credentials::Basic { user, password } => {
            // Both comparisons always run (`is_admin`), whichever is wrong.
            if is_admin(state, &user, &password) {
                Authenticated::Caller(Caller::SuperAdmin)
            } else if user == ENGINE_USER {
                // The engine token's Basic user with a wrong token: never an operator's name.
                return Err(ApiError::unauthorized());
            } else if user.eq_ignore_ascii_case(&state.settings.admin_sid) {
                // The super-admin's Sid (in any case) with a wrong token: not an operator's
                // name, and never a name that a lockout could take from the super-admin.
                return Err(ApiError::unauthorized());
            } else {
                match state.operators.authenticate(&user, &password).await {
                    Ok(verified) => Authenticated::Caller(Caller::Operator(verified)),
                    Err(Refusal::Wrong) => return Err(ApiError::unauthorized()),
                    Err(Refusal::Locked { remaining }) => return Err(locked_out(remaining)),
                    Err(Refusal::Unavailable) => return Err(ApiError::unavailable()),
                }
            }
        }
        _ => return Err(ApiError::unauthorized()),
    };
    // Kept for the handler's other extractors (`Origin`); the engine's lookups have none, and
    // skip the allocation.
    if let Authenticated::Caller(_) = &decided {
        parts.extensions.insert(decided.clone());
    }
    Ok(decided)
}

/// 429: the name had too many failed logins (docs/security.md).
fn locked_out(remaining: std::time::Duration) -> ApiError {
    let minutes = remaining.as_secs().div_ceil(60).max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many failed logins for this name: it is locked out for {minutes} more minute(s)"
        ),
    )
}

/// 403 for a viewer's write.
fn viewer_forbidden() -> ApiError {
    ApiError::forbidden(
        "the viewer role may read, look up, explain and simulate, not change anything; \
         an editor or the super-admin may",
    )
}

fn engine_on_admin_route() -> ApiError {
    ApiError::forbidden(
        "the engine token only grants the lookup API; the admin API needs the super-admin's or an operator's credentials",
    )
}

/// The admin API's caller (the engine token: 403).
pub(super) async fn caller(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
    match authenticate(parts, state).await? {
        Authenticated::Caller(caller) => Ok(caller),
        Authenticated::Engine => Err(engine_on_admin_route()),
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Reader, ApiError> {
        caller(parts, state).await.map(Reader)
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Writer, ApiError> {
        let caller = caller(parts, state).await?;
        if caller.may_write() {
            Ok(Writer(caller))
        } else {
            Err(viewer_forbidden())
        }
    }
}

impl FromRequestParts<AppState> for EngineOrAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<EngineOrAdmin, ApiError> {
        // A 401 on the routes engines call names the engine token too.
        let decided = authenticate(parts, state).await.map_err(|e| {
            if e.status == StatusCode::UNAUTHORIZED {
                ApiError::unauthorized_engine()
            } else {
                e
            }
        })?;
        Ok(match decided {
            Authenticated::Engine => EngineOrAdmin::Engine,
            Authenticated::Caller(caller) if caller.masks() => EngineOrAdmin::Viewer,
            Authenticated::Caller(_) => EngineOrAdmin::Admin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_matches_plain_equality() {
        for (a, b) in [
            ("", ""),
            ("a", "a"),
            ("a", "b"),
            ("ab", "a"),
            ("a", "ab"),
            ("token", "token"),
        ] {
            assert_eq!(
                bool::from(ct_eq(a.as_bytes(), b.as_bytes())),
                a == b,
                "{a:?} {b:?}"
            );
        }
    }
}
