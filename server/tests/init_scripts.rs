//! gearmand-rs as init scripts start and stop it: OMD's and mod_gearman's command lines
//! with `--daemon` (detached, pid file, log file), stopped by the admin `shutdown
//! graceful` with a running job finished; `shutdown` stopping at once; errors of a
//! daemonized start on the terminal; `--config-file`; `-u`; `GEARMAND_PORT`.

mod common;

use common::BINARY;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitMode, WorkPayload};
use gearman_tests::{free_port, run, Conn};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// A throwaway directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "gearmand-rs-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Kills a daemon left running by a failed test.
struct Daemon(u32);

impl Drop for Daemon {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a daemonizing command line: it must return 0 at once with the server listening,
/// its pid (another process) in the pid file. Returns the daemon's pid.
fn start_daemon(args: &[&str], pid_file: &Path, port: u16) -> Daemon {
    let out = run(BINARY, args, b"", LIMIT);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Written before the parent returned: the daemon was already listening.
    let pid: u32 = std::fs::read_to_string(pid_file)
        .expect("pid file written before the parent returned")
        .trim()
        .parse()
        .unwrap();
    let daemon = Daemon(pid);
    assert!(alive(pid), "daemon {pid} is not running");
    let mut admin = Conn::new(port);
    assert_eq!(admin.admin("getpid\n"), format!("OK {pid}\n"));
    // Detached: its own session, not a child of the test.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "not a session leader: {stat}");
    daemon
}

/// A worker holding a job, a client waiting for it, `shutdown graceful`: no new
/// connections, the job's result still reaches the client, then the daemon exits and
/// removes its pid file.
fn graceful_shutdown_finishes_the_running_job(port: u16, daemon: &Daemon, pid_file: &Path) {
    let mut worker = Conn::new(port);
    worker.send(Request::CanDo {
        function: "check".into(),
    });
    let mut client = Conn::new(port);
    let handle = client.submit("check", SubmitMode::Foreground(Priority::Normal));
    worker.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(worker.recv(), Response::JobAssign(_)));
    let mut admin = Conn::new(port);
    assert_eq!(admin.admin("shutdown graceful\n"), "OK\r\n");
    wait_until("refusing connections", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(daemon.0), "exited with a job running");
    worker.send(Request::WorkComplete(WorkPayload {
        handle: handle.clone(),
        data: "OK - fine".into(),
    }));
    assert_eq!(
        client.recv(),
        Response::WorkComplete(WorkPayload {
            handle,
            data: "OK - fine".into()
        })
    );
    wait_until("daemon exit", || !alive(daemon.0));
    assert!(!pid_file.exists(), "pid file left behind");
}

#[test]
fn omd_init_script_line_daemonizes_and_stops_on_shutdown_graceful() {
    let dir = TempDir::new("omd");
    let (pid_file, log_file) = (dir.path("gearmand.pid"), dir.path("gearmand.log"));
    let port = free_port().to_string();
    let args = [
        "--daemon",
        "--worker-wakeup=10",
        "--port",
        &port,
        "--listen",
        "127.0.0.1",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--log-file",
        log_file.to_str().unwrap(),
        "--verbose=ERROR",
    ];
    let port: u16 = port.parse().unwrap();
    let daemon = start_daemon(&args, &pid_file, port);
    assert!(log_file.exists(), "log file not created");
    graceful_shutdown_finishes_the_running_job(port, &daemon, &pid_file);
}

#[test]
fn mod_gearman_line_daemonized_warns_about_zero_retries() {
    let dir = TempDir::new("modg");
    let (pid_file, log_file) = (dir.path("g.pid"), dir.path("g.log"));
    let port = free_port().to_string();
    let args = [
        "--threads=10",
        "--job-retries=0",
        "-d",
        "-p",
        &port,
        "-L",
        "127.0.0.1",
        "-P",
        pid_file.to_str().unwrap(),
        "-l",
        log_file.to_str().unwrap(),
        "--verbose=WARNING",
    ];
    let out = run(BINARY, &args, b"", LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--job-retries 0") && stderr.contains("-j -1"),
        "{stderr:?}"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let daemon = Daemon(pid);
    let port: u16 = port.parse().unwrap();
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("gearmand 1.1.20 read 0 as unlimited"), "{log}");
    graceful_shutdown_finishes_the_running_job(port, &daemon, &pid_file);
}

#[test]
fn plain_shutdown_stops_at_once_even_with_a_job_running() {
    let dir = TempDir::new("stop");
    let pid_file = dir.path("g.pid");
    let port = free_port();
    let args = [
        "-d",
        "-L",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-P",
        pid_file.to_str().unwrap(),
        "-l",
        "none",
    ];
    let daemon = start_daemon(&args, &pid_file, port);
    let mut worker = Conn::new(port);
    worker.send(Request::CanDo {
        function: "f".into(),
    });
    let mut client = Conn::new(port);
    client.submit("f", SubmitMode::Foreground(Priority::Normal));
    worker.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(worker.recv(), Response::JobAssign(_)));
    assert_eq!(Conn::new(port).admin("SHUTDOWN\r\n"), "OK\r\n");
    wait_until("daemon exit", || !alive(daemon.0));
    assert!(!pid_file.exists());
}

