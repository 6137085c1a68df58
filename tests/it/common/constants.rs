//! The values every test shares: routes, credentials, account Sids, configurations.

// ---- admin API routes (docs/api.md): JSON and XML, with and without the Restcomm prefix

pub const J: &str = "/2012-04-24/ExtensionsConfiguration.json";
pub const RJ: &str = "/restcomm/2012-04-24/ExtensionsConfiguration.json";
pub const X: &str = "/2012-04-24/ExtensionsConfiguration";
pub const RX: &str = "/restcomm/2012-04-24/ExtensionsConfiguration";
/// An extension Sid that is never created.
pub const UNKNOWN_EXTENSION: &str = "EXffffffffffffffffffffffffffffffff";
pub const FORM: &str = "application/x-www-form-urlencoded";
/// The largest request body either API reads (docs/api.md: 413 beyond).
pub const BODY_LIMIT: usize = 256 * 1024;

// ---- credentials of the test servers

pub const ADMIN_SID: &str = "ACae6e420f425248d6a26948c17a9e2acf";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const ENGINE_TOKEN: &str = "test-engine-token-9876543210";
/// A `MULTIPROVIDER_SECRET_KEY` (32 bytes, hex).
pub const SECRET_KEY_HEX: &str = "8f2b6c0d4e1a3957b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2";

// ---- accounts

pub const A1: &str = "AC0123456789abcdef0123456789abcdef";
pub const A2: &str = "AC11111111111111111111111111111111";
pub const A3: &str = "AC22222222222222222222222222222222";
/// Never given a configuration of its own: resolved through the global one.
pub const A_NONE: &str = "ACffffffffffffffffffffffffffffffff";

// ---- configurations

/// The SMS example of docs/api.md.
pub const SMS: &str = r#"{"outbound-sms": [{"destination_network_id": "1000"}]}"#;
pub const SMS2: &str = r#"{"outbound-sms": [{"destination_network_id": "2000"}]}"#;
/// An SMS configuration with a numeric id, the global one of several scenarios.
pub const SMS_1: &str = r#"{"outbound-sms": [{"destination_network_id": 1}]}"#;
/// The documentation's voice example (three proxies, headers of every kind).
pub const VOICE_EXAMPLE: &str = include_str!("../../fixtures/voice.json");
pub const VOICE_EXAMPLE_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/voice.json");
pub const SMS_EXAMPLE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sms.json");

/// An SMS configuration routing to `id` (as a JSON string, like `SMS`).
pub fn sms(id: impl std::fmt::Display) -> String {
    format!(r#"{{"outbound-sms": [{{"destination_network_id": "{id}"}}]}}"#)
}

/// What the test servers' clock says (`Settings::clock`): explained answers carry it as `at`.
pub const TEST_NOW: &str = "2026-12-08T12:00:00Z";
