//! The `gearmand-rs` job server: the core's server machine plus listeners, configuration
//! and logging, on tokio.
//!
//! One task owns the [`gearman_core::server::Server`] (no locks around job state); each
//! connection has a reader task and a writer task that only move bytes. Everything runs on
//! one thread (tokio's current-thread runtime): every packet must reach the single owner
//! anyway, and measured, cross-thread hand-offs cost more than they parallelise.

pub mod cli;
mod connection;
mod event_loop;
mod listen;
mod logging;
pub mod store;

use cli::Args;
use std::fmt;

/// Why the server could not start or stopped abnormally.
#[derive(Debug)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(args: Args) -> Result<(), StartError> {
    let settings = args.validate()?;
    let _log_guard = logging::init(&settings)?;
    // One thread runs the core and every socket: measured against gearmand (compare.sh),
    // a multi-threaded runtime lost 30-70% to cross-thread wake-ups, since every packet
    // has to reach the single owner of the job state anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(event_loop::serve(settings))
}
