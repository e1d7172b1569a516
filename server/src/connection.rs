//! Per-connection tasks: a reader that forwards bytes to the core task and a writer that
//! writes what the core hands it. Neither knows anything about the protocol.

use crate::cli::Keepalive;
use bytes::BytesMut;
use gearman_core::server::ConnId;
use socket2::{SockRef, TcpKeepalive};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

/// What connection tasks tell the core task.
pub(crate) enum ToCore {
    Accepted(TcpStream, std::net::SocketAddr),
    /// A TLS connection whose handshake is done, with its socket's fd.
    AcceptedTls(Box<crate::tls::Handshaken>, std::net::SocketAddr, u64),
    Input(ConnId, bytes::Bytes),
    Eof(ConnId),
    /// A stalled writer has caught up; send it more.
    Drained(ConnId),
    /// The HTTP listener asks for gauges and counters.
    Report(tokio::sync::oneshot::Sender<crate::http::CoreReport>),
}

/// What the core task tells a writer.
pub(crate) enum ToWriter {
    Data(Vec<u8>),
    /// Flush what was sent before, then close the socket.
    Close,
}

/// Flow-control state shared by a connection's reader, its writer and the core task.
///
/// The reader stops reading while the connection's replies are not draining (the writer
/// holds more than [`WRITER_HIGH_WATER`] unwritten, or the core is holding output back) or
/// while the core has not yet digested [`INPUT_HIGH_WATER`] of its input. A peer that sends
/// without reading thus meets TCP backpressure instead of growing the server's memory.
pub(crate) struct FlowControl {
    /// Bytes handed to the writer and not yet written.
    pub(crate) pending: AtomicUsize,
    /// Set when the core held output back because `pending` was high.
    pub(crate) stalled: AtomicBool,
    /// Input bytes sent to the core and not yet handled.
    pub(crate) inflight: AtomicUsize,
    /// Wakes a paused reader.
    resume: Notify,
}

/// Unwritten bytes in a writer past which the core keeps further output, and the reader pauses.
pub(crate) const WRITER_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Unhandled input per connection past which its reader pauses (fairness between peers).
const INPUT_HIGH_WATER: usize = 256 * 1024;

impl FlowControl {
    fn reader_must_wait(&self) -> bool {
        self.pending.load(Ordering::Acquire) > WRITER_HIGH_WATER
            || self.stalled.load(Ordering::Acquire)
            || self.inflight.load(Ordering::Acquire) > INPUT_HIGH_WATER
    }

    /// The core handled `len` bytes of this connection's input.
    pub(crate) fn input_handled(&self, len: usize) {
        let before = self.inflight.fetch_sub(len, Ordering::AcqRel);
        if before > INPUT_HIGH_WATER && before - len <= INPUT_HIGH_WATER {
            self.resume.notify_one();
        }
    }
}

/// The core task's handle on one connection.
pub(crate) struct ConnHandle {
    /// A plain TCP socket the core may write to directly; `None` for a wrapped stream
    /// (TLS), whose bytes must go through its writer task.
    direct: Option<Arc<OwnedWriteHalf>>,
    writer: mpsc::UnboundedSender<ToWriter>,
    pub(crate) flow: Arc<FlowControl>,
    reader: AbortHandle,
}

impl ConnHandle {
    /// Writes straight to the socket when nothing is queued (saving a task hop per reply);
    /// whatever the socket does not take now goes to the writer task, in order.
    pub(crate) fn send(&self, data: &[u8]) {
        let mut rest = data;
        if let Some(stream) = self
            .direct
            .as_ref()
            .filter(|_| self.flow.pending.load(Ordering::Acquire) == 0)
        {
            match stream.try_write(rest) {
                Ok(n) => rest = rest.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The reader sees the failure too and reports the connection gone.
                Err(_) => return,
            }
        }
        if !rest.is_empty() {
            self.flow.pending.fetch_add(rest.len(), Ordering::AcqRel);
            let _ = self.writer.send(ToWriter::Data(rest.to_vec()));
        }
    }

    /// Whether the writer is too far behind to take more output now.
    pub(crate) fn writer_is_behind(&self) -> bool {
        if self.flow.pending.load(Ordering::Acquire) > WRITER_HIGH_WATER {
            // The writer reports Drained when it catches up.
            self.flow.stalled.store(true, Ordering::Release);
            return true;
        }
        false
    }

    pub(crate) fn close(&self) {
        self.reader.abort();
        let _ = self.writer.send(ToWriter::Close);
    }
}

const READ_CHUNK: usize = 16 * 1024;
/// Writes are coalesced up to this size.
const WRITE_BATCH: usize = 64 * 1024;

