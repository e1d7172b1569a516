//! A client's servers as one unit, without I/O: which server each call goes to and in
//! which failover order (the [`ServerPool`]), which of them has an open connection, which
//! are backing off, and why each of the last connects failed. Every client adapter routes
//! its calls here and only opens the connections it is told to: the blocking client
//! through [`ClientSet`](super::ClientSet), the async client from its tasks.
//!
//! A call is routed in steps, so an adapter may connect however it likes (blocking or
//! awaiting) between them:
//!
//! ```
//! use gearman_core::client::{Call, ClientOptions, Connection, Router, Step};
//! use std::time::Instant;
//!
//! /// What the adapter holds per server; here, whether it is still up.
//! struct Conn(bool);
//! impl Connection for Conn {
//!     fn is_open(&self) -> bool {
//!         self.0
//!     }
//! }
//!
//! let servers = vec!["a:4730".to_string(), "b:4730".to_string()];
//! let mut router: Router<Conn, &str> = Router::new(servers, &ClientOptions::default());
//! let now = Instant::now();
//! let mut route = router.route(&Call::Echo("x".into()));
//! let server = loop {
//!     match router.next(&mut route, now) {
//!         Step::Use(idx, _conn) => break Some(idx),
//!         // Server "a" is down: it backs off, and the call fails over to "b".
//!         Step::Connect(0) => router.failed(0, now, "connection refused"),
//!         Step::Connect(idx) => {
//!             router.connected(idx, || Conn(true));
//!         }
//!         Step::NoServer => break None,
//!     }
//! };
//! assert_eq!(server, Some(1));
//! assert_eq!(router.unreachable(), [("a:4730".to_string(), "connection refused")]);
//! ```

use super::call::Call;
use super::pool::{ClientOptions, ServerPool};
use super::ClientEvent;
use crate::error::ConnError;
use std::time::Instant;

/// A connection to one server as the adapter holds it (a socket and its machine, a
/// channel to the task driving it): the router only asks whether it is still open.
pub trait Connection {
    /// False once the connection is finished; the router then connects anew.
    fn is_open(&self) -> bool;
}

/// One client's servers: their connections `C`, the pool's choices and backoff, and the
/// last connect error `E` of each.
#[derive(Debug)]
pub struct Router<C, E> {
    addrs: Vec<String>,
    pool: ServerPool,
    conns: Vec<Option<C>>,
    errors: Vec<Option<E>>,
}

/// Where one call is in its failover order: see [`Router::next`].
#[derive(Clone, Debug)]
pub struct Route {
    first: usize,
    pos: usize,
    connecting: bool,
}

/// What to do next for a call.
#[derive(Debug)]
pub enum Step<'a, C> {
    /// Send it on server `idx`'s open connection.
    Use(usize, &'a mut C),
    /// Connect to server `idx` ([`Router::addr`]), then report with
    /// [`Router::connected`] or [`Router::failed`] and ask again.
    Connect(usize),
    /// Every server failed or is backing off.
    NoServer,
}

impl<C: Connection, E: Clone> Router<C, E> {
    /// A router over these servers (`host:port`, `[v6]:port` or `unix:/path`), choosing
    /// and backing off as `options` say; nothing is connected yet.
    pub fn new(addrs: Vec<String>, options: &ClientOptions) -> Self {
        Router {
            pool: options.pool(addrs.len()),
            conns: addrs.iter().map(|_| None).collect(),
            errors: addrs.iter().map(|_| None).collect(),
            addrs,
        }
    }

    /// How many servers there are.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True when there are no servers.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Server `idx`'s address (empty if there is no such server).
    pub fn addr(&self, idx: usize) -> &str {
        self.addrs.get(idx).map_or("", String::as_str)
    }

    /// Starts routing `call`: from its first choice (by the pool's selection, or the
    /// server that created the handle it asks about), then the others in order.
    pub fn route(&mut self, call: &Call) -> Route {
        Route {
            first: self.pool.first_choice(call),
            pos: 0,
            connecting: false,
        }
    }

