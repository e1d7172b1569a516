//! The server's timers: a min-heap with lazy cancellation. Entries are validated when they
//! fire (the job must still be in the state the timer was armed for), so cancelling costs
//! nothing and a stale entry is simply skipped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// A SUBMIT_JOB_EPOCH job becomes runnable.
    EpochDue { job: u64 },
    /// A CAN_DO_TIMEOUT deadline for one assignment (`attempt` tells assignments apart).
    RunTimeout { job: u64, attempt: u32 },
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerKind)>>,
    seq: u64,
}

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, kind: TimerKind) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, kind)));
    }

    /// The earliest deadline (possibly of a stale entry: a spurious wake-up is harmless).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pops the next entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerKind> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse((_, _, k))| k),
            _ => None,
        }
    }
}
