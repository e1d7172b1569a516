//! The `Machine` contract shared by client and worker connections, and the small pieces
//! both use: a response reader (framing + typed parsing) and a lazily encoded request queue.
//!
//! Contract (str0m's single-mutation invariant): after any method that takes `&mut self`,
//! call [`Machine::poll_transmit`] and [`Machine::poll_event`] until each returns nothing,
//! then wait for the earliest of [`Machine::poll_timeout`], readable input, or an
//! application command.

use crate::error::ConnError;
use crate::limits::Limits;
use crate::proto::{FrameDecoder, Packet, Request, Response};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::time::Instant;

/// One connection's protocol state, without I/O. Implemented by
/// [`ClientConnection`](crate::client::ClientConnection) and
/// [`WorkerConnection`](crate::worker::WorkerConnection), so one driver per runtime serves
/// both roles.
pub trait Machine {
    /// What the machine reports to the application.
    type Event;

    /// Feeds bytes read from the peer. An `Err` is fatal and sticky: the machine is closed,
    /// a `Closed` event is queued, and every later call returns the same error.
    fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ConnError>;

    /// The peer closed its side of the stream.
    fn handle_eof(&mut self, now: Instant);

    /// Appends bytes to send to `out`; returns how many were appended (0 = nothing to send).
    #[must_use]
    fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize;

    /// The next event for the application, if any.
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When [`Machine::handle_timeout`] next needs to run, if ever.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// Runs the timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// True once the connection is finished (error, EOF or local close). Drain events and
    /// output first: a final `Closed` event is still queued.
    fn is_closed(&self) -> bool;

    /// Why the connection closed, once it has.
    fn error(&self) -> Option<&ConnError>;

    /// Closes the connection locally: queued output is discarded and a `Closed` event with
    /// [`ConnError::Closed`] is queued (unless it was already closed).
    fn close(&mut self);
}

/// Frames and parses what a server sends. Any malformed or misdirected packet from the
/// server is fatal for a client or worker: unlike a server, they have no way to answer it.
#[derive(Debug)]
pub(crate) struct ResponseReader {
    decoder: FrameDecoder,
    buf: BytesMut,
}

impl ResponseReader {
    pub(crate) fn new(limits: Limits) -> Self {
        ResponseReader {
            decoder: FrameDecoder::new(limits),
            buf: BytesMut::new(),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete response, `Ok(None)` when more bytes are needed.
    pub(crate) fn next_response(&mut self) -> Result<Option<Response>, ConnError> {
        match self.decoder.decode(&mut self.buf)? {
            None => Ok(None),
            Some(frame) => Ok(Some(Response::parse(&frame)?)),
        }
    }

    /// The error that an end of stream at this point amounts to.
    pub(crate) fn eof_error(&self) -> ConnError {
        ConnError::Eof {
            mid_frame: self.decoder.is_mid_frame(&self.buf),
        }
    }
}

/// Requests waiting to be written, kept typed and encoded only in `poll_transmit`.
#[derive(Debug, Default)]
pub(crate) struct RequestQueue {
    queue: VecDeque<Request>,
}

impl RequestQueue {
    pub(crate) fn push(&mut self, request: Request) {
        self.queue.push_back(request);
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }

    /// Encodes everything queued into `out`.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        let total: usize = self.queue.iter().map(Request::encoded_len).sum();
        out.reserve(total);
        for request in self.queue.drain(..) {
            request.encode(out);
        }
        out.len() - before
    }
}

/// The sticky end state of a connection.
#[derive(Debug, Default)]
pub(crate) struct Sticky {
    error: Option<ConnError>,
}

impl Sticky {
    pub(crate) fn get(&self) -> Option<&ConnError> {
        self.error.as_ref()
    }

    /// `Err(the sticky error)` once closed.
    pub(crate) fn check(&self) -> Result<(), ConnError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records the first error; returns true if this call closed the connection.
    pub(crate) fn set(&mut self, error: ConnError) -> bool {
        if self.error.is_some() {
            return false;
        }
        self.error = Some(error);
        true
    }
}

/// Names one command given to a connection, so its replies can be matched to it.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Hands out increasing request ids.
#[derive(Debug, Default)]
pub(crate) struct RequestIds {
    next: u64,
}

impl RequestIds {
    pub(crate) fn next_id(&mut self) -> RequestId {
        self.next += 1;
        RequestId(self.next)
    }
}
