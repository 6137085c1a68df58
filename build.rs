//! Only for the integration tests: `cfg(postgres_tests)` compiles their PostgreSQL variants as
//! tests to run. Without it they are listed as ignored ("set TEST_DATABASE_URL…"), never as
//! passed. `MULTIPROVIDER_REQUIRE_POSTGRES=1` turns them on too, so that CI without a
//! `TEST_DATABASE_URL` fails (saying so) instead of passing without PostgreSQL.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo::rerun-if-env-changed=MULTIPROVIDER_REQUIRE_POSTGRES");
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    let url = std::env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.trim().is_empty());
    let required = std::env::var("MULTIPROVIDER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    if url || required {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
