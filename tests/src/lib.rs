//! Shared helpers for the cross-crate and interop tests: start a job server (our
//! `gearmand-rs` or the C `gearmand`) on a free 127.0.0.1 port, talk raw protocol to it, and
//! run real Gearman peers (CLIs, PHP, Perl, Python) with time limits.
//!
//! Every wait here is bounded, and a missing peer program or server binary panics: a test
//! that cannot run its peer fails instead of passing silently.
//!
//! ```no_run
//! use gearman_tests::{ServerProcess, Conn};
//! use gearman_core::proto::{Request, Response};
//! let server = ServerProcess::gearmand(&[]);          // /usr/sbin/gearmand on a free port
//! let mut conn = Conn::new(server.port);
//! conn.send(Request::Echo { data: "hi".into() });
//! assert_eq!(conn.recv(), Response::EchoRes { data: "hi".into() });
//! ```

pub mod certs;
mod databases;
pub mod hostile;
pub mod interop;
pub mod options;
mod peers;
mod process;
pub mod tls;
mod wire;

pub use databases::{Postgres, Redis};
pub use peers::{run, stdout, wait_for_workers, Peer};
pub use process::{admin_pid, free_port, gearmand_rs_binary, ServerProcess, GEARMAND_C};
/// What [`temp_dir`] returns, for tests that keep one in a struct.
pub use tempfile::TempDir;
pub use wire::{run_job, Conn, WireStream};

/// A fresh throwaway directory under the system temp dir, named `gearmand-rs-LABEL-XXXXXX`
/// so a leftover is recognisable, removed with its contents when the value is dropped: at
/// the end of the test, and also when it panics. Keep it alive for as long as a server or
/// peer uses the directory (declare it before them: locals are dropped in reverse order, so
/// the processes are killed first).
pub fn temp_dir(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("gearmand-rs-{label}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("create a temp dir for {label}: {e}"))
}
