//! A client connection's outgoing queue, with streamed workloads (PECL's
//! `setWorkloadCallback`): a submission whose data, of known length, comes from the
//! application's source while it is sent, never held whole.
//!
//! The queue emits a streamed submission's header and arguments with the size field
//! counting the data to come, then nothing else until the data is complete: every packet
//! queued later waits behind it, because the frame must not be interleaved. The adapter
//! asks [`Outgoing::wanted`] how many bytes it may read from the source (at most one chunk,
//! and only once the previous chunk was taken), and hands what it read to
//! [`Outgoing::feed`]. The frame's last byte is held back until the source has ended (a
//! read of zero bytes): a source that ends early or yields more than declared is found
//! before the frame is complete, so the server never runs a job with a wrong workload.

use crate::error::WorkloadError;
use crate::machine::{Outbox, RequestId};
use crate::proto::{Packet, Request};
use std::collections::VecDeque;

/// The most a source is asked for at once: what the client holds of a streamed workload.
pub const WORKLOAD_CHUNK: usize = 64 * 1024;

/// Where the size field sits in a packet header (after magic and type).
const SIZE_FIELD: std::ops::Range<usize> = 8..12;

#[derive(Debug)]
enum Item {
    Packet(Request),
    /// A submission with empty data, whose `len` data bytes come from a source.
    Streamed {
        req: RequestId,
        head: Request,
        len: u64,
    },
}

/// The streamed workload on the wire now.
#[derive(Debug)]
struct Streaming {
    req: RequestId,
    len: u64,
    /// Data bytes the source has still to produce.
    left: u64,
    /// The frame's last byte so far, sent once more bytes or the source's end arrive.
    held: Option<u8>,
}

/// Packets and streamed workloads waiting to be sent, in order. `pub` in a private
/// module: the connection's link names it, nothing outside the crate can.
#[derive(Debug, Default)]
pub struct Outgoing {
    queue: VecDeque<Item>,
    streaming: Option<Streaming>,
    /// Workload bytes fed but not yet taken by [`Outgoing::drain_into`].
    pending: Vec<u8>,
}

impl Outgoing {
    pub(crate) fn push(&mut self, request: Request) {
        self.queue.push_back(Item::Packet(request));
    }

    /// Queues a submission (`head`, its data empty) whose `len` data bytes will be fed.
    pub(crate) fn push_streamed(&mut self, req: RequestId, head: Request, len: u64) {
        self.queue.push_back(Item::Streamed { req, head, len });
    }

    /// The streamed submission whose source should be read now, and how many bytes to
    /// read at most (one more than is still due, so a source that runs long shows).
    pub(crate) fn wanted(&self) -> Option<(RequestId, usize)> {
        let s = self
            .streaming
            .as_ref()
            .filter(|_| self.pending.is_empty())?;
        let want = s.left.saturating_add(1).min(WORKLOAD_CHUNK as u64);
        Some((s.req, usize::try_from(want).unwrap_or(WORKLOAD_CHUNK)))
    }

    /// Takes bytes read from the streamed workload's source; empty means it ended. Returns
    /// the submission whose source failed, and why.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), (RequestId, WorkloadError)> {
        let Some(s) = self.streaming.as_mut() else {
            return Ok(());
        };
        let Some((last, rest)) = bytes.split_last() else {
            if s.left > 0 {
                let sent = s.len - s.left;
                return Err((s.req, WorkloadError::Short { len: s.len, sent }));
            }
            self.pending.extend(s.held.take());
            self.streaming = None;
            return Ok(());
        };
        if bytes.len() as u64 > s.left {
            return Err((s.req, WorkloadError::Long { len: s.len }));
        }
        self.pending.extend(s.held.take());
        self.pending.extend_from_slice(rest);
        s.held = Some(*last);
        s.left -= bytes.len() as u64;
        Ok(())
    }

    /// The streamed submission on the wire now, if any.
    pub(crate) fn streaming(&self) -> Option<RequestId> {
        self.streaming.as_ref().map(|s| s.req)
    }

    /// The streamed submission on the wire now, its declared length and the bytes its
    /// source produced so far.
    pub(crate) fn progress(&self) -> Option<(RequestId, u64, u64)> {
        let s = self.streaming.as_ref()?;
        Some((s.req, s.len, s.len - s.left))
    }
}

impl Outbox for Outgoing {
    fn clear(&mut self) {
        self.queue.clear();
        self.streaming = None;
        self.pending = Vec::new();
    }

    /// Appends what may go on the wire now: fed workload bytes, then queued packets up to
    /// and including the next streamed submission's header.
    fn drain_into(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        out.append(&mut self.pending);
        if self.streaming.is_some() {
            return out.len() - before;
        }
        while let Some(item) = self.queue.pop_front() {
            match item {
                Item::Packet(request) => request.encode(out),
                Item::Streamed { req, head, len } => {
                    let start = out.len();
                    head.encode(out);
                    let body = (out.len() - start - crate::proto::HEADER_LEN) as u64;
                    // Checked when queued: the whole body fits the u32 size field.
                    let size = u32::try_from(body + len).unwrap_or(u32::MAX);
                    if let Some(field) =
                        out.get_mut(start + SIZE_FIELD.start..start + SIZE_FIELD.end)
                    {
                        field.copy_from_slice(&size.to_be_bytes());
                    }
                    let held = out.pop();
                    self.streaming = Some(Streaming {
                        req,
                        len,
                        left: len,
                        held,
                    });
                    break;
                }
            }
        }
        out.len() - before
    }
}
