//! Helpers shared by the integration tests, and the macros that run a test on each backend.

pub mod app;
pub mod certs;
pub mod constants;
pub mod db;
pub mod logs;
pub mod process;
pub mod raw;
pub mod reliability;
pub mod repo;
pub mod tcp_proxy;
pub mod wire;

/// Declares a test once per backend, as a module holding one test function per backend, so
/// that the test's name says where it failed: `admin_api::xml_delete::sqlite` and
/// `admin_api::xml_delete::postgres`. The PostgreSQL variant is listed as ignored unless the
/// binary was built with `TEST_DATABASE_URL` (or `MULTIPROVIDER_REQUIRE_POSTGRES=1`; see
/// `build.rs`), and then fails when PostgreSQL cannot be reached.
///
/// - `on_every_db!(name, |db| { … })`: an async body with `db`, a fresh `TestDb`;
/// - `on_every_db!(name, |app, db| { … })`: the same with `app`, a server started on it with
///   `AppOptions::default()`;
/// - `on_every_db!(blocking name, |db| { … })`: a synchronous body (it makes its own runtime).
///
/// The body sees the items of the module it is written in (`use super::*`).
macro_rules! on_every_db {
    ($(#[$meta:meta])* $name:ident, |$app:ident, $db:ident| $body:block) => {
        $crate::common::on_every_db!($(#[$meta])* $name, |$db| {
            let $app = $crate::common::app::spawn_app(
                &$db.url,
                $crate::common::app::AppOptions::default(),
            )
            .await;
            $body
        });
    };
    ($(#[$meta:meta])* $name:ident, |$db:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                on_db($crate::common::db::fresh_sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(postgres_tests),
                ignore = "set TEST_DATABASE_URL to run on PostgreSQL"
            )]
            async fn postgres() {
                on_db($crate::common::db::fresh_postgres().await).await;
            }

            async fn on_db($db: $crate::common::db::TestDb) $body
        }
    };
    ($(#[$meta:meta])* blocking $name:ident, |$db:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                on_db($crate::common::db::fresh_sqlite());
            }

            #[test]
            #[cfg_attr(
                not(postgres_tests),
                ignore = "set TEST_DATABASE_URL to run on PostgreSQL"
            )]
            fn postgres() {
                let db = $crate::common::reliability::runtime()
                    .block_on($crate::common::db::fresh_postgres());
                on_db(db);
            }

            fn on_db($db: $crate::common::db::TestDb) $body
        }
    };
}
pub(crate) use on_every_db;

/// `on_every_db!` for what only PostgreSQL has (LISTEN/NOTIFY, several instances on one
/// database, killed backends, TLS): a module `$name` with the one test `postgres`. The
/// `blocking` form, as `on_every_db!`'s, has a synchronous body.
macro_rules! on_postgres {
    ($(#[$meta:meta])* blocking $name:ident, |$db:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            #[cfg_attr(
                not(postgres_tests),
                ignore = "set TEST_DATABASE_URL to run on PostgreSQL"
            )]
            fn postgres() {
                let $db = $crate::common::reliability::runtime()
                    .block_on($crate::common::db::fresh_postgres());
                $body
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, |$db:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(postgres_tests),
                ignore = "set TEST_DATABASE_URL to run on PostgreSQL"
            )]
            async fn postgres() {
                let $db = $crate::common::db::fresh_postgres().await;
                $body
            }
        }
    };
}
pub(crate) use on_postgres;
