//! SQLite backend (the embedded default). PLACEHOLDER: being written.
use super::StoreError;
use crate::secret::SecretKey;

#[derive(Clone)]
pub struct SqliteStore {}

impl SqliteStore {
    pub async fn connect(_url: &str, _secret: Option<SecretKey>) -> Result<SqliteStore, StoreError> {
        Err(StoreError::Unavailable("not yet implemented".into()))
    }
}
