//! Gearman client and worker on tokio: a [`Runtime`] for the shared async layer
//! ([`gearman_async`]) and re-exports. Protocol logic lives in `gearman-core`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gearman_tokio::Error> {
//! let client = gearman_tokio::client().server("127.0.0.1:4730").build();
//! let reversed = client.run(gearman_tokio::Job::new("reverse", "hello")).await?;
//! # Ok(()) }
//! ```
//!
//! A worker serving `reverse`, four jobs at a time, until its shutdown handle is used (see
//! also `examples/worker.rs`):
//!
//! ```no_run
//! # async fn demo() {
//! let worker = gearman_tokio::worker()
//!     .server("127.0.0.1:4730")
//!     .concurrency(4)
//!     .function("reverse", |job| async move {
//!         job.status(1, 1);
//!         Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
//!     })
//!     .build();
//! let stop = worker.shutdown_handle(); // stop.shutdown() finishes running jobs, then returns
//! worker.run().await;
//! # }
//! ```

pub use gearman_async::*;

use std::io;
use std::time::Instant;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// The tokio runtime: timers from `tokio::time`, tasks from `tokio::spawn`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    type Io = Compat<tokio::net::TcpStream>;

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn spawn(&self, future: BoxFuture<()>) {
        tokio::spawn(future);
    }

    fn connect(&self, addr: String) -> BoxFuture<io::Result<Self::Io>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream.compat())
        })
    }
}

/// A client builder on tokio.
pub fn client() -> ClientBuilder<TokioRuntime> {
    ClientBuilder::new(TokioRuntime)
}

/// A worker builder on tokio.
pub fn worker() -> WorkerBuilder<TokioRuntime> {
    WorkerBuilder::new(TokioRuntime)
}
