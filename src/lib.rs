//! multiprovider: per-account outbound voice and SMS routing for Restcomm-style platforms.
//!
//! Dependencies point one way: `server` → `http` → `cache` → `health` → `store` (and `http`,
//! `cli` → `operators` → `store`), and
//! everything → `routing`. `routing` depends on nothing else of ours so that an engine written in Rust can
//! embed it; `config` (settings) depends on nothing else of ours either. No two modules
//! import each other (a test checks it).

pub mod cache;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod configs;
pub mod health;
pub mod http;
pub mod operators;
pub mod routing;
pub mod secret;
pub mod seed;
pub mod server;
pub mod sid;
pub mod store;
pub mod transfer;
