//! The repository's own files (README, Dockerfile, manifests), read at run time.

use std::path::{Path, PathBuf};

/// `relative` (a path from the repository's root) as an absolute path.
pub fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The text of the repository's file `relative`.
pub fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}
