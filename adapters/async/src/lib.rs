//! Runtime-neutral async Gearman client and worker, written once over futures-io.
//!
//! The protocol lives in [`gearman_core`], and so do the decisions every adapter shares
//! (server choice and failover, waiter dispatch, job results, map/reduce bookkeeping). This
//! crate only moves bytes between a socket and a core machine ([`driver`]) and turns core
//! events into futures and streams. A runtime crate (gearman-tokio, gearman-async-std)
//! supplies a [`Runtime`]: the clock, timers, `spawn` and `connect`.

mod client;
mod driver;
mod worker;

pub use client::{Client, ClientBuilder, JobEvent, JobStream};
pub use gearman_core::client::backoff::Backoff;
pub use gearman_core::client::{CallError as Error, Job, Selection};
pub use gearman_core::proto::{GrabMode, Priority, StatusRes, StatusResUnique};
pub use gearman_core::worker::{AssignedJob, WorkError, WorkResult};
pub use worker::{JobContext, ShutdownHandle, Worker, WorkerBuilder};

use futures::io::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Instant;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What an async runtime provides to the shared client and worker.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// The byte stream a connection runs over.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The current time (machines never read the clock themselves).
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;

    /// Runs `future` in the background.
    fn spawn(&self, future: BoxFuture<()>);

    /// Opens a connection to `addr` (`host:port`).
    fn connect(&self, addr: String) -> BoxFuture<io::Result<Self::Io>>;
}
