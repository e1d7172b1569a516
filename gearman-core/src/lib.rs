//! # gearman-core
//!
//! The Gearman protocol without I/O: the packet codec, the admin text protocol, and the
//! client, worker and server connection state machines. Nothing here reads a clock, a
//! socket or a thread; adapters feed bytes and the current time in and take packets,
//! events and the next timer out.
//!
//! A client, a worker and the server, wired together in memory: the bytes each machine
//! wants to send are handed to its peer by hand, which is all an adapter's loop does with
//! a socket in between.
//!
//! ```
//! use gearman_core::client::{ClientConfig, ClientConnection, ClientEvent, Job};
//! use gearman_core::machine::Machine;
//! use gearman_core::server::{PeerInfo, Server, ServerConfig};
//! use gearman_core::worker::{WorkerConfig, WorkerConnection, WorkerEvent};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut server = Server::new(ServerConfig::new(now, 1_700_000_000), now);
//! let peer = |fd| PeerInfo { fd, ip: "127.0.0.1".into() };
//! let mut client = ClientConnection::new(ClientConfig::default());
//! let mut worker = WorkerConnection::new(WorkerConfig::default());
//! let (client_id, worker_id) = (server.accept(peer(1), now), server.accept(peer(2), now));
//!
//! worker.can_do("reverse".into(), None)?;
//! let call = client.start(Job::new("reverse", "hello").call(false))?;
//!
//! let mut result = None;
//! let mut out = Vec::new();
//! for _round in 0..8 {
//!     // Client and worker to the server.
//!     while client.poll_transmit(&mut out) > 0 {}
//!     server.handle_input(client_id, &out, now);
//!     out.clear();
//!     while worker.poll_transmit(&mut out) > 0 {}
//!     server.handle_input(worker_id, &out, now);
//!     // The server to whoever it has something for.
//!     while let Some(conn) = server.poll_writable() {
//!         out.clear();
//!         while server.poll_transmit(conn, &mut out) > 0 {}
//!         match conn {
//!             c if c == client_id => client.handle_input(&out, now)?,
//!             _ => worker.handle_input(&out, now)?,
//!         }
//!     }
//!     out.clear();
//!     // What each side reports: the worker runs its job, the client gets the result.
//!     while let Some(event) = worker.poll_event() {
//!         if let WorkerEvent::JobAssigned(job) = event {
//!             let reversed: Vec<u8> = job.data.iter().rev().copied().collect();
//!             worker.work_complete(&job.handle, reversed.into())?;
//!         }
//!     }
//!     while let Some(event) = client.poll_event() {
//!         if let ClientEvent::Complete { req, data, .. } = event {
//!             assert_eq!(req, call);
//!             result = Some(data);
//!         }
//!     }
//! }
//! assert_eq!(result.as_deref(), Some(&b"olleh"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every machine follows one contract: after any call that takes `&mut self`, drain
//! `poll_transmit` and `poll_event` until they return nothing, then wait for the earliest
//! of `poll_timeout`, readable input, or an application command.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod acl;
pub mod addr;
pub mod admin_reply;
pub mod backoff;
pub mod client;
pub mod cron;
pub mod error;
#[cfg(feature = "__fuzz")]
pub mod fuzzing;
pub mod limits;
pub mod machine;
pub mod proto;
pub mod server;
pub mod worker;

pub use addr::ServerAddr;
pub use backoff::Backoff;
pub use error::{ConnError, DecodeError, PacketError, ProtocolError, UsageError, WorkloadError};
pub use limits::Limits;