pub(crate) fn configure(stream: &TcpStream, keepalive: Option<Keepalive>) {
    let _ = stream.set_nodelay(true);
    if let Some(k) = keepalive {
        let mut ka = TcpKeepalive::new();
        if let Some(idle) = k.idle {
            ka = ka.with_time(idle);
        }
        if let Some(interval) = k.interval {
            ka = ka.with_interval(interval);
        }
        if let Some(count) = k.count {
            ka = ka.with_retries(count);
        }
        if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&ka) {
            tracing::warn!("cannot set keepalive: {e}");
        }
    }
}

/// Where a writer task writes.
enum Sink {
    /// A plain socket, shared with the core's direct writes.
    Tcp(Arc<OwnedWriteHalf>),
    /// A wrapped stream (TLS): written and flushed through its `AsyncWrite`.
    Stream(Box<dyn AsyncWrite + Unpin + Send>),
}

impl Sink {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Tcp(stream) => write_all(stream, data).await,
            Sink::Stream(stream) => {
                stream.write_all(data).await?;
                stream.flush().await
            }
        }
    }

    /// Ends the write side after the last bytes (a TLS close_notify first).
    async fn shutdown(&mut self) {
        match self {
            Sink::Tcp(stream) => {
                let _ = SockRef::from((**stream).as_ref()).shutdown(std::net::Shutdown::Write);
            }
            Sink::Stream(stream) => {
                let _ = stream.shutdown().await;
            }
        }
    }
}

/// Starts the reader and writer tasks for a plain TCP `stream`.
pub(crate) fn spawn(stream: TcpStream, conn: ConnId, to_core: mpsc::Sender<ToCore>) -> ConnHandle {
    // Split so the reader can use `read_buf`, which (unlike `try_read_buf`) treats a short
    // read as "drained" and skips the extra read that would only return EWOULDBLOCK.
    let (read_half, write_half) = stream.into_split();
    let stream = Arc::new(write_half);
    start(
        read_half,
        Some(stream.clone()),
        Sink::Tcp(stream),
        conn,
        to_core,
    )
}

/// Starts the reader and writer tasks for a wrapped stream (TLS over TCP).
pub(crate) fn spawn_stream<S>(stream: S, conn: ConnId, to_core: mpsc::Sender<ToCore>) -> ConnHandle
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(stream);
    start(
        read_half,
        None,
        Sink::Stream(Box::new(write_half)),
        conn,
        to_core,
    )
}

fn start<R>(
    read_half: R,
    direct: Option<Arc<OwnedWriteHalf>>,
    sink: Sink,
    conn: ConnId,
    to_core: mpsc::Sender<ToCore>,
) -> ConnHandle
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (writer_tx, writer_rx) = mpsc::unbounded_channel();
    let flow = Arc::new(FlowControl {
        pending: AtomicUsize::new(0),
        stalled: AtomicBool::new(false),
        inflight: AtomicUsize::new(0),
        resume: Notify::new(),
    });
    let reader =
        tokio::spawn(read_loop(read_half, conn, flow.clone(), to_core.clone())).abort_handle();
    tokio::spawn(write_loop(sink, conn, writer_rx, flow.clone(), to_core));
    ConnHandle {
        direct,
        writer: writer_tx,
        flow,
        reader,
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut stream: R,
    conn: ConnId,
    flow: Arc<FlowControl>,
    to_core: mpsc::Sender<ToCore>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        while flow.reader_must_wait() {
            flow.resume.notified().await;
        }
        buf.reserve(READ_CHUNK);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                flow.inflight.fetch_add(n, Ordering::AcqRel);
                if to_core
                    .send(ToCore::Input(conn, buf.split().freeze()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = to_core.send(ToCore::Eof(conn)).await;
}

async fn write_all(stream: &OwnedWriteHalf, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn write_loop(
    mut sink: Sink,
    conn: ConnId,
    mut from_core: mpsc::UnboundedReceiver<ToWriter>,
    flow: Arc<FlowControl>,
    to_core: mpsc::Sender<ToCore>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut closing = false;
    while let Some(msg) = from_core.recv().await {
        match msg {
            ToWriter::Data(data) => batch.extend_from_slice(&data),
            ToWriter::Close => closing = true,
        }
        while !closing && batch.len() < WRITE_BATCH {
            match from_core.try_recv() {
                Ok(ToWriter::Data(data)) => batch.extend_from_slice(&data),
                Ok(ToWriter::Close) => closing = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            if sink.write_all(&batch).await.is_err() {
                let _ = to_core.send(ToCore::Eof(conn)).await;
                return;
            }
            let left = flow
                .pending
                .fetch_sub(batch.len(), Ordering::AcqRel)
                .saturating_sub(batch.len());
            batch.clear();
            if left == 0 {
                if flow.stalled.swap(false, Ordering::AcqRel) {
                    let _ = to_core.send(ToCore::Drained(conn)).await;
                }
                flow.resume.notify_one();
            }
        }
        if closing {
            sink.shutdown().await;
            return;
        }
    }
}
