//! Per-connection state kept by the server: framing, pending output, and the roles the
//! peer has taken (worker abilities, jobs held, jobs watched as a client).

use super::session::Session;
use crate::limits::Limits;
use crate::proto::Response;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Who is on the other end, for the admin `workers` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The number shown first on a `workers` line (gearmand shows the socket fd).
    pub fd: u64,
    /// Textual peer address, without port.
    pub ip: String,
}

/// The first allocation of a connection's ready output: room for a few replies.
const READY_FIRST_CAPACITY: usize = 512;

/// One queued piece of output.
#[derive(Debug)]
pub(crate) enum Outbound {
    Packet(Response),
    Text(Vec<u8>),
    /// A JOB_CREATED (or ERROR) that waits for the store to commit this durable id; it
    /// holds back everything behind it so replies stay in request order.
    AwaitPersist(u64),
}

impl Outbound {
    fn len(&self) -> usize {
        match self {
            Outbound::Packet(r) => r.encoded_len(),
            Outbound::Text(t) => t.len(),
            Outbound::AwaitPersist(_) => 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: PeerInfo,
    pub(crate) session: Session,
    /// Output ready to go, already encoded; unallocated while there is none, so an idle
    /// connection holds no buffer.
    ready: Vec<u8>,
    /// Output behind the first unresolved placeholder, in order (only with a store).
    held: VecDeque<Outbound>,
    /// Encoded size of the packets in `held`.
    held_bytes: usize,
    pub(crate) in_writable: bool,
    /// Set once the server decided to close it; input is ignored from then on.
    pub(crate) closing: bool,
    pub(crate) client_id: Bytes,
    pub(crate) exceptions: bool,
    /// Functions this worker can do, each once, with the timeout of its latest registration.
    pub(crate) abilities: Vec<(Bytes, Option<Duration>)>,
    /// CAN_DO registrations per entry of `abilities` (duplicates count, as in gearmand).
    pub(crate) registrations: Vec<usize>,
    /// Round-robin start among `abilities` for the next grab.
    pub(crate) rr_cursor: usize,
    pub(crate) sleeping: bool,
    pub(crate) noop_sent: bool,
    /// Jobs this worker holds.
    pub(crate) running: Vec<u64>,
    /// Jobs this client submitted in the foreground, with the number of submissions
    /// attached to each (a map, so a client with many jobs in flight costs O(1) per result).
    pub(crate) watching: HashMap<u64, usize>,
    /// Who the peer is and what it may do.
    pub(crate) access: super::access::Access,
}

impl Conn {
    pub(crate) fn new(peer: PeerInfo, limits: Limits, exceptions: bool) -> Self {
        Conn {
            peer,
            session: Session::new(limits),
            ready: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            in_writable: false,
            closing: false,
            client_id: Bytes::from_static(b"-"),
            exceptions,
            abilities: Vec::new(),
            registrations: Vec::new(),
            rr_cursor: 0,
            sleeping: false,
            noop_sent: false,
            running: Vec::new(),
            watching: HashMap::new(),
            access: super::access::Access::new(crate::acl::Identity::Anonymous, None),
        }
    }

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

    /// Appends a packet or text to the ready output.
    fn encode(&mut self, item: &Outbound) {
        if self.ready.capacity() == 0 {
            // One allocation for the usual few replies, instead of growing from 8 bytes.
            self.ready.reserve(item.len().max(READY_FIRST_CAPACITY));
        }
        match item {
            Outbound::Packet(r) => r.encode(&mut self.ready),
            Outbound::Text(t) => self.ready.extend_from_slice(t),
            Outbound::AwaitPersist(_) => {}
        }
    }

    pub(crate) fn discard_output(&mut self) {
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

    pub(crate) fn has_output(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Moves the ready output (everything before an unresolved placeholder) into `out`,
    /// without copying when `out` is empty; the connection keeps no buffer afterwards.
    pub(crate) fn transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.ready.len();
        if out.is_empty() {
            std::mem::swap(out, &mut self.ready);
        } else {
            out.extend_from_slice(&self.ready);
        }
        self.ready = Vec::new();
        n
    }

    /// One more foreground submission of this connection attached to `job`.
    pub(crate) fn watch(&mut self, job: u64) {
        *self.watching.entry(job).or_default() += 1;
    }

    /// One attached submission of `job` detached.
    pub(crate) fn unwatch(&mut self, job: u64) {
        if let Some(n) = self.watching.get_mut(&job) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.watching.remove(&job);
            }
        }
    }

    pub(crate) fn ability(&self, function: &[u8]) -> Option<usize> {
        self.abilities.iter().position(|(f, _)| f == function)
    }
}
