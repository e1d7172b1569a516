//! The one error type of the async client and worker.

use bytes::Bytes;
use gearman_core::{ConnError, UsageError};
use std::fmt;

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No server could be reached (all failed or are backing off).
    NoServer,
    /// The connection the request was on died.
    Connection(ConnError),
    /// The request was refused before sending.
    Usage(UsageError),
    /// The server answered with an ERROR packet.
    Server {
        /// Code, e.g. `QUEUE_ERROR`.
        code: Bytes,
        /// Text.
        text: Bytes,
    },
    /// The job failed (WORK_FAIL).
    JobFailed,
    /// The job raised an exception (WORK_EXCEPTION).
    JobException(Bytes),
    /// The per-call timeout passed.
    TimedOut,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoServer => f.write_str("no job server reachable"),
            Error::Connection(e) => write!(f, "connection lost: {e}"),
            Error::Usage(e) => write!(f, "invalid request: {e}"),
            Error::Server { code, text } => write!(
                f,
                "server error {}: {}",
                String::from_utf8_lossy(code),
                String::from_utf8_lossy(text)
            ),
            Error::JobFailed => f.write_str("job failed"),
            Error::JobException(d) => write!(f, "job exception: {}", String::from_utf8_lossy(d)),
            Error::TimedOut => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for Error {}
