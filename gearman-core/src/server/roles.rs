//! The roles a connection takes, each with its own state: a client watches the jobs it
//! submitted in the foreground, a worker registers functions, sleeps and holds jobs. One
//! connection may take both.

use super::id_map::IdMap;
use super::jobs::{FunctionId, JobId};
use std::time::Duration;

/// A connection as a client.
#[derive(Debug, Default)]
pub(crate) struct ClientRole {
    /// The `exceptions` option: WORK_EXCEPTION is forwarded, not turned into WORK_FAIL.
    pub(crate) exceptions: bool,
    /// Jobs this client submitted in the foreground, with the number of submissions
    /// attached to each (a map, so a client with many jobs in flight costs O(1) per result).
    pub(crate) watching: IdMap<JobId, usize>,
}

impl ClientRole {
    pub(crate) fn new(exceptions: bool) -> Self {
        ClientRole {
            exceptions,
            watching: IdMap::default(),
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

/// One function a worker can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ability {
    pub(crate) function: FunctionId,
    /// The run-time limit of its latest registration (CAN_DO_TIMEOUT).
    pub(crate) timeout: Option<Duration>,
    /// CAN_DO registrations of it (duplicates count, as in gearmand).
    pub(crate) registrations: usize,
    /// Names this ability (a CANT_DO and a new CAN_DO make another) on the function's
    /// wake-up list, so an entry left from an earlier one is told apart.
    pub(crate) tag: u64,
    /// Whether the function's wake-up list holds this ability's entry.
    pub(crate) listed: bool,
}

/// A connection as a worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerRole {
    /// Functions it can do, each once, in registration order.
    abilities: Vec<Ability>,
    /// Where each function is in `abilities`, so a worker with thousands of functions
    /// finds one in O(1).
    index: IdMap<FunctionId, usize>,
    /// Round-robin start among `abilities` for the next grab.
    pub(crate) rr_cursor: usize,
    pub(crate) sleeping: bool,
    pub(crate) noop_sent: bool,
    /// The tag the next new ability gets.
    next_tag: u64,
    /// Jobs it holds.
    pub(crate) running: Vec<JobId>,
}

impl WorkerRole {
    pub(crate) fn abilities(&self) -> &[Ability] {
        &self.abilities
    }

    pub(crate) fn abilities_mut(&mut self) -> &mut [Ability] {
        &mut self.abilities
    }

    pub(crate) fn ability_mut(&mut self, function: FunctionId) -> Option<&mut Ability> {
        self.position(function)
            .and_then(|i| self.abilities.get_mut(i))
    }

    /// Where `function` is among its abilities.
    pub(crate) fn position(&self, function: FunctionId) -> Option<usize> {
        self.index.get(&function).copied()
    }

    pub(crate) fn can(&self, function: FunctionId) -> bool {
        self.index.contains_key(&function)
    }

    /// The run-time limit of `function` (CAN_DO_TIMEOUT), if any.
    pub(crate) fn timeout(&self, function: FunctionId) -> Option<Duration> {
        self.position(function)
            .and_then(|i| self.abilities.get(i))
            .and_then(|a| a.timeout)
    }

    /// One more CAN_DO; true if it is the first of `function`.
    pub(crate) fn add(&mut self, function: FunctionId, timeout: Option<Duration>) -> bool {
        if let Some(a) = self
            .position(function)
            .and_then(|i| self.abilities.get_mut(i))
        {
            a.timeout = timeout;
            a.registrations += 1;
            return false;
        }
        self.index.insert(function, self.abilities.len());
        self.next_tag += 1;
        self.abilities.push(Ability {
            function,
            timeout,
            registrations: 1,
            tag: self.next_tag,
            listed: false,
        });
        true
    }

    /// CANT_DO: forgets `function` (keeping the others in order).
    pub(crate) fn remove(&mut self, function: FunctionId) -> Option<Ability> {
        let i = self.index.remove(&function)?;
        if i >= self.abilities.len() {
            return None;
        }
        let ability = self.abilities.remove(i);
        for (pos, a) in self.abilities.iter().enumerate().skip(i) {
            self.index.insert(a.function, pos);
        }
        Some(ability)
    }

    /// Forgets every ability (RESET_ABILITIES, or the connection closing).
    pub(crate) fn take_abilities(&mut self) -> Vec<Ability> {
        self.index.clear();
        std::mem::take(&mut self.abilities)
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
