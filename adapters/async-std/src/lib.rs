//! Gearman client and worker on futures-io and async-io: one crate for async-std and smol
//! users. A [`Runtime`] and a [`Connector`] (TCP and Unix sockets) for the shared async
//! layer ([`gearman_async`]), and its re-exports; protocol logic lives in `gearman-core`.
//! Servers are `host:port`, `[v6]:port` or `unix:/path`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gearman_async_std::Error> {
//! let client = gearman_async_std::client().server("127.0.0.1:4730").build();
//! client.connect().await?; // optional: fail now on a dead port, with each io error
//! let reversed = client.run(gearman_async_std::Job::new("reverse", "hello")).await?;
//! // A batch of foreground, background and status tasks (PECL's addTask*/runTasks).
//! use gearman_async_std::{Job, Task};
//! let tasks = vec![Task::Run(Job::new("reverse", "a")), Task::Background(Job::new("log", "x"))];
//! let outputs = client.run_batch(tasks, |i, event| println!("task {i}: {event:?}")).await;
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
//! let handle = worker.handle(); // shutdown(), unregister(name), unregister_all()
//! worker.run().await;
//! # }
//! ```
//!
//! ## TLS (feature `tls`)
//!
//! With the `tls` feature, `.tls(settings)` on the client, worker and admin builders
//! connects through `AsyncIoTlsConnector` (futures-rustls). The settings are one
//! [`ClientTls`], shared by every adapter: a CA file or the system roots, an optional
//! client certificate, and the server's name checked against its certificate (the host
//! connected to, unless set).
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gearman_async_std::{ClientTls, Job};
//! let tls = ClientTls::builder()
//!     .ca_file("/etc/gearman/ca.pem")
//!     .client_certificate("/etc/gearman/client.pem", "/etc/gearman/client.key")
//!     .build()?;
//! let client = gearman_async_std::client().server("jobs.example.com:4730").tls(tls.clone()).build();
//! let worker = gearman_async_std::worker()
//!     .server("jobs.example.com:4730")
//!     .tls(tls)
//!     .function("reverse", |job| async move {
//!         Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
//!     })
//!     .build();
//! # let _ = worker;
//! let reversed = client.run(Job::new("reverse", "hello")).await?;
//! // Or gearmand's variables: GEARMAND_CA_CERTIFICATE, GEARMAN_CLIENT_PEM, GEARMAN_CLIENT_KEY.
//! let from_env = gearman_async_std::client().server("jobs.example.com:4730").tls(ClientTls::from_env()?);
//! # let _ = (reversed, from_env);
//! # Ok(()) }
//! ```

pub use gearman_async::*;

pub mod admin;
#[cfg(feature = "tls")]
mod tls_connector;
#[cfg(feature = "tls")]
pub use tls_connector::AsyncIoTlsConnector;

use async_io::{Async, Timer};
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

/// The async-io runtime: timers from `async_io::Timer`, tasks on the global executor
/// async-std uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIoRuntime;

impl Runtime for AsyncIoRuntime {
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            Timer::at(deadline).await;
        })
    }

    fn spawn(&self, future: BoxFuture<()>) {
        async_global_executor::spawn(future).detach();
    }
}

/// TCP (without Nagle: requests are small and latency-bound) and Unix sockets on async-io.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIoConnector;

impl Connector for AsyncIoConnector {
    fn connect(&self, addr: &ServerAddr) -> BoxFuture<io::Result<BoxIo>> {
        let addr = addr.clone();
        Box::pin(async move {
            match addr {
                ServerAddr::Tcp { host, port } => {
                    Ok(Box::new(connect_tcp(host, port).await?) as BoxIo)
                }
                #[cfg(unix)]
                ServerAddr::Unix(path) => {
                    let stream = Async::<std::os::unix::net::UnixStream>::connect(path).await?;
                    Ok(Box::new(stream) as BoxIo)
                }
                #[cfg(not(unix))]
                ServerAddr::Unix(_) => Err(io::ErrorKind::Unsupported.into()),
            }
        })
    }
}

/// Tries each address `host` resolves to, in order.
async fn connect_tcp(host: String, port: u16) -> io::Result<Async<TcpStream>> {
    // Name resolution blocks; run it off the executor threads.
    let resolve = move || {
        (host.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
    };
    let addrs: Vec<_> = async_global_executor::spawn_blocking(resolve).await?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match Async::<TcpStream>::connect(a).await {
            Ok(stream) => {
                stream.get_ref().set_nodelay(true)?;
                gearman_async::keep_alive(stream.get_ref());
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A client builder on async-io (async-std or smol).
pub fn client() -> ClientBuilder<AsyncIoRuntime> {
    ClientBuilder::new(AsyncIoRuntime, AsyncIoConnector)
}

/// A worker builder on async-io (async-std or smol).
pub fn worker() -> WorkerBuilder<AsyncIoRuntime> {
    WorkerBuilder::new(AsyncIoRuntime, AsyncIoConnector)
}
