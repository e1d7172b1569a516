//! The one driver loop: runs any core [`Machine`] over a futures-io stream (str0m's loop:
//! drain output and events, then wait for exactly one of input, command or timer).

use crate::{BoxIo, Runtime};
use futures::channel::mpsc::UnboundedReceiver;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use futures::{FutureExt, StreamExt};
use gearman_core::machine::Machine;
use gearman_core::ConnError;
use std::io;
use std::time::{Duration, Instant};

/// Where a streamed workload's bytes come from.
pub(crate) type WorkloadSource = Box<dyn AsyncRead + Send + Unpin>;

/// How long a closing connection may take to write its last packets.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

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
    /// How many bytes of output are waiting to be written, after each drain of the
    /// machine's output and after each write (a worker holds its streaming handlers
    /// back with it).
    fn unwritten(&mut self, _bytes: usize) {}
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
    // Output not yet taken by the stream: `out[sent..]`, flushed once all is written.
    // Writes wait in the select below with everything else, so a server that stops
    // reading does not stop the machine's timers (calls still time out) or its input.
    let (mut out, mut sent, mut unflushed) = (Vec::with_capacity(16 * 1024), 0, false);
    let mut buf = vec![0u8; 64 * 1024];
    let mut chunk = vec![0u8; gearman_core::client::WORKLOAD_CHUNK];
    loop {
        if sent == out.len() {
            out.clear();
            sent = 0;
        } else if sent > out.len() / 2 {
            out.drain(..sent);
            sent = 0;
        }
        while role.machine().poll_transmit(&mut out) > 0 {}
        role.unwritten(out.len() - sent);
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
            // A local close's last packets, for as long as the stream takes them.
            let last = out.get(sent..).unwrap_or_default();
            let linger = rt.sleep_until(rt.now() + CLOSE_LINGER);
            futures::select! {
                _ = async {
                    if writer.write_all(last).await.is_ok() {
                        let _ = writer.flush().await;
                    }
                    let _ = writer.close().await;
                }.fuse() => {}
                () = linger.fuse() => {}
            }
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
        let backlog = out.len() - sent;
        let feed = async {
            if backlog > 0 {
                // Read the source only as fast as the server takes its bytes.
                return futures::future::pending().await;
            }
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
        let send = async {
            match out.get(sent..) {
                Some(rest) if !rest.is_empty() => writer.write(rest).await.map(Some),
                _ if unflushed => writer.flush().await.map(|()| None),
                _ => futures::future::pending().await,
            }
        };
        futures::select! {
            wrote = send.fuse() => match wrote {
                Ok(Some(n)) if n > 0 => {
                    sent += n;
                    // A TLS stream may hold back what the socket did not take.
                    unflushed = true;
                }
                Ok(None) => unflushed = false,
                _ => role.machine().handle_eof(rt.now()),
            },
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
