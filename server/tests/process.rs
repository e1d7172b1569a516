//! gearmand-rs as a process: bad flags and a port in use give one clear line and a non-zero
//! exit; --help and --version; -L repeated over IPv4 and IPv6; pid and log files; keepalive
//! applied to accepted sockets; graceful shutdown on SIGTERM with a bounded grace period.

mod common;

use common::{Server, BINARY};
use gearman_core::proto::WorkPayload;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitMode};
use gearman_tests::run;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

/// Runs gearmand-rs with `args` expecting it to refuse to start; returns (exit code, stderr).
fn refused(args: &[&str]) -> (i32, String) {
    let out = run(BINARY, args, b"", LIMIT);
    let code = out.status.code().expect("exited, not killed");
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_one_line(stderr: &str, needle: &str) {
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("gearmand-rs: "), "{stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
}

#[test]
fn bad_flags_give_one_line_and_a_non_zero_exit() {
    let cases: [(&[&str], &str); 6] = [
        (&["--no-such-flag"], "--no-such-flag"),
        (&["-j", "many"], "--job-retries"),
        (&["-j", "-2"], "--job-retries"),
        (&["--verbose", "LOUD"], "LOUD"),
        (&["-q", "mysql"], "mysql"),
        (&["-q", "libsqlite3"], "--libsqlite3-db"),
    ];
    for (args, needle) in cases {
        let (code, stderr) = refused(args);
        assert_ne!(code, 0, "{args:?} was accepted");
        assert_one_line(&stderr, needle);
    }
}

#[test]
fn port_in_use_is_one_clear_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, stderr) = refused(&["-L", "127.0.0.1", "-p", &port]);
    assert_eq!(code, 1);
    assert_one_line(&stderr, &format!("cannot listen on 127.0.0.1:{port}"));
    assert!(stderr.contains("in use"), "{stderr:?}");
}

#[test]
fn help_and_version() {
    let help = run(BINARY, &["--help"], b"", LIMIT);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--port",
        "--listen",
        "--threads",
        "--job-retries",
        "--worker-wakeup",
        "--job-handle-prefix",
        "--keepalive-idle",
        "--pid-file",
        "--log-file",
        "--verbose",
        "--daemon",
        "--user",
        "--syslog",
        "--config-file",
        "--file-descriptors",
        "--http-port",
        "--http-listen",
        "--exceptions",
        "--queue-type",
        "--libsqlite3-db",
        "--libsqlite3-table",
        "--round-robin",
        "--max-packet-size",
        "--version",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
    let version = run(BINARY, &["-V"], b"", LIMIT);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("gearmand-rs {}", env!("CARGO_PKG_VERSION"))
    );
}

fn echo_works(conn: TcpStream) {
    let mut c = gearman_tests::Conn::from_stream(conn);
    c.send(Request::Echo { data: "hi".into() });
    assert_eq!(c.recv(), Response::EchoRes { data: "hi".into() });
}

#[test]
fn listens_on_each_address_given_ipv4_and_ipv6() {
    let server = Server::start(&["-L", "::1"]);
    echo_works(TcpStream::connect(("127.0.0.1", server.port)).unwrap());
    echo_works(TcpStream::connect(("::1", server.port)).unwrap());
}

#[test]
fn pid_file_and_log_file_are_written_and_the_pid_file_removed_on_exit() {
    let dir = std::env::temp_dir().join(format!("gearmand-rs-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid = dir.join("pid");
    let log = dir.join("log");
    let (pid_s, log_s) = (pid.to_str().unwrap(), log.to_str().unwrap());
    // --log-file given after the helper's `--log-file none` wins, as the last value does.
    let mut server = Server::start(&["-P", pid_s, "-l", log_s, "--verbose", "INFO"]);
    let written = std::fs::read_to_string(&pid).unwrap();
    assert_eq!(written.trim(), server.child.id().to_string());
    server.terminate();
    let status = server.wait_exit(LIMIT).expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!pid.exists(), "pid file left behind");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("listening on 127.0.0.1:"), "{logged}");
    assert!(logged.contains("stopped"), "{logged}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn keepalive_flags_reach_accepted_sockets() {
    let server = Server::start(&[
        "--keepalive",
        "--keepalive-idle",
        "77",
        "--keepalive-interval",
        "5",
        "--keepalive-count",
        "3",
    ]);
    let conn = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    echo_works(conn.try_clone().unwrap());
    // ss shows the server side's keepalive timer, counting down from the idle time.
    let filter = format!("( sport = :{} )", server.port);
    let out = run(
        "ss",
        &["-tnoH", "state", "established", &filter],
        b"",
        LIMIT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("timer:(keepalive,1min1"), "{text}");
    drop(conn);
}

#[test]
fn sigterm_stops_accepting_and_lets_running_jobs_report() {
    let mut server = Server::start(&["--shutdown-timeout", "20"]);
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: "slow".into(),
    });
    let mut client = server.conn();
    let handle = client.submit("slow", SubmitMode::Foreground(Priority::Normal));
    worker.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(worker.recv(), Response::JobAssign(_)));
    server.terminate();
    // New connections are refused soon; the server itself keeps running for the job.
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", server.port)).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(refused, "still accepting after SIGTERM");
    assert_eq!(
        server.wait_exit(Duration::from_millis(300)),
        None,
        "exited with a job running"
    );
    worker.send(Request::WorkComplete(WorkPayload {
        handle: handle.clone(),
        data: "done".into(),
    }));
    assert_eq!(
        client.recv(),
        Response::WorkComplete(WorkPayload {
            handle,
            data: "done".into()
        })
    );
    let status = server
        .wait_exit(LIMIT)
        .expect("exits once the job reported");
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_grace_period_is_bounded() {
    let mut server = Server::start(&["--shutdown-timeout", "1"]);
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: "stuck".into(),
    });
    let mut client = server.conn();
    client.submit("stuck", SubmitMode::Foreground(Priority::Normal));
    worker.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(worker.recv(), Response::JobAssign(_)));
    server.terminate();
    // The worker never answers: the server gives up after its grace period.
    let status = server
        .wait_exit(LIMIT)
        .expect("exits after the grace period");
    assert!(status.success(), "{status}");
}
