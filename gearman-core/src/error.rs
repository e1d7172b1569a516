//! Errors, split by whose fault they are (rustls's and h11's habit).
//!
//! * [`DecodeError`]: the bytes are malformed. [`DecodeError::is_fatal`] says whether the
//!   stream lost its framing (the connection must close) or only one packet was bad.
//! * [`ProtocolError`]: well-formed, but not allowed here or now.
//! * [`UsageError`]: the local caller misused an API; the connection is unaffected.
//! * [`ConnError`]: why a connection is dead. Sticky: once set, returned every time.

use crate::proto::{Magic, PacketType};
use bytes::Bytes;
use std::fmt;

/// Malformed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first four bytes of a header were neither `\0REQ` nor `\0RES`.
    BadMagic([u8; 4]),
    /// A header named a type number outside 1..=42.
    UnknownType(u32),
    /// A header announced a body larger than the configured limit.
    TooLarge {
        /// The announced body size.
        size: u32,
        /// The configured maximum.
        max: usize,
    },
    /// A packet body had fewer NUL-separated arguments than its type requires.
    MissingArgument {
        /// The packet type.
        ty: PacketType,
        /// Arguments required before the remainder/data.
        expected: usize,
        /// Arguments found.
        got: usize,
    },
    /// A numeric argument was not a decimal number in range.
    BadNumber {
        /// The packet type.
        ty: PacketType,
        /// Which field.
        field: &'static str,
    },
    /// An argument exceeded its configured size limit.
    ArgumentTooLarge {
        /// The packet type.
        ty: PacketType,
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An admin text line grew past the configured maximum without a newline.
    AdminLineTooLong {
        /// The configured maximum.
        max: usize,
    },
    /// An admin text line had more than the five tokens gearmand accepts.
    AdminTooManyTokens,
    /// The peer closed the stream in the middle of a packet.
    TruncatedAtEof {
        /// Bytes still missing.
        needed: usize,
    },
}

impl DecodeError {
    /// True when the byte stream can no longer be framed, so the connection must close.
    /// False when one well-delimited packet was bad and the stream can carry on after an ERROR.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            DecodeError::MissingArgument { .. }
                | DecodeError::BadNumber { .. }
                | DecodeError::ArgumentTooLarge { .. }
        )
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadMagic(m) => write!(f, "bad packet magic {:02x?}", m),
            DecodeError::UnknownType(t) => write!(f, "unknown packet type {t}"),
            DecodeError::TooLarge { size, max } => {
                write!(f, "packet body of {size} bytes exceeds the limit of {max}")
            }
            DecodeError::MissingArgument { ty, expected, got } => {
                write!(
                    f,
                    "{ty} needs {expected} NUL-terminated arguments, got {got}"
                )
            }
            DecodeError::BadNumber { ty, field } => {
                write!(f, "{ty}: {field} is not a valid number")
            }
            DecodeError::ArgumentTooLarge {
                ty,
                field,
                len,
                max,
            } => {
                write!(f, "{ty}: {field} of {len} bytes exceeds the limit of {max}")
            }
            DecodeError::AdminLineTooLong { max } => {
                write!(f, "admin command line longer than {max} bytes")
            }
            DecodeError::AdminTooManyTokens => {
                f.write_str("admin command line has more than 5 tokens")
            }
            DecodeError::TruncatedAtEof { needed } => {
                write!(f, "connection closed mid-packet ({needed} bytes missing)")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Well-formed input that is not allowed here or now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A packet arrived with the magic for the other direction.
    WrongMagic {
        /// The packet type.
        ty: PacketType,
        /// The magic it carried.
        magic: Magic,
    },
    /// A packet type that this side never receives (e.g. JOB_ASSIGN sent to a server).
    Unexpected {
        /// The packet type.
        ty: PacketType,
    },
    /// A reply arrived with no request waiting for it.
    UnsolicitedReply {
        /// The packet type.
        ty: PacketType,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::WrongMagic { ty, magic } => {
                write!(f, "{ty} arrived with {magic:?} magic")
            }
            ProtocolError::Unexpected { ty } => write!(f, "{ty} is not expected in this direction"),
            ProtocolError::UnsolicitedReply { ty } => {
                write!(f, "{ty} arrived with no request waiting")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

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
    /// Too many requests in flight.
    TooManyInFlight,
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
            UsageError::TooManyInFlight => f.write_str("too many requests in flight"),
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
    /// The server sent an ERROR packet that ends the connection.
    PeerError {
        /// The code, e.g. `INVALID_COMMAND`.
        code: Bytes,
        /// The text.
        text: Bytes,
    },
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
        }
    }
}

impl std::error::Error for WorkloadError {}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Decode(e) => write!(f, "malformed input: {e}"),
            ConnError::Protocol(e) => write!(f, "protocol violation: {e}"),
            ConnError::PeerError { code, text } => write!(
                f,
                "server error {}: {}",
                String::from_utf8_lossy(code),
                String::from_utf8_lossy(text)
            ),
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

/// Why one delimited packet could not be turned into a typed value. The stream itself is
/// intact: the receiver may answer with an ERROR and carry on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    /// Its body was malformed.
    Malformed(DecodeError),
    /// It was well-formed but not allowed in this direction.
    Illegal(ProtocolError),
}

impl PacketError {
    /// The ERROR packet arguments gearmand answers with: the return-code name without its
    /// `GEARMAN_` prefix, and the text.
    pub fn error_reply(&self) -> (&'static str, &'static str) {
        match self {
            PacketError::Illegal(ProtocolError::WrongMagic { .. }) => {
                ("INVALID_MAGIC", "Request magic expected")
            }
            PacketError::Illegal(_) => ("INVALID_COMMAND", "Command not expected"),
            PacketError::Malformed(DecodeError::ArgumentTooLarge { .. }) => {
                ("ARGUMENT_TOO_LARGE", "Argument too large")
            }
            PacketError::Malformed(_) => ("INVALID_ARGUMENT", "Malformed packet arguments"),
        }
    }
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::Malformed(e) => e.fmt(f),
            PacketError::Illegal(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PacketError {}

impl From<DecodeError> for PacketError {
    fn from(e: DecodeError) -> Self {
        PacketError::Malformed(e)
    }
}

impl From<ProtocolError> for PacketError {
    fn from(e: ProtocolError) -> Self {
        PacketError::Illegal(e)
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
