//! One connection's pending output: packets and admin text, in order, with placeholders for
//! replies that wait for the store.

use crate::proto::Response;
use std::collections::VecDeque;

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

/// The output queue and its size in bytes.
#[derive(Debug, Default)]
pub(crate) struct Output {
    out: VecDeque<Outbound>,
    bytes: usize,
}

impl Output {
    /// Queues output; returns the bytes now pending.
    pub(crate) fn queue(&mut self, item: Outbound) -> usize {
        self.bytes += item.len();
        self.out.push_back(item);
        self.bytes
    }

    pub(crate) fn discard(&mut self) {
        self.out.clear();
        self.bytes = 0;
    }

    /// Replaces the first placeholder for `durable_id` with `reply`.
    pub(crate) fn resolve(&mut self, durable_id: u64, reply: Response) {
        if let Some(slot) = self
            .out
            .iter_mut()
            .find(|o| matches!(o, Outbound::AwaitPersist(d) if *d == durable_id))
        {
            self.bytes += reply.encoded_len();
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

    /// Whether something can be sent now (not held back by a placeholder).
    pub(crate) fn is_ready(&self) -> bool {
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
                self.bytes = self.bytes.saturating_sub(item.len());
            }
        }
        out.len() - before
    }
}