#[test]
fn daemonized_start_errors_reach_the_terminal() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(BINARY, &["-d", "-L", "127.0.0.1", "-p", &port], b"", LIMIT);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on 127.0.0.1"), "{stderr:?}");
    // After the fork: the store cannot be opened in the daemon; the parent prints why.
    let port = free_port().to_string();
    let args = [
        "-d",
        "-L",
        "127.0.0.1",
        "-p",
        &port,
        "-q",
        "libsqlite3",
        "--libsqlite3-db",
        "/nonexistent-dir/q.db",
    ];
    let out = run(BINARY, &args, b"", LIMIT);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("/nonexistent-dir/q.db"), "{stderr:?}");
    // -u of an unknown user fails after the fork too.
    let port = free_port().to_string();
    let args = ["-d", "-L", "127.0.0.1", "-p", &port, "-u", "no-such-user-x"];
    let out = run(BINARY, &args, b"", LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-user-x"));
}

#[test]
fn config_file_flags_apply_and_the_command_line_wins() {
    let dir = TempDir::new("conf");
    let pid_file = dir.path("g.pid");
    let conf = dir.path("gearmand.conf");
    let port = free_port();
    std::fs::write(
        &conf,
        format!(
            "--listen 127.0.0.1\n--port {port}\r\n  --verbose=DEBUG   --log-file none\n\
             --job-handle-prefix FROMFILE\n-P {}\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let conf_arg = format!("--config-file={}", conf.display());
    let args = ["-d", &conf_arg, "--verbose", "INFO"];
    let daemon = start_daemon(&args, &pid_file, port);
    let mut admin = Conn::new(port);
    assert_eq!(admin.admin("verbose\n"), "OK INFO\n", "command line wins");
    let handle = Conn::new(port).submit("f", SubmitMode::Background(Priority::Low));
    assert!(handle.starts_with(b"FROMFILE:"), "{handle:?}");
    assert_eq!(admin.admin("shutdown\n"), "OK\r\n");
    wait_until("daemon exit", || !alive(daemon.0));
    // A named file that is missing is an error.
    let out = run(
        BINARY,
        &["--config-file", "/nonexistent/g.conf"],
        b"",
        LIMIT,
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/g.conf"));
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn user_flag_drops_root_after_binding() {
    let dir = TempDir::new("user");
    // As /run/gearmand would be set up for the user: it may remove its pid file there.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let pid_file = dir.path("g.pid");
    let port = free_port();
    let args = [
        "-d",
        "-u",
        "nobody",
        "-L",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-P",
        pid_file.to_str().unwrap(),
        "-l",
        "none",
    ];
    if uid_of(std::process::id()) != 0 {
        // Not root: gearmand's answer, refused with the reason.
        let out = run(BINARY, &args, b"", LIMIT);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("must be root"));
        return;
    }
    let daemon = start_daemon(&args, &pid_file, port);
    let nobody = run("id", &["-u", "nobody"], b"", LIMIT);
    let nobody: u32 = String::from_utf8_lossy(&nobody.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_ne!(nobody, 0);
    assert_eq!(uid_of(daemon.0), nobody, "still root");
    assert_eq!(Conn::new(port).admin("shutdown\n"), "OK\r\n");
    wait_until("daemon exit", || !alive(daemon.0));
    assert!(!pid_file.exists(), "the user could not remove its pid file");
}

#[test]
fn gearmand_port_variable_is_the_default_port() {
    let port = free_port();
    let mut child = Command::new(BINARY)
        .args(["-L", "127.0.0.1", "-l", "none"])
        .env("GEARMAND_PORT", port.to_string())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..250 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut c = Conn::from_stream(s);
            up = c.admin("getpid\n") == format!("OK {}\n", child.id());
            if up {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "not listening on $GEARMAND_PORT {port}");
}

#[test]
fn shutdown_from_a_non_loopback_address_is_refused() {
    // The machine's own non-loopback address, if it has one, reaches the server as a
    // remote peer.
    let Some(ip) = non_loopback_ipv4() else {
        panic!("no non-loopback IPv4 address on this machine to test from");
    };
    let server = common::Server::start(&["-L", &ip]);
    let stream = TcpStream::connect((ip.as_str(), server.port)).unwrap();
    let mut remote = Conn::from_stream(stream);
    assert!(remote
        .admin("shutdown\n")
        .starts_with("ERR PERMISSION_DENIED"));
    assert!(Conn::new(server.port).admin("status\n").ends_with(".\n"));
}

fn non_loopback_ipv4() -> Option<String> {
    let out = run("hostname", &["-I"], b"", LIMIT);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| !a.is_loopback())
        })
        .map(str::to_string)
}
