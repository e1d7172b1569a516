//! One-line errors for bad TLS settings.

use std::fmt;
use std::path::Path;

/// Why a TLS configuration could not be built: one line naming the file and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError(pub String);

impl TlsError {
    pub(crate) fn file(what: &str, path: &Path, why: impl fmt::Display) -> TlsError {
        TlsError(format!("{what} {}: {why}", path.display()))
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        TlsError(e.to_string())
    }
}
