//! gearmand-rs for this crate's tests: the shared helpers of `gearman-tests`, with
//! [`Server::start`] running the binary cargo built for these tests.
#![allow(dead_code)]

#[allow(unused_imports)] // each test file uses a different subset
pub use gearman_tests::{run, stdout, wait_for_workers, Conn, Peer, ServerProcess};

pub mod durable;
pub mod http;
use std::ops::{Deref, DerefMut};
use std::path::Path;

/// gearmand-rs on a free 127.0.0.1 port, killed on drop.
pub struct Server(pub ServerProcess);

impl Server {
    /// Starts `gearmand-rs -L 127.0.0.1 -p PORT --log-file none EXTRA...` and waits for it
    /// to listen.
    pub fn start(extra: &[&str]) -> Server {
        Server(ServerProcess::start(Path::new(BINARY), extra))
    }
}

/// The binary under test, kept fresh by cargo.
pub const BINARY: &str = env!("CARGO_BIN_EXE_gearmand-rs");

impl Deref for Server {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}
