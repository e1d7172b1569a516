//! The job timers, ordered by deadline (then by arming, so equal deadlines fire in the
//! order they were set), with eager cancellation.
//!
//! A job has at most one pending timer (a due time while scheduled, a CAN_DO_TIMEOUT
//! deadline while running) and cancels it the moment it leaves that phase. A lazily
//! cancelled heap would be simpler, but a worker with a one-hour timeout finishing
//! thousands of jobs a second would leave millions of dead entries behind; with eager
//! cancellation the map holds exactly the live timers, and `poll_timeout` never reports a
//! deadline nobody needs.

use super::ids::JobId;
use std::collections::BTreeMap;
use std::time::Instant;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// A scheduled job (an epoch job, or one backing off after a failure) becomes runnable.
    Due,
    /// A CAN_DO_TIMEOUT deadline for the job's current assignment.
    RunTimeout,
}

/// Names one armed timer; the sequence number keeps equal deadlines apart, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerId {
    pub(crate) at: Instant,
    seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    armed: BTreeMap<TimerId, (JobId, TimerKind)>,
    seq: u64,
}

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, job: JobId, kind: TimerKind) -> TimerId {
        self.seq += 1;
        let id = TimerId { at, seq: self.seq };
        self.armed.insert(id, (job, kind));
        id
    }

    /// Forgets a timer; a no-op if it already fired.
    pub(crate) fn cancel(&mut self, id: TimerId) {
        self.armed.remove(&id);
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.armed.keys().next().map(|id| id.at)
    }

    /// Removes and returns the next timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerId, JobId, TimerKind)> {
        match self.armed.first_key_value() {
            Some((id, _)) if id.at <= now => self
                .armed
                .pop_first()
                .map(|(id, (job, kind))| (id, job, kind)),
            _ => None,
        }
    }

    /// Every armed timer (for invariant checks).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TimerId, JobId, TimerKind)> + '_ {
        self.armed
            .iter()
            .map(|(id, (job, kind))| (*id, *job, *kind))
    }

    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }
}
