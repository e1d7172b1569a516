//! The roles a connection takes, each with its own state: a client watches the jobs it
//! submitted in the foreground, a worker registers functions, sleeps and holds jobs. One
//! connection may take both.

use super::jobs::JobId;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;

/// A connection as a client.
#[derive(Debug, Default)]
pub(crate) struct ClientRole {
    /// The `exceptions` option: WORK_EXCEPTION is forwarded, not turned into WORK_FAIL.
    pub(crate) exceptions: bool,
    /// Jobs this client submitted in the foreground, with the number of submissions
    /// attached to each (a map, so a client with many jobs in flight costs O(1) per result).
    pub(crate) watching: HashMap<JobId, usize>,
}

impl ClientRole {
    pub(crate) fn new(exceptions: bool) -> Self {
        ClientRole {
            exceptions,
            watching: HashMap::new(),
        }
    }

    /// One more foreground submission attached to `job`.
    pub(crate) fn watch(&mut self, job: JobId) {
        *self.watching.entry(job).or_default() += 1;
    }

    /// One attached submission of `job` detached.
    pub(crate) fn unwatch(&mut self, job: JobId) {
        if let Some(n) = self.watching.get_mut(&job) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.watching.remove(&job);
            }
        }
    }
}

/// A connection as a worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerRole {
    /// Functions it can do, each once, with the timeout of its latest registration.
    pub(crate) abilities: Vec<(Bytes, Option<Duration>)>,
    /// CAN_DO registrations per entry of `abilities` (duplicates count, as in gearmand).
    pub(crate) registrations: Vec<usize>,
    /// Round-robin start among `abilities` for the next grab.
    pub(crate) rr_cursor: usize,
    pub(crate) sleeping: bool,
    pub(crate) noop_sent: bool,
    /// Jobs it holds.
    pub(crate) running: Vec<JobId>,
}

impl WorkerRole {
    pub(crate) fn ability(&self, function: &[u8]) -> Option<usize> {
        self.abilities.iter().position(|(f, _)| f == function)
    }

    /// The run-time limit of `function` (CAN_DO_TIMEOUT), if any.
    pub(crate) fn timeout(&self, function: &[u8]) -> Option<Duration> {
        self.ability(function)
            .and_then(|i| self.abilities.get(i))
            .and_then(|a| a.1)
    }

    /// Asleep and not yet sent a NOOP.
    pub(crate) fn is_unwoken(&self) -> bool {
        self.sleeping && !self.noop_sent
    }

    /// The jobs it held, forgotten, in arrival order.
    pub(crate) fn take_running(&mut self) -> Vec<JobId> {
        let mut held = std::mem::take(&mut self.running);
        // Requeued in arrival order (ids grow with creation), so no job jumps ahead of an
        // older one (found by the model test).
        held.sort_unstable();
        held
    }

    /// Lets go of `job`.
    pub(crate) fn release(&mut self, job: JobId) {
        if let Some(pos) = self.running.iter().position(|&j| j == job) {
            self.running.remove(pos);
        }
    }
}
