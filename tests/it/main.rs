//! The integration tests, in one binary: the real server on 127.0.0.1:0, real HTTP, real
//! databases (SQLite always; PostgreSQL when `TEST_DATABASE_URL` is set), and the built
//! `multiprovider` binary as a child process.

mod common;

mod admin_api;
mod architecture;
mod capacity;
mod cli;
mod cli_help;
mod coherence;
mod deploy_files;
mod docs;
mod engine_lookup;
mod engine_view;
mod explain;
mod health;
mod input_hints;
mod kamailio;
mod log_secrets;
mod lookup_api;
mod openapi;
mod operators;
mod ops_details;
mod policy;
mod postgres_tls;
mod readme;
mod refusal_log;
mod reliability_auth;
mod reliability_concurrency;
mod reliability_faults;
mod reliability_fuzz;
mod reliability_limits;
mod reliability_secrets;
mod revisions;
mod routing_props;
mod serve;
mod startup;
mod store;
mod strictness;
mod tls;
mod transfer;
mod upgrade;
