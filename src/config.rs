//! Settings from the environment and `serve` flags (docs/operations.md).
//!
//! Every setting (docs/operations.md) is also a flag; a flag wins over its variable. An empty variable
//! (`MULTIPROVIDER_ENGINE_TOKEN=` in a compose file) counts as unset, as shells and compose
//! files use it that way. Secrets are never printed: clap hides their environment values in
//! `--help`, and `Debug` of `ServeArgs` and `Settings` redacts them.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://multiprovider.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN_SID: &str = "ACae6e420f425248d6a26948c17a9e2acf";

// The flags of `multiprovider serve` (each also read from its environment variable). Plain
// comments, not doc comments: clap would show a struct's doc comment in `--help`.
//
// Every argument hides its environment value in `--help`: clap would otherwise print
// `[env: MULTIPROVIDER_LISTEN=]` for an unset variable (and the value of a set one, which
// for the secrets must never be shown).
#[derive(Clone, clap::Args)]
pub struct ServeArgs {
    /// Database: `sqlite://FILE` (created if missing) or `postgres://USER:PASS@HOST:PORT/DB`
    /// (`?sslmode=disable|prefer|require|verify-ca|verify-full&sslrootcert=FILE`).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// Listen address, `HOST:PORT`.
    #[arg(long, env = "MULTIPROVIDER_LISTEN", default_value = DEFAULT_LISTEN, hide_env_values = true)]
    pub listen: String,
    /// Super-admin account Sid (the basic-auth user).
    #[arg(long, env = "MULTIPROVIDER_ADMIN_SID", default_value = DEFAULT_ADMIN_SID, hide_env_values = true)]
    pub admin_sid: String,
    /// Super-admin auth token (the basic-auth password); generated and printed once when unset.
    #[arg(long, env = "MULTIPROVIDER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Bearer token of the lookup API; unset: engines use the admin credentials.
    #[arg(long, env = "MULTIPROVIDER_ENGINE_TOKEN", hide_env_values = true)]
    pub engine_token: Option<String>,
    /// 32-byte key (64 hex digits or base64): the whole stored configuration, so every proxy
    /// password in it, is encrypted at rest (AES-256-GCM); unset: stored as given.
    #[arg(long, env = "MULTIPROVIDER_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Keep only the newest N revisions of each configuration (unset: keep all).
    #[arg(
        long,
        env = "MULTIPROVIDER_HISTORY_LIMIT",
        value_name = "N",
        hide_env_values = true
    )]
    pub history_limit: Option<String>,
    /// PEM certificate chain: with --tls-key, the listener serves HTTPS only; re-read on SIGHUP.
    #[arg(
        long,
        env = "MULTIPROVIDER_TLS_CERT",
        value_name = "FILE",
        hide_env_values = true
    )]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1); re-read on SIGHUP.
    #[arg(
        long,
        env = "MULTIPROVIDER_TLS_KEY",
        value_name = "FILE",
        hide_env_values = true
    )]
    pub tls_key: Option<String>,
    /// Consecutive failures or timeouts that take a proxy down (docs/operations.md).
    #[arg(
        long,
        env = "MULTIPROVIDER_HEALTH_FAILURES",
        hide_env_values = true,
        value_name = "N",
        default_value = "5"
    )]
    pub health_failures: String,
    /// Seconds a down proxy waits before probing (docs/operations.md).
    #[arg(
        long,
        env = "MULTIPROVIDER_HEALTH_COOLDOWN",
        hide_env_values = true,
        value_name = "SECONDS",
        default_value = "30"
    )]
    pub health_cooldown: String,
    /// Seconds between SIP OPTIONS probes of every proxy (unset: no probing).
    #[arg(
        long,
        env = "MULTIPROVIDER_PROBE_INTERVAL",
        value_name = "SECONDS",
        hide_env_values = true
    )]
    pub probe_interval: Option<String>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(
        long = "log",
        visible_alias = "rust-log",
        env = "RUST_LOG",
        default_value = "info",
        hide_env_values = true
    )]
    pub log: String,
}

