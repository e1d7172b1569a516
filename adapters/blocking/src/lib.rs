//! Blocking Gearman client and worker on `std::net`: no executor, no channels, one
//! connection driven by str0m's loop (drain output and events; read with a timeout that
//! ends at the machine's next deadline; repeat). Protocol logic lives in `gearman-core`.
//!
//! ```no_run
//! let mut client = gearman_blocking::Client::new(["127.0.0.1:4730"]);
//! let reversed = client.run(gearman_blocking::Job::new("reverse", "hello"))?;
//! # Ok::<(), gearman_blocking::Error>(())
//! ```

mod client;
mod io;
mod worker;

pub use client::{Client, Job};
pub use gearman_core::client::ClientEvent;
pub use gearman_core::proto::{GrabMode, Priority, StatusRes};
pub use io::Error;
pub use worker::{JobContext, WorkError, Worker};
