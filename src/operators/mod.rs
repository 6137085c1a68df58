//! Named operators (docs/security.md): who they are, how their passwords are kept, and how a
//! login is decided — the one rule the admin API and the console share.
//!
//! - Passwords are Argon2id hashes (the `argon2` crate's default parameters), verified on
//!   dedicated low-priority threads (`verifier`) with bounded concurrency, so that a flood
//!   of bad logins neither blocks the async workers nor takes the CPU from lookups.
//! - An unknown name costs what a known one does: its password is verified against a dummy
//!   hash, and its failure is recorded the same way (no user enumeration by timing).
//! - Five failed logins for one name within 15 minutes lock that name out for the rest of
//!   those 15 minutes; the failures are rows in the database, so every instance agrees.
//! - A verified credential is remembered for `CACHE_TTL`, keyed by an HMAC of
//!   `name:password` under a per-process random key (never the password itself). The TTL is
//!   under a second, so a removal, a new password or role, or a lockout made by the CLI or
//!   on another instance takes effect within a second without any signal between processes.

pub mod command;
mod verifier;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::OnceCell;

use crate::store::{OperatorRow, Store, StoreError};

pub use verifier::Verifier;

/// What an operator may do through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads (every proxy password masked), looks up, explains, simulates.
    Viewer,
    /// Everything the super-admin may do through the API.
    Editor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            _ => None,
        }
    }
}

/// Longest operator name.
pub const MAX_NAME: usize = 64;
/// Shortest password.
pub const MIN_PASSWORD: usize = 12;
/// Longest password accepted (Argon2 takes any length; this bounds the work per request).
pub const MAX_PASSWORD: usize = 1024;
/// Failed logins within `LOCKOUT_WINDOW` that lock a name out.
pub const LOCKOUT_FAILURES: i64 = 5;
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long a verified credential is remembered (see the module's documentation).
pub const CACHE_TTL: Duration = Duration::from_millis(800);
/// Remembered credentials at most (a flood of distinct valid ones cannot grow memory).
const CACHE_MAX: usize = 10_000;

/// The Basic user name of the engine token (docs/security.md): never an operator's.
pub const RESERVED_NAME: &str = "engine";

/// Checks an operator name: 1–64 of `a-z 0-9 . _ -`, not `engine`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "operator names are 1 to {MAX_NAME} characters (got {})",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
    {
        return Err(format!(
            "operator names use only a-z 0-9 . _ - (found {:?})",
            bad
        ));
    }
    if name == RESERVED_NAME {
        return Err(format!(
            "`{RESERVED_NAME}` is reserved: it is the user name under which HTTP Basic credentials \
             carry the engine token"
        ));
    }
    Ok(())
}

/// Checks a new password: at least 12 characters, no control characters.
pub fn check_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        return Err(format!(
            "passwords are at least {MIN_PASSWORD} characters (got {length})"
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("passwords are at most {MAX_PASSWORD} bytes"));
    }
    if password.chars().any(char::is_control) {
        return Err("passwords must not contain control characters".into());
    }
    Ok(())
}

/// A new random password: 24 letters and digits (about 143 bits).
pub fn generate_password() -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// The Argon2id hash of `password` (PHC string), with a random salt.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes encode");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches `hash` (false for a hash that does not parse).
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Unix microseconds now.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown name or wrong password (which one is not said).
    Wrong,
    /// The name is locked out for this long yet.
    Locked { remaining: Duration },
    /// The database could not answer.
    Unavailable,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        tracing::warn!(error = %e, "operator login: database unavailable");
        Refusal::Unavailable
    }
}

/// A verified operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub name: Arc<str>,
    pub role: Role,
}

struct Remembered {
    verified: Verified,
    until: Instant,
}

/// Decides operator logins (shared by every request of a process).
pub struct Authenticator {
    store: Store,
    verifier: Verifier,
    /// The key of the credential cache's HMAC; random per process.
    key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], Remembered>>,
    /// Verified against for unknown names, so that they cost what known ones do.
    dummy_hash: OnceCell<String>,
}

impl Authenticator {
    pub fn new(store: Store) -> Authenticator {
        Authenticator {
            store,
            verifier: Verifier::new(Verifier::default_threads()),
            key: rand::random(),
            cache: Mutex::new(HashMap::new()),
            dummy_hash: OnceCell::new(),
        }
    }

