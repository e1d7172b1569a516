//! Runtime-neutral async Gearman client and worker, written once over futures-io.
//!
//! The protocol lives in [`gearman_core`], and so do the decisions every adapter shares
//! (server choice and failover, waiter dispatch, job results, map/reduce bookkeeping). This
//! crate only moves bytes between a socket and a core machine (its `driver`) and turns core
//! events into futures and streams. A runtime crate (gearman-tokio, gearman-async-std)
//! supplies a [`Runtime`] (the clock, timers and `spawn`) and a [`Connector`] (TCP and
//! Unix sockets; TLS over either with the `tls` feature, see the `tls` module). Servers are named
//! `host:port`, `[v6]:port` or `unix:/path` ([`ServerAddr`]).

pub mod admin;
mod api;
pub mod blocking;
mod builder;
mod client;
mod driver;
#[cfg(feature = "tls")]
pub mod tls;
mod worker;

pub use api::{Error, JobEvent, Task, TaskOutput, Unreachable};
pub use client::{Client, ClientBuilder, JobStream, CONNECT_CHECK_TIMEOUT};
pub use gearman_core::addr::{AddrError, ServerAddr};
pub use gearman_core::backoff::Backoff;
pub use gearman_core::client::{ClientConfig, Job, Schedule, Selection};
pub use gearman_core::proto::{GrabMode, Priority, StatusRes, StatusResUnique};
pub use gearman_core::worker::{AssignedJob, Report, WorkError, WorkResult, WorkerConfig};
pub use gearman_core::{ConnError, UsageError, WorkloadError};
#[cfg(feature = "tls")]
pub use tls::{ClientTls, ClientTlsBuilder, TlsError, TlsRuntime};
pub use worker::{JobContext, ShutdownHandle, Worker, WorkerBuilder, WorkerHandle, REPORT_BACKLOG};

/// Idle time before a client or worker connection's first keepalive probe.
pub const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Turns TCP keepalive on for a client or worker connection (first probe after
/// [`KEEPALIVE_IDLE`], then every 15 s): a worker asleep waiting for NOOP, or a call
/// without a timeout, otherwise never hears that the server's host lost power or that a
/// middlebox dropped the idle flow. Best effort: a socket that refuses keeps working
/// without it. Every adapter's connector calls it.
#[cfg(unix)]
pub fn keep_alive<S: std::os::fd::AsFd>(socket: &S) {
    set_keepalive(socket2::SockRef::from(socket));
}

/// Turns TCP keepalive on for a client or worker connection; see the Unix version.
#[cfg(windows)]
pub fn keep_alive<S: std::os::windows::io::AsSocket>(socket: &S) {
    set_keepalive(socket2::SockRef::from(socket));
}

fn set_keepalive(socket: socket2::SockRef<'_>) {
    let probes = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(std::time::Duration::from_secs(15));
    if let Err(e) = socket.set_tcp_keepalive(&probes) {
        tracing::debug!(error = %e, "gearman: cannot turn TCP keepalive on");
    }
}

use futures::io::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What an async runtime provides to the shared client and worker: the clock, timers and
/// spawning. Connections come from a [`Connector`], so a transport (TLS, a proxy) plugs
/// in without touching the runtime.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// The current time (machines never read the clock themselves).
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;

    /// Runs `future` in the background.
    fn spawn(&self, future: BoxFuture<()>);
}

/// A byte stream a connection runs over: any futures-io reader and writer.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A connection as the client and worker hold it.
pub type BoxIo = Box<dyn Io>;

/// Opens byte streams to servers. Each runtime crate has one for TCP and Unix sockets
/// (`gearman_tokio::TokioConnector`, `gearman_async_std::AsyncIoConnector`); wrap it to add
/// TLS or anything else, and hand it to [`ClientBuilder::connector`] and
/// [`WorkerBuilder::connector`].
///
/// ```
/// use gearman_async::{BoxFuture, BoxIo, Connector, ServerAddr};
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// /// Counts connects, then lets `inner` connect.
/// struct Counting<C> { inner: C, connects: AtomicUsize }
///
/// impl<C: Connector> Connector for Counting<C> {
///     fn connect(&self, addr: &ServerAddr) -> BoxFuture<std::io::Result<BoxIo>> {
///         self.connects.fetch_add(1, Ordering::Relaxed);
///         self.inner.connect(addr)
///     }
/// }
/// ```
pub trait Connector: Send + Sync + 'static {
    /// Opens a stream to `addr`.
    fn connect(&self, addr: &ServerAddr) -> BoxFuture<io::Result<BoxIo>>;
}

impl<C: Connector + ?Sized> Connector for Arc<C> {
    fn connect(&self, addr: &ServerAddr) -> BoxFuture<io::Result<BoxIo>> {
        (**self).connect(addr)
    }
}

/// Parses `addr`; a malformed address is an `InvalidInput` error for that server.
fn parse_addr(addr: &str) -> io::Result<ServerAddr> {
    addr.parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Parses `addr` and connects to it with `connector`.
pub(crate) fn connect(connector: &dyn Connector, addr: &str) -> BoxFuture<io::Result<BoxIo>> {
    match parse_addr(addr) {
        Ok(addr) => connector.connect(&addr),
        Err(e) => Box::pin(std::future::ready(Err(e))),
    }
}
