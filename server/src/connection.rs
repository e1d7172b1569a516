//! Per-connection tasks: a reader that forwards bytes to the core task and a writer that
//! writes what the core hands it. Neither knows anything about the protocol.

use crate::cli::Keepalive;
use bytes::BytesMut;
use gearman_core::server::ConnId;
use socket2::{SockRef, TcpKeepalive};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// What connection tasks tell the core task.
pub(crate) enum ToCore {
    Accepted(TcpStream, std::net::SocketAddr),
    Input(ConnId, bytes::Bytes),
    Eof(ConnId),
    /// A stalled writer has caught up; send it more.
    Drained(ConnId),
    /// The store committed (or failed to commit) a background job.
    Persisted(u64, Result<(), String>),
}

/// What the core task tells a writer.
pub(crate) enum ToWriter {
    Data(Vec<u8>),
    /// Flush what was sent before, then close the socket.
    Close,
}

/// The core task's handle on one connection.
pub(crate) struct ConnHandle {
    stream: Arc<TcpStream>,
    pub(crate) writer: mpsc::UnboundedSender<ToWriter>,
    /// Bytes handed to the writer and not yet written.
    pub(crate) pending: Arc<AtomicUsize>,
    /// Set when the core held output back because `pending` was high.
    pub(crate) stalled: Arc<AtomicBool>,
    pub(crate) reader: AbortHandle,
}

impl ConnHandle {
    /// Writes straight to the socket when nothing is queued (saving a task hop per reply);
    /// whatever the socket does not take now goes to the writer task, in order.
    pub(crate) fn send(&self, data: Vec<u8>) {
        let mut rest = &data[..];
        if self.pending.load(Ordering::Acquire) == 0 {
            match self.stream.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The reader sees the failure too and reports the connection gone.
                Err(_) => return,
            }
        }
        if !rest.is_empty() {
            self.pending.fetch_add(rest.len(), Ordering::AcqRel);
            let _ = self.writer.send(ToWriter::Data(rest.to_vec()));
        }
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

/// Starts the reader and writer tasks for `stream`.
pub(crate) fn spawn(stream: TcpStream, conn: ConnId, to_core: mpsc::Sender<ToCore>) -> ConnHandle {
    let stream = Arc::new(stream);
    let (writer_tx, writer_rx) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicUsize::new(0));
    let stalled = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_loop(stream.clone(), conn, to_core.clone())).abort_handle();
    tokio::spawn(write_loop(
        stream.clone(),
        conn,
        writer_rx,
        pending.clone(),
        stalled.clone(),
        to_core,
    ));
    ConnHandle {
        stream,
        writer: writer_tx,
        pending,
        stalled,
        reader,
    }
}

async fn read_loop(stream: Arc<TcpStream>, conn: ConnId, to_core: mpsc::Sender<ToCore>) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        if stream.readable().await.is_err() {
            break;
        }
        match stream.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(_) => {
                if to_core
                    .send(ToCore::Input(conn, buf.split().freeze()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
    }
    let _ = to_core.send(ToCore::Eof(conn)).await;
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
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
    stream: Arc<TcpStream>,
    conn: ConnId,
    mut from_core: mpsc::UnboundedReceiver<ToWriter>,
    pending: Arc<AtomicUsize>,
    stalled: Arc<AtomicBool>,
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
            if write_all(&stream, &batch).await.is_err() {
                let _ = to_core.send(ToCore::Eof(conn)).await;
                return;
            }
            let left = pending
                .fetch_sub(batch.len(), Ordering::AcqRel)
                .saturating_sub(batch.len());
            batch.clear();
            if left == 0 && stalled.swap(false, Ordering::AcqRel) {
                let _ = to_core.send(ToCore::Drained(conn)).await;
            }
        }
        if closing {
            let _ = SockRef::from(&*stream).shutdown(std::net::Shutdown::Write);
            return;
        }
    }
}
