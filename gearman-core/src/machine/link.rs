//! The link under every client and worker connection, and the one [`Machine`]
//! implementation over it. Its items are `pub` in a private module: the blanket `Machine`
//! impl names them, nothing outside the crate can.

use super::{Machine, RequestIds};
use crate::error::{ConnError, UsageError};
use crate::limits::Limits;
use crate::proto::{FrameDecoder, Packet, Request, Response};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::time::Instant;

/// What a client or a worker connection is beyond its role: what the server sends, framed
/// and parsed; what goes out, queued (`O`); the events for the application (`E`); the
/// request ids handed out; and the sticky error that ends it all.
#[derive(Debug)]
pub struct Link<E, O> {
    reader: ResponseReader,
    pub(crate) out: O,
    pub(crate) events: VecDeque<E>,
    pub(crate) ids: RequestIds,
    sticky: Sticky,
}

impl<E, O: Outbox> Link<E, O> {
    pub(crate) fn new(limits: Limits, out: O) -> Self {
        Link {
            reader: ResponseReader::new(limits),
            out,
            events: VecDeque::new(),
            ids: RequestIds::default(),
            sticky: Sticky::default(),
        }
    }

    /// `Err(UsageError::Closed)` once the connection is closed.
    pub(crate) fn usable(&self) -> Result<(), UsageError> {
        match self.sticky.get() {
            Some(_) => Err(UsageError::Closed),
            None => Ok(()),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.sticky.get().is_some()
    }
}

/// An output queue a [`Link`] drains into the socket.
pub trait Outbox {
    /// Drops everything queued (the connection closed).
    fn clear(&mut self);
    /// Appends what may go on the wire now to `out`; returns how many bytes.
    fn drain_into(&mut self, out: &mut Vec<u8>) -> usize;
}

/// A connection role on a [`Link`]: the client's reply matching or the worker's grab
/// cycle. Every role is a [`Machine`] through the one implementation below.
pub trait Role {
    /// What the role reports.
    type Event;
    /// Its output queue.
    type Out: Outbox;

    fn link(&self) -> &Link<Self::Event, Self::Out>;

    fn link_mut(&mut self) -> &mut Link<Self::Event, Self::Out>;

    /// Handles one packet from the server; an error closes the connection.
    fn on_response(&mut self, response: Response) -> Result<(), ConnError>;

    /// Forgets the role's state as the connection closes; returns the `Closed` event.
    fn on_close(&mut self, reason: ConnError) -> Self::Event;

    /// The role's next timer, if any.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Runs the role's timers due at `now`.
    fn expire(&mut self, _now: Instant) {}

    /// Closes the connection with `reason`, unless it already is: output dropped, role
    /// state forgotten, one `Closed` event queued.
    fn fail(&mut self, reason: ConnError) {
        if self.link_mut().sticky.set(reason.clone()) {
            self.link_mut().out.clear();
            let closed = self.on_close(reason);
            self.link_mut().events.push_back(closed);
        }
    }
}

impl<R: Role> Machine for R {
    type Event = R::Event;

    fn handle_input(&mut self, bytes: &[u8], _now: Instant) -> Result<(), ConnError> {
        self.link().sticky.check()?;
        self.link_mut().reader.push(bytes);
        loop {
            let step = match self.link_mut().reader.next_response() {
                Ok(Some(response)) => self.on_response(response),
                Ok(None) => return Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = step {
                self.fail(e.clone());
                return Err(e);
            }
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        let reason = self.link().reader.eof_error();
        self.fail(reason);
    }

    fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        self.link_mut().out.drain_into(out)
    }

    fn poll_event(&mut self) -> Option<R::Event> {
        self.link_mut().events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.link().is_closed() {
            return None;
        }
        self.next_deadline()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    fn is_closed(&self) -> bool {
        self.link().is_closed()
    }

    fn error(&self) -> Option<&ConnError> {
        self.link().sticky.get()
    }

    fn close(&mut self) {
        self.fail(ConnError::Closed);
    }
}

/// Frames and parses what a server sends. Any malformed or misdirected packet from the
/// server is fatal for a client or worker: unlike a server, they have no way to answer it.
#[derive(Debug)]
struct ResponseReader {
    decoder: FrameDecoder,
    buf: BytesMut,
}

impl ResponseReader {
    fn new(limits: Limits) -> Self {
        ResponseReader {
            decoder: FrameDecoder::new(limits),
            buf: BytesMut::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete response, `Ok(None)` when more bytes are needed.
    fn next_response(&mut self) -> Result<Option<Response>, ConnError> {
        match self.decoder.decode(&mut self.buf)? {
            None => Ok(None),
            Some(frame) => Ok(Some(Response::parse(&frame)?)),
        }
    }

    /// The error that an end of stream at this point amounts to.
    fn eof_error(&self) -> ConnError {
        ConnError::Eof {
            mid_frame: self.decoder.is_mid_frame(&self.buf),
        }
    }
}

/// Requests waiting to be written, kept typed and encoded only in `poll_transmit`.
#[derive(Debug, Default)]
pub struct RequestQueue {
    queue: VecDeque<Request>,
}

impl RequestQueue {
    pub(crate) fn push(&mut self, request: Request) {
        self.queue.push_back(request);
    }
}

impl Outbox for RequestQueue {
    fn clear(&mut self) {
        self.queue.clear();
    }

    /// Encodes everything queued into `out`.
    fn drain_into(&mut self, out: &mut Vec<u8>) -> usize {
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
struct Sticky {
    error: Option<ConnError>,
}

impl Sticky {
    fn get(&self) -> Option<&ConnError> {
        self.error.as_ref()
    }

    /// `Err(the sticky error)` once closed.
    fn check(&self) -> Result<(), ConnError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records the first error; returns true if this call closed the connection.
    fn set(&mut self, error: ConnError) -> bool {
        if self.error.is_some() {
            return false;
        }
        self.error = Some(error);
        true
    }
}
