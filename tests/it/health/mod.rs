//! Proxy health (docs/operations.md) against the real server on 127.0.0.1:0: outcome reports, the
//! health-aware order of voice answers, `GET /v1/proxies`, metrics, bad input and floods (on
//! every backend); agreement between instances on one PostgreSQL; SIP OPTIONS probing of UDP
//! endpoints that the tests start on 127.0.0.1.

mod instances;
mod outcomes;
mod probing;
/// Also used by the Kamailio integration test, whose outcome reports these requests check.
pub(crate) mod support;
