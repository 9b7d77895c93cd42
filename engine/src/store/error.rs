//! What goes wrong reading or writing a store, local or remote: the one error of [`super`] and
//! [`crate::remote`] (a leaf module, so that the remote needs nothing else of the store).

use std::io;
use std::path::Path;

/// What went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the local store could not be read or written.
    #[error("store {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A record is not valid JSON of the expected shape (it is ignored; the node is recomputed).
    #[error("store {path}: invalid record ({message}); it will be ignored and recomputed")]
    BadRecord {
        /// The record's file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The remote store (S3 or a shared folder) failed.
    #[error("remote store {url}: {what}: {message}")]
    Remote {
        /// The store's URL.
        url: String,
        /// What was being done (`upload`, `list`, ...).
        what: String,
        /// The remote's error.
        message: String,
        /// How to get past it ([`crate::error::Hint`]).
        hint: String,
    },
}

impl crate::error::Hint for StoreError {
    fn hint(&self) -> Option<String> {
        match self {
            StoreError::Remote { hint, .. } => Some(hint.clone()),
            StoreError::Io { .. } | StoreError::BadRecord { .. } => None,
        }
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}
