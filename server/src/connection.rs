//! Per-connection tasks: a reader that forwards bytes to the core task and a writer that
//! writes what the core hands it. Neither knows anything about the protocol.

use crate::transport::{Accepted, ByteStream, Stream};
use bytes::BytesMut;
use gearman_core::server::ConnId;
use socket2::SockRef;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

/// What connection tasks tell the core task.
pub(crate) enum ToCore {
    /// A listener has a new connection (after its TLS handshake, on a TLS listener).
    Accepted(Accepted),
    /// Bytes read from a connection.
    Input(ConnId, bytes::Bytes),
    /// The connection is gone (end of stream or an error).
    Eof(ConnId),
    /// A stalled writer has caught up; send it more.
    Drained(ConnId),
    /// The HTTP listener asks for gauges and counters.
    Report(tokio::sync::oneshot::Sender<crate::http::CoreReport>),
    /// The HTTP listener asks for the schedules and dead letters.
    Extras(tokio::sync::oneshot::Sender<crate::http::ExtrasList>),
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
    /// The socket itself, when replies can be written to it without the writer task.
    direct: Option<Arc<dyn DirectWrite>>,
    writer: mpsc::UnboundedSender<ToWriter>,
    pub(crate) flow: Arc<FlowControl>,
    reader: AbortHandle,
}

impl ConnHandle {
    /// Writes straight to the socket when nothing is queued (saving a task hop per reply);
    /// whatever the socket does not take now goes to the writer task, in order.
    pub(crate) fn send(&self, data: &[u8]) {
        let mut rest = data;
        let direct = self.direct.as_ref();
        if let Some(stream) = direct.filter(|_| self.flow.pending.load(Ordering::Acquire) == 0) {
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

/// A socket that replies can be written to from the core task, without a task hop.
pub(crate) trait DirectWrite: Send + Sync + 'static {
    /// Writes what the socket takes now (`WouldBlock` if nothing).
    fn try_write(&self, data: &[u8]) -> io::Result<usize>;
    /// Waits until the socket may take more.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send
    where
        Self: Sized;
    /// Half-closes the socket after the last reply.
    fn shutdown_write(&self);
}

impl DirectWrite for tokio::net::tcp::OwnedWriteHalf {
    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        tokio::net::tcp::OwnedWriteHalf::try_write(self, data)
    }
    async fn writable(&self) -> io::Result<()> {
        tokio::net::tcp::OwnedWriteHalf::writable(self).await
    }
    fn shutdown_write(&self) {
        let _ = SockRef::from(self.as_ref()).shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(unix)]
impl DirectWrite for tokio::net::unix::OwnedWriteHalf {
    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        tokio::net::unix::OwnedWriteHalf::try_write(self, data)
    }
    async fn writable(&self) -> io::Result<()> {
        tokio::net::unix::OwnedWriteHalf::writable(self).await
    }
    fn shutdown_write(&self) {
        let _ = SockRef::from(self.as_ref()).shutdown(std::net::Shutdown::Write);
    }
}

/// Starts the reader and writer tasks for `stream`.
pub(crate) fn spawn(stream: Stream, conn: ConnId, to_core: mpsc::Sender<ToCore>) -> ConnHandle {
    // Split so the reader can use `read_buf`, which (unlike `try_read_buf`) treats a short
    // read as "drained" and skips the extra read that would only return EWOULDBLOCK.
    match stream {
        Stream::Tcp(s) => {
            let (read, write) = s.into_split();
            spawn_direct(read, Arc::new(write), conn, to_core)
        }
        #[cfg(unix)]
        Stream::Unix(s) => {
            let (read, write) = s.into_split();
            spawn_direct(read, Arc::new(write), conn, to_core)
        }
        Stream::Other(s) => spawn_generic(s, conn, to_core),
    }
}

fn new_flow() -> Arc<FlowControl> {
    Arc::new(FlowControl {
        pending: AtomicUsize::new(0),
        stalled: AtomicBool::new(false),
        inflight: AtomicUsize::new(0),
        resume: Notify::new(),
    })
}

fn spawn_direct<R, W>(
    read: R,
    write: Arc<W>,
    conn: ConnId,
    to_core: mpsc::Sender<ToCore>,
) -> ConnHandle
where
    R: AsyncRead + Unpin + Send + 'static,
    W: DirectWrite,
{
    let (writer_tx, writer_rx) = mpsc::unbounded_channel();
    let flow = new_flow();
    let reader = tokio::spawn(read_loop(read, conn, flow.clone(), to_core.clone())).abort_handle();
    tokio::spawn(write_loop(
        DirectSink(write.clone()),
        conn,
        writer_rx,
        flow.clone(),
        to_core,
    ));
    ConnHandle {
        direct: Some(write),
        writer: writer_tx,
        flow,
        reader,
    }
}

fn spawn_generic(
    stream: Box<dyn ByteStream>,
    conn: ConnId,
    to_core: mpsc::Sender<ToCore>,
) -> ConnHandle {
    let (read, write) = tokio::io::split(stream);
    let (writer_tx, writer_rx) = mpsc::unbounded_channel();
    let flow = new_flow();
    let reader = tokio::spawn(read_loop(read, conn, flow.clone(), to_core.clone())).abort_handle();
    tokio::spawn(write_loop(
        AsyncSink(write),
        conn,
        writer_rx,
        flow.clone(),
        to_core,
    ));
    ConnHandle {
        direct: None,
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

/// Where a writer task writes.
trait Sink: Send {
    /// Writes all of `data`.
    fn write_all(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Half-closes (or closes) the stream after the last reply.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

/// A socket the core task may also write to directly.
struct DirectSink<W>(Arc<W>);

impl<W: DirectWrite> Sink for DirectSink<W> {
    async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.0.writable().await?;
            match self.0.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    async fn shutdown(&mut self) {
        self.0.shutdown_write();
    }
}

/// Any other stream, written only by its writer task.
struct AsyncSink<W>(W);

impl<W: AsyncWrite + Unpin + Send> Sink for AsyncSink<W> {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        AsyncWriteExt::write_all(&mut self.0, data).await?;
        self.0.flush().await
    }
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(&mut self.0).await;
    }
}

async fn write_loop<S: Sink>(
    mut sink: S,
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
