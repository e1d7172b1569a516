//! Per-connection tasks: a reader that forwards bytes to the core task and a writer that
//! writes what the core hands it. Neither knows anything about the protocol.

use crate::cli::Keepalive;
use bytes::BytesMut;
use gearman_core::server::ConnId;
use socket2::{SockRef, TcpKeepalive};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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
    pub(crate) writer: mpsc::UnboundedSender<ToWriter>,
    /// Bytes handed to the writer and not yet written.
    pub(crate) pending: Arc<AtomicUsize>,
    /// Set when the core held output back because `pending` was high.
    pub(crate) stalled: Arc<AtomicBool>,
    pub(crate) reader: AbortHandle,
}

impl ConnHandle {
    pub(crate) fn send(&self, data: Vec<u8>) {
        self.pending.fetch_add(data.len(), Ordering::AcqRel);
        let _ = self.writer.send(ToWriter::Data(data));
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
    let (read, write) = stream.into_split();
    let (writer_tx, writer_rx) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicUsize::new(0));
    let stalled = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_loop(read, conn, to_core.clone())).abort_handle();
    tokio::spawn(write_loop(
        write,
        conn,
        writer_rx,
        pending.clone(),
        stalled.clone(),
        to_core,
    ));
    ConnHandle {
        writer: writer_tx,
        pending,
        stalled,
        reader,
    }
}

async fn read_loop(mut read: OwnedReadHalf, conn: ConnId, to_core: mpsc::Sender<ToCore>) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
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

async fn write_loop(
    mut write: OwnedWriteHalf,
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
            if write.write_all(&batch).await.is_err() {
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
            let _ = write.shutdown().await;
            return;
        }
    }
}
