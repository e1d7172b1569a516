//! The `gearmand-rs` job server: the core's server machine plus listeners, configuration
//! and logging, on tokio.
//!
//! One task owns the [`gearman_core::server::Server`] (no locks around job state) and
//! does every connection's reads and writes itself: a socket that turns ready queues its
//! connection for that task through a waker of its own, so there is no task, channel or
//! buffer per connection. Everything runs on one thread (tokio's current-thread runtime):
//! every packet must reach the single owner anyway, and measured, cross-thread hand-offs
//! cost more than they parallelise.
//!
//! [`run`] is the binary's entry point (its own runtime, logging, signals). Inside a Rust
//! program or test, [`Server::builder`] spawns the same server on the caller's tokio
//! runtime on a free port and returns its address and a handle to stop it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), gearman_server::StartError> {
//! let server = gearman_server::Server::builder().spawn()?;
//! println!("gearmand-rs at {}", server.addr().expect("TCP"));
//! server.shutdown().await
//! # }
//! ```

mod acl;
pub mod cli;
pub mod config_file;
mod connection;
mod core_channel;
mod daemon;
mod embedded;
mod event_loop;
mod heap_trim;
mod host;
mod http;
mod job_flags;
mod listeners;
mod log_limit;
mod logging;
mod privileges;
pub mod store;
pub mod tls;
mod transport;

pub use embedded::{Server, ServerBuilder};

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

/// Runs the server until SIGTERM, SIGINT or an admin `shutdown`.
pub fn run(args: Args) -> Result<(), StartError> {
    let check_only = args.check_args;
    let settings = args.validate()?;
    if check_only {
        return Ok(());
    }
    if settings.warn_job_retries_zero && (settings.daemon || settings.log_file != "stderr") {
        // Also on the terminal: the log may not show warnings at the default level.
        eprintln!("gearmand-rs: warning: {}", cli::JOB_RETRIES_ZERO_WARNING);
    }
    if let Some(n) = settings.file_descriptors {
        privileges::set_file_limit(n)?;
    }
    // Certificates and the ACL are read before anything listens (and before -d detaches):
    // a bad file is a one-line start error, never a failure at the first connection.
    let (tls, acl) = tls::prepare(&settings.security)?;
    let listeners = listeners::bind_all(&settings, tls)?;
    let http_listeners = match &settings.http {
        Some(h) => transport::tcp::bind_hosts(&h.listen, h.port, settings.backlog)?,
        None => Vec::new(),
    };
    let mut readiness = if settings.daemon {
        Some(daemon::detach()?)
    } else {
        None
    };
    let result = start(settings, listeners, acl, http_listeners, &mut readiness);
    if let (Err(e), Some(readiness)) = (&result, readiness.as_mut()) {
        if readiness.failed(e) {
            // The waiting parent prints it.
            std::process::exit(1);
        }
        tracing::error!("stopped: {e}");
    }
    result
}

fn start(
    settings: cli::Settings,
    listeners: Vec<listeners::Bound>,
    acl: Option<gearman_core::acl::Acl>,
    http_listeners: Vec<std::net::TcpListener>,
    readiness: &mut Option<daemon::Readiness>,
) -> Result<(), StartError> {
    let _log_guard = logging::init(&settings)?;
    if settings.warn_job_retries_zero {
        tracing::warn!("{}", cli::JOB_RETRIES_ZERO_WARNING);
    }
    // One thread runs the core and every socket: measured against gearmand (compare.sh),
    // a multi-threaded runtime lost 30-70% to cross-thread wake-ups, since every packet
    // has to reach the single owner of the job state anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(event_loop::serve(
        settings,
        listeners,
        acl,
        http_listeners,
        || {
            if let Some(r) = readiness.as_mut() {
                r.ready();
            }
        },
        event_loop::StopOn::Signals,
    ))
}
