//! What requests and responses share: the packet type and the encoding, written once from
//! the parts each value lists.

use super::args::{body_len, put_body, Part};
use super::frame::{put_header, HEADER_LEN};
use super::{Magic, PacketType};
use bytes::{BufMut, Bytes};

/// A typed binary packet: a [`Request`](super::Request) (`\0REQ`) or a
/// [`Response`](super::Response) (`\0RES`). Sealed: those two are all there is.
///
/// ```
/// use gearman_core::proto::{Packet, Request};
/// let echo = Request::Echo { data: "hi".into() };
/// assert_eq!(echo.to_bytes().as_ref(), b"\0REQ\0\0\0\x10\0\0\0\x02hi");
/// assert_eq!(echo.encoded_len(), 14);
/// ```
pub trait Packet: sealed::Parts {
    /// The packet type this value is sent as.
    fn packet_type(&self) -> PacketType {
        self.with_parts(|ty, _| ty)
    }

    /// Bytes [`Packet::encode`] writes, header included.
    fn encoded_len(&self) -> usize {
        self.with_parts(|_, parts| HEADER_LEN + body_len(parts))
    }

    /// Appends the packet, header included.
    fn encode<B: BufMut>(&self, out: &mut B) {
        self.with_parts(|ty, parts| {
            put_header(out, Self::MAGIC, ty, body_len(parts));
            put_body(out, parts);
        })
    }

    /// Encodes into a fresh buffer.
    fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(&mut v);
        v.into()
    }
}

impl<P: sealed::Parts> Packet for P {}

/// Bytes a packet with these body parts takes, header included: the server's hot replies
/// are written from the job's bytes without building an owned packet.
pub(crate) fn parts_encoded_len(parts: &[Part<'_>]) -> usize {
    HEADER_LEN + body_len(parts)
}

/// Appends a response given by its type and borrowed body parts, as [`Packet::encode`]
/// would write the owned packet with those parts.
pub(crate) fn encode_response_parts(out: &mut Vec<u8>, ty: PacketType, parts: &[Part<'_>]) {
    put_header(out, Magic::Res, ty, body_len(parts));
    put_body(out, parts);
}

pub(crate) mod sealed {
    use super::{Magic, PacketType, Part};

    /// How a packet value lays itself out: its magic, and its type and body parts.
    pub trait Parts {
        /// The magic of this direction.
        const MAGIC: Magic;

        /// Calls `f` with the packet type and the body's parts, in order.
        fn with_parts<R>(&self, f: impl FnOnce(PacketType, &[Part<'_>]) -> R) -> R;
    }
}
