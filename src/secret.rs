//! Encryption at rest of stored configurations (AES-256-GCM), keyed by MULTIPROVIDER_SECRET_KEY.
//!
//! When a key is configured the store encrypts the *whole* `ConfigurationData` string, so no
//! proxy password is ever written to the database in plaintext. The stored form is
//! `enc:v1:` + base64(12-byte random nonce ‖ ciphertext ‖ 16-byte tag). Values without that
//! prefix are plaintext (written before a key was configured) and are read as they are.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::BASE64_LENIENT;

/// Prefix of an encrypted stored value (format version 1).
pub const ENCRYPTED_PREFIX: &str = "enc:v1:";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 32-byte key, given as 64 hex digits or base64.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// True when `stored` is in the encrypted format (whatever the key).
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(ENCRYPTED_PREFIX)
}

impl SecretKey {
    /// Parses the text form of `MULTIPROVIDER_SECRET_KEY` (see `config::KeyMaterial::parse`).
    pub fn parse(s: &str) -> Result<SecretKey, String> {
        crate::config::KeyMaterial::parse(s).map(|k| SecretKey(k.0))
    }

    /// The cipher key of a parsed setting.
    pub fn from_material(material: &crate::config::KeyMaterial) -> SecretKey {
        SecretKey(material.0)
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(bytes)
    }

    /// A fresh random key (tests, key generation).
    pub fn generate() -> SecretKey {
        SecretKey(rand::random())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.0))
    }

    /// `enc:v1:` + base64(nonce ‖ ciphertext ‖ tag), with a fresh random nonce.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let ciphertext = self
            .cipher()
            .encrypt(&Nonce::from(nonce_bytes), plaintext.as_bytes())
            // AES-GCM encryption only fails for inputs beyond 64 GiB.
            .expect("AES-256-GCM encryption of a bounded input cannot fail");
        let mut raw = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        raw.extend_from_slice(&nonce_bytes);
        raw.extend_from_slice(&ciphertext);
        let mut out = String::with_capacity(ENCRYPTED_PREFIX.len() + raw.len().div_ceil(3) * 4);
        out.push_str(ENCRYPTED_PREFIX);
        STANDARD.encode_string(&raw, &mut out);
        out
    }

    /// Reverses [`encrypt`](Self::encrypt). A value without the `enc:v1:` prefix is plaintext
    /// and is returned as it is. Errors never contain the plaintext.
    pub fn decrypt(&self, stored: &str) -> Result<String, String> {
        let Some(encoded) = stored.strip_prefix(ENCRYPTED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let raw = BASE64_LENIENT
            .decode(encoded)
            .map_err(|_| "encrypted value is not valid base64".to_string())?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err("encrypted value is truncated".into());
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let plaintext = self
            .cipher()
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| {
                "encrypted value cannot be decrypted (wrong MULTIPROVIDER_SECRET_KEY?)".to_string()
            })?;
        String::from_utf8(plaintext).map_err(|_| "decrypted value is not UTF-8".to_string())
    }
}

/// Reads a stored value with an optional key: plaintext passes through; an encrypted value
/// without a key is an error.
pub fn open(key: Option<&SecretKey>, stored: &str) -> Result<String, String> {
    match key {
        Some(key) => key.decrypt(stored),
        None if is_encrypted(stored) => {
            Err("value is encrypted but no MULTIPROVIDER_SECRET_KEY is configured".to_string())
        }
        None => Ok(stored.to_owned()),
    }
}

/// Prepares a value for storage with an optional key.
pub fn seal(key: Option<&SecretKey>, plaintext: &str) -> String {
    match key {
        Some(key) => key.encrypt(plaintext),
        None => plaintext.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_hex_either_case() {
        let a = SecretKey::parse(HEX).unwrap();
        let b = SecretKey::parse(&HEX.to_uppercase()).unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(a.0[31], 0x1f);
    }

    #[test]
    fn parses_base64_with_and_without_padding() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let padded = STANDARD.encode(&bytes);
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        let a = SecretKey::parse(&padded).unwrap();
        let b = SecretKey::parse(unpadded).unwrap();
        let c = SecretKey::parse(&format!("  {padded}\n")).unwrap();
        assert_eq!(a.0.to_vec(), bytes);
        assert_eq!(b.0, a.0);
        assert_eq!(c.0, a.0);
        assert_eq!(SecretKey::parse(HEX).unwrap().0, a.0);
    }

    #[test]
    fn rejects_wrong_lengths_and_garbage() {
        for bad in [
            "",
            "   ",
            &HEX[..62],
            &format!("{HEX}00"),
            "not a key at all!",
            &STANDARD.encode([7u8; 31]),
            &STANDARD.encode([7u8; 33]),
        ] {
            let err = SecretKey::parse(bad).unwrap_err();
            if !bad.trim().is_empty() {
                assert!(!err.contains(bad.trim()), "error echoes the key: {err}");
            }
        }
    }

    #[test]
    fn round_trip_and_random_nonce() {
        let key = SecretKey::generate();
        let plain = r#"{"outbound-voice":[{"proxy":[{"uri":"a.com","password":"hunter2"}]}]}"#;
        let a = key.encrypt(plain);
        let b = key.encrypt(plain);
        assert!(a.starts_with(ENCRYPTED_PREFIX));
        assert_ne!(a, b, "nonce must be random");
        assert!(!a.contains("hunter2"));
        assert_eq!(key.decrypt(&a).unwrap(), plain);
        assert_eq!(key.decrypt(&b).unwrap(), plain);
        assert_eq!(key.decrypt("").unwrap(), "");
        assert_eq!(key.decrypt(&key.encrypt("")).unwrap(), "");
    }

    #[test]
    fn plaintext_passes_through() {
        let key = SecretKey::generate();
        assert_eq!(key.decrypt("{}").unwrap(), "{}");
        assert_eq!(open(Some(&key), "{\"a\":1}").unwrap(), "{\"a\":1}");
        assert_eq!(open(None, "{}").unwrap(), "{}");
        assert_eq!(seal(None, "{}"), "{}");
    }

    #[test]
    fn wrong_key_tampering_and_missing_key_fail_without_plaintext() {
        let key = SecretKey::generate();
        let other = SecretKey::generate();
        let sealed = key.encrypt("secret-password");
        let err = other.decrypt(&sealed).unwrap_err();
        assert!(!err.contains("secret-password"));
        let err = open(None, &sealed).unwrap_err();
        assert!(!err.contains("secret-password"));

        // Flip one ciphertext byte.
        let mut raw = STANDARD.decode(&sealed[ENCRYPTED_PREFIX.len()..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(&raw));
        assert!(key.decrypt(&tampered).is_err());

        assert!(key.decrypt("enc:v1:!!!").is_err());
        assert!(key.decrypt("enc:v1:AAAA").is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let key = SecretKey::parse(HEX).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "SecretKey(<redacted>)");
    }
}
