//! Authentication extractors: `SuperAdmin` for the admin API, `EngineOrAdmin` for lookups.
//!
//! Credentials are compared in constant time, and the Sid and the token are both compared
//! before deciding, so timing tells nothing about which one was wrong. Sids compare exactly
//! (Restcomm Sids are case-sensitive).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use subtle::{Choice, ConstantTimeEq};

use super::AppState;
use super::error::ApiError;

/// The request carries the super-admin's HTTP Basic credentials.
#[derive(Debug, Clone, Copy)]
pub struct SuperAdmin;

/// Who called a lookup endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineOrAdmin {
    /// `Authorization: Bearer $MULTIPROVIDER_ENGINE_TOKEN`, or HTTP Basic with the user
    /// `engine` and the engine token as password.
    Engine,
    /// The super-admin's basic auth.
    Admin,
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

impl FromRequestParts<AppState> for SuperAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<SuperAdmin, ApiError> {
        let given = credentials(&parts.headers);
        match &given {
            Credentials::Basic { user, password } if is_admin(state, user, password) => {
                Ok(SuperAdmin)
            }
            _ if is_engine_credentials(state, &given) => Err(ApiError::forbidden(
                "the engine token only grants the lookup API; the admin API needs the super-admin's credentials",
            )),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

impl FromRequestParts<AppState> for EngineOrAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<EngineOrAdmin, ApiError> {
        let given = credentials(&parts.headers);
        match &given {
            Credentials::Basic { user, password } if is_admin(state, user, password) => {
                Ok(EngineOrAdmin::Admin)
            }
            _ if is_engine_credentials(state, &given) => Ok(EngineOrAdmin::Engine),
            _ => Err(ApiError::unauthorized_engine()),
        }
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
