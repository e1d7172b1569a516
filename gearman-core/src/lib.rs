//! # gearman-core
//!
//! The Gearman protocol without I/O: the packet codec, the admin text protocol, and the
//! client, worker and server connection state machines. Nothing here reads a clock, a
//! socket or a thread; adapters feed bytes and the current time in and take packets,
//! events and the next timer out.
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
