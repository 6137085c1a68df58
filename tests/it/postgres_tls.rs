//! PostgreSQL over TLS (docs/operations.md): `sslmode` and `sslrootcert` of `DATABASE_URL`, with rustls.
//!
//! Against the real PostgreSQL of `TEST_DATABASE_URL`, which must have `ssl = on` (`.ci/run`
//! makes sure of it): which connections are encrypted is read from `pg_stat_ssl`. The
//! verifying modes need a certificate whose CA and names the test controls, so those run
//! through a small TLS front made here: it answers PostgreSQL's `SSLRequest`, terminates TLS
//! with a certificate signed by a test CA, and passes the bytes on to the real server.
//!
//! Listed as ignored without `TEST_DATABASE_URL`; failing when it cannot be reached.

use std::str::FromStr;
use std::sync::Arc;

use multiprovider::store::Store;
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::app::{AppOptions, spawn_app};
use crate::common::certs::TestCa;
use crate::common::constants::{A1, SMS};
use crate::common::db::TestDb;
use crate::common::on_postgres;

fn with_query(url: &str, query: &str) -> String {
    match url.contains('?') {
        true => format!("{url}&{query}"),
        false => format!("{url}?{query}"),
    }
}

/// Whether each of multiprovider's connections to `db` is encrypted, as PostgreSQL sees
/// them.
async fn encrypted_connections(db: &TestDb) -> Vec<bool> {
    let admin = db.postgres_admin().await;
    let rows: Vec<(bool,)> = sqlx::query_as(
        "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
         WHERE a.datname = $1 AND a.application_name = 'multiprovider'",
    )
    .bind(db.postgres_name())
    .fetch_all(&admin)
    .await
    .expect("pg_stat_ssl");
    admin.close().await;
    rows.into_iter().map(|(ssl,)| ssl).collect()
}

/// Starts the server on `url` (`db`'s database, however reached), stores a configuration
/// and looks it up: the database works. Returns whether its connections are encrypted.
async fn serve_and_check(db: &TestDb, url: &str) -> Vec<bool> {
    let app = spawn_app(url, AppOptions::default()).await;
    app.configure(Some(A1), SMS).await;
    let (status, answer) = app.sms_route(A1).await;
    assert_eq!(status, 200, "{answer}");
    let encrypted = encrypted_connections(db).await;
    app.stop().await;
    assert!(!encrypted.is_empty(), "no connection of multiprovider seen");
    encrypted
}

on_postgres!(sslmode_require_encrypts_every_connection, |db| {
    let encrypted = serve_and_check(&db, &with_query(&db.url, "sslmode=require")).await;
    assert!(encrypted.iter().all(|&e| e), "{encrypted:?}");
});

on_postgres!(
    the_default_prefer_encrypts_when_the_server_offers_tls,
    |db| {
        assert!(!db.url.contains("sslmode"), "{}", db.url);
        let encrypted = serve_and_check(&db, &db.url).await;
        assert!(encrypted.iter().all(|&e| e), "{encrypted:?}");
    }
);

on_postgres!(sslmode_disable_still_works_unencrypted, |db| {
    let encrypted = serve_and_check(&db, &with_query(&db.url, "sslmode=disable")).await;
    assert!(encrypted.iter().all(|&e| !e), "{encrypted:?}");
});

/// A test CA and a server certificate it signed for `localhost` only (no IP address), and
/// another CA that signed nothing here, as files.
struct Pki {
    dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
}

impl Pki {
    fn new() -> Pki {
        let ca = TestCa::new("PostgreSQL test CA");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(
            dir.path().join("other-ca.pem"),
            TestCa::new("other CA").pem(),
        )
        .unwrap();
        Pki {
            dir,
            server: ca.leaf_for(&["localhost"]).server_config(),
        }
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    fn other_ca(&self) -> String {
        self.dir.path().join("other-ca.pem").display().to_string()
    }
}

/// The TLS front: PostgreSQL's `SSLRequest` answered `S`, TLS with the test certificate,
/// then every byte passed on to the real server (which sees a plain connection). Its port.
async fn tls_front(pki: &Pki, upstream: (String, u16)) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                client.read_exact(&mut request).await?;
                // SSLRequest: length 8, code 80877103.
                assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47], "not an SSLRequest");
                client.write_all(b"S").await?;
                let mut tls = acceptor.accept(client).await?;
                let mut server = tokio::net::TcpStream::connect(upstream).await?;
                tokio::io::copy_bidirectional(&mut tls, &mut server).await?;
                Ok::<(), std::io::Error>(())
            });
        }
    });
    port
}

