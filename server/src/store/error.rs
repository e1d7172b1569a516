//! Why a store cannot be opened or used, sorted into what an operator has to fix.

use rusqlite::ErrorCode;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the store cannot be used. Each variant names the file; `Display` is one line that
/// says what is wrong and what to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The file or its directory cannot be created, opened for writing or written:
    /// permissions, a missing directory, a read-only file system, a full disk.
    Unwritable {
        /// The queue file.
        path: PathBuf,
        /// What SQLite or the OS said.
        detail: String,
    },
    /// The file is not an SQLite database, or it fails SQLite's integrity check.
    Corrupt {
        /// The queue file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// A table we read or write exists with other columns, or the file was written by a
    /// newer gearmand-rs.
    SchemaMismatch {
        /// The queue file.
        path: PathBuf,
        /// The table in question.
        table: String,
        /// What differs.
        detail: String,
    },
    /// Another process holds the database locked beyond the busy timeout.
    Busy {
        /// The queue file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// Any other failure (the step that failed and SQLite's message).
    Other {
        /// The queue file.
        path: PathBuf,
        /// The step that failed.
        what: String,
        /// What SQLite or the OS said.
        detail: String,
    },
}

impl StoreError {
    /// Sorts an SQLite failure during `what` by its result code.
    pub(crate) fn from_sqlite(path: &Path, what: &str, e: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        let detail = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt { path, detail }
            }
            Some(
                ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure,
            ) => StoreError::Unwritable { path, detail },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Busy { path, detail }
            }
            _ => StoreError::Other {
                path,
                what: what.to_string(),
                detail,
            },
        }
    }

    /// The queue file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::Unwritable { path, .. }
            | StoreError::Corrupt { path, .. }
            | StoreError::SchemaMismatch { path, .. }
            | StoreError::Busy { path, .. }
            | StoreError::Other { path, .. } => path,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.path().display();
        match self {
            StoreError::Unwritable { detail, .. } => write!(
                f,
                "queue file {file} cannot be written ({detail}); it and its directory must \
                 exist and be writable (SQLite keeps -wal and -shm files beside it)"
            ),
            StoreError::Corrupt { detail, .. } => write!(
                f,
                "queue file {file} is corrupt or not an SQLite database ({detail}); \
                 refusing to start with an empty queue: restore it or move it aside"
            ),
            StoreError::SchemaMismatch { table, detail, .. } => write!(
                f,
                "queue file {file}: table {table} has an unexpected schema ({detail})"
            ),
            StoreError::Busy { detail, .. } => write!(
                f,
                "queue file {file} is locked by another process ({detail}); is another server \
                 using it?"
            ),
            StoreError::Other { what, detail, .. } => {
                write!(f, "queue file {file}: {what}: {detail}")
            }
        }
    }
}

impl std::error::Error for StoreError {}