/// The server's clock (docs/routing.md: lookups read schedules at the server's time). The
/// system clock by default; a test sets another (`Clock::from_fn`).
#[derive(Clone, Default)]
pub struct Clock(Option<std::sync::Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>>);

impl Clock {
    /// A clock that answers `now`.
    pub fn from_fn(now: impl Fn() -> jiff::Timestamp + Send + Sync + 'static) -> Clock {
        Clock(Some(std::sync::Arc::new(now)))
    }

    pub fn now(&self) -> jiff::Timestamp {
        match &self.0 {
            Some(now) => now(),
            None => jiff::Timestamp::now(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(set)"
        } else {
            "Clock(system)"
        })
    }
}

// The flags of `multiprovider migrate`.
#[derive(Clone, clap::Args)]
pub struct MigrateArgs {
    /// Database: `sqlite://FILE` (created if missing) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(
        long = "log",
        visible_alias = "rust-log",
        env = "RUST_LOG",
        default_value = "info",
        hide_env_values = true
    )]
    pub log: String,
}

impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeArgs")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("admin_sid", &self.admin_sid)
            .field("admin_token", &self.admin_token.as_ref().map(|_| REDACTED))
            .field(
                "engine_token",
                &self.engine_token.as_ref().map(|_| REDACTED),
            )
            .field("secret_key", &self.secret_key.as_ref().map(|_| REDACTED))
            .field("history_limit", &self.history_limit)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("health_failures", &self.health_failures)
            .field("health_cooldown", &self.health_cooldown)
            .field("probe_interval", &self.probe_interval)
            .field("log", &self.log)
            .finish()
    }
}

impl fmt::Debug for MigrateArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrateArgs")
            .field("database_url", &redact_url(&self.database_url))
            .field("log", &self.log)
            .finish()
    }
}

const REDACTED: &str = "<redacted>";

/// The database URL with any password replaced, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    // scheme://user:password@host/... — only the part between the first ':' after the
    // scheme and the last '@' of the authority is secret.
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let password = if userinfo.contains(':') {
                ":<redacted>"
            } else {
                ""
            };
            format!("{scheme}://{user}{password}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Validated settings of a running server.
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub listen: SocketAddr,
    pub admin_sid: String,
    pub admin_token: String,
    /// True when `admin_token` was generated (it is then printed once at start).
    pub admin_token_generated: bool,
    pub engine_token: Option<String>,
    pub secret_key: Option<KeyMaterial>,
    /// Revisions kept per configuration; `None`: all.
    pub history_limit: Option<u32>,
    /// HTTPS (docs/operations.md): the certificate and key files; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Consecutive failures that take a proxy down (docs/operations.md).
    pub health_failures: u32,
    /// How long a down proxy waits before probing.
    pub health_cooldown: Duration,
    /// SIP OPTIONS probing interval; `None`: off.
    pub probe_interval: Option<Duration>,
    pub log: String,
    /// The instant lookups read schedules at: the system clock, or a test's.
    pub clock: Clock,
}

/// The PEM files of the HTTPS listener (read at start and again on every SIGHUP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("admin_sid", &self.admin_sid)
            .field("admin_token", &REDACTED)
            .field(
                "engine_token",
                &self.engine_token.as_ref().map(|_| REDACTED),
            )
            .field("secret_key", &self.secret_key.as_ref().map(|_| REDACTED))
            .field("history_limit", &self.history_limit)
            .field("tls", &self.tls)
            .field("health_failures", &self.health_failures)
            .field("health_cooldown", &self.health_cooldown)
            .field("probe_interval", &self.probe_interval)
            .field("log", &self.log)
            .finish()
    }
}

