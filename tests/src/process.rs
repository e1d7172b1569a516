//! Starting and stopping job server processes on free ports.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The C gearmand the interop tests compare against (Debian's 1.1.20). `/usr/bin/gearmand`
/// is a different (Perl) server.
pub const GEARMAND_C: &str = "/usr/sbin/gearmand";

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// Finds a built `gearmand-rs` for tests outside the server crate (inside it, use
/// `env!("CARGO_BIN_EXE_gearmand-rs")`, which cargo keeps up to date).
///
/// Order: `$GEARMANDRS_BIN`, then `$CARGO_TARGET_DIR` (or the workspace `target/`) `/debug`,
/// then `/release`. `cargo test --workspace` builds the binary before any test runs, because
/// the server crate's own tests need it; `cargo test -p gearman-tests` alone does not, so
/// run `cargo build -p gearman-server` first in that case. Panics when none is found.
pub fn gearmand_rs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GEARMANDRS_BIN") {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or(workspace.join("target"), PathBuf::from);
    ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("gearmand-rs"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no gearmand-rs under {}: run `cargo build -p gearman-server` or set GEARMANDRS_BIN",
                target.display()
            )
        })
}

/// A job server listening on 127.0.0.1:`port`, killed on drop.
pub struct ServerProcess {
    /// The port it listens on.
    pub port: u16,
    /// The process (public so a test can signal or kill it).
    pub child: Child,
}

impl ServerProcess {
    /// Starts `binary -L 127.0.0.1 -p PORT --log-file none EXTRA...` on a free port and waits
    /// (up to 10 s) until it accepts connections. Tests run in parallel, so a port that was
    /// free may be taken by another test's server before ours binds it: then it starts again
    /// on another port.
    pub fn start(binary: &Path, extra: &[&str]) -> ServerProcess {
        Self::start_probing(binary, extra, admin_pid)
    }

    /// Like [`ServerProcess::start`], with `probe(port)` telling the pid of whatever answers
    /// there (for a port that is not plaintext, e.g. TLS-only).
    pub fn start_probing(
        binary: &Path,
        extra: &[&str],
        probe: impl Fn(u16) -> Option<u32>,
    ) -> ServerProcess {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start_on(binary, free_port(), extra, &probe) {
                Ok(server) => return server,
                Err(why) => last = why,
            }
        }
        panic!("{last}");
    }

    /// Like [`ServerProcess::start`] on a given port (panics if it cannot listen there).
    pub fn start_on(binary: &Path, port: u16, extra: &[&str]) -> ServerProcess {
        Self::start_on_probing(binary, port, extra, admin_pid)
    }

    /// Like [`ServerProcess::start_on`], probing with `probe` as
    /// [`ServerProcess::start_probing`] does.
    pub fn start_on_probing(
        binary: &Path,
        port: u16,
        extra: &[&str],
        probe: impl Fn(u16) -> Option<u32>,
    ) -> ServerProcess {
        Self::try_start_on(binary, port, extra, &probe).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Starts the server and waits until it listens on `port`. Something answering on the
    /// port is only ours once its admin `getpid` names our child: otherwise it is another
    /// test's server, and ours will exit with "port in use".
    fn try_start_on(
        binary: &Path,
        port: u16,
        extra: &[&str],
        probe: &dyn Fn(u16) -> Option<u32>,
    ) -> Result<ServerProcess, String> {
        let child = Command::new(binary)
            .args([
                "-L",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--log-file",
                "none",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = ServerProcess { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while probe(port) != Some(server.child.id()) {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "{} exited with {status} before listening on {port}",
                    binary.display()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not listen on {port} within 10 s",
                    binary.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// The C gearmand 1.1.20 on a free port (panics if it is not installed).
    pub fn gearmand(extra: &[&str]) -> ServerProcess {
        let path = Path::new(GEARMAND_C);
        assert!(
            path.exists(),
            "{GEARMAND_C} (C gearmand) is required: run .ci/run to install the peers"
        );
        Self::start(path, extra)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A raw protocol connection to it.
    pub fn conn(&self) -> crate::Conn {
        crate::Conn::new(self.port)
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The pid the server on 127.0.0.1:`port` reports for the admin `getpid`, if one answers.
pub fn admin_pid(port: u16) -> Option<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"getpid\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.trim().strip_prefix("OK ")?.parse().ok()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
