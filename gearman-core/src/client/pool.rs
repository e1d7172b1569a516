//! The choices a client makes across several servers, as pure data: which server a call
//! goes to first, the failover order after it, which servers are backing off, and which
//! server created a background handle (so its status is asked there).

use super::call::Call;
use super::selector::ServerSelector;
use crate::backoff::{Backoff, ReconnectSchedule};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// How a client picks a server for a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Selection {
    /// Rotate through the servers.
    #[default]
    RoundRobin,
    /// Hash the unique id, so equal uniques meet (and coalesce) on one server, from any
    /// client process; calls without a unique rotate.
    ByUnique,
}

/// Everything a client adapter is configured with, in one place for every adapter.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// What each connection sends first (client id, `exceptions` option) and its limits.
    pub config: super::ClientConfig,
    /// How a server is picked per call.
    pub selection: Selection,
    /// Reconnect backoff per server.
    pub backoff: Backoff,
    /// Default timeout for every call.
    pub timeout: Option<std::time::Duration>,
}

impl ClientOptions {
    /// The pool for `len` servers.
    pub fn pool(&self, len: usize) -> ServerPool {
        ServerPool::new(len, self.selection, self.backoff)
    }
}

/// How many background handles remember their server (oldest forgotten first).
const MAX_HOMES: usize = 4096;

/// Server choice, failover and reconnect backoff for one client.
#[derive(Clone, Debug)]
pub struct ServerPool {
    selection: Selection,
    selector: ServerSelector,
    schedule: ReconnectSchedule,
    homes: HashMap<Bytes, usize>,
    home_order: VecDeque<Bytes>,
}

impl ServerPool {
    /// A pool of `len` servers.
    pub fn new(len: usize, selection: Selection, backoff: Backoff) -> Self {
        ServerPool {
            selection,
            selector: ServerSelector::new(len),
            schedule: ReconnectSchedule::new(len, backoff),
            homes: HashMap::new(),
            home_order: VecDeque::new(),
        }
    }

    /// How many servers there are.
    pub fn len(&self) -> usize {
        self.selector.len()
    }

    /// True when there are no servers.
    pub fn is_empty(&self) -> bool {
        self.selector.is_empty()
    }

    /// The server `call` should go to first: submissions and unique-status queries by the
    /// selection, status by handle to the server that created the handle, echo to the
    /// first server.
    pub fn first_choice(&mut self, call: &Call) -> usize {
        if let Call::Streamed { call, .. } = call {
            return self.first_choice(call);
        }
        let pick = match (call, self.selection) {
            (Call::Submit(j), Selection::ByUnique) => self.selector.by_unique(&j.unique),
            (Call::Reduce(j), Selection::ByUnique) => self.selector.by_unique(&j.unique),
            (Call::Sched(j), Selection::ByUnique) => self.selector.by_unique(&j.unique),
            (Call::Submit(_) | Call::Reduce(_) | Call::Sched(_), Selection::RoundRobin) => {
                self.selector.round_robin()
            }
            (Call::StatusUnique(u), Selection::ByUnique) => self.selector.by_unique(u),
            (Call::Status(handle), _) => self.homes.get(handle).copied(),
            _ => None,
        };
        pick.unwrap_or(0)
    }

    /// The servers to try for a call whose first choice is `first`, in failover order:
    /// those with a live connection (`connected`) and those whose backoff has passed.
    pub fn candidates(
        &self,
        first: usize,
        now: Instant,
        connected: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        self.selector
            .failover_order(first)
            .filter(|&i| connected(i) || self.schedule.is_ready(i, now))
            .collect()
    }

    /// Whether `server` may be tried at `now` (it is not backing off).
    pub fn is_ready(&self, server: usize, now: Instant) -> bool {
        self.schedule.is_ready(server, now)
    }

    /// A connect to `server` succeeded.
    pub fn on_connected(&mut self, server: usize) {
        self.schedule.on_success(server);
    }

    /// A connect to `server` failed, or its connection was lost: back off.
    pub fn on_failure(&mut self, server: usize, now: Instant) {
        self.schedule.on_failure(server, now);
    }

    /// The earliest instant any server may be tried again (`now` if one may be now).
    pub fn next_ready(&self, now: Instant) -> Option<Instant> {
        self.schedule.next_ready(now)
    }

    /// Records that `server` created background job `handle`.
    pub fn remember(&mut self, handle: Bytes, server: usize) {
        if self.homes.insert(handle.clone(), server).is_none() {
            self.home_order.push_back(handle);
            if self.home_order.len() > MAX_HOMES {
                if let Some(old) = self.home_order.pop_front() {
                    self.homes.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Priority, SubmitJob, SubmitMode};

    fn submit(unique: &'static [u8]) -> Call {
        Call::Submit(SubmitJob {
            function: Bytes::from_static(b"f"),
            unique: Bytes::from_static(unique),
            mode: SubmitMode::Background(Priority::Normal),
            data: Bytes::new(),
        })
    }

    #[test]
    fn by_unique_is_consistent_and_status_follows_it() {
        let mut p = ServerPool::new(3, Selection::ByUnique, Backoff::default());
        let a = p.first_choice(&submit(b"abc"));
        assert_eq!(p.first_choice(&submit(b"abc")), a);
        assert_eq!(
            p.first_choice(&Call::StatusUnique(Bytes::from_static(b"abc"))),
            a
        );
        p.remember(Bytes::from_static(b"H:1"), 2);
        assert_eq!(p.first_choice(&Call::Status(Bytes::from_static(b"H:1"))), 2);
        assert_eq!(p.first_choice(&Call::Status(Bytes::from_static(b"H:9"))), 0);
    }

    #[test]
    fn round_robin_rotates_and_failover_skips_backing_off_servers() {
        let mut p = ServerPool::new(3, Selection::RoundRobin, Backoff::default());
        let picks: Vec<_> = (0..4).map(|_| p.first_choice(&submit(b"u"))).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
        let now = Instant::now();
        p.on_failure(1, now);
        assert_eq!(p.candidates(1, now, |_| false), [2, 0]);
        assert_eq!(p.candidates(1, now, |i| i == 1), [1, 2, 0]);
        p.on_connected(1);
        assert_eq!(p.candidates(1, now, |_| false), [1, 2, 0]);
    }

    #[test]
    fn remembered_handles_are_bounded() {
        let mut p = ServerPool::new(2, Selection::RoundRobin, Backoff::default());
        for i in 0..(MAX_HOMES + 10) {
            p.remember(Bytes::from(format!("H:{i}")), 1);
        }
        assert_eq!(p.homes.len(), MAX_HOMES);
        assert_eq!(p.first_choice(&Call::Status(Bytes::from_static(b"H:0"))), 0);
    }
}
