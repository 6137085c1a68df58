//! Why a database could not be opened at start, in one line that names the cause and the fix
//! (docs/operations.md). Only the connect functions use this: once running, `From<sqlx::Error>` is
//! enough, as the operator already knows which database it is.
//!
//! No message carries the password of `DATABASE_URL`: they name host, port, user, database
//! and file paths only, and quote PostgreSQL's own messages, which never hold a password.

use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::StoreError;

/// What the PostgreSQL connection was meant to be, for the messages.
pub(super) struct PgTarget {
    /// `host:port`, or the Unix socket's path.
    pub address: String,
    pub host: String,
    pub user: String,
    pub database: String,
    pub ssl_mode: PgSslMode,
    /// `sslrootcert` of the URL (or `PGSSLROOTCERT`), when given. sqlx trusts it in addition
    /// to the public CAs of webpki-roots.
    pub root_cert: Option<String>,
}

impl PgTarget {
    pub fn new(url: &str, options: &PgConnectOptions) -> PgTarget {
        let address = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        PgTarget {
            address,
            host: options.get_host().to_owned(),
            user: options.get_username().to_owned(),
            database: options
                .get_database()
                .unwrap_or(options.get_username())
                .to_owned(),
            ssl_mode: options.get_ssl_mode(),
            root_cert: root_cert(url),
        }
    }

    fn ssl_mode(&self) -> &'static str {
        match self.ssl_mode {
            PgSslMode::Disable => "disable",
            PgSslMode::Allow => "allow",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }

    fn trusted(&self) -> String {
        match &self.root_cert {
            Some(path) => format!("the CA in sslrootcert {path}"),
            None => "a public CA (no sslrootcert given)".to_owned(),
        }
    }
}

/// `sslrootcert` (or its sqlx aliases) from the URL's query, else `PGSSLROOTCERT`, as sqlx
/// reads them.
fn root_cert(url: &str) -> Option<String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let from_url = query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        matches!(name, "sslrootcert" | "ssl-root-cert" | "ssl-ca").then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    });
    from_url.or_else(|| std::env::var("PGSSLROOTCERT").ok())
}

fn unavailable(message: String) -> StoreError {
    StoreError::Unavailable(message)
}

/// The first connection to PostgreSQL did not open.
pub(super) fn postgres(target: &PgTarget, e: sqlx::Error) -> StoreError {
    let address = &target.address;
    match e {
        sqlx::Error::Io(io) => {
            let tls = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            let refused = io.kind() == std::io::ErrorKind::ConnectionRefused;
            if refused {
                return unavailable(format!(
                    "connection refused by {address}: no PostgreSQL listens there; start it, \
                     or fix the host and port in DATABASE_URL"
                ));
            }
            // sqlx reads sslrootcert once connected: a bad file shows up as an I/O error,
            // or (no certificate in it) as an unknown issuer.
            if let Some(message) = unreadable_root_cert(target) {
                return unavailable(message);
            }
            match tls {
                Some(tls) => tls_failure(target, tls),
                None => unavailable(format!(
                    "cannot reach {address}: {io}; check the host and port in DATABASE_URL \
                     and the network between them"
                )),
            }
        }
        sqlx::Error::Tls(tls) => {
            if let Some(message) = unreadable_root_cert(target) {
                return unavailable(message);
            }
            if let Some(rustls) = tls.downcast_ref::<rustls::Error>() {
                return tls_failure(target, rustls);
            }
            let text = tls.to_string();
            if text.contains("does not support TLS") {
                unavailable(format!(
                    "{address} does not accept TLS, but DATABASE_URL requires it \
                     (sslmode={}): switch ssl on in the server's postgresql.conf, or use \
                     sslmode=prefer or sslmode=disable",
                    target.ssl_mode()
                ))
            } else if text.starts_with("Invalid certificate") {
                unavailable(format!(
                    "sslrootcert {} is not a PEM certificate: point sslrootcert in DATABASE_URL \
                     at the CA certificate (PEM) that signed the server's certificate",
                    target.root_cert.as_deref().unwrap_or("")
                ))
            } else {
                unavailable(format!(
                    "TLS with {address} failed: {text}; check sslmode and sslrootcert in \
                     DATABASE_URL"
                ))
            }
        }
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            let (user, database) = (&target.user, &target.database);
            match db.code().as_deref() {
                Some("3D000") => unavailable(format!(
                    "database \"{database}\" does not exist on {address}: create it \
                     (CREATE DATABASE \"{database}\") or fix the database name in DATABASE_URL"
                )),
                Some("28000") if message.contains("no encryption") => unavailable(format!(
                    "{address} requires TLS for user \"{user}\" (the server said: {message}): \
                     add sslmode=require (or verify-full) to DATABASE_URL"
                )),
                Some("28P01" | "28000") => unavailable(format!(
                    "authentication failed for user \"{user}\" on {address} (the server said: \
                     {message}): check the user name and password in DATABASE_URL"
                )),
                Some("53300") => unavailable(format!(
                    "{address} has no connection left (the server said: {message}): raise its \
                     max_connections or close other clients' connections"
                )),
                Some("57P03") => unavailable(format!(
                    "{address} is starting up or shutting down (the server said: {message}): \
                     start again once it accepts connections"
                )),
                Some(code) => unavailable(format!(
                    "{address} refused the connection: {message} (SQLSTATE {code})"
                )),
                None => unavailable(format!("{address} refused the connection: {message}")),
            }
        }
        sqlx::Error::Protocol(_) => unavailable(format!(
            "{address} does not answer like a PostgreSQL server: check the port in DATABASE_URL"
        )),
        other => other.into(),
    }
}

