//! Gearman client and worker on tokio: a [`Runtime`] and a [`Connector`] (TCP and Unix
//! sockets) for the shared async layer ([`gearman_async`]), and its re-exports. Protocol
//! logic lives in `gearman-core`. Servers are `host:port`, `[v6]:port` or `unix:/path`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gearman_tokio::Error> {
//! let client = gearman_tokio::client().server("127.0.0.1:4730").build();
//! client.connect().await?; // optional: fail now on a dead port, with each io error
//! let reversed = client.run(gearman_tokio::Job::new("reverse", "hello")).await?;
//! // A batch of foreground, background and status tasks (PECL's addTask*/runTasks).
//! use gearman_tokio::{Job, Task};
//! let tasks = vec![Task::Run(Job::new("reverse", "a")), Task::Background(Job::new("log", "x"))];
//! let outputs = client.run_batch(tasks, |i, event| println!("task {i}: {event:?}")).await;
//! # Ok(()) }
//! ```
//!
//! A streamed workload (PECL's `setWorkloadCallback`): `len` bytes copied from a reader
//! onto the wire as they are read, never held whole. The reader is a futures-io one; a
//! tokio reader goes through `tokio_util::compat`:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio_util::compat::TokioAsyncReadCompatExt;
//! let client = gearman_tokio::client().server("127.0.0.1:4730").build();
//! let (len, upload) = (1 << 30, tokio::net::TcpStream::connect("127.0.0.1:9000").await?);
//! let job = gearman_tokio::Job::new("checksum", "");
//! let checksum = client.run_streamed(job, len, upload.compat()).await?;
//! # let _ = checksum; Ok(()) }
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
//! let handle = worker.handle(); // shutdown(), unregister(name), unregister_all()
//! worker.run().await;
//! # }
//! ```
//!
//! ## TLS (feature `tls`)
//!
//! With the `tls` feature, `.tls(settings)` on the client, worker and admin builders
//! connects through `TokioTlsConnector` (tokio-rustls). The settings are one
//! [`ClientTls`], shared by every adapter: a CA file or the system roots, an optional
//! client certificate, and the server's name checked against its certificate (the host
//! connected to, unless set).
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gearman_tokio::{ClientTls, Job};
//! let tls = ClientTls::builder()
//!     .ca_file("/etc/gearman/ca.pem")
//!     .client_certificate("/etc/gearman/client.pem", "/etc/gearman/client.key")
//!     .build()?;
//! let client = gearman_tokio::client().server("jobs.example.com:4730").tls(tls.clone()).build();
//! let worker = gearman_tokio::worker()
//!     .server("jobs.example.com:4730")
//!     .tls(tls)
//!     .function("reverse", |job| async move {
//!         Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
//!     })
//!     .build();
//! # let _ = worker;
//! let reversed = client.run(Job::new("reverse", "hello")).await?;
//! // Or gearmand's variables: GEARMAND_CA_CERTIFICATE, GEARMAN_CLIENT_PEM, GEARMAN_CLIENT_KEY.
//! let from_env = gearman_tokio::client().server("jobs.example.com:4730").tls(ClientTls::from_env()?);
//! # let _ = (reversed, from_env);
//! # Ok(()) }
//! ```

pub use gearman_async::*;

pub mod admin;
#[cfg(feature = "tls")]
mod tls_connector;
#[cfg(feature = "tls")]
pub use tls_connector::TokioTlsConnector;

use std::io;
use std::time::Instant;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// The tokio runtime: timers from `tokio::time`, tasks from `tokio::spawn`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn spawn(&self, future: BoxFuture<()>) {
        tokio::spawn(future);
    }
}

/// TCP (without Nagle: requests are small and latency-bound) and Unix sockets on tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioConnector;

impl Connector for TokioConnector {
    fn connect(&self, addr: &ServerAddr) -> BoxFuture<io::Result<BoxIo>> {
        let addr = addr.clone();
        Box::pin(async move {
            match addr {
                ServerAddr::Tcp { host, port } => {
                    Ok(Box::new(tcp(&host, port).await?.compat()) as BoxIo)
                }
                #[cfg(unix)]
                ServerAddr::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok(Box::new(stream.compat()) as BoxIo)
                }
                #[cfg(not(unix))]
                ServerAddr::Unix(_) => Err(io::ErrorKind::Unsupported.into()),
            }
        })
    }
}

/// A TCP connection without Nagle, with keepalive.
async fn tcp(host: &str, port: u16) -> io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    gearman_async::keep_alive(&stream);
    Ok(stream)
}

/// A client builder on tokio.
pub fn client() -> ClientBuilder<TokioRuntime> {
    ClientBuilder::new(TokioRuntime, TokioConnector)
}

/// A worker builder on tokio.
pub fn worker() -> WorkerBuilder<TokioRuntime> {
    WorkerBuilder::new(TokioRuntime, TokioConnector)
}
