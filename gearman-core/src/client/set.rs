//! The connections of one client to several servers, without I/O: which server each call
//! goes to (the [`ServerPool`]'s choice and failover order), one [`ClientConnection`] and
//! its [`Waiters`] per server, and a result slot per call. An adapter that drives every
//! connection from one thread (the blocking client) owns the transports `T` here and only
//! moves bytes.

use super::call::{Call, CallError};
use super::pool::{ClientOptions, ServerPool};
use super::waiters::Waiters;
use super::{ClientConfig, ClientConnection, ClientEvent};
use crate::error::ConnError;
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
}

/// Several server connections of one client, with a result slot per call of a batch.
#[derive(Debug)]
pub struct ClientSet<T> {
    addrs: Vec<String>,
    timeout: Option<Duration>,
    config: ClientConfig,
    pool: ServerPool,
    members: Vec<Option<Member<T>>>,
    results: Vec<Result<ClientEvent, CallError>>,
}

impl<T> ClientSet<T> {
    /// A set over these servers (`host:port`), configured by `options`; connections open
    /// on first use.
    pub fn new(addrs: Vec<String>, options: &ClientOptions) -> Self {
        ClientSet {
            members: (0..addrs.len()).map(|_| None).collect(),
            pool: options.pool(addrs.len()),
            addrs,
            timeout: options.timeout,
            config: options.config.clone(),
            results: Vec::new(),
        }
    }

    fn is_live(&self, idx: usize) -> bool {
        matches!(self.members.get(idx), Some(Some(m)) if !m.machine.is_closed())
    }

    /// The server a call with first choice `first` goes to, connecting with `connect(i)`
    /// in failover order when there is no live connection.
    fn route<E>(
        &mut self,
        first: usize,
        now: Instant,
        connect: &mut impl FnMut(&str) -> Result<T, E>,
    ) -> Result<usize, CallError> {
        let order = self.pool.candidates(first, now, |i| self.is_live(i));
        for idx in order {
            if self.is_live(idx) {
                return Ok(idx);
            }
            let addr = self.addrs.get(idx).map_or("", String::as_str);
            let Ok(io) = connect(addr) else {
                self.pool.on_failure(idx, now);
                continue;
            };
            self.pool.on_connected(idx);
            if let Some(slot) = self.members.get_mut(idx) {
                *slot = Some(Member {
                    io,
                    machine: ClientConnection::new(self.config.clone()),
                    waiters: Waiters::default(),
                });
                return Ok(idx);
            }
        }
        Err(CallError::NoServer)
    }

    /// Starts a batch: each call (with its timeout, else the default one) goes to its
    /// server, connecting with `connect(address)` where needed. Replaces the previous
    /// batch's results.
    pub fn start<E>(
        &mut self,
        calls: Vec<(Call, Option<Duration>)>,
        now: Instant,
        mut connect: impl FnMut(&str) -> Result<T, E>,
    ) {
        self.results = vec![Err(CallError::NoServer); calls.len()];
        for (slot, (call, timeout)) in calls.into_iter().enumerate() {
            let deadline = timeout.or(self.timeout).map(|t| now + t);
            let first = self.pool.first_choice(&call);
            let started = self.route(first, now, &mut connect).and_then(|idx| {
                let member = self
                    .members
                    .get_mut(idx)
                    .and_then(Option::as_mut)
                    .ok_or(CallError::NoServer)?;
                let req = member.machine.start(call)?;
                if let Some(deadline) = deadline {
                    member.machine.set_deadline(req, deadline);
                }
                member.waiters.insert(req, slot);
                Ok(())
            });
            if let (Err(e), Some(result)) = (started, self.results.get_mut(slot)) {
                *result = Err(e);
            }
        }
    }

    /// Servers with calls of this batch still waiting.
    pub fn busy(&self) -> Vec<usize> {
        let busy = |m: &Option<Member<T>>| m.as_ref().is_some_and(|m| !m.waiters.is_empty());
        (0..self.members.len())
            .filter(|&i| self.members.get(i).is_some_and(busy))
            .collect()
    }

    /// Server `idx`'s connection, if open.
    pub fn member(&mut self, idx: usize) -> Option<&mut Member<T>> {
        self.members.get_mut(idx)?.as_mut()
    }

    /// Moves the events queued on server `idx`'s machine into result slots; `on_event(i,
    /// event)` sees each event of call `i`. Returns true while calls still wait there. A
    /// closed connection is dropped and its server backs off (unless a streamed
    /// workload's source closed it).
    pub fn drain(
        &mut self,
        idx: usize,
        now: Instant,
        mut on_event: impl FnMut(usize, &ClientEvent),
    ) -> bool {
        let Some(Some(member)) = self.members.get_mut(idx) else {
            return false;
        };
        while let Some(event) = member.machine.poll_event() {
            if let ClientEvent::Created {
                handle,
                background: true,
                ..
            } = &event
            {
                self.pool.remember(handle.clone(), idx);
            }
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
        if member.machine.is_closed() {
            // A streamed workload's source failing is no fault of the server's.
            if !matches!(member.machine.error(), Some(ConnError::Workload(_))) {
                self.pool.on_failure(idx, now);
            }
            if let Some(slot) = self.members.get_mut(idx) {
                *slot = None;
            }
            return false;
        }
        !member.waiters.is_empty()
    }

    /// The batch's results in call order (the final event of each call, or its error).
    pub fn take_results(&mut self) -> Vec<Result<ClientEvent, CallError>> {
        std::mem::take(&mut self.results)
    }
}
