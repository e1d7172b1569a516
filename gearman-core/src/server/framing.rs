//! One connection's framing: binary packets and admin text lines on the same stream, told
//! apart at each packet boundary by the first byte (`\0` = binary), as gearmand does.

use crate::error::{DecodeError, PacketError};
use crate::limits::Limits;
use crate::proto::admin::{find_line, AdminCommand};
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

/// The bytes read and not yet decoded.
#[derive(Debug)]
pub(crate) struct Framing {
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Framing {
    pub(crate) fn new(limits: Limits) -> Self {
        Framing {
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(limits),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes are waiting to be decoded.
    pub(crate) fn has_input(&self) -> bool {
        !self.buf.is_empty()
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
            Some(_) => {
                let max = self.decoder.limits().max_admin_line;
                match find_line(&self.buf, max)? {
                    Some(len) => {
                        let line = self.buf.split_to(len);
                        AdminCommand::parse(&line).map(|c| Some(Inbound::Admin(c)))
                    }
                    None => Ok(None),
                }
            }
        }
    }
}
