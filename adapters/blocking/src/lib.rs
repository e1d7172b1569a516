//! Blocking Gearman client and worker on std's TCP and Unix sockets (`host:port`,
//! `[v6]:port` or `unix:/path`; a caller's own [`Connector`] for TLS): no executor, no
//! channels. Each
//! connection is driven by str0m's loop (drain output and events; read with a timeout that
//! ends at the machine's next deadline; repeat). Protocol logic, server choice, failover,
//! waiter dispatch and map/reduce bookkeeping live in `gearman-core`.
//!
//! A client (see also `examples/client.rs`):
//!
//! ```no_run
//! use gearman_blocking::{Client, Job};
//! let mut client = Client::new(["127.0.0.1:4730", "127.0.0.1:4731"]);
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
//! let worker = gearman_blocking::Worker::new(["127.0.0.1:4730"])
//!     .options(gearman_blocking::WorkerOptions { concurrency: 4, ..Default::default() })
//!     .function("reverse", None, |job| {
//!         job.status(1, 1);
//!         Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
//!     });
//! let handle = worker.handle(); // shutdown(), unregister(name), unregister_all()
//! std::thread::spawn(move || worker.run());
//! handle.shutdown(); // running jobs finish first
//! ```

pub mod admin;
mod client;
mod worker;

pub use client::Client;
pub use gearman_async::blocking::{Connector, StdConnector, Stream};
pub use gearman_async::{Error, JobEvent, Task, TaskOutput, Unreachable};
pub use gearman_async::{ShutdownHandle, WorkerHandle};
pub use gearman_core::addr::{AddrError, ServerAddr};
pub use gearman_core::client::backoff::Backoff;
pub use gearman_core::client::{ClientConfig, ClientEvent, ClientOptions, Job, Selection};
pub use gearman_core::proto::{GrabMode, Priority, StatusRes, StatusResUnique};
pub use gearman_core::worker::{
    AssignedJob, Report, WorkError, WorkResult, WorkerConfig, WorkerOptions,
};
pub use worker::{JobContext, Worker};