impl Settings {
    /// The documented defaults (docs/operations.md) for `database_url`, with a freshly generated admin token and the
    /// listen address `127.0.0.1:0` (tests and embedders change the fields they need).
    pub fn new(database_url: impl Into<String>) -> Settings {
        Settings {
            database_url: database_url.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_sid: DEFAULT_ADMIN_SID.to_owned(),
            admin_token: generate_token(),
            admin_token_generated: true,
            engine_token: None,
            secret_key: None,
            history_limit: None,
            tls: None,
            health_failures: DEFAULT_HEALTH_FAILURES,
            health_cooldown: DEFAULT_HEALTH_COOLDOWN,
            probe_interval: None,
            log: "info".to_owned(),
            clock: Clock::default(),
        }
    }

    /// Checks every setting; the error names the variable and never echoes a secret.
    pub fn from_args(args: ServeArgs) -> Result<Settings, String> {
        check_database_url(&args.database_url)?;
        let listen = parse_listen(&args.listen)?;
        let admin_sid = args.admin_sid;
        if admin_sid.is_empty()
            || admin_sid.contains(':')
            || admin_sid.chars().any(char::is_control)
        {
            return Err(
                "MULTIPROVIDER_ADMIN_SID must be non-empty, without ':' or control characters"
                    .into(),
            );
        }
        let (admin_token, admin_token_generated) = match non_empty(args.admin_token) {
            Some(token) => {
                check_token("MULTIPROVIDER_ADMIN_TOKEN", &token)?;
                (token, false)
            }
            None => (generate_token(), true),
        };
        let engine_token = non_empty(args.engine_token);
        if let Some(token) = &engine_token {
            check_token("MULTIPROVIDER_ENGINE_TOKEN", token)?;
        }
        let secret_key = match non_empty(args.secret_key) {
            Some(key) => Some(
                KeyMaterial::parse(&key)
                    .map_err(|e| format!("MULTIPROVIDER_SECRET_KEY is invalid: {e}"))?,
            ),
            None => None,
        };
        let history_limit = parse_history_limit(non_empty(args.history_limit).as_deref())?;
        let tls = match (non_empty(args.tls_cert), non_empty(args.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    "MULTIPROVIDER_TLS_CERT is set but MULTIPROVIDER_TLS_KEY is not: \
                     HTTPS needs both files (or neither, for plain HTTP)"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "MULTIPROVIDER_TLS_KEY is set but MULTIPROVIDER_TLS_CERT is not: \
                     HTTPS needs both files (or neither, for plain HTTP)"
                        .into(),
                );
            }
        };
        // An empty variable counts as unset: the default.
        let health_failures = match args.health_failures.as_str() {
            "" => DEFAULT_HEALTH_FAILURES,
            v => parse_health_failures(v)?,
        };
        let health_cooldown = match args.health_cooldown.as_str() {
            "" => DEFAULT_HEALTH_COOLDOWN,
            v => parse_seconds("MULTIPROVIDER_HEALTH_COOLDOWN", v)?,
        };
        let probe_interval = non_empty(args.probe_interval)
            .map(|v| parse_seconds("MULTIPROVIDER_PROBE_INTERVAL", &v))
            .transpose()?;
        tracing_subscriber::EnvFilter::try_new(&args.log)
            .map_err(|e| format!("RUST_LOG is invalid: {e}"))?;
        Ok(Settings {
            database_url: args.database_url,
            listen,
            admin_sid,
            admin_token,
            admin_token_generated,
            engine_token,
            secret_key,
            history_limit,
            tls,
            health_failures,
            health_cooldown,
            probe_interval,
            log: args.log,
            clock: Clock::default(),
        })
    }
}

pub const DEFAULT_HEALTH_FAILURES: u32 = 5;
pub const DEFAULT_HEALTH_COOLDOWN: Duration = Duration::from_secs(30);
/// The longest cool-down or probing interval accepted: a day.
const MAX_SECONDS: u64 = 86_400;

