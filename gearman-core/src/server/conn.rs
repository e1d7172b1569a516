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
    out: VecDeque<Outbound>,
    out_bytes: usize,
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
            out: VecDeque::new(),
            out_bytes: 0,
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
        self.out_bytes += item.len();
        self.out.push_back(item);
        self.out_bytes
    }

    pub(crate) fn discard_output(&mut self) {
        self.out.clear();
        self.out_bytes = 0;
    }

    /// Replaces the first placeholder for `durable_id` with `reply`.
    pub(crate) fn resolve(&mut self, durable_id: u64, reply: Response) {
        if let Some(slot) = self
            .out
            .iter_mut()
            .find(|o| matches!(o, Outbound::AwaitPersist(d) if *d == durable_id))
        {
            self.out_bytes += reply.encoded_len();
            *slot = Outbound::Packet(reply);
        }
    }

    /// The durable ids of the placeholders still queued, in order (for invariant checks).
    pub(crate) fn placeholders(&self) -> impl Iterator<Item = u64> + '_ {
        self.out.iter().filter_map(|o| match o {
            Outbound::AwaitPersist(d) => Some(*d),
            _ => None,
        })
    }

    pub(crate) fn has_output(&self) -> bool {
        matches!(self.out.front(), Some(o) if !matches!(o, Outbound::AwaitPersist(_)))
    }

    /// Encodes ready output into `out`, stopping at an unresolved placeholder.
    pub(crate) fn transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        while let Some(item) = self.out.front() {
            match item {
                Outbound::AwaitPersist(_) => break,
                Outbound::Packet(r) => r.encode(out),
                Outbound::Text(t) => out.extend_from_slice(t),
            }
            if let Some(item) = self.out.pop_front() {
                self.out_bytes = self.out_bytes.saturating_sub(item.len());
            }
        }
        out.len() - before
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
