//! Why the SQLite store cannot be opened or used, sorted into what an operator has to fix.

use rusqlite::ErrorCode;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the store cannot be used. Each variant names the file; `Display` is one line that
/// says what is wrong and what to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteError {
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

impl SqliteError {
    /// Sorts an SQLite failure during `what` by its result code.
    pub(crate) fn from_sqlite(path: &Path, what: &str, e: rusqlite::Error) -> SqliteError {
        let path = path.to_path_buf();
        let detail = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                SqliteError::Corrupt { path, detail }
            }
            Some(
                ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure,
            ) => SqliteError::Unwritable { path, detail },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                SqliteError::Busy { path, detail }
            }
            _ => SqliteError::Other {
                path,
                what: what.to_string(),
                detail,
            },
        }
    }

    /// The queue file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            SqliteError::Unwritable { path, .. }
            | SqliteError::Corrupt { path, .. }
            | SqliteError::SchemaMismatch { path, .. }
            | SqliteError::Busy { path, .. }
            | SqliteError::Other { path, .. } => path,
        }
    }
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.path().display();
        match self {
            SqliteError::Unwritable { detail, .. } => write!(
                f,
                "queue file {file} cannot be written ({detail}); it and its directory must \
                 exist and be writable (SQLite keeps -wal and -shm files beside it)"
            ),
            SqliteError::Corrupt { detail, .. } => write!(
                f,
                "queue file {file} is corrupt or not an SQLite database ({detail}); \
                 refusing to start with an empty queue: restore it or move it aside"
            ),
            SqliteError::SchemaMismatch { table, detail, .. } => write!(
                f,
                "queue file {file}: table {table} has an unexpected schema ({detail})"
            ),
            SqliteError::Busy { detail, .. } => write!(
                f,
                "queue file {file} is locked by another process ({detail}); is another server \
                 using it?"
            ),
            SqliteError::Other { what, detail, .. } => {
                write!(f, "queue file {file}: {what}: {detail}")
            }
        }
    }
}

impl std::error::Error for SqliteError {}
