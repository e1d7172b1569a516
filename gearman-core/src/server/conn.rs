//! The connection table: each connection's session and roles, and which have output ready.

use super::id_map::IdMap;
use super::output::{Outbound, Output};
use super::roles::{ClientRole, WorkerRole};
use super::session::Session;
use super::ConnId;
use crate::proto::{PacketType, Part};
use std::collections::VecDeque;

/// One connection: its session and the roles its peer took.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) session: Session,
    pub(crate) client: ClientRole,
    pub(crate) worker: WorkerRole,
}

/// Every open connection.
#[derive(Debug, Default)]
pub(crate) struct Conns {
    map: IdMap<ConnId, Conn>,
    next: u64,
    /// Connections with output ready, each once until drained.
    writable: VecDeque<ConnId>,
    /// Output buffers handed back by transmits, for the next connection that has output:
    /// a busy server reuses a few buffers instead of allocating and growing one per
    /// transmit, while an idle connection still holds none.
    spare: Vec<Vec<u8>>,
}

/// Spare output buffers kept at most, and the largest kept (bounding them to 1 MiB).
const SPARE_BUFFERS: usize = 16;
const SPARE_MAX_CAPACITY: usize = 64 * 1024;

/// Queueing output went past the connection's bound.
pub(crate) struct Overflow;

impl Conns {
    pub(crate) fn insert(&mut self, conn: Conn) -> ConnId {
        self.next += 1;
        let id = ConnId(self.next);
        self.map.insert(id, conn);
        id
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.map.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.map.get_mut(&id)
    }

    pub(crate) fn remove(&mut self, id: ConnId) {
        self.map.remove(&id);
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.map.iter().map(|(id, c)| (*id, c))
    }

    /// Every connection id, sorted (for stable admin listings).
    pub(crate) fn sorted_ids(&self) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self.map.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Queues output for `id` unless it is closing; past `max_bytes` pending, the output is
    /// discarded and `Err(Overflow)` says the connection must close.
    pub(crate) fn queue(
        &mut self,
        id: ConnId,
        item: Outbound,
        max_bytes: usize,
    ) -> Result<(), Overflow> {
        self.queue_with(id, max_bytes, |output| output.queue(item))
    }

    /// [`Conns::queue`] for a response given by its borrowed parts.
    pub(crate) fn queue_parts(
        &mut self,
        id: ConnId,
        ty: PacketType,
        parts: &[Part<'_>],
        max_bytes: usize,
    ) -> Result<(), Overflow> {
        self.queue_with(id, max_bytes, |output| output.queue_parts(ty, parts))
    }

    /// Queues with `put` (which returns the bytes now pending); output for a closed or
    /// closing connection is dropped.
    fn queue_with(
        &mut self,
        id: ConnId,
        max_bytes: usize,
        put: impl FnOnce(&mut Output) -> usize,
    ) -> Result<(), Overflow> {
        let Some(c) = self.map.get_mut(&id) else {
            return Ok(());
        };
        let s = &mut c.session;
        if s.closing {
            return Ok(());
        }
        if s.output.wants_buffer() {
            if let Some(buffer) = self.spare.pop() {
                s.output.give_buffer(buffer);
            }
        }
        let pending = put(&mut s.output);
        if !s.in_writable {
            s.in_writable = true;
            self.writable.push_back(id);
        }
        if pending > max_bytes {
            s.output.discard();
            return Err(Overflow);
        }
        Ok(())
    }

    /// Moves `id`'s ready output into `out` (see `Output::transmit`); keeps the buffer
    /// `out` held as a spare. Returns the bytes moved.
    pub(crate) fn transmit(&mut self, id: ConnId, out: &mut Vec<u8>) -> usize {
        let Some(c) = self.map.get_mut(&id) else {
            return 0;
        };
        let (n, spent) = c.session.output.transmit(out);
        let fits = (1..=SPARE_MAX_CAPACITY).contains(&spent.capacity());
        if fits && self.spare.len() < SPARE_BUFFERS {
            self.spare.push(spent);
        }
        n
    }

    /// Lists `id` as writable if it has output ready and is not listed yet.
    pub(crate) fn mark_writable(&mut self, id: ConnId) {
        if let Some(c) = self.map.get_mut(&id) {
            let s = &mut c.session;
            if !s.in_writable && s.output.is_ready() {
                s.in_writable = true;
                self.writable.push_back(id);
            }
        }
    }

    /// The next connection with output ready.
    pub(crate) fn pop_writable(&mut self) -> Option<ConnId> {
        while let Some(id) = self.writable.pop_front() {
            if let Some(c) = self.map.get_mut(&id) {
                c.session.in_writable = false;
                if c.session.output.is_ready() {
                    return Some(id);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::{Packet, Request};
    use crate::server::{PeerInfo, Server, ServerConfig};
    use bytes::Bytes;
    use std::time::Instant;

    /// The buffer a transmit hands back carries the next connection's output (no new
    /// allocation), and a connection keeps no buffer once its output is taken.
    #[test]
    fn transmitted_buffers_are_reused_for_the_next_output() {
        let now = Instant::now();
        let mut s = Server::new(ServerConfig::new(now, 0), now);
        let mut connect = |fd| {
            let ip = "127.0.0.1".into();
            s.accept(PeerInfo { fd, ip }, now)
        };
        let (a, b) = (connect(1), connect(2));
        let echo = Request::Echo {
            data: Bytes::from_static(b"ping"),
        }
        .to_bytes();
        s.handle_input(a, &echo, now);
        let mut out = Vec::with_capacity(4096);
        let spare = out.as_ptr();
        assert!(s.poll_transmit(a, &mut out) > 0);
        assert_ne!(out.as_ptr(), spare, "a's output moved out whole");
        let a_output = s.conns.get(a).map(|c| c.session.output.wants_buffer());
        assert_eq!(a_output, Some(true), "a holds no buffer");
        s.handle_input(b, &echo, now);
        let mut next = Vec::new();
        assert!(s.poll_transmit(b, &mut next) > 0);
        // Same place and size: the spare itself, not a fresh buffer where it was freed.
        assert_eq!(next.as_ptr(), spare, "b's output is in the spare buffer");
        assert_eq!(next.capacity(), 4096, "b's output is in the spare buffer");
        assert_eq!(next, out, "the same reply");
    }
}
