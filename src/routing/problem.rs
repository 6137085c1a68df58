//! A problem found in a `ConfigurationData` document (the error body of docs/api.md).

use serde::Serialize;

/// One problem: where (RFC 6901 pointer into the document) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub pointer: String,
    pub message: String,
}
