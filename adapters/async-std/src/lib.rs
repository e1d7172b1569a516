//! Gearman client and worker on futures-io and async-io: one crate for async-std and smol
//! users. A [`Runtime`] for the shared async layer ([`gearman_async`]) and re-exports;
//! protocol logic lives in `gearman-core`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gearman_async_std::Error> {
//! let client = gearman_async_std::client().server("127.0.0.1:4730").build();
//! let reversed = client.run(gearman_async_std::Job::new("reverse", "hello")).await?;
//! # Ok(()) }
//! ```
//!
//! A worker serving `reverse`, four jobs at a time, until its shutdown handle is used (see
//! also `examples/worker.rs`):
//!
//! ```no_run
//! # async fn demo() {
//! let worker = gearman_async_std::worker()
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

use async_io::{Async, Timer};
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

/// The async-io runtime: timers from `async_io::Timer`, tasks on the global executor
/// async-std uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIoRuntime;

impl Runtime for AsyncIoRuntime {
    type Io = Async<TcpStream>;

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            Timer::at(deadline).await;
        })
    }

    fn spawn(&self, future: BoxFuture<()>) {
        async_global_executor::spawn(future).detach();
    }

    fn connect(&self, addr: String) -> BoxFuture<io::Result<Self::Io>> {
        Box::pin(async move {
            // Name resolution blocks; run it off the executor threads.
            let addrs: Vec<_> = blocking_resolve(addr).await?;
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for a in addrs {
                match Async::<TcpStream>::connect(a).await {
                    Ok(stream) => {
                        stream.get_ref().set_nodelay(true)?;
                        return Ok(stream);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

async fn blocking_resolve(addr: String) -> io::Result<Vec<std::net::SocketAddr>> {
    async_global_executor::spawn_blocking(move || addr.to_socket_addrs().map(Iterator::collect))
        .await
}

/// A client builder on async-io (async-std or smol).
pub fn client() -> ClientBuilder<AsyncIoRuntime> {
    ClientBuilder::new(AsyncIoRuntime)
}

/// A worker builder on async-io (async-std or smol).
pub fn worker() -> WorkerBuilder<AsyncIoRuntime> {
    WorkerBuilder::new(AsyncIoRuntime)
}
