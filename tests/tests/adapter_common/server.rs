//! Starts a job server for a test: C gearmand 1.1.20 or our gearmand-rs. Each test picks
//! one with [`with_server`] (the suite runs every scenario against both); without it,
//! `GEARMAN_TEST_SERVER=rs` picks gearmand-rs. gearmand-rs is the binary this crate builds
//! from the tree, or `GEARMANDRS_BIN` if set.

pub use gearman_tests::free_port;
use gearman_tests::ServerProcess;
use std::cell::Cell;
use std::path::PathBuf;

/// Which job server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// /usr/sbin/gearmand (C gearmand 1.1.20).
    Gearmand,
    /// gearmand-rs.
    GearmandRs,
}

thread_local! {
    static KIND: Cell<Option<ServerKind>> = const { Cell::new(None) };
}

/// Runs `test` with every server it starts (on this thread) being `kind`.
pub fn with_server(kind: ServerKind, test: impl FnOnce()) {
    KIND.with(|k| k.set(Some(kind)));
    test();
}

fn kind() -> ServerKind {
    KIND.with(Cell::get).unwrap_or_else(|| {
        if std::env::var("GEARMAN_TEST_SERVER").as_deref() == Ok("rs") {
            ServerKind::GearmandRs
        } else {
            ServerKind::Gearmand
        }
    })
}

/// A server process listening on 127.0.0.1, killed on drop.
pub struct TestServer {
    process: ServerProcess,
    pub port: u16,
    pub kind: ServerKind,
}

/// One I/O thread: the suite runs many servers at once on a 2-core machine.
const EXTRA_FLAGS: &[&str] = &["--threads=1"];

fn binary(kind: ServerKind) -> PathBuf {
    match kind {
        ServerKind::GearmandRs => std::env::var_os("GEARMANDRS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gearmand-rs-under-test"))),
        ServerKind::Gearmand => {
            let path = PathBuf::from("/usr/sbin/gearmand");
            assert!(
                path.exists(),
                "/usr/sbin/gearmand (C gearmand 1.1.20) is required"
            );
            path
        }
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// With more flags after the suite's own.
    pub fn start_with(extra: &[&str]) -> TestServer {
        let kind = kind();
        let flags: Vec<&str> = EXTRA_FLAGS.iter().chain(extra).copied().collect();
        Self::new(ServerProcess::start(&binary(kind), &flags), kind)
    }

    /// Which server this test runs against.
    pub fn current_kind() -> ServerKind {
        kind()
    }

    /// On a given port (a restart where the previous server was).
    pub fn start_on(port: u16) -> TestServer {
        let kind = kind();
        Self::new(
            ServerProcess::start_on(&binary(kind), port, EXTRA_FLAGS),
            kind,
        )
    }

    fn new(process: ServerProcess, kind: ServerKind) -> TestServer {
        TestServer {
            port: process.port,
            process,
            kind,
        }
    }

    pub fn addr(&self) -> String {
        self.process.addr()
    }
}