/// What is wrong with the `sslrootcert` file, if anything.
fn unreadable_root_cert(target: &PgTarget) -> Option<String> {
    // Only the verifying modes read it.
    if !matches!(target.ssl_mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull) {
        return None;
    }
    let path = target.root_cert.as_deref()?;
    if path.trim_start().starts_with("-----BEGIN") {
        return None;
    }
    match std::fs::read(path) {
        Err(e) => Some(format!(
            "cannot read sslrootcert {path}: {e}; fix the path of sslrootcert in DATABASE_URL"
        )),
        Ok(pem) if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") => {
            Some(format!(
                "sslrootcert {path} holds no PEM certificate: point sslrootcert in DATABASE_URL \
                 at the CA certificate (PEM) that signed the server's certificate"
            ))
        }
        Ok(_) => None,
    }
}

fn tls_failure(target: &PgTarget, e: &rustls::Error) -> StoreError {
    use rustls::CertificateError as C;
    let address = &target.address;
    let mode = target.ssl_mode();
    let message = match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "the TLS certificate of {address} is not signed by {} (sslmode={mode}): set \
             sslrootcert in DATABASE_URL to the CA certificate that signed the server's, or use \
             sslmode=require to encrypt without verifying the server",
            target.trusted()
        ),
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) if matches!(target.ssl_mode, PgSslMode::VerifyCa) => {
            // sqlx 0.8 forgives only the older of rustls' two name-mismatch errors, so
            // verify-ca checks the name too (launchbadge/sqlx#3793, fixed in sqlx 0.9).
            format!(
                "the TLS certificate of {address} is not valid for the name {}: sslmode=verify-ca \
                 should not check the name, but this build (sqlx 0.8) does; connect with a host \
                 name that the certificate names, or use sslmode=require",
                target.host
            )
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!(
                "the TLS certificate of {address} is not valid for the name {} \
                 (sslmode=verify-full): connect with a host name that the certificate names (as \
                 the DATABASE_URL host), or use sslmode=require to encrypt without verifying",
                target.host
            )
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => format!(
            "the TLS certificate of {address} has expired (sslmode={mode}): renew the server's \
             certificate"
        ),
        other => format!(
            "TLS with {address} failed: {other} (sslmode={mode}); check sslmode and sslrootcert \
             in DATABASE_URL"
        ),
    };
    unavailable(message)
}

/// The first connection to PostgreSQL did not complete in `seconds`.
pub(super) fn postgres_timeout(target: &PgTarget, seconds: u64) -> StoreError {
    unavailable(format!(
        "no answer from {} within {seconds} s: check the host and port in DATABASE_URL, and \
         that no firewall drops the connection",
        target.address
    ))
}

/// The SQLite file could not be opened (or is not a database).
pub(super) fn sqlite(path: &Path, e: sqlx::Error) -> StoreError {
    let shown = path.display();
    let code = match &e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    match code.as_deref() {
        // SQLITE_CANTOPEN: say which part of the path is the problem.
        Some("14") => unavailable(format!(
            "cannot open the SQLite database {shown}: {}",
            why_not_openable(path)
        )),
        // SQLITE_NOTADB
        Some("26") => unavailable(format!(
            "{shown} is not an SQLite database: point DATABASE_URL at another file (a \
             missing one is created)"
        )),
        // SQLITE_READONLY, SQLITE_PERM
        Some("8" | "3") => unavailable(format!(
            "cannot write the SQLite database {shown}: check that this user may write it and \
             its folder"
        )),
        _ => match e {
            sqlx::Error::Io(io) => {
                unavailable(format!("cannot open the SQLite database {shown}: {io}"))
            }
            other => {
                let base: StoreError = other.into();
                match base {
                    StoreError::Unavailable(m) => {
                        unavailable(format!("cannot open the SQLite database {shown}: {m}"))
                    }
                    other => other,
                }
            }
        },
    }
}

fn why_not_openable(path: &Path) -> String {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(folder) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "the folder {} does not exist; create it, or set DATABASE_URL to a file in an \
             existing folder",
            folder.display()
        ),
        Err(e) => format!(
            "the folder {} cannot be used ({e}); set DATABASE_URL to a file in a folder this \
             user may write",
            folder.display()
        ),
        Ok(m) if !m.is_dir() => format!(
            "{} is not a folder; set DATABASE_URL to a file in an existing folder",
            folder.display()
        ),
        Ok(_) => match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                "it is a folder, not a file; set DATABASE_URL to a file path".to_owned()
            }
            Ok(_) => match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                Err(e) => format!("{e}; check that this user may read and write it"),
                Ok(_) => "SQLite cannot open it; check the file and its folder".to_owned(),
            },
            Err(_) => format!(
                "it cannot be created in {}; check that this user may write that folder",
                folder.display()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_cert_is_read_from_the_url() {
        assert_eq!(
            root_cert("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
                .as_deref(),
            Some("/etc/ca.pem")
        );
        assert_eq!(
            root_cert("postgres://u@h/db?ssl-root-cert=/x.pem").as_deref(),
            Some("/x.pem")
        );
    }

    #[test]
    fn a_missing_folder_is_named() {
        let m = why_not_openable(Path::new("/nonexistent-mp-folder/sub/x.db"));
        assert!(
            m.contains("/nonexistent-mp-folder/sub does not exist"),
            "{m}"
        );
    }
}
