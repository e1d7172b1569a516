//! One connection's pending output: packets and admin text, in order, with placeholders for
//! replies that wait for the store.

use crate::proto::{encode_response_parts, parts_encoded_len, Packet, PacketType, Part, Response};
use std::collections::VecDeque;

/// One queued piece of output.
#[derive(Debug)]
pub(crate) enum Outbound {
    Packet(Response),
    /// Bytes already encoded: admin text, or a packet written from borrowed parts.
    Encoded(Vec<u8>),
    /// A JOB_CREATED (or ERROR) that waits for the store to commit this durable id; it
    /// holds back everything behind it so replies stay in request order.
    AwaitPersist(u64),
}

impl Outbound {
    fn len(&self) -> usize {
        match self {
            Outbound::Packet(r) => r.encoded_len(),
            Outbound::Encoded(t) => t.len(),
            Outbound::AwaitPersist(_) => 0,
        }
    }
}

/// The first allocation of a connection's ready output: room for a few replies.
const READY_FIRST_CAPACITY: usize = 512;

/// A connection's output: what can go now, already encoded, and what waits behind the
/// first unresolved placeholder.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Output ready to go, already encoded; unallocated while there is none, so an idle
    /// connection holds no buffer.
    ready: Vec<u8>,
    /// Output behind the first unresolved placeholder, in order (only with a store).
    held: VecDeque<Outbound>,
    /// Encoded size of the packets in `held`.
    held_bytes: usize,
}

impl Output {
    /// Queues output; returns the bytes now pending.
    pub(crate) fn queue(&mut self, item: Outbound) -> usize {
        if self.held.is_empty() && !matches!(item, Outbound::AwaitPersist(_)) {
            self.encode(&item);
        } else {
            self.held_bytes += item.len();
            self.held.push_back(item);
        }
        self.ready.len() + self.held_bytes
    }

    /// Queues a response given by its borrowed parts, encoded into the ready output (or,
    /// behind a placeholder, into a buffer of its own that waits in order); returns the
    /// bytes now pending.
    pub(crate) fn queue_parts(&mut self, ty: PacketType, parts: &[Part<'_>]) -> usize {
        if !self.held.is_empty() {
            let mut encoded = Vec::with_capacity(parts_encoded_len(parts));
            encode_response_parts(&mut encoded, ty, parts);
            return self.queue(Outbound::Encoded(encoded));
        }
        if self.ready.capacity() == 0 {
            let len = parts_encoded_len(parts);
            self.ready.reserve(len.max(READY_FIRST_CAPACITY));
        }
        encode_response_parts(&mut self.ready, ty, parts);
        self.ready.len()
    }

    /// Appends a packet or text to the ready output.
    fn encode(&mut self, item: &Outbound) {
        if self.ready.capacity() == 0 {
            // One allocation for the usual few replies, instead of growing from 8 bytes.
            self.ready.reserve(item.len().max(READY_FIRST_CAPACITY));
        }
        match item {
            Outbound::Packet(r) => r.encode(&mut self.ready),
            Outbound::Encoded(t) => self.ready.extend_from_slice(t),
            Outbound::AwaitPersist(_) => {}
        }
    }

    pub(crate) fn discard(&mut self) {
        self.ready = Vec::new();
        self.held = VecDeque::new();
        self.held_bytes = 0;
    }

    /// Replaces the first placeholder for `durable_id` with `reply`; what no longer waits
    /// behind a placeholder becomes ready.
    pub(crate) fn resolve(&mut self, durable_id: u64, reply: Response) {
        if let Some(slot) = self
            .held
            .iter_mut()
            .find(|o| matches!(o, Outbound::AwaitPersist(d) if *d == durable_id))
        {
            self.held_bytes += reply.encoded_len();
            *slot = Outbound::Packet(reply);
        }
        while self
            .held
            .front()
            .is_some_and(|o| !matches!(o, Outbound::AwaitPersist(_)))
        {
            if let Some(item) = self.held.pop_front() {
                self.held_bytes = self.held_bytes.saturating_sub(item.len());
                self.encode(&item);
            }
        }
        if self.held.is_empty() {
            self.held = VecDeque::new();
        }
    }

    /// The durable ids of the placeholders still queued, in order (for invariant checks).
    pub(crate) fn placeholders(&self) -> impl Iterator<Item = u64> + '_ {
        self.held.iter().filter_map(|o| match o {
            Outbound::AwaitPersist(d) => Some(*d),
            _ => None,
        })
    }

    /// Bytes queued: ready, and held behind a placeholder.
    pub(crate) fn pending(&self) -> usize {
        self.ready.len() + self.held_bytes
    }

    /// Whether something can be sent now (not held back by a placeholder).
    pub(crate) fn is_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Moves the ready output (everything before an unresolved placeholder) into `out`,
    /// without copying when `out` is empty; the connection keeps no buffer afterwards.
    /// Returns the bytes moved and the buffer `out` held before (empty, for reuse).
    pub(crate) fn transmit(&mut self, out: &mut Vec<u8>) -> (usize, Vec<u8>) {
        let n = self.ready.len();
        if out.is_empty() {
            std::mem::swap(out, &mut self.ready);
        } else {
            out.extend_from_slice(&self.ready);
        }
        let mut spent = std::mem::take(&mut self.ready);
        spent.clear();
        (n, spent)
    }

    /// Whether the next output would allocate a buffer (none held, nothing waiting).
    pub(crate) fn wants_buffer(&self) -> bool {
        self.ready.capacity() == 0 && self.held.is_empty()
    }

    /// Takes `buffer` (empty) for the next output, in place of a new allocation.
    pub(crate) fn give_buffer(&mut self, mut buffer: Vec<u8>) {
        if self.ready.capacity() == 0 {
            buffer.clear();
            self.ready = buffer;
        }
    }
}