/// `db`'s database through the TLS front, as `host` (`localhost` is the certificate's name,
/// `127.0.0.1` is not), with `query`.
async fn through_front(db: &TestDb, pki: &Pki, host: &str, query: &str) -> String {
    let options = PgConnectOptions::from_str(&db.url).unwrap();
    let upstream = (options.get_host().to_owned(), options.get_port());
    let port = tls_front(pki, upstream).await;
    format!(
        "postgres://{}@{host}:{port}/{}?{query}",
        options.get_username(),
        db.postgres_name()
    )
}

async fn connect(url: &str) -> Result<Store, String> {
    match Store::connect(url, None).await {
        Ok(store) => {
            assert!(
                store.ping().await,
                "connected but the database does not answer"
            );
            store.close().await;
            Ok(store)
        }
        Err(e) => Err(e.to_string()),
    }
}

on_postgres!(
    verify_full_and_verify_ca_accept_the_right_root_and_name,
    |db| {
        let pki = Pki::new();
        for mode in ["verify-full", "verify-ca"] {
            let query = format!("sslmode={mode}&sslrootcert={}", pki.ca());
            let url = through_front(&db, &pki, "localhost", &query).await;
            connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{mode} with the right root and name: {e}"));
        }
        // And the server runs on it.
        let query = format!("sslmode=verify-full&sslrootcert={}", pki.ca());
        let url = through_front(&db, &pki, "localhost", &query).await;
        serve_and_check(&db, &url).await;
    }
);

on_postgres!(verify_full_refuses_the_wrong_root_or_name_clearly, |db| {
    let pki = Pki::new();
    let query = format!("sslmode=verify-full&sslrootcert={}", pki.other_ca());
    let url = through_front(&db, &pki, "localhost", &query).await;
    let e = connect(&url).await.expect_err("the wrong root is refused");
    assert!(
        e.contains(&format!(
            "is not signed by the CA in sslrootcert {}",
            pki.other_ca()
        )) && e.contains("sslmode=require"),
        "{e}"
    );

    let query = format!("sslmode=verify-full&sslrootcert={}", pki.ca());
    let url = through_front(&db, &pki, "127.0.0.1", &query).await;
    let e = connect(&url).await.expect_err("the wrong name is refused");
    assert!(e.contains("is not valid for the name 127.0.0.1"), "{e}");

    // Without sslrootcert only public CAs are trusted.
    let url = through_front(&db, &pki, "localhost", "sslmode=verify-full").await;
    let e = connect(&url)
        .await
        .expect_err("a private CA is not trusted");
    assert!(e.contains("is not signed by a public CA"), "{e}");

    // The modes that do not verify accept it.
    for query in ["sslmode=require", "sslmode=prefer"] {
        let url = through_front(&db, &pki, "127.0.0.1", query).await;
        connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
    }
});

// sqlx 0.8 checks the name in verify-ca too (launchbadge/sqlx#3793, fixed in sqlx 0.9): until
// then the message says so. When this test fails after an upgrade, verify-ca works as libpq's
// does: turn it into a success test and drop the README's note.
on_postgres!(verify_ca_with_another_name_says_what_sqlx_0_8_does, |db| {
    let pki = Pki::new();
    let query = format!("sslmode=verify-ca&sslrootcert={}", pki.ca());
    let url = through_front(&db, &pki, "127.0.0.1", &query).await;
    let e = connect(&url).await.expect_err("sqlx 0.8 checks the name");
    assert!(
        e.contains("sslmode=verify-ca should not check the name"),
        "{e}"
    );
});
