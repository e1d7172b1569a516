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
    let dir = gearman_tests::temp_dir("files");
    let pid = dir.path().join("pid");
    let log = dir.path().join("log");
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
}

/// logrotate (Debian's gearman-job-server rule) moves the log away and sends SIGHUP: the
/// server must reopen its `--log-file` by name, as gearmand does, or it keeps writing into
/// the rotated (then compressed and deleted) file.
#[test]
fn sighup_reopens_the_log_file_after_logrotate_moved_it() {
    let dir = gearman_tests::temp_dir("logrotate");
    let log = dir.path().join("log");
    let rotated = dir.path().join("log.1");
    let mut server = Server::start(&["-l", log.to_str().unwrap(), "--verbose", "INFO"]);
    std::fs::rename(&log, &rotated).unwrap();
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + LIMIT;
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("reopened")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no new log file after SIGHUP; the rotated one has:\n{}",
            std::fs::read_to_string(&rotated).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.terminate();
    assert!(server.wait_exit(LIMIT).expect("exits").success());
    let fresh = std::fs::read_to_string(&log).unwrap();
    assert!(fresh.contains("stopped"), "{fresh}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("listening on"), "{old}");
    assert!(!old.contains("stopped"), "{old}");
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

/// The long flags gearmand 1.1.20's `--help` lists, with the value each takes (its
/// default when it shows one, else empty), or `None` for a switch.
fn gearmand_flags() -> Vec<(String, Option<String>)> {
    let help = run("/usr/sbin/gearmand", &["--help"], b"", LIMIT);
    let text =
        String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            // "-b [ --backlog ] arg (=32)   ..." or "--keepalive   ..."
            let long = l.split_whitespace().find(|w| w.starts_with("--"))?;
            let rest = &l[l.find(long)? + long.len()..];
            let rest = rest.trim_start_matches(" ]");
            let takes_arg = rest.trim_start().starts_with("arg");
            let default = rest
                .split_once("(=")
                .and_then(|(_, d)| d.split_once(')'))
                .map(|(d, _)| d.to_string());
            Some((
                long.to_string(),
                takes_arg.then(|| default.unwrap_or_default()),
            ))
        })
        .collect()
}

/// Every flag gearmand 1.1.20 has is either accepted (the server starts and serves) or
/// refused with a one-line message saying why: none is unknown to gearmand-rs.
#[test]
fn every_gearmand_flag_is_accepted_or_refused_with_a_reason() {
    let scratch = gearman_tests::temp_dir("flags");
    let in_scratch = |name: &str| scratch.path().join(name).display().to_string();
    let flags = gearmand_flags();
    assert!(flags.len() >= 40, "gearmand's --help gave {flags:?}");
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for (flag, value) in flags {
        // Covered elsewhere (help, version, daemon, config file) or set below.
        if [
            "--help",
            "--version",
            "--daemon",
            "--config-file",
            "--port",
            "--listen",
            "--log-file",
        ]
        .contains(&flag.as_str())
        {
            continue;
        }
        let http_port = gearman_tests::free_port().to_string();
        let value = match flag.as_str() {
            "--pid-file" => Some(in_scratch("pid")),
            "--libsqlite3-db" => Some(in_scratch("q.db")),
            "--http-port" => Some(http_port.clone()),
            "--file-descriptors" => Some("1024".into()),
            "--job-handle-prefix" => Some("H:flags".into()),
            "--user" => Some("nobody".into()),
            "--libpq-conninfo" => Some("host=/nonexistent".into()),
            "--libmemcached-servers" | "--redis-server" => Some("127.0.0.1".into()),
            "--redis-port" => Some("6379".into()),
            "--protocol" => Some("http".into()),
            "--ssl-ca-file" | "--ssl-certificate" | "--ssl-key" => Some("/nonexistent.pem".into()),
            _ => value.map(|v| if v.is_empty() { "x".into() } else { v }),
        };
        let port = gearman_tests::free_port();
        let mut args = vec![
            "-L".to_string(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "--log-file".into(),
            "none".into(),
            flag.clone(),
        ];
        args.extend(value.clone());
        if flag == "--protocol" {
            // -r http alone listens on 8080, as gearmand; keep clear of the machine's.
            args.extend(["--http-port".into(), http_port]);
        }
        let mut child = std::process::Command::new(BINARY)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + LIMIT;
        let verdict = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
                    .unwrap();
                assert!(
                    status.code().is_some_and(|c| c != 0),
                    "{args:?}: {status}: {stderr}"
                );
                assert_one_line(&stderr, "");
                break format!("{flag}: {}", stderr.trim());
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                let reply = gearman_tests::Conn::from_stream(stream).admin("getpid\n");
                assert_eq!(reply, format!("OK {}\n", child.id()), "{args:?}");
                let _ = child.kill();
                let _ = child.wait();
                accepted.push(flag.clone());
                break String::new();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{args:?}: neither serving nor refused"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if !verdict.is_empty() {
            refused.push(verdict);
        }
    }
    // Only --ssl without a certificate is refused (it names the missing file).
    assert_eq!(refused.len(), 1, "refused: {refused:#?}");
    assert!(refused[0].starts_with("--ssl: "), "{refused:?}");
    assert!(refused[0].contains("certificate"), "{refused:?}");
    assert!(accepted.len() >= 40, "accepted: {accepted:?}");
}

#[test]
fn a_shutdown_timeout_past_the_clocks_range_stops_cleanly() {
    let mut server = Server::start(&["--shutdown-timeout", "18446744073709551615"]);
    server.terminate();
    let status = server.wait_exit(LIMIT).expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn a_configuration_files_password_does_not_reach_the_error_line() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let conf = dir.join(format!("conninfo-{}.conf", std::process::id()));
    // A conninfo with spaces splits into tokens, as in gearmand: clap refuses the second.
    std::fs::write(
        &conf,
        "-q postgres --libpq-conninfo host=db password=hunter2 user=app\n",
    )
    .unwrap();
    let (code, stderr) = refused(&["--config-file", conf.to_str().unwrap()]);
    let _ = std::fs::remove_file(&conf);
    assert_eq!(code, 2, "{stderr}");
    assert_one_line(&stderr, "password=***");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// A gearmand configuration file with comment lines starts as it does with gearmand, which
/// ignores their words; before, `#` was an unexpected argument and the server refused to
/// start.
#[test]
fn configuration_file_comment_lines_are_ignored() {
    let dir = gearman_tests::temp_dir("conf-comments");
    let conf = dir.path().join("gearmand.conf");
    std::fs::write(
        &conf,
        "# gearmand settings\n--verbose INFO\n  # the job retries: 3\r\n--job-retries 3\n",
    )
    .unwrap();
    let server = Server::start(&["--config-file", conf.to_str().unwrap()]);
    assert_eq!(server.conn().admin("verbose\n"), "OK INFO\n");
}
