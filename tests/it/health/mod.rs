//! Proxy health (SPEC §11) against the real server on 127.0.0.1:0: outcome reports, the
//! health-aware order of voice answers, `GET /v1/proxies`, metrics, bad input and floods
//! (SQLite, and PostgreSQL with TEST_DATABASE_URL); agreement between instances on one
//! PostgreSQL; SIP OPTIONS probing of UDP endpoints that the tests start on 127.0.0.1.
//!
//! Self-contained (one binary, its own helpers in `support`), so that it can move into the
//! consolidated test binary as it is.

#[path = "../common/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../common/db.rs"]
#[allow(dead_code)]
mod db;
#[path = "../common/tcp_proxy.rs"]
#[allow(dead_code)]
mod tcp_proxy;

mod instances;
mod outcomes;
mod probing;
mod support;
