//! Per-function state: the three priority queues, the workers that can run it, and counts.

use super::ConnId;
use crate::proto::Priority;
use bytes::Bytes;
use std::collections::VecDeque;

/// One function's queues. Queues hold job ids; a job removed from the middle (cancelled,
/// abandoned) is deleted from the job table and its id skipped when popped, so removal is
/// O(1); `queued` counts live entries only, and the deques are compacted when stale ids
/// outnumber live ones.
#[derive(Debug)]
pub(crate) struct Function {
    pub(crate) name: Bytes,
    queues: [VecDeque<u64>; 3],
    queued: [usize; 3],
    /// Jobs currently held by workers.
    pub(crate) running: usize,
    /// Epoch jobs waiting for their time, and background jobs waiting for the store.
    pub(crate) waiting: usize,
    /// CAN_DO registrations, duplicates counted (as gearmand's `status` WORKERS column).
    pub(crate) registrations: usize,
    /// Connections able to run it, each once, in registration order (for wake-ups).
    pub(crate) capable: Vec<ConnId>,
    /// Where the next wake-up round starts, so `--worker-wakeup N` rotates.
    pub(crate) wake_cursor: usize,
    /// Jobs that were already there when `maxqueue` last changed, as that number shrinks:
    /// a lowered limit refuses new jobs but never evicts old ones, so only the total above
    /// this may be held to the limit (the invariant check uses it).
    pub(crate) over_limit_grace: usize,
}

impl Function {
    pub(crate) fn new(name: Bytes) -> Self {
        Function {
            name,
            queues: Default::default(),
            queued: [0; 3],
            running: 0,
            waiting: 0,
            registrations: 0,
            capable: Vec::new(),
            wake_cursor: 0,
            over_limit_grace: 0,
        }
    }

    pub(crate) fn push(&mut self, priority: Priority, job: u64) {
        if let (Some(q), Some(n)) = (
            self.queues.get_mut(priority.index()),
            self.queued.get_mut(priority.index()),
        ) {
            q.push_back(job);
            *n += 1;
        }
    }

    /// Pops the oldest live job of `priority`; `is_live` says whether an id is still queued.
    pub(crate) fn pop(&mut self, priority: Priority, is_live: impl Fn(u64) -> bool) -> Option<u64> {
        let i = priority.index();
        let (q, n) = (self.queues.get_mut(i)?, self.queued.get_mut(i)?);
        while let Some(id) = q.pop_front() {
            if is_live(id) {
                *n = n.saturating_sub(1);
                return Some(id);
            }
        }
        None
    }

    /// A queued job left the queue without being popped (cancelled or abandoned).
    pub(crate) fn forget_queued(&mut self, priority: Priority, is_live: impl Fn(u64) -> bool) {
        let i = priority.index();
        if let (Some(q), Some(n)) = (self.queues.get_mut(i), self.queued.get_mut(i)) {
            *n = n.saturating_sub(1);
            if q.len() > 2 * *n + 64 {
                q.retain(|&id| is_live(id));
            }
        }
    }

    pub(crate) fn queued(&self, priority: Priority) -> usize {
        self.queued.get(priority.index()).copied().unwrap_or(0)
    }

    pub(crate) fn queued_total(&self) -> usize {
        self.queued.iter().sum()
    }

    /// Jobs counted against `maxqueue` and shown as TOTAL by `status`.
    pub(crate) fn total(&self) -> usize {
        self.queued_total() + self.running + self.waiting
    }

    /// Live and stale ids in the queues (for invariant checks).
    pub(crate) fn queue_ids(&self) -> impl Iterator<Item = (Priority, u64)> + '_ {
        Priority::ALL
            .into_iter()
            .zip(self.queues.iter())
            .flat_map(|(p, q)| q.iter().map(move |&id| (p, id)))
    }
}
