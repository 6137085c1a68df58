//! Helpers shared by the integration tests (each test file does `mod common;`).
#![allow(dead_code)]

pub mod app;
pub mod db;
pub mod reliability;
pub mod tcp_proxy;
