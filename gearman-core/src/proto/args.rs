//! Splitting a body into arguments by the arity table, and writing bodies back.
//!
//! Unlike gearmand, every NUL search is bounded by the declared body size, so a packet
//! missing a terminator cannot swallow the next one.

use super::error::DecodeError;
use super::PacketType;
use bytes::{BufMut, Bytes};
use nom::bytes::complete::{tag, take_till};
use nom::sequence::terminated;
use nom::{IResult, Parser};

fn nul_terminated(input: &[u8]) -> IResult<&[u8], &[u8]> {
    terminated(take_till(|b| b == 0), tag(&b"\0"[..])).parse(input)
}

/// A body split per its type's arity: `args` holds every argument including the final
/// remainder/data one, so `args.len() == argc + has_data as usize` (or 1 when argc is 0
/// and the type carries data).
///
/// Only offsets are kept: an argument becomes a `Bytes` (one reference count) when it is
/// taken, so a split costs no clones, drops or copies of a `Bytes` array per packet.
pub(crate) struct Args<'a> {
    body: &'a Bytes,
    /// `(start, end)` of each argument in `body`.
    bounds: [(u32, u32); MAX_ARGS],
    len: usize,
}

/// The most arguments a packet type has (SUBMIT_JOB_SCHED: function, unique, five
/// schedule fields, data).
const MAX_ARGS: usize = 8;

impl<'a> Args<'a> {
    /// Splits `body` for `ty`.
    pub(crate) fn split(ty: PacketType, body: &'a Bytes) -> Result<Args<'a>, DecodeError> {
        let (argc, has_data) = ty.arity();
        let terminated_count = if has_data {
            argc
        } else {
            argc.saturating_sub(1)
        };
        let mut bounds = [(0u32, 0u32); MAX_ARGS];
        let mut rest: &[u8] = body;
        let mut at = 0usize;
        let mut len = 0;
        // Bodies are bounded by the frame limit (a u32 length), so offsets fit in u32.
        let offset = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        for got in 0..terminated_count {
            match nul_terminated(rest) {
                Ok((after, arg)) => {
                    if let Some(slot) = bounds.get_mut(len) {
                        *slot = (offset(at), offset(at + arg.len()));
                    }
                    len += 1;
                    at += arg.len() + 1;
                    rest = after;
                }
                Err(_) => {
                    return Err(DecodeError::MissingArgument {
                        ty,
                        expected: terminated_count,
                        got,
                    })
                }
            }
        }
        if has_data || argc > 0 {
            if let Some(slot) = bounds.get_mut(len) {
                *slot = (offset(at), offset(body.len()));
            }
            len += 1;
        }
        Ok(Args { body, bounds, len })
    }

    /// Argument `i` (empty if absent, which the arity table rules out for callers).
    pub(crate) fn get(&self, i: usize) -> Bytes {
        match self.bounds.get(i) {
            Some(&(start, end)) if i < self.len && start < end => {
                self.body.slice(start as usize..end as usize)
            }
            _ => Bytes::new(),
        }
    }
}

/// One piece of a body to write: bytes, or a number rendered in decimal ASCII. `pub` in a
/// private module: the sealed `Packet` trait names it, nothing outside the crate can.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    Raw(&'a [u8]),
    Unsigned(u64),
    Signed(i64),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Part::Raw(b) => b.len(),
            Part::Unsigned(n) => decimal_len(*n),
            Part::Signed(n) => usize::from(*n < 0) + decimal_len(n.unsigned_abs()),
        }
    }

    fn put<B: BufMut>(&self, out: &mut B) {
        match self {
            Part::Raw(b) => out.put_slice(b),
            Part::Unsigned(n) => put_decimal(out, *n),
            Part::Signed(n) => {
                if *n < 0 {
                    out.put_u8(b'-');
                }
                put_decimal(out, n.unsigned_abs());
            }
        }
    }
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn put_decimal<B: BufMut>(out: &mut B, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.put_slice(digits.get(i..).unwrap_or_default());
}

/// Body length of `parts` joined by NULs.
pub(crate) fn body_len(parts: &[Part<'_>]) -> usize {
    parts.iter().map(Part::len).sum::<usize>() + parts.len().saturating_sub(1)
}

/// Writes `parts` joined by NULs.
pub(crate) fn put_body<B: BufMut>(out: &mut B, parts: &[Part<'_>]) {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.put_u8(0);
        }
        p.put(out);
    }
}

/// Strict decimal parse: ASCII digits only, optional leading `-` when `signed`.
pub(crate) fn parse_u32(ty: PacketType, field: &'static str, b: &[u8]) -> Result<u32, DecodeError> {
    std::str::from_utf8(b)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(DecodeError::BadNumber { ty, field })
}

/// Strict signed decimal parse.
pub(crate) fn parse_i64(ty: PacketType, field: &'static str, b: &[u8]) -> Result<i64, DecodeError> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::BadNumber { ty, field });
    }
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(DecodeError::BadNumber { ty, field })
}

/// Strips trailing NULs: gearmand forwards some handles (WORK_FAIL after an exception
/// downgrade) with their terminator, and gearmand 2.0's client tolerates it. All of them go,
/// so parsing is idempotent (found by fuzzing: `"\0z\0\0"` re-parsed differently).
pub(crate) fn strip_trailing_nul(b: Bytes) -> Bytes {
    let keep = b.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    b.slice(..keep)
}

/// The bytes before the first NUL: gearmand copies GET_STATUS handles and GET_STATUS_UNIQUE
/// uniques with `snprintf("%.*s")`, so anything from a NUL on is ignored. Handles and uniques
/// never contain NUL, and a reply echoing the cut value keeps its framing.
pub(crate) fn until_nul(b: Bytes) -> Bytes {
    match b.iter().position(|&c| c == 0) {
        Some(nul) => b.slice(..nul),
        None => b,
    }
}
