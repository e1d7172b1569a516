//! Every connection as the core task drives them: servicing those whose socket is ready
//! (write what waits, then read and hand the bytes to the job server), writing the job
//! server's output, and closing.

use super::ready::ReadyList;
use super::{Connection, Read, WRITER_HIGH_WATER};
use crate::transport::Stream;
use gearman_core::server::{ConnId, Server};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The read buffer shared by every connection: each read is handed to the job server at
/// once, so one buffer serves them all.
const SCRATCH: usize = 64 * 1024;
/// Connections serviced per round, so the output of one busy round is not held up long.
const SERVICE_BATCH: usize = 512;
/// The output buffer is given back past this size, so one large reply does not pin it.
const OUT_KEEP: usize = 1024 * 1024;
/// How long a closing connection may take to have its last output read; a peer that
/// never reads is then dropped, so it holds no socket and no buffer for good.
const CLOSE_LINGER: Duration = Duration::from_secs(10);

/// The open connections, those flushing their last output, and the buffers they share.
pub(crate) struct Connections {
    /// Boxed, so the table (sized in powers of two) holds pointers, not connections.
    open: HashMap<ConnId, Box<Connection>>,
    /// Connections the job server is done with, writing what is left before closing.
    closing: HashMap<ConnId, Box<Connection>>,
    /// When each closing connection is dropped however far it got, oldest first.
    lingering: VecDeque<(Instant, ConnId)>,
    ready: Arc<ReadyList>,
    /// Connections whose socket is ready and not serviced yet, in order.
    due: VecDeque<ConnId>,
    scratch: Box<[u8]>,
    /// One connection's output from the job server (reused).
    out: Vec<u8>,
}

impl Connections {
    pub(crate) fn new() -> Connections {
        Connections {
            open: HashMap::new(),
            closing: HashMap::new(),
            lingering: VecDeque::new(),
            ready: Arc::default(),
            due: VecDeque::new(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            out: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sockets held: open connections and those still writing their last output (for
    /// --max-connections, so peers that never read cannot hold sockets past it).
    pub(crate) fn held(&self) -> usize {
        self.open.len() + self.closing.len()
    }

    /// When the next closing connection is due to be dropped.
    pub(crate) fn next_linger_end(&self) -> Option<Instant> {
        self.lingering.front().map(|&(at, _)| at)
    }

    /// Drops the closing connections whose peer has not read their last output within
    /// [`CLOSE_LINGER`].
    pub(crate) fn end_lingering(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.lingering.front() {
            if at > now {
                break;
            }
            self.lingering.pop_front();
            if self.closing.remove(&id).is_some() {
                tracing::debug!(?id, "closed without its last output read");
            }
        }
    }

    /// Whether every closing connection has finished.
    pub(crate) fn all_closed(&self) -> bool {
        self.closing.is_empty()
    }

    /// Serves `stream` as `id`; it is serviced in the next round, since its peer may have
    /// sent already (and its waker is only registered once it is polled).
    pub(crate) fn add(&mut self, id: ConnId, stream: Stream) {
        self.open
            .insert(id, Box::new(Connection::new(stream, id, &self.ready)));
        self.due.push_back(id);
    }

    /// Ready when some connection needs servicing.
    pub(crate) fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.due.is_empty() {
            return Poll::Ready(());
        }
        self.ready.poll_take(cx, &mut self.due)
    }

    /// Services up to [`SERVICE_BATCH`] of the connections whose socket is ready.
    pub(crate) fn service(&mut self, server: &mut Server, now: Instant) {
        let _ = self.ready.take(&mut self.due);
        for _ in 0..SERVICE_BATCH {
            let Some(id) = self.due.pop_front() else {
                break;
            };
            self.service_one(server, id, now);
        }
    }

    fn service_one(&mut self, server: &mut Server, id: ConnId, now: Instant) {
        if let Some(c) = self.closing.get_mut(&id) {
            c.serviced();
            if c.poll_close().is_ready() {
                self.closing.remove(&id);
            }
            return;
        }
        let Some(c) = self.open.get_mut(&id) else {
            return;
        };
        c.serviced();
        if c.pump().is_err() {
            self.broken(server, id, now);
            return;
        }
        if c.stalled && c.backlog() == 0 {
            // The job server held output back while the socket was behind.
            c.stalled = false;
            self.transmit(server, id);
        }
        self.read_from(server, id, now);
    }

    /// Reads what `id` has sent, up to one scratch buffer's worth per round (a connection
    /// with more is queued again behind the others), and hands it to the job server.
    fn read_from(&mut self, server: &mut Server, id: ConnId, now: Instant) {
        let mut taken = 0;
        while let Some(c) = self.open.get_mut(&id) {
            if c.reading_paused() {
                // Resumed once the socket has taken the output (its waker is registered).
                return;
            }
            if taken >= SCRATCH {
                c.requeue();
                return;
            }
            if server.input_held(id) {
                // Requests left from earlier reads because this connection's output was
                // large: they go before anything new is read. Still held means new large
                // output, whose transmit queues the connection again.
                server.handle_input(id, &[], now);
                if server.input_held(id) {
                    return;
                }
                continue;
            }
            match c.read(&mut self.scratch) {
                Read::Pending => return,
                Read::Closed => {
                    tracing::debug!(?id, "closed by peer");
                    // Replies to what came with the end of stream (`echo status | nc -N`)
                    // still go out before the job server forgets the connection.
                    self.transmit(server, id);
                    server.handle_eof(id, now);
                    self.close_quietly(id);
                    return;
                }
                Read::Data(n) => {
                    server.handle_input(id, self.scratch.get(..n).unwrap_or_default(), now);
                    taken += n;
                }
            }
        }
    }

    /// Hands `id`'s ready output from the job server to its socket. Output waits in the
    /// job server while the socket is far behind (which closes the connection past its
    /// own bound).
    pub(crate) fn transmit(&mut self, server: &mut Server, id: ConnId) {
        let Some(c) = self.open.get_mut(&id) else {
            return;
        };
        if c.backlog() > WRITER_HIGH_WATER {
            c.stalled = true;
            return;
        }
        self.out.clear();
        if server.poll_transmit(id, &mut self.out) > 0 && c.send(&self.out).is_err() {
            self.broken(server, id, Instant::now());
        } else if server.input_held(id) {
            // Its output is handed over: its waiting requests can go on (`read_from`).
            c.requeue();
        }
        if self.out.capacity() > OUT_KEEP {
            self.out = Vec::with_capacity(64 * 1024);
        }
    }

    /// The job server is done with `id`: its ready output is written, then the stream
    /// closed.
    pub(crate) fn close(&mut self, server: &mut Server, id: ConnId) {
        self.transmit(server, id);
        self.close_quietly(id);
    }

    /// Stops serving every open connection: each is closed once its output is written.
    pub(crate) fn close_all(&mut self) {
        let ids: Vec<ConnId> = self.open.keys().copied().collect();
        for id in ids {
            self.close_quietly(id);
        }
    }

    /// Moves `id` to the closing set, unless it closes at once.
    fn close_quietly(&mut self, id: ConnId) {
        if let Some(mut c) = self.open.remove(&id) {
            if c.poll_close().is_pending() {
                self.closing.insert(id, c);
                self.lingering
                    .push_back((Instant::now() + CLOSE_LINGER, id));
            }
        }
    }

    /// Writing to `id` failed: the job server forgets it, and it is dropped.
    fn broken(&mut self, server: &mut Server, id: ConnId, now: Instant) {
        tracing::debug!(?id, "connection broken");
        self.open.remove(&id);
        server.handle_eof(id, now);
    }
}
