//! Rows as both backends return them (same column names and types: dates in unix
//! microseconds), and their conversion into records (decrypting the configuration).

use chrono::{DateTime, Utc};

use super::{Action, ConfigRecord, EXTENSION_NAME, Revision, StoreError, parse_scope};
use crate::secret::SecretKey;
use crate::sid::AccountSid;

/// The extension record: its identity and the global configuration.
#[derive(sqlx::FromRow)]
pub(crate) struct ExtensionRow {
    pub sid: String,
    pub name: String,
    #[sqlx(flatten)]
    pub config: ConfigColumns,
}

/// One account's configuration.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub account_sid: String,
    #[sqlx(flatten)]
    pub config: ConfigColumns,
}

/// An account's configuration with its extension's identity (`None` only if the extension
/// row was removed by hand).
#[derive(sqlx::FromRow)]
pub(crate) struct AccountWithExtensionRow {
    #[sqlx(flatten)]
    pub account: AccountRow,
    pub extension_sid: Option<String>,
    pub extension_name: Option<String>,
}

/// The columns every configuration has (configuration possibly encrypted).
#[derive(sqlx::FromRow)]
pub(crate) struct ConfigColumns {
    pub configuration: String,
    pub enabled: bool,
    pub date_created: i64,
    pub date_updated: i64,
    pub revision: i64,
}

/// The extension's identity, copied into every record.
#[derive(Clone)]
pub(crate) struct ExtensionId {
    pub sid: String,
    pub name: String,
}

impl ExtensionId {
    /// The identity used for account records when the extension row is missing (only
    /// possible if it was removed by hand).
    pub fn orphan() -> ExtensionId {
        ExtensionId {
            sid: String::new(),
            name: EXTENSION_NAME.to_string(),
        }
    }
}

impl ExtensionRow {
    pub fn id(&self) -> ExtensionId {
        ExtensionId {
            sid: self.sid.clone(),
            name: self.name.clone(),
        }
    }

    pub fn into_record(self, secret: Option<&SecretKey>) -> Result<ConfigRecord, StoreError> {
        let extension = self.id();
        self.config.into_record(&extension, None, secret)
    }
}

impl AccountRow {
    pub fn into_record(
        self,
        extension: &ExtensionId,
        secret: Option<&SecretKey>,
    ) -> Result<ConfigRecord, StoreError> {
        let account = AccountSid::parse(&self.account_sid).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "stored account sid {:?} is malformed",
                self.account_sid
            ))
        })?;
        self.config.into_record(extension, Some(account), secret)
    }
}

impl AccountWithExtensionRow {
    pub fn into_record(self, secret: Option<&SecretKey>) -> Result<ConfigRecord, StoreError> {
        let extension = match (self.extension_sid, self.extension_name) {
            (Some(sid), Some(name)) => ExtensionId { sid, name },
            _ => ExtensionId::orphan(),
        };
        self.account.into_record(&extension, secret)
    }
}

impl ConfigColumns {
    fn into_record(
        self,
        extension: &ExtensionId,
        account_sid: Option<AccountSid>,
        secret: Option<&SecretKey>,
    ) -> Result<ConfigRecord, StoreError> {
        let configuration = crate::secret::open(secret, &self.configuration).map_err(|e| {
            StoreError::Corrupt(match &account_sid {
                Some(a) => format!("configuration of {a}: {e}"),
                None => format!("global configuration: {e}"),
            })
        })?;
        Ok(ConfigRecord {
            extension_sid: extension.sid.clone(),
            extension_name: extension.name.clone(),
            account_sid,
            configuration,
            enabled: self.enabled,
            date_created: datetime_from_micros(self.date_created)?,
            date_updated: datetime_from_micros(self.date_updated)?,
            revision: self.revision,
        })
    }
}

fn datetime_from_micros(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("date out of range: {micros}")))
}

/// One stored revision (configuration and changes possibly encrypted).
#[derive(sqlx::FromRow)]
pub(crate) struct RevisionRow {
    pub scope: String,
    pub revision: i64,
    pub action: String,
    pub date_created: i64,
    pub actor: String,
    pub remote_addr: Option<String>,
    pub enabled: bool,
    pub configuration: Option<String>,
    pub rollback_of: Option<i64>,
    pub changes: Option<String>,
}

impl RevisionRow {
    pub fn into_revision(self, secret: Option<&SecretKey>) -> Result<Revision, StoreError> {
        let scope = &self.scope;
        let account_sid = parse_scope(scope)
            .ok_or_else(|| StoreError::Corrupt(format!("stored scope {scope:?} is malformed")))?;
        let open = |value: Option<String>| {
            value
                .map(|v| crate::secret::open(secret, &v))
                .transpose()
                .map_err(|e| {
                    StoreError::Corrupt(format!("revision {} of {scope}: {e}", self.revision))
                })
        };
        let action = Action::parse(&self.action).ok_or_else(|| {
            StoreError::Corrupt(format!("stored action {:?} is unknown", self.action))
        })?;
        Ok(Revision {
            account_sid,
            revision: self.revision,
            action,
            date_created: datetime_from_micros(self.date_created)?,
            actor: self.actor.clone(),
            remote_addr: self.remote_addr.clone(),
            enabled: self.enabled,
            configuration: open(self.configuration.clone())?,
            rollback_of: self.rollback_of,
            changes: open(self.changes.clone())?,
        })
    }
}
