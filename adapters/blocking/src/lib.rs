//! Blocking Gearman client and worker on std's TCP and Unix sockets (`host:port`,
//! `[v6]:port` or `unix:/path`), or TLS over either with the `tls` feature (below): no
//! executor, no channels. The API mirrors the async adapters' (gearman-tokio, gearman-async-std) minus
//! `async`: the same builders, [`Error`], [`JobEvent`], [`Task`] batches and
//! [`WorkerHandle`]. Each connection is driven by str0m's loop (drain output and events; read with a timeout that
//! ends at the machine's next deadline; repeat). Protocol logic, server choice, failover,
//! waiter dispatch and map/reduce bookkeeping live in `gearman-core`.
//!
//! A client (see also `examples/client.rs`):
//!
//! ```no_run
//! use gearman_blocking::Job;
//! let mut client = gearman_blocking::client()
//!     .server("127.0.0.1:4730")
//!     .server("unix:/run/gearmand.sock")
//!     .exceptions(true)
//!     .build(); // or Client::new(["127.0.0.1:4730"])
//! let reversed = client.run(Job::new("reverse", "hello"))?;
//! // Many jobs at once, pipelined on one connection per server.
//! let jobs = vec![Job::new("reverse", "a"), Job::new("reverse", "b")];
//! for result in client.run_tasks(jobs, |i, event| println!("job {i}: {event:?}")) {
//!     println!("{:?}", result?);
//! }
//! // A batch of foreground, background and status tasks (PECL's addTask*/runTasks).
//! use gearman_blocking::{Task, TaskOutput};
//! let tasks = vec![Task::Run(Job::new("reverse", "c")), Task::Background(Job::new("log", "x"))];
//! let outputs: Vec<Result<TaskOutput, _>> = client.run_batch(tasks, |_, _| {});
//! // Fail at once on a dead port, with each server's io error.
//! client.connect()?;
//! # Ok::<(), gearman_blocking::Error>(())
//! ```
//!
//! A worker (see also `examples/worker.rs`):
//!
//! ```no_run
//! let worker = gearman_blocking::worker()
//!     .server("127.0.0.1:4730")
//!     .concurrency(4) // threads (and connections) per server
//!     .function("reverse", |job| {
//!         job.status(1, 1);
//!         Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
//!     })
//!     .build();
//! let handle = worker.handle(); // shutdown(), unregister(name), unregister_all()
//! std::thread::spawn(move || worker.run());
//! handle.shutdown(); // running jobs finish first
//! ```
//!
//! ## TLS (feature `tls`)
//!
//! `.tls(settings)` on the client, worker and admin builders connects through
//! `TlsConnector` (rustls' `StreamOwned`, read timeouts kept). The settings are one
//! `ClientTls`, shared by every adapter: a CA file or the system roots, an optional
//! client certificate, and the server's name checked against its certificate (the host
//! connected to, unless set).
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gearman_blocking::{ClientTls, Job};
//! let tls = ClientTls::builder()
//!     .ca_file("/etc/gearman/ca.pem")
//!     .client_certificate("/etc/gearman/client.pem", "/etc/gearman/client.key")
//!     .build()?; // or ClientTls::from_env()? (gearmand's variables)
//! let mut client = gearman_blocking::client()
//!     .server("jobs.example.com:4730")
//!     .tls(tls.clone())
//!     .build();
//! let reversed = client.run(Job::new("reverse", "hello"))?;
//! let worker = gearman_blocking::worker()
//!     .server("jobs.example.com:4730")
//!     .tls(tls.clone())
//!     .function("reverse", |job| Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into()))
//!     .build();
//! let admin = gearman_blocking::admin::AdminClient::new("jobs.example.com:4730").tls(tls);
//! # let _ = (reversed, worker, admin);
//! # Ok(()) }
//! ```

pub mod admin;
mod client;
mod worker;

pub use client::Client;
/// Configures a [`Client`] (the same methods as the async adapters' `ClientBuilder`).
pub type ClientBuilder = gearman_async::blocking::ClientBuilder<Client>;
/// Configures a [`Worker`] (the same methods as the async adapters' `WorkerBuilder`).
pub type WorkerBuilder = Worker;

/// A client builder.
pub fn client() -> ClientBuilder {
    ClientBuilder::default()
}

/// A worker builder.
pub fn worker() -> WorkerBuilder {
    Worker::new(Vec::<String>::new())
}
pub use gearman_async::blocking::{Connector, StdConnector, Stream, CONNECT_TIMEOUT};
pub use gearman_async::blocking::{Resolve, ResolvingConnector};
pub use gearman_async::CONNECT_CHECK_TIMEOUT;
#[cfg(feature = "tls")]
pub use gearman_async::{blocking::TlsConnector, ClientTls, ClientTlsBuilder, TlsError};
pub use gearman_async::{Error, JobEvent, Task, TaskOutput, Unreachable};
pub use gearman_async::{ShutdownHandle, WorkerHandle};
pub use gearman_core::addr::{AddrError, ServerAddr};
pub use gearman_core::backoff::Backoff;
pub use gearman_core::client::{ClientConfig, ClientEvent, Job, Schedule, Selection};
pub use gearman_core::proto::{GrabMode, Priority, StatusRes, StatusResUnique};
pub use gearman_core::worker::{AssignedJob, Report, WorkError, WorkResult, WorkerConfig};
pub use gearman_core::{ConnError, UsageError, WorkloadError};
pub use worker::{JobContext, Worker};