    /// The next step for `route` at `now`: an open connection to use, a server to connect
    /// to (each is asked for at most once per route; servers backing off are skipped), or
    /// none left. A connection that closed after [`Step::Use`] is connected anew when
    /// asked again.
    pub fn next(&mut self, route: &mut Route, now: Instant) -> Step<'_, C> {
        let len = self.addrs.len();
        let open = loop {
            if route.pos >= len {
                return Step::NoServer;
            }
            let idx = (route.first + route.pos) % len;
            if self.open(idx).is_some() {
                break idx;
            }
            if !route.connecting && self.pool.is_ready(idx, now) {
                route.connecting = true;
                return Step::Connect(idx);
            }
            route.pos += 1;
            route.connecting = false;
        };
        match self.conn(open) {
            Some(conn) => Step::Use(open, conn),
            None => Step::NoServer,
        }
    }

    /// Server `idx`'s connection, open or not (a closed one stays until
    /// [`Router::prune`] or the next connect, so its last events can still be read).
    pub fn conn(&mut self, idx: usize) -> Option<&mut C> {
        self.conns.get_mut(idx)?.as_mut()
    }

    /// Every server's connection, open or not, with its index.
    pub fn conns(&self) -> impl Iterator<Item = (usize, &C)> {
        let conns = self.conns.iter().enumerate();
        conns.filter_map(|(idx, c)| Some((idx, c.as_ref()?)))
    }

    /// Server `idx`'s connection while it is open.
    pub fn open(&self, idx: usize) -> Option<&C> {
        self.conns.get(idx)?.as_ref().filter(|c| c.is_open())
    }

    /// A connect to server `idx` succeeded: its backoff resets, its error is forgotten,
    /// and `make()` becomes its connection, unless another connect got there first and is
    /// still open (then that one is kept and `make` is not called). Returns the connection.
    pub fn connected(&mut self, idx: usize, make: impl FnOnce() -> C) -> Option<&mut C> {
        self.pool.on_connected(idx);
        if let Some(error) = self.errors.get_mut(idx) {
            *error = None;
        }
        let slot = self.conns.get_mut(idx)?;
        if !slot.as_ref().is_some_and(C::is_open) {
            *slot = Some(make());
        }
        slot.as_mut()
    }

    /// A connect to server `idx` failed (or its connection proved unusable): it backs off,
    /// `error` is recorded for [`Router::unreachable`], and its connection is dropped.
    pub fn failed(&mut self, idx: usize, now: Instant, error: E) {
        self.pool.on_failure(idx, now);
        if let Some(slot) = self.errors.get_mut(idx) {
            *slot = Some(error);
        }
        if let Some(slot) = self.conns.get_mut(idx) {
            *slot = None;
        }
    }

    /// Notes what server `idx`'s connection reported: a background job's handle is
    /// remembered (its status is asked there), and a connection lost by the server's
    /// fault (not closed locally, nor by a streamed workload's source) backs it off.
    pub fn on_event(&mut self, idx: usize, event: &ClientEvent, now: Instant) {
        match event {
            ClientEvent::Created {
                handle,
                background: true,
                ..
            } => self.pool.remember(handle.clone(), idx),
            ClientEvent::Closed { reason }
                if !matches!(reason, ConnError::Closed | ConnError::Workload(_)) =>
            {
                self.pool.on_failure(idx, now)
            }
            _ => {}
        }
    }

    /// Drops server `idx`'s connection if it is closed.
    pub fn prune(&mut self, idx: usize) {
        if let Some(slot) = self.conns.get_mut(idx) {
            if !slot.as_ref().is_some_and(C::is_open) {
                *slot = None;
            }
        }
    }

    /// Every server whose last connect failed, with its address and why: what a call that
    /// found no server reports.
    pub fn unreachable(&self) -> Vec<(String, E)> {
        let failed = self.addrs.iter().zip(&self.errors);
        failed
            .filter_map(|(addr, e)| Some((addr.clone(), e.clone()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::WorkloadError;
    use bytes::Bytes;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    /// A connection the test closes through its shared flag.
    struct Conn(Rc<Cell<bool>>);

    impl Connection for Conn {
        fn is_open(&self) -> bool {
            self.0.get()
        }
    }

    fn router(n: usize) -> Router<Conn, &'static str> {
        let addrs = (0..n).map(|i| format!("s{i}")).collect();
        Router::new(addrs, &ClientOptions::default())
    }

    /// Routes `call`, connecting every server not in `down`; returns the server used (or
    /// `None`) and the servers connected to, in order.
    fn send(
        r: &mut Router<Conn, &'static str>,
        call: &Call,
        down: &[usize],
        now: Instant,
    ) -> (Option<usize>, Vec<usize>) {
        let mut route = r.route(call);
        let mut tried = Vec::new();
        loop {
            match r.next(&mut route, now) {
                Step::Use(idx, _) => return (Some(idx), tried),
                Step::Connect(idx) => {
                    tried.push(idx);
                    if down.contains(&idx) {
                        r.failed(idx, now, "refused");
                    } else {
                        r.connected(idx, || Conn(Rc::new(Cell::new(true))));
                    }
                }
                Step::NoServer => return (None, tried),
            }
        }
    }

    fn echo() -> Call {
        Call::Echo(Bytes::from_static(b"e"))
    }

    fn closed(reason: ConnError) -> ClientEvent {
        ClientEvent::Closed { reason }
    }

    #[test]
    fn fails_over_in_order_and_skips_servers_backing_off() {
        let (mut r, now) = (router(3), Instant::now());
        assert_eq!(
            send(&mut r, &echo(), &[0, 1], now),
            (Some(2), vec![0, 1, 2])
        );
        // 0 and 1 back off: not even tried, the open connection to 2 is used.
        assert_eq!(send(&mut r, &echo(), &[], now), (Some(2), vec![]));
        let later = now + Duration::from_secs(1);
        assert_eq!(send(&mut r, &echo(), &[], later), (Some(0), vec![0]));
        assert_eq!(
            r.unreachable(),
            [("s1".to_string(), "refused")],
            "a successful connect forgets its server's error"
        );
    }

    #[test]
    fn no_server_when_every_one_fails_and_none_when_there_are_none() {
        let (mut r, now) = (router(2), Instant::now());
        assert_eq!(send(&mut r, &echo(), &[0, 1], now), (None, vec![0, 1]));
        assert_eq!(r.unreachable().len(), 2);
        assert_eq!(send(&mut router(0), &echo(), &[], now), (None, vec![]));
    }

    #[test]
    fn a_connection_that_closed_after_use_is_replaced_once() {
        let (mut r, now) = (router(2), Instant::now());
        let up = Rc::new(Cell::new(true));
        let flag = up.clone();
        r.connected(0, || Conn(flag));
        let mut route = r.route(&echo());
        assert!(matches!(r.next(&mut route, now), Step::Use(0, _)));
        // It closed before the call went out: connect again, once.
        up.set(false);
        assert!(matches!(r.next(&mut route, now), Step::Connect(0)));
        let again = Rc::new(Cell::new(true));
        let flag = again.clone();
        r.connected(0, || Conn(flag));
        assert!(matches!(r.next(&mut route, now), Step::Use(0, _)));
        // The new one closed too: fail over rather than loop.
        again.set(false);
        assert!(matches!(r.next(&mut route, now), Step::Connect(1)));
    }

    #[test]
    fn a_connect_that_lost_the_race_keeps_the_open_connection() {
        let mut r = router(1);
        let first = Rc::new(Cell::new(true));
        let flag = first.clone();
        r.connected(0, || Conn(flag));
        let mut made = false;
        r.connected(0, || {
            made = true;
            Conn(Rc::new(Cell::new(true)))
        });
        assert!(!made, "an open connection was replaced");
        first.set(false);
        r.connected(0, || {
            made = true;
            Conn(Rc::new(Cell::new(true)))
        });
        assert!(made && r.open(0).is_some(), "a closed one was kept");
    }

    #[test]
    fn background_handles_route_their_status_home() {
        let (mut r, now) = (router(3), Instant::now());
        let created = |handle: &'static [u8], background| ClientEvent::Created {
            req: crate::machine::RequestId(1),
            handle: Bytes::from_static(handle),
            background,
        };
        r.on_event(2, &created(b"H:bg", true), now);
        r.on_event(1, &created(b"H:fg", false), now);
        let status = |h: &'static [u8]| Call::Status(Bytes::from_static(h));
        assert_eq!(send(&mut r, &status(b"H:bg"), &[], now).0, Some(2));
        assert_eq!(send(&mut r, &status(b"H:fg"), &[], now).0, Some(0));
    }

    #[test]
    fn only_a_loss_that_is_the_servers_fault_backs_it_off() {
        let now = Instant::now();
        let workload = ConnError::Workload(WorkloadError::Long { len: 1 });
        for (reason, backs_off) in [
            (ConnError::Eof { mid_frame: false }, true),
            (ConnError::Closed, false),
            (workload, false),
        ] {
            let mut r = router(2);
            r.on_event(0, &closed(reason.clone()), now);
            let used = send(&mut r, &echo(), &[], now).0;
            assert_eq!(used, Some(if backs_off { 1 } else { 0 }), "{reason:?}");
        }
    }

    #[test]
    fn prune_drops_only_closed_connections() {
        let mut r = router(2);
        let down = Rc::new(Cell::new(false));
        let flag = down.clone();
        r.connected(0, || Conn(flag));
        r.connected(1, || Conn(Rc::new(Cell::new(true))));
        assert!(r.conn(0).is_some() && r.open(0).is_none());
        r.prune(0);
        r.prune(1);
        assert!(r.conn(0).is_none() && r.conn(1).is_some());
        assert_eq!(r.conns().map(|(i, _)| i).collect::<Vec<_>>(), [1]);
    }
}
