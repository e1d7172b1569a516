//! The `gearmand-rs` job server: the core's server machine plus listeners, configuration
//! and logging, on tokio.
//!
//! One task owns the [`gearman_core::server::Server`] (no locks around job state); each
//! connection has a reader task and a writer task that only move bytes.

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.io_threads)
        .enable_all()
        .build()
        .map_err(|e| StartError(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(event_loop::serve(settings))
}