/// `MULTIPROVIDER_HEALTH_FAILURES`: a whole number from 1 to 1000.
pub fn parse_health_failures(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!(
            "MULTIPROVIDER_HEALTH_FAILURES must be a whole number of failures from 1 to 1000, got {value:?}"
        )),
    }
}

/// A whole number of seconds from 1 to a day, for the variable `name`.
pub fn parse_seconds(name: &str, value: &str) -> Result<Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "{name} must be a whole number of seconds from 1 to {MAX_SECONDS}, got {value:?}"
        )),
    }
}

/// `MULTIPROVIDER_HISTORY_LIMIT`: a whole number of revisions, at least 1.
pub fn parse_history_limit(value: Option<&str>) -> Result<Option<u32>, String> {
    match value.map(str::trim) {
        None => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!(
                "MULTIPROVIDER_HISTORY_LIMIT must be a whole number of revisions from 1 to {}, got {v:?}",
                u32::MAX
            )),
        },
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn check_token(name: &str, token: &str) -> Result<(), String> {
    // Header values cannot carry control characters, so such a token could never match.
    if token.chars().any(char::is_control) {
        return Err(format!("{name} must not contain control characters"));
    }
    Ok(())
}

pub fn check_database_url(url: &str) -> Result<(), String> {
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if known.iter().any(|p| url.starts_with(p)) {
        Ok(())
    } else {
        Err("DATABASE_URL must start with sqlite:// or postgres://".into())
    }
}

fn parse_listen(listen: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = listen.parse() {
        return Ok(addr);
    }
    // `localhost:8080` and other names: resolved once at start.
    listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("MULTIPROVIDER_LISTEN must be HOST:PORT, got {listen:?}"))
}

/// The 32 bytes of `MULTIPROVIDER_SECRET_KEY`: parsed here, with the other settings, so that
/// a bad key is refused before anything starts; `secret::SecretKey` turns them into a cipher.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(pub [u8; 32]);

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// Standard base64 alphabet, padding optional on input.
pub(crate) const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl KeyMaterial {
    /// Parses 64 hex digits (either case) or standard base64 (padding optional) that decodes
    /// to exactly 32 bytes. Surrounding whitespace is ignored. Error messages never echo the
    /// input.
    pub fn parse(s: &str) -> Result<KeyMaterial, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the secret key is empty".into());
        }
        let mut key = [0u8; 32];
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode_to_slice(s, &mut key).map_err(|_| "the secret key is not valid hex")?;
            return Ok(KeyMaterial(key));
        }
        match BASE64_LENIENT.decode(s) {
            Ok(bytes) if bytes.len() == 32 => {
                key.copy_from_slice(&bytes);
                Ok(KeyMaterial(key))
            }
            Ok(bytes) => Err(format!(
                "the secret key must be 32 bytes (64 hex digits or base64), got {} bytes of base64",
                bytes.len()
            )),
            Err(_) => {
                Err("the secret key must be 32 bytes given as 64 hex digits or base64".into())
            }
        }
    }
}