    fn cache_key(&self, name: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(name.as_bytes());
        mac.update(b":");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn remembered(&self, key: &[u8; 32]) -> Option<Verified> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|r| r.until > Instant::now())
            .map(|r| r.verified.clone())
    }

    fn remember(&self, key: [u8; 32], verified: Verified) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, r| r.until > now);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Remembered {
                verified,
                until: now + CACHE_TTL,
            },
        );
    }

    /// Forgets the remembered credentials of `name`.
    fn forget(&self, name: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, r| &*r.verified.name != name);
    }

    /// How long `name` stays locked out, if it is.
    pub async fn locked_for(&self, name: &str) -> Result<Option<Duration>, StoreError> {
        let now = now_micros();
        let window = LOCKOUT_WINDOW.as_micros() as i64;
        let oldest = self
            .store
            .oldest_of_recent_failures(name, now - window, LOCKOUT_FAILURES)
            .await?;
        Ok(oldest.map(|oldest| {
            let remaining = (oldest + window - now).max(1_000_000);
            Duration::from_micros(remaining as u64)
        }))
    }

    /// Decides a login of `name` with `password`.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<Verified, Refusal> {
        // Not an operator name (a Sid, a stray user): no operator can have it, nothing to
        // lock or to time.
        if check_name(name).is_err() || password.len() > MAX_PASSWORD {
            return Err(Refusal::Wrong);
        }
        let key = self.cache_key(name, password);
        if let Some(verified) = self.remembered(&key) {
            return Ok(verified);
        }
        let verified = self.verify(name, password).await?;
        self.remember(key, verified.clone());
        Ok(verified)
    }

    async fn verify(&self, name: &str, password: &str) -> Result<Verified, Refusal> {
        // One verification per free thread; the others wait here, and see a lockout that
        // the ones before them completed.
        let _turn = self.verifier.turn().await;
        if let Some(remaining) = self.locked_for(name).await? {
            tracing::warn!(
                operator = name,
                remaining_s = remaining.as_secs(),
                "login refused: the name is locked out after repeated failures"
            );
            return Err(Refusal::Locked { remaining });
        }
        let row = self.store.operator(name).await?;
        let role = row.as_ref().and_then(|r| Role::parse(&r.role));
        let hash = match (&row, role) {
            (Some(row), Some(_)) => row.password_hash.clone(),
            _ => self.dummy_hash().await,
        };
        let matches = self.verifier.verify(hash, password.to_owned()).await;
        match (matches, role) {
            (true, Some(role)) => {
                let store = self.store.clone();
                let owned = name.to_owned();
                // Last login is information, not a condition: never make the caller wait.
                tokio::spawn(async move {
                    if let Err(e) = store.touch_operator(&owned, now_micros()).await {
                        tracing::debug!(error = %e, "cannot record an operator's last login");
                    }
                });
                Ok(Verified {
                    name: Arc::from(name),
                    role,
                })
            }
            _ => {
                let now = now_micros();
                let window = LOCKOUT_WINDOW.as_micros() as i64;
                self.store
                    .record_login_failure(name, now, now - window)
                    .await?;
                if self.store.login_failures_since(name, now - window).await? >= LOCKOUT_FAILURES {
                    tracing::warn!(
                        operator = name,
                        "name locked out for 15 minutes after {LOCKOUT_FAILURES} failed logins"
                    );
                    // Locked means locked, even for a credential verified a moment ago.
                    self.forget(name);
                } else {
                    tracing::info!(operator = name, "failed login");
                }
                Err(Refusal::Wrong)
            }
        }
    }

    async fn dummy_hash(&self) -> String {
        self.dummy_hash
            .get_or_init(|| async {
                self.verifier
                    .run(|| hash_password("not a password anyone has"))
                    .await
            })
            .await
            .clone()
    }
}

/// A new operator's row.
pub fn new_operator(name: &str, role: Role, password: &str) -> OperatorRow {
    OperatorRow {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        password_hash: hash_password(password),
        created: now_micros(),
        last_login: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for good in ["a", "alice", "ops.team_1-x", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Alice",
            "al ice",
            "al:ice",
            "é",
            "engine",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_long_enough() {
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password("eleven char").is_err());
        assert!(check_password("twelve\tchars").is_err());
        assert_eq!(generate_password().len(), 24);
        assert!(check_password(&generate_password()).is_ok());
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery!"));
        assert!(!verify_password("not a hash", "x"));
    }
}
