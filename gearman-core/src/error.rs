//! Errors, split by whose fault they are (rustls's and h11's habit).
//!
//! * [`DecodeError`]: the bytes are malformed. [`DecodeError::is_fatal`] says whether the
//!   stream lost its framing (the connection must close) or only one packet was bad.
//! * [`ProtocolError`]: well-formed, but not allowed here or now.
//! * [`UsageError`]: the local caller misused an API; the connection is unaffected.
//! * [`ConnError`]: why a connection is dead. Sticky: once set, returned every time.
//!
//! The codec's own errors ([`DecodeError`], [`ProtocolError`], [`PacketError`]) live with
//! the codec in [`crate::proto`] and are re-exported here: this module builds on the codec,
//! never the other way round.

pub use crate::proto::{DecodeError, PacketError, ProtocolError};
use bytes::Bytes;
use std::fmt;

/// The local caller misused an API; the connection itself is fine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The connection is closed.
    Closed,
    /// The job handle is not assigned to this worker connection.
    UnknownHandle(Bytes),
    /// An argument is too large to send (function name, unique, ...).
    ArgumentTooLarge {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An argument contains a NUL byte where the protocol cannot carry one.
    ContainsNul {
        /// Which field.
        field: &'static str,
    },
    /// A SUBMIT_JOB_SCHED schedule the server would refuse: why, naming the field.
    InvalidSchedule(String),
    /// Only a submission can stream its workload, and its own data must then be empty.
    NotStreamable,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::Closed => f.write_str("connection is closed"),
            UsageError::UnknownHandle(h) => {
                write!(
                    f,
                    "job {} is not held by this connection",
                    String::from_utf8_lossy(h)
                )
            }
            UsageError::ArgumentTooLarge { field, len, max } => {
                write!(f, "{field} of {len} bytes exceeds the limit of {max}")
            }
            UsageError::ContainsNul { field } => write!(f, "{field} must not contain a NUL byte"),
            UsageError::InvalidSchedule(why) => write!(f, "invalid schedule: {why}"),
            UsageError::NotStreamable => {
                f.write_str("only a submission with empty data can stream its workload")
            }
        }
    }
}

impl std::error::Error for UsageError {}

/// Why a connection is dead. Sticky: a machine keeps returning the same value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnError {
    /// The peer sent malformed bytes.
    Decode(DecodeError),
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// The peer closed the connection.
    Eof {
        /// True if it closed in the middle of a packet.
        mid_frame: bool,
    },
    /// The local side closed the connection.
    Closed,
    /// A streamed workload's source failed mid-frame: the packet on the wire is corrupt,
    /// so the connection was closed.
    Workload(WorkloadError),
}

/// Why a streamed workload could not be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkloadError {
    /// The source ended before the declared length.
    Short {
        /// The declared length.
        len: u64,
        /// What the source produced.
        sent: u64,
    },
    /// The source produced more than the declared length.
    Long {
        /// The declared length.
        len: u64,
    },
    /// Reading the source failed.
    Read(String),
    /// The submission's timeout passed before its source produced the whole workload:
    /// the half-sent frame cannot be completed, and nothing else can go out before it.
    TimedOut {
        /// The declared length.
        len: u64,
        /// What the source produced by then.
        sent: u64,
    },
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadError::Short { len, sent } => {
                write!(f, "streamed workload ended after {sent} of {len} bytes")
            }
            WorkloadError::Long { len } => {
                write!(
                    f,
                    "streamed workload is longer than the {len} bytes declared"
                )
            }
            WorkloadError::Read(e) => write!(f, "streamed workload could not be read: {e}"),
            WorkloadError::TimedOut { len, sent } => write!(
                f,
                "call timed out with {sent} of {len} streamed workload bytes sent"
            ),
        }
    }
}

impl std::error::Error for WorkloadError {}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Decode(e) => write!(f, "malformed input: {e}"),
            ConnError::Protocol(e) => write!(f, "protocol violation: {e}"),
            ConnError::Eof { mid_frame: true } => {
                f.write_str("peer closed the connection mid-packet")
            }
            ConnError::Eof { mid_frame: false } => f.write_str("peer closed the connection"),
            ConnError::Closed => f.write_str("connection closed"),
            ConnError::Workload(e) => write!(f, "{e}; connection closed"),
        }
    }
}

impl std::error::Error for ConnError {}

impl From<DecodeError> for ConnError {
    fn from(e: DecodeError) -> Self {
        ConnError::Decode(e)
    }
}

impl From<ProtocolError> for ConnError {
    fn from(e: ProtocolError) -> Self {
        ConnError::Protocol(e)
    }
}

impl From<PacketError> for ConnError {
    fn from(e: PacketError) -> Self {
        match e {
            PacketError::Malformed(d) => ConnError::Decode(d),
            PacketError::Illegal(p) => ConnError::Protocol(p),
        }
    }
}
