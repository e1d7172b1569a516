//! The `Machine` contract shared by client and worker connections. Both run on one link
//! (the response reader, the output queue, the events and the sticky error), so the
//! contract is implemented once, for every role on that link.
//!
//! Contract (str0m's single-mutation invariant): after any method that takes `&mut self`,
//! call [`Machine::poll_transmit`] and [`Machine::poll_event`] until each returns nothing,
//! then wait for the earliest of [`Machine::poll_timeout`], readable input, or an
//! application command.

mod link;

pub(crate) use link::{Link, Outbox, RequestQueue, Role};

use crate::error::ConnError;
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
