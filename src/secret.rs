//! Encryption at rest of stored configurations (AES-256-GCM), keyed by MULTIPROVIDER_SECRET_KEY.

/// A 32-byte key, given as 64 hex digits or base64.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}
