//! PostgreSQL backend. PLACEHOLDER: being written.
use super::StoreError;
use crate::secret::SecretKey;

#[derive(Clone)]
pub struct PostgresStore {}

impl PostgresStore {
    pub async fn connect(_url: &str, _secret: Option<SecretKey>) -> Result<PostgresStore, StoreError> {
        Err(StoreError::Unavailable("not yet implemented".into()))
    }
}
