//! Starts a job server for a test: C gearmand 1.1.20 or our gearmand-rs. Each test picks
//! one with [`with_server`] (the suite runs every scenario against both); without it,
//! `GEARMAN_TEST_SERVER=rs` picks gearmand-rs. gearmand-rs is the binary this crate builds
//! from the tree, or `GEARMANDRS_BIN` if set.

use std::cell::Cell;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    child: Child,
    pub port: u16,
    pub kind: ServerKind,
    _dir: PathBuf,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

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
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> TestServer {
        let kind = kind();
        let dir = std::env::temp_dir().join(format!("gearman-test-{}-{port}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let child = Command::new(binary(kind))
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg("--log-file=none")
            .arg("--threads=1")
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the job server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TestServer {
            child,
            port,
            kind,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
