//! The HTTP layer. PLACEHOLDER: being written.
