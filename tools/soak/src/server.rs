//! The gearmand-rs under test: started with a durable SQLite queue, its log (stderr) read
//! line by line and counted, SIGKILLed and restarted on the same port and queue file.

use crate::raw::RawConn;
use crate::stats::Stats;
use crate::sys;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a (re)started server may take to answer `getpid`.
const START_LIMIT: Duration = Duration::from_secs(15);

/// The server process and what is known about it.
pub struct ServerCtl {
    bin: PathBuf,
    db: PathBuf,
    log: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Mutex<Option<Child>>,
    pid: AtomicU32,
    /// Set while the disk is full, so log lines written then are counted apart.
    pub disk_full: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

impl ServerCtl {
    /// A server to be started from `bin` with its queue and log in `dir`.
    pub fn new(
        bin: PathBuf,
        dir: &std::path::Path,
        stats: Arc<Stats>,
    ) -> std::io::Result<ServerCtl> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        Ok(ServerCtl {
            bin,
            db: dir.join("queue.sqlite"),
            log: dir.join("server.log"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: Mutex::new(None),
            pid: AtomicU32::new(0),
            disk_full: Arc::new(AtomicBool::new(false)),
            stats,
        })
    }

    /// The running server's pid (0 before the first start).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Acquire)
    }

    /// Starts the server with the soft file-size limit `fsize` (SIGXFSZ ignored) and waits
    /// until it answers `getpid` with its pid.
    pub fn start(&self, fsize: u64) -> Result<(), String> {
        let port = self.addr.port().to_string();
        let db = self.db.display().to_string();
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-L", "127.0.0.1", "-p", &port, "--log-file", "stderr"])
            .args([
                "--verbose",
                "WARNING",
                "-q",
                "libsqlite3",
                "--libsqlite3-db",
                &db,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at the terminal reaches only the soak, which
            // stops the load, reports, then stops the server.
            .process_group(0);
        // SAFETY: the closure only calls async-signal-safe functions.
        unsafe {
            cmd.pre_exec(move || sys::prepare_server_child(fsize));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let pid = child.id();
        if let Some(stderr) = child.stderr.take() {
            self.read_log(stderr);
        }
        *self.child.lock().unwrap() = Some(child);
        self.pid.store(pid, Ordering::Release);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if self.getpid() == Some(pid) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("gearmand-rs exited with {status} while starting"));
            }
            if Instant::now() >= deadline {
                return Err(format!("gearmand-rs did not answer within {START_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn getpid(&self) -> Option<u32> {
        let mut conn = RawConn::connect(self.addr, Duration::from_secs(1)).ok()?;
        let reply = conn.admin("getpid", Duration::from_secs(2)).ok()?;
        reply.trim().strip_prefix("OK ")?.parse().ok()
    }

    /// An admin command on a fresh connection.
    pub fn admin(&self, line: &str) -> std::io::Result<String> {
        RawConn::connect(self.addr, Duration::from_secs(2))?.admin(line, Duration::from_secs(5))
    }

    fn read_log(&self, stderr: std::process::ChildStderr) {
        let stats = self.stats.clone();
        let disk_full = self.disk_full.clone();
        let path = self.log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                stats.inc("info.server_log_lines");
                if disk_full.load(Ordering::Acquire) {
                    stats.inc("info.server_log_lines_while_disk_full");
                }
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
    }

    /// SIGKILL and reap.
    pub fn kill9(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            sys::kill9(child.id());
            let _ = child.wait();
        }
    }

    /// Whether the server process has exited on its own.
    pub fn exited(&self) -> bool {
        self.child
            .lock()
            .unwrap()
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }
}

impl Drop for ServerCtl {
    fn drop(&mut self) {
        self.kill9();
    }
}
