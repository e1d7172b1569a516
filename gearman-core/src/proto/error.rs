//! Errors of the codec itself, split by whose fault they are (rustls's and h11's habit):
//! [`DecodeError`] when the bytes are malformed, [`ProtocolError`] when they are
//! well-formed but not allowed here or now, and [`PacketError`] for one delimited packet
//! that could not be typed. The connection-level errors built on them are in
//! [`crate::error`].

use super::{Magic, PacketType};
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
