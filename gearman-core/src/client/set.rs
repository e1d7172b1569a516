//! The connections of one client to several servers, without I/O, for an adapter that
//! drives every connection from one thread (the blocking client): the [`Router`]'s
//! choices, one [`ClientConnection`] and its [`Waiters`] per server, and a result slot per
//! call of a batch. The adapter owns the transports `T` here and only moves bytes.

use super::call::{Call, CallError};
use super::pool::ClientOptions;
use super::router::{Connection, Router, Step};
use super::waiters::Waiters;
use super::{ClientConfig, ClientConnection, ClientEvent};
use crate::machine::{Machine, RequestId};
use std::time::{Duration, Instant};

/// One server's connection: the transport, the machine, and the calls waiting on it.
#[derive(Debug)]
pub struct Member<T> {
    /// The transport (a socket, for the adapter to read and write).
    pub io: T,
    /// The protocol state.
    pub machine: ClientConnection,
    waiters: Waiters<usize>,
}

impl<T> Member<T> {
    /// The batch slot (call index) of request `req` on this connection, while it waits.
    pub fn call_of(&self, req: RequestId) -> Option<usize> {
        self.waiters.get(req).copied()
    }

    /// Sends `call` (batch slot `slot`), to end at `deadline` if given.
    fn start(
        &mut self,
        call: Call,
        deadline: Option<Instant>,
        slot: usize,
    ) -> Result<(), CallError> {
        let req = self.machine.start(call)?;
        if let Some(deadline) = deadline {
            self.machine.set_deadline(req, deadline);
        }
        self.waiters.insert(req, slot);
        Ok(())
    }
}

impl<T> Connection for Member<T> {
    fn is_open(&self) -> bool {
        !self.machine.is_closed()
    }
}

/// Whether `deadline` passed by `clock`'s time (never without either).
fn past(deadline: Option<Instant>, clock: &mut Option<&mut dyn FnMut() -> Instant>) -> bool {
    match (deadline, clock) {
        (Some(deadline), Some(clock)) => deadline <= clock(),
        _ => false,
    }
}

/// Several server connections of one client, with a result slot per call of a batch;
/// `E` is what a failed connect reports ([`ClientSet::unreachable`]).
#[derive(Debug)]
pub struct ClientSet<T, E = ()> {
    router: Router<Member<T>, E>,
    timeout: Option<Duration>,
    config: ClientConfig,
    results: Vec<Result<ClientEvent, CallError>>,
}

impl<T, E: Clone> ClientSet<T, E> {
    /// A set over these servers (`host:port`), configured by `options`; connections open
    /// on first use.
    pub fn new(addrs: Vec<String>, options: &ClientOptions) -> Self {
        ClientSet {
            router: Router::new(addrs, options),
            timeout: options.timeout,
            config: options.config.clone(),
            results: Vec::new(),
        }
    }

    /// Starts a batch: each call (with its timeout, else the default one) goes to its
    /// server, connecting with `connect(address)` where needed. Replaces the previous
    /// batch's results.
    pub fn start(
        &mut self,
        calls: Vec<(Call, Option<Duration>)>,
        now: Instant,
        mut connect: impl FnMut(&str) -> Result<T, E>,
    ) {
        self.start_inner(calls, now, None, |addr, _| connect(addr));
    }

    /// [`ClientSet::start`] where a call's timeout covers its connect:
    /// `connect(address, deadline)` is given the deadline of the call it connects for (to
    /// give up then), and `clock()` reads the time before each connect and after each
    /// failed one. A call whose deadline passed when its connect failed ends with
    /// [`CallError::TimedOut`] (the server backs off as after any failed connect) instead
    /// of trying the next server; one whose deadline passed before its connect (behind
    /// another call's) ends so without connecting.
    pub fn start_within(
        &mut self,
        calls: Vec<(Call, Option<Duration>)>,
        now: Instant,
        mut clock: impl FnMut() -> Instant,
        connect: impl FnMut(&str, Option<Instant>) -> Result<T, E>,
    ) {
        self.start_inner(calls, now, Some(&mut clock), connect);
    }

    fn start_inner(
        &mut self,
        calls: Vec<(Call, Option<Duration>)>,
        mut now: Instant,
        mut clock: Option<&mut dyn FnMut() -> Instant>,
        mut connect: impl FnMut(&str, Option<Instant>) -> Result<T, E>,
    ) {
        self.results = vec![Err(CallError::NoServer); calls.len()];
        let start = now;
        for (slot, (call, timeout)) in calls.into_iter().enumerate() {
            let deadline = timeout.or(self.timeout).map(|t| start + t);
            let mut route = self.router.route(&call);
            let started = loop {
                match self.router.next(&mut route, now) {
                    Step::Use(_, member) => break member.start(call, deadline, slot),
                    // Out of time before connecting: not that server's failure.
                    Step::Connect(_) if past(deadline, &mut clock) => {
                        break Err(CallError::TimedOut);
                    }
                    Step::Connect(idx) => match connect(self.router.addr(idx), deadline) {
                        Ok(io) => {
                            let machine = ClientConnection::new(self.config.clone());
                            let waiters = Waiters::default();
                            let member = || Member {
                                io,
                                machine,
                                waiters,
                            };
                            self.router.connected(idx, member);
                        }
                        Err(e) => {
                            if let Some(clock) = clock.as_mut() {
                                now = clock();
                            }
                            self.router.failed(idx, now, e);
                            if clock.is_some() && deadline.is_some_and(|d| d <= now) {
                                break Err(CallError::TimedOut);
                            }
                        }
                    },
                    Step::NoServer => break Err(CallError::NoServer),
                }
            };
            if let (Err(e), Some(result)) = (started, self.results.get_mut(slot)) {
                *result = Err(e);
            }
        }
    }

    /// Servers with calls of this batch still waiting.
    pub fn busy(&self) -> Vec<usize> {
        let busy = self.router.conns().filter(|(_, m)| !m.waiters.is_empty());
        busy.map(|(idx, _)| idx).collect()
    }

    /// Server `idx`'s connection, if open (or closed with events still to drain).
    pub fn member(&mut self, idx: usize) -> Option<&mut Member<T>> {
        self.router.conn(idx)
    }

    /// Moves the events queued on server `idx`'s machine into result slots; `on_event(i,
    /// event)` sees each event of call `i`. Returns true while calls still wait there. A
    /// closed connection is dropped, and its server backs off (unless a streamed
    /// workload's source closed it).
    pub fn drain(
        &mut self,
        idx: usize,
        now: Instant,
        mut on_event: impl FnMut(usize, &ClientEvent),
    ) -> bool {
        while let Some(event) = self.router.conn(idx).and_then(|m| m.machine.poll_event()) {
            self.router.on_event(idx, &event, now);
            let Some(member) = self.router.conn(idx) else {
                break;
            };
            let results = &mut self.results;
            member.waiters.dispatch(event, |&mut slot, result| {
                if let Ok(event) = &result {
                    on_event(slot, event);
                }
                if let Some(r) = results.get_mut(slot) {
                    *r = result;
                }
                true
            });
        }
        self.router.prune(idx);
        self.router.conn(idx).is_some_and(|m| !m.waiters.is_empty())
    }

    /// Every server whose last connect failed, and why.
    pub fn unreachable(&self) -> Vec<(String, E)> {
        self.router.unreachable()
    }

    /// The batch's results in call order (the final event of each call, or its error).
    pub fn take_results(&mut self) -> Vec<Result<ClientEvent, CallError>> {
        std::mem::take(&mut self.results)
    }
}