/// A random admin token: 32 lowercase hex digits, the shape of a Restcomm auth token.
pub fn generate_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            database_url: DEFAULT_DATABASE_URL.into(),
            listen: DEFAULT_LISTEN.into(),
            admin_sid: DEFAULT_ADMIN_SID.into(),
            admin_token: Some("admintoken".into()),
            engine_token: Some("enginetoken".into()),
            secret_key: None,
            history_limit: None,
            tls_cert: None,
            tls_key: None,
            health_failures: "5".into(),
            health_cooldown: "30".into(),
            probe_interval: None,
            log: "info".into(),
        }
    }

    #[test]
    fn health_settings() {
        let s = Settings::from_args(args()).unwrap();
        assert_eq!(
            (s.health_failures, s.health_cooldown, s.probe_interval),
            (5, Duration::from_secs(30), None)
        );
        let mut a = args();
        a.health_failures = "3".into();
        a.health_cooldown = " 10 ".into();
        a.probe_interval = Some("15".into());
        let s = Settings::from_args(a).unwrap();
        assert_eq!(
            (s.health_failures, s.health_cooldown, s.probe_interval),
            (3, Duration::from_secs(10), Some(Duration::from_secs(15)))
        );
        let mut a = args();
        a.probe_interval = Some(String::new());
        assert_eq!(Settings::from_args(a).unwrap().probe_interval, None);
        for (failures, cooldown, interval, named) in [
            ("0", "30", None, "MULTIPROVIDER_HEALTH_FAILURES"),
            ("x", "30", None, "MULTIPROVIDER_HEALTH_FAILURES"),
            ("1001", "30", None, "MULTIPROVIDER_HEALTH_FAILURES"),
            ("5", "0", None, "MULTIPROVIDER_HEALTH_COOLDOWN"),
            ("5", "1.5", None, "MULTIPROVIDER_HEALTH_COOLDOWN"),
            ("5", "86401", None, "MULTIPROVIDER_HEALTH_COOLDOWN"),
            ("5", "30", Some("0"), "MULTIPROVIDER_PROBE_INTERVAL"),
            ("5", "30", Some("-1"), "MULTIPROVIDER_PROBE_INTERVAL"),
        ] {
            let mut a = args();
            a.health_failures = failures.into();
            a.health_cooldown = cooldown.into();
            a.probe_interval = interval.map(Into::into);
            let e = Settings::from_args(a).unwrap_err();
            assert!(e.contains(named), "{e}");
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut a = args();
        a.database_url = "postgres://user:pw123@db:5432/x".into();
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("admintoken")
                && !shown.contains("enginetoken")
                && !shown.contains("pw123")
        );
        let settings = Settings::from_args(a).unwrap();
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("admintoken")
                && !shown.contains("enginetoken")
                && !shown.contains("pw123")
        );
        assert!(shown.contains("postgres://user:<redacted>@db:5432/x"));
    }

    #[test]
    fn invalid_settings_are_refused() {
        let mut a = args();
        a.listen = "not an address".into();
        assert!(
            Settings::from_args(a)
                .unwrap_err()
                .contains("MULTIPROVIDER_LISTEN")
        );
        let mut a = args();
        a.database_url = "mysql://x".into();
        assert!(Settings::from_args(a).unwrap_err().contains("DATABASE_URL"));
        let mut a = args();
        a.secret_key = Some("tooshort".into());
        assert!(
            Settings::from_args(a)
                .unwrap_err()
                .contains("MULTIPROVIDER_SECRET_KEY")
        );
    }

    #[test]
    fn tls_needs_both_files_or_neither() {
        let mut a = args();
        a.tls_cert = Some("cert.pem".into());
        let e = Settings::from_args(a).unwrap_err();
        assert!(e.contains("MULTIPROVIDER_TLS_KEY"), "{e}");
        let mut a = args();
        a.tls_key = Some("key.pem".into());
        let e = Settings::from_args(a).unwrap_err();
        assert!(e.contains("MULTIPROVIDER_TLS_CERT"), "{e}");
        let mut a = args();
        (a.tls_cert, a.tls_key) = (Some(String::new()), Some(String::new()));
        assert_eq!(Settings::from_args(a).unwrap().tls, None);
        let mut a = args();
        (a.tls_cert, a.tls_key) = (Some("c.pem".into()), Some("k.pem".into()));
        assert_eq!(
            Settings::from_args(a).unwrap().tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
    }

    #[test]
    fn missing_or_empty_admin_token_is_generated() {
        let mut a = args();
        a.admin_token = Some(String::new());
        let s = Settings::from_args(a).unwrap();
        assert!(s.admin_token_generated);
        assert_eq!(s.admin_token.len(), 32);
    }

    #[test]
    fn redact_url_keeps_url_without_password() {
        assert_eq!(
            redact_url("sqlite://multiprovider.db"),
            "sqlite://multiprovider.db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
