//! `--syslog`: the log reaches the syslog socket `/dev/log` as RFC 3164 datagrams of
//! facility daemon, tagged `gearmand-rs[PID]`, at the event's severity.
//!
//! The test listens on `/dev/log` itself, so it needs root (as CI runs). Where the machine
//! has no `/dev/log`, it binds its own socket there for the test's duration; where a syslog
//! daemon owns it, the server runs in a private mount namespace (`unshare -m`) with the
//! test's socket bind-mounted over `/dev/log`, so the daemon is never disturbed.

mod common;

use common::BINARY;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEV_LOG: &str = "/dev/log";

/// The test's end of the syslog socket, and how the server must be started to reach it.
struct SyslogSink {
    socket: UnixDatagram,
    /// Where the socket file is; removed on drop.
    path: PathBuf,
    /// Bind-mounted over `/dev/log` in the server's own mount namespace.
    mounted: bool,
}

impl SyslogSink {
    fn open() -> SyslogSink {
        let is_root = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        assert!(
            is_root,
            "the syslog test listens on /dev/log and must run as root (CI does)"
        );
        if !Path::new(DEV_LOG).exists() {
            let socket = UnixDatagram::bind(DEV_LOG).expect("bind /dev/log");
            return SyslogSink {
                socket,
                path: DEV_LOG.into(),
                mounted: false,
            };
        }
        let path = std::env::temp_dir().join(format!("gearmand-rs-syslog-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).expect("bind the test's syslog socket");
        SyslogSink {
            socket,
            path,
            mounted: true,
        }
    }

    /// Starts gearmand-rs with `args`, its `/dev/log` being this sink.
    fn spawn_server(&self, args: &[&str]) -> Child {
        let mut command = if self.mounted {
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount --bind "$0" /dev/log && exec "$@""#)
                .arg(&self.path)
                .arg(BINARY);
            c
        } else {
            Command::new(BINARY)
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gearmand-rs")
    }

    /// Datagrams received until one contains `needle` (or `within` passes).
    fn wait_for(&self, needle: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 8192];
        while Instant::now() < deadline {
            self.socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    break;
                }
            }
        }
        seen
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Kills the server if the test fails before it stops.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn syslog_gets_the_warning_and_the_stop_line_as_daemon_facility() {
    let sink = SyslogSink::open();
    let port = gearman_tests::free_port().to_string();
    let mut server = Running(sink.spawn_server(&[
        "-L",
        "127.0.0.1",
        "-p",
        &port,
        "--log-file",
        "none",
        "--syslog",
        "--verbose",
        "INFO",
        "-j",
        "0",
    ]));
    // The -j 0 warning is logged at start: facility daemon (3) and severity warning (4)
    // make priority <28>.
    let lines = sink.wait_for("job-retries", Duration::from_secs(10));
    let warning = lines
        .iter()
        .find(|l| l.contains("job-retries"))
        .unwrap_or_else(|| panic!("no -j 0 warning on syslog; got {lines:?}"));
    assert!(warning.starts_with("<28>"), "{warning}");
    let server_pid = server.0.id();
    // Under unshare, sh execs the server, so the pid is the same.
    assert!(
        warning.contains(&format!("gearmand-rs[{server_pid}]: ")),
        "{warning}"
    );
    // Once it answers, its signal handlers are in place (a SIGTERM before that would
    // kill it outright).
    let deadline = Instant::now() + Duration::from_secs(10);
    while gearman_tests::admin_pid(port.parse().unwrap()) != Some(server.0.id()) {
        assert!(
            Instant::now() < deadline,
            "the server never answered getpid"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM: the server says it stopped, at severity info (<30>), then exits.
    Command::new("kill")
        .args(["-TERM", &server_pid.to_string()])
        .status()
        .unwrap();
    let lines = sink.wait_for("stopped", Duration::from_secs(10));
    let stopped = lines
        .iter()
        .find(|l| l.contains("stopped"))
        .unwrap_or_else(|| panic!("no stop line on syslog; got {lines:?}"));
    assert!(stopped.starts_with("<30>"), "{stopped}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}
