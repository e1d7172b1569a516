//! One connection's framing: binary packets and admin text lines on the same stream, told
//! apart at each packet boundary by the first byte (`\0` = binary), as gearmand does.

use crate::error::{DecodeError, PacketError};
use crate::limits::Limits;
use crate::proto::admin::AdminCommand;
use crate::proto::{FrameDecoder, Request};
use bytes::BytesMut;

/// One unit of input from a connection. Short-lived (built and consumed in one call), so
/// boxing the large `Request` variant would cost an allocation for nothing.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Inbound {
    /// A binary request.
    Request(Request),
    /// An admin text command.
    Admin(AdminCommand),
    /// A delimited packet that could not be used; answer with an ERROR and carry on.
    Bad(PacketError),
}

/// Framing state for one connection.
#[derive(Debug)]
pub(crate) struct Session {
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Session {
    pub(crate) fn new(limits: Limits) -> Self {
        Session {
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(limits),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete unit; `Ok(None)` when more bytes are needed. `Err` is fatal.
    pub(crate) fn next(&mut self) -> Result<Option<Inbound>, DecodeError> {
        match self.buf.first() {
            None => {
                // Everything is consumed: let go of the buffer (an empty `BytesMut` split
                // from a large read would keep that whole allocation), so an idle
                // connection holds none.
                self.buf = BytesMut::new();
                Ok(None)
            }
            Some(0) => {
                Ok(self
                    .decoder
                    .decode(&mut self.buf)?
                    .map(|frame| match Request::parse(&frame) {
                        Ok(request) => Inbound::Request(request),
                        Err(e) => Inbound::Bad(e),
                    }))
            }
            Some(_) => self.next_line(),
        }
    }

    fn next_line(&mut self) -> Result<Option<Inbound>, DecodeError> {
        let max = self.decoder.limits().max_admin_line;
        let window = self.buf.get(..max.min(self.buf.len())).unwrap_or_default();
        match memchr_newline(window) {
            Some(end) => {
                let line = self.buf.split_to(end + 1);
                AdminCommand::parse(&line).map(|c| Some(Inbound::Admin(c)))
            }
            None if self.buf.len() >= max => Err(DecodeError::AdminLineTooLong { max }),
            None => Ok(None),
        }
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}
