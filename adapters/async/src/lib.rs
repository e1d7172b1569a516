//! Runtime-neutral async Gearman client and worker, written once over futures-io.
//!
//! The protocol lives in [`gearman_core`]; this crate only moves bytes between a socket and
//! a core machine ([`driver`]), keeps the waiters that turn core events into futures and
//! streams, and picks servers with the core's selector and backoff schedule. A runtime
//! crate (gearman-tokio, gearman-async-std) supplies a [`Runtime`]: the clock, timers,
//! `spawn` and `connect`.

mod client;
mod driver;
mod error;
mod worker;

pub use client::{Client, ClientBuilder, Job, JobEvent, JobStream, Selection};
pub use error::Error;
pub use gearman_core::client::backoff::Backoff;
pub use gearman_core::proto::{GrabMode, Priority, StatusRes, StatusResUnique};
pub use worker::{JobContext, ShutdownHandle, WorkError, Worker, WorkerBuilder};

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
