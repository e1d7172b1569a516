//! The one driver loop: runs any core [`Machine`] over a futures-io stream (str0m's loop:
//! drain output and events, then wait for exactly one of input, command or timer).

use crate::{BoxIo, Runtime};
use futures::channel::mpsc::UnboundedReceiver;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use futures::{FutureExt, StreamExt};
use gearman_core::machine::Machine;
use gearman_core::ConnError;
use std::io;
use std::time::Instant;

/// Where a streamed workload's bytes come from.
pub(crate) type WorkloadSource = Box<dyn AsyncRead + Send + Unpin>;

/// A role plugs commands and events into the driver: its waiter bookkeeping.
pub(crate) trait Role: Send {
    /// The machine driven.
    type M: Machine + Send;
    /// Application commands.
    type Cmd: Send;
    /// The machine.
    fn machine(&mut self) -> &mut Self::M;
    /// Applies one command.
    fn command(&mut self, cmd: Self::Cmd, now: Instant);
    /// Hands one event (reported at `now`) to its waiters.
    fn event(&mut self, event: <Self::M as Machine>::Event, now: Instant);
    /// True when the role wants the connection closed (graceful stop reached).
    fn finished(&self) -> bool {
        false
    }
    /// How many bytes to read now from the source of the workload the machine is
    /// streaming (the machine's `workload_wanted`), and that source (`None`: it has none).
    fn workload(&mut self) -> Option<(usize, Option<&mut WorkloadSource>)> {
        None
    }
    /// Hands the machine what one read of that source gave.
    fn workload_read(&mut self, _read: io::Result<&[u8]>) {}
}

/// Runs `role` over `io` (a connection to `server`) until the machine closes.
pub(crate) async fn drive<R: Role, Rt: Runtime>(
    role: &mut R,
    io: BoxIo,
    mut cmds: UnboundedReceiver<R::Cmd>,
    rt: &Rt,
    server: &str,
) {
    let (mut reader, mut writer) = io.split();
    let mut out = Vec::with_capacity(16 * 1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut chunk = vec![0u8; gearman_core::client::WORKLOAD_CHUNK];
    loop {
        while role.machine().poll_transmit(&mut out) > 0 {}
        if !out.is_empty() {
            let written = writer.write_all(&out).await;
            out.clear();
            if written.is_err() || writer.flush().await.is_err() {
                role.machine().handle_eof(rt.now());
            }
        }
        if role.machine().is_closed() {
            // Before the waiters hear of it: a call sent after that must see a dead
            // connection (and reconnect), not be dropped with this one.
            cmds.close();
        }
        while let Some(event) = role.machine().poll_event() {
            role.event(event, rt.now());
        }
        if role.machine().is_closed() {
            log_close(server, role.machine().error());
            let _ = writer.close().await;
            return;
        }
        if role.finished() {
            role.machine().close();
            continue;
        }
        let sleep = match role.machine().poll_timeout() {
            Some(deadline) => rt.sleep_until(deadline),
            None => Box::pin(futures::future::pending()),
        };
        // Reading a streamed workload's source is one more thing to wait for; the socket
        // is still read meanwhile, so the server is never stuck writing to us.
        let feed = async {
            match role.workload() {
                Some((want, Some(source))) => {
                    let want = want.min(chunk.len());
                    let n = source.read(chunk.get_mut(..want).unwrap_or_default()).await;
                    n.map(|n| chunk.get(..n).unwrap_or_default())
                }
                Some((_, None)) => Err(io::Error::other("the streamed workload has no source")),
                None => futures::future::pending().await,
            }
        };
        futures::select! {
            fed = feed.fuse() => role.workload_read(fed),
            read = reader.read(&mut buf).fuse() => match read {
                Ok(n) if n > 0 => {
                    let input = buf.get(..n).unwrap_or_default();
                    // A fatal error closes the machine; the Closed event carries it.
                    let _ = role.machine().handle_input(input, rt.now());
                }
                _ => role.machine().handle_eof(rt.now()),
            },
            cmd = cmds.next() => match cmd {
                Some(cmd) => role.command(cmd, rt.now()),
                None => role.machine().close(),
            },
            () = sleep.fuse() => role.machine().handle_timeout(rt.now()),
        }
    }
}

/// Says (`tracing`) why a connection to `server` ended: a local close is routine, anything else (EOF, a protocol
/// error from the server) is worth a warning.
pub fn log_close(server: &str, error: Option<&ConnError>) {
    match error {
        None | Some(ConnError::Closed) => tracing::debug!(server, "gearman: connection closed"),
        Some(e) => tracing::warn!(server, error = %e, "gearman: connection lost"),
    }
}
