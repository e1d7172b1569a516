//! Framing: the 12-byte header and a streaming, header-first decoder.
//!
//! The decoder checks magic, type and announced size on the header alone, so an oversize
//! packet is refused before a single body byte is buffered. A complete frame is split off
//! the input buffer and frozen; its body is a zero-copy slice of what was read.

use super::error::DecodeError;
use super::{Magic, PacketType};
use crate::limits::Limits;
use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::streaming::take;
use nom::number::streaming::be_u32;
use nom::IResult;

/// Size of a packet header.
pub const HEADER_LEN: usize = 12;

/// The most [`FrameDecoder::decode`] reserves ahead for a body still arriving. Larger bodies
/// grow the buffer as their bytes come in, so memory follows what the peer actually sent.
pub const MAX_EAGER_RESERVE: usize = 256 * 1024;

/// A validated packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Direction.
    pub magic: Magic,
    /// Packet type.
    pub ty: PacketType,
    /// Body length.
    pub size: u32,
}

/// One complete packet, not yet split into arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Direction.
    pub magic: Magic,
    /// Packet type.
    pub ty: PacketType,
    /// The body: a zero-copy slice of the input.
    pub body: Bytes,
}

fn raw_header(input: &[u8]) -> IResult<&[u8], (&[u8], u32, u32)> {
    let (input, magic) = take(4usize)(input)?;
    let (input, ty) = be_u32(input)?;
    let (input, size) = be_u32(input)?;
    Ok((input, (magic, ty, size)))
}

/// Parses and validates a header from the front of `input`; `Ok(None)` if fewer than 12
/// bytes are present.
pub fn parse_header(input: &[u8], limits: &Limits) -> Result<Option<Header>, DecodeError> {
    let (magic, ty, size) = match raw_header(input) {
        Ok((_, fields)) => fields,
        Err(_) => return Ok(None),
    };
    let magic = match magic {
        b"\0REQ" => Magic::Req,
        b"\0RES" => Magic::Res,
        other => {
            let mut m = [0u8; 4];
            m.copy_from_slice(other);
            return Err(DecodeError::BadMagic(m));
        }
    };
    let ty = PacketType::from_u32(ty).ok_or(DecodeError::UnknownType(ty))?;
    if size as usize > limits.max_body {
        return Err(DecodeError::TooLarge {
            size,
            max: limits.max_body,
        });
    }
    Ok(Some(Header { magic, ty, size }))
}

/// Writes a header for a body of `size` bytes.
pub fn put_header<B: BufMut>(out: &mut B, magic: Magic, ty: PacketType, size: usize) {
    out.put_slice(magic.bytes());
    out.put_u32(ty.id());
    // Bodies are built by us from bounded parts; a body over 4 GiB cannot be framed at all.
    out.put_u32(u32::try_from(size).unwrap_or(u32::MAX));
}

/// Streaming decoder: feed it a growing buffer, take frames off the front.
/// Errors are sticky: after one, every call returns it again.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    limits: Limits,
    pending: Option<Header>,
    error: Option<DecodeError>,
}

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        FrameDecoder {
            limits,
            pending: None,
            error: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Splits one complete frame off the front of `buf`; `Ok(None)` means more bytes are needed
    /// (see [`FrameDecoder::needed`]).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let header = match self.pending {
            Some(h) => h,
            None => match parse_header(buf, &self.limits) {
                Ok(Some(h)) => {
                    self.pending = Some(h);
                    h
                }
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.error = Some(e.clone());
                    return Err(e);
                }
            },
        };
        let total = HEADER_LEN + header.size as usize;
        if buf.len() < total {
            // Make room for the body so reads land in place, but no more than
            // MAX_EAGER_RESERVE at a time: a 12-byte header must not make us allocate
            // max_body bytes for a body that may never come.
            buf.reserve((total - buf.len()).min(MAX_EAGER_RESERVE));
            return Ok(None);
        }
        self.pending = None;
        let body = buf.split_to(total).freeze().slice(HEADER_LEN..);
        Ok(Some(Frame {
            magic: header.magic,
            ty: header.ty,
            body,
        }))
    }

    /// Exactly how many more bytes the frame in progress needs (12 before a header is known).
    pub fn needed(&self, buf: &BytesMut) -> usize {
        match self.pending {
            Some(h) => (HEADER_LEN + h.size as usize).saturating_sub(buf.len()),
            None => HEADER_LEN.saturating_sub(buf.len()),
        }
    }

    /// Whether a frame is partly received (for end-of-stream reporting).
    pub fn is_mid_frame(&self, buf: &BytesMut) -> bool {
        self.pending.is_some() || !buf.is_empty()
    }

    /// The sticky error, if any.
    pub fn error(&self) -> Option<&DecodeError> {
        self.error.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_refused_on_header_alone() {
        let mut d = FrameDecoder::new(Limits {
            max_body: 10,
            ..Limits::default()
        });
        let mut buf = BytesMut::from(&b"\0REQ\0\0\0\x10\xff\xff\xff\xff"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(DecodeError::TooLarge {
                size: u32::MAX,
                max: 10
            })
        );
        // sticky
        assert!(d.decode(&mut BytesMut::new()).is_err());
    }

    #[test]
    fn a_large_announced_body_is_not_reserved_up_front() {
        let mut d = FrameDecoder::new(Limits::default());
        let mut header = b"\0REQ\0\0\0\x10".to_vec();
        header.extend_from_slice(&(32u32 << 20).to_be_bytes());
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(
            buf.capacity() <= HEADER_LEN + MAX_EAGER_RESERVE,
            "{}",
            buf.capacity()
        );
        assert_eq!(d.needed(&buf), 32 << 20);
    }

    #[test]
    fn a_small_body_is_reserved_whole() {
        let mut d = FrameDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"\0REQ\0\0\0\x10\0\0\x10\0"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.capacity() >= HEADER_LEN + 4096);
    }

    #[test]
    fn needs_exact_counts() {
        let mut d = FrameDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"\0REQ\0\0\0\x10\0\0\0\x03ab"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(d.needed(&buf), 1);
        buf.extend_from_slice(b"c");
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.ty, PacketType::EchoReq);
        assert_eq!(&f.body[..], b"abc");
        assert!(buf.is_empty());
    }
}
