//! Who waits for which request: the event dispatch every adapter shares. A waiter is
//! whatever the adapter hands results to (a channel sender, a slot index).

use super::call::CallError;
use super::ClientEvent;
use crate::machine::RequestId;
use std::collections::HashMap;

/// Waiters by request, for one connection.
#[derive(Debug)]
pub struct Waiters<W> {
    map: HashMap<RequestId, W>,
}

impl<W> Default for Waiters<W> {
    fn default() -> Self {
        Waiters {
            map: HashMap::new(),
        }
    }
}

impl<W> Waiters<W> {
    /// Registers the waiter of `req`.
    pub fn insert(&mut self, req: RequestId, waiter: W) {
        self.map.insert(req, waiter);
    }

    /// The waiter of `req`, if any.
    pub fn get(&self, req: RequestId) -> Option<&W> {
        self.map.get(&req)
    }

    /// How many requests still have a waiter.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Hands `event` (as a result, see [`ClientEvent::into_result`]) to its waiter, and a
    /// closed connection to every waiter. A waiter is dropped after its request's final
    /// event, or when `deliver` returns false (it went away); in that case the request is
    /// returned so the caller can [`forget`](super::ClientConnection::forget) it.
    pub fn dispatch(
        &mut self,
        event: ClientEvent,
        mut deliver: impl FnMut(&mut W, Result<ClientEvent, CallError>) -> bool,
    ) -> Option<RequestId> {
        if let ClientEvent::Closed { reason } = &event {
            for (_, mut waiter) in self.map.drain() {
                deliver(&mut waiter, Err(CallError::Connection(reason.clone())));
            }
            return None;
        }
        let req = event.request_id()?;
        let last = event.is_final();
        let waiter = self.map.get_mut(&req)?;
        if !deliver(waiter, event.into_result()) {
            self.map.remove(&req);
            return Some(req);
        }
        if last {
            self.map.remove(&req);
        }
        None
    }
}
