//! gearmand-rs on Unix domain sockets (`-L unix:PATH`, `--unix-socket PATH`): a job and
//! the admin protocol over the socket, the file's mode, the file gone after SIGTERM, a
//! stale file replaced while a live socket or another file is refused, a server on Unix
//! sockets only, ACL rules by peer uid, and TLS over a Unix socket.
#![cfg(unix)]

mod common;

use common::{Server, BINARY};
use gearman_core::proto::{
    GrabMode, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use gearman_tests::certs::TestPki;
use gearman_tests::tls::{client_tls, Probe, TlsServer};
use gearman_tests::{run_job, Conn, WireStream};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory for socket files, removed on drop (short: a socket path holds at
/// most 107 bytes).
struct SocketDir(PathBuf);

impl SocketDir {
    fn new(label: &str) -> SocketDir {
        let dir = std::env::temp_dir().join(format!("gmrs-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        SocketDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The uid this test runs as (the owner of a file it creates), which is what the
    /// server sees for its Unix socket connections.
    fn my_uid(&self) -> u32 {
        let probe = self.path("uid-probe");
        std::fs::write(&probe, b"").unwrap();
        std::fs::metadata(&probe).unwrap().uid()
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

fn unix_arg(path: &Path) -> String {
    format!("unix:{}", path.display())
}

fn submit_background<S: WireStream>(conn: &mut Conn<S>, function: &'static str) -> Response {
    conn.send(Request::Submit(SubmitJob {
        function: function.into(),
        unique: "".into(),
        mode: SubmitMode::Background(Priority::Normal),
        data: "x".into(),
    }));
    conn.recv()
}

/// An admin command over a plain `UnixStream`, read up to the `.` line (bounded).
fn raw_admin(path: &Path, line: &str) -> String {
    let mut stream = UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(line.as_bytes()).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !out.ends_with(b"\n.\n") && out != b".\n" {
        assert!(Instant::now() < deadline, "no full admin reply: {out:?}");
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).unwrap() {
            0 => break,
            n => out.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8(out).unwrap()
}

/// Runs the binary expecting a start error; returns its stderr (panics if it keeps running).
fn start_error(args: &[&str]) -> String {
    let mut child = Command::new(BINARY)
        .args(args)
        .args(["--log-file", "none"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gearmand-rs {args:?} kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{args:?} exited 0: {stderr}");
    stderr
}

#[test]
fn a_job_and_the_admin_protocol_over_a_unix_socket() {
    let dir = SocketDir::new("job");
    let socket = dir.path("g.sock");
    let server = Server::start(&["-L", &unix_arg(&socket)]);
    let mut worker = Conn::unix(&socket);
    let mut client = Conn::unix(&socket);
    run_job(&mut client, &mut worker, "unix_echo");
    let status = raw_admin(&socket, "status\n");
    assert!(status.contains("unix_echo\t0\t0\t1\n"), "{status:?}");
    // The workers line names the peer `unix:UID` (no space, not an IP address).
    let workers = raw_admin(&socket, "workers\n");
    let row = format!(" unix:{} - : unix_echo\n", dir.my_uid());
    assert!(workers.contains(&row), "{workers:?}");
    // TCP still serves beside it.
    server.conn().echo_ok();
}

#[test]
fn the_socket_mode_is_applied() {
    let dir = SocketDir::new("mode");
    let (a, b) = (dir.path("a.sock"), dir.path("b.sock"));
    let _server = Server::start(&[
        "-L",
        &unix_arg(&a),
        "--unix-socket",
        &arg(&b),
        "--unix-socket-mode",
        "0640",
    ]);
    for path in [&a, &b] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{}: {mode:o}", path.display());
    }
    Conn::unix(&b).echo_ok();
}

#[test]
fn a_bad_socket_mode_is_a_start_error() {
    let dir = SocketDir::new("badmode");
    let socket = arg(&dir.path("s.sock"));
    for mode in ["999", "rw", "1777"] {
        let err = start_error(&["--unix-socket", &socket, "--unix-socket-mode", mode]);
        assert!(err.contains("is not an octal file mode"), "{mode}: {err}");
    }
}

#[test]
fn the_socket_files_are_removed_after_sigterm() {
    let dir = SocketDir::new("term");
    let (a, b) = (dir.path("a.sock"), dir.path("b.sock"));
    let mut server = Server::start(&["-L", &unix_arg(&a), "--unix-socket", &arg(&b)]);
    // A connected client does not keep the file.
    let mut conn = Conn::unix(&a);
    conn.echo_ok();
    assert!(a.exists() && b.exists());
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status}");
    assert!(!a.exists(), "{} left behind", a.display());
    assert!(!b.exists(), "{} left behind", b.display());
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = SocketDir::new("stale");
    let socket = dir.path("s.sock");
    // What a killed server leaves: a socket file nobody listens on.
    drop(UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let _server = Server::start(&["--unix-socket", &arg(&socket)]);
    Conn::unix(&socket).echo_ok();
}

#[test]
fn a_live_socket_or_another_file_is_not_replaced() {
    let dir = SocketDir::new("live");
    let live = dir.path("live.sock");
    let listener = UnixListener::bind(&live).unwrap();
    let err = start_error(&["--unix-socket", &arg(&live)]);
    assert!(err.contains("another server is listening"), "{err}");
    assert!(live.exists(), "the live socket file was removed");
    drop(listener);

    let file = dir.path("plain-file");
    std::fs::write(&file, b"keep me").unwrap();
    let err = start_error(&["-L", &unix_arg(&file)]);
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    let missing = dir.path("no-such-dir/s.sock");
    let err = start_error(&["--unix-socket", &arg(&missing)]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn unix_listen_addresses_alone_mean_no_tcp_listener() {
    let dir = SocketDir::new("only");
    let socket = dir.path("s.sock");
    let port = gearman_tests::free_port();
    let mut child = Command::new(BINARY)
        .args(["-L", &unix_arg(&socket), "-p", &port.to_string()])
        .args(["--log-file", "none"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let reply = UnixStream::connect(&socket).ok().and_then(|s| {
            let mut conn = Conn::over(s);
            let line = conn.admin("getpid\n");
            line.trim().strip_prefix("OK ")?.parse::<u32>().ok()
        });
        if let Some(pid) = reply {
            break pid;
        }
        assert!(child.try_wait().unwrap().is_none(), "server exited");
        assert!(
            Instant::now() < deadline,
            "no answer on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(pid, child.id());
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port));
    let _ = child.kill();
    let _ = child.wait();
    assert!(tcp.is_err(), "a TCP listener on {port}");
}

#[test]
fn acl_rules_by_peer_uid() {
    let dir = SocketDir::new("acl");
    let socket = dir.path("s.sock");
    let me = dir.my_uid();
    let other = me.wrapping_add(1);
    let acl = dir.path("acl");
    std::fs::write(
        &acl,
        format!(
            "anonymous admin-read\n\
             uid:{me} submit mine_*\n\
             uid:{me} register mine_*\n\
             uid:{other} submit theirs_*\n"
        ),
    )
    .unwrap();
    let server = Server::start(&["--unix-socket", &arg(&socket), "--acl-file", &arg(&acl)]);

    let mut unix = Conn::unix(&socket);
    assert!(
        matches!(
            submit_background(&mut unix, "mine_a"),
            Response::JobCreated { .. }
        ),
        "uid:{me} may submit mine_*"
    );
    let denied = format!("submit not permitted for uid:{me}");
    match submit_background(&mut unix, "theirs_a") {
        Response::Error { code, text } => {
            assert_eq!(code, "PERMISSION_DENIED");
            let text = String::from_utf8_lossy(&text);
            assert!(text.starts_with(&denied), "{text}");
        }
        other => panic!("uid:{me} submitted theirs_a: {other:?}"),
    }
    // The same rule does not let a TCP peer in: it is anonymous.
    let mut tcp = server.conn();
    match submit_background(&mut tcp, "mine_b") {
        Response::Error { code, text } => {
            assert_eq!(code, "PERMISSION_DENIED");
            let text = String::from_utf8_lossy(&text);
            assert!(text.contains("anonymous"), "{text}");
        }
        other => panic!("an anonymous TCP peer submitted mine_b: {other:?}"),
    }
    // A worker by uid may take the job it is allowed to.
    let mut worker = Conn::unix(&socket);
    worker.send(Request::CanDo {
        function: "mine_a".into(),
    });
    worker.send(Request::GrabJob(GrabMode::Plain));
    assert!(
        matches!(worker.recv(), Response::JobAssign(a) if a.function == "mine_a"),
        "uid:{me} worker got mine_a"
    );
}

#[test]
fn tls_over_a_unix_socket() {
    let pki = TestPki::generate("unix-tls");
    let socket = pki.path("tls.sock");
    let plain_socket = pki.path("plain.sock");
    let tls = client_tls(&pki.ca, None);
    let server = TlsServer::start(
        Path::new(BINARY),
        &pki,
        None,
        &[
            "-L",
            &unix_arg(&socket),
            "--unix-socket",
            &arg(&plain_socket),
        ],
        Probe::Tls(&tls),
    );
    let over_unix = || {
        Conn::tls_over(UnixStream::connect(&socket).unwrap(), &tls, "127.0.0.1")
            .expect("TLS over the Unix socket")
    };
    let (mut client, mut worker) = (over_unix(), over_unix());
    run_job(&mut client, &mut worker, "unix_tls");
    // Plaintext Gearman on the TLS Unix socket is told so; --unix-socket stays plaintext.
    let mut plain = Conn::unix(&socket);
    plain.send(Request::Echo { data: "hi".into() });
    match plain.recv() {
        Response::Error { code, .. } => assert_eq!(code, "TLS_REQUIRED"),
        other => panic!("plaintext on a TLS unix socket got {other:?}"),
    }
    Conn::unix(&plain_socket).echo_ok();
    server.conn(&tls).echo_ok();
}

#[test]
fn http_jobs_run_on_a_server_without_a_tcp_gearman_listener() {
    // HTTP jobs reach the core on an in-memory pipe, not through a Gearman listener.
    let dir = SocketDir::new("http");
    let socket = dir.path("s.sock");
    let http_port = gearman_tests::free_port().to_string();
    let mut child = Command::new(BINARY)
        .args(["-L", &unix_arg(&socket), "--log-file", "none"])
        .args(["--http-port", &http_port, "--http-listen", "127.0.0.1"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut worker = loop {
        if let Ok(stream) = UnixStream::connect(&socket) {
            break Conn::over(stream);
        }
        assert!(child.try_wait().unwrap().is_none(), "server exited");
        assert!(Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    };
    worker.echo_ok();
    worker.send(Request::CanDo {
        function: "reverse_http".into(),
    });
    let working = std::thread::spawn(move || loop {
        worker.send(Request::GrabJob(GrabMode::Plain));
        match worker.recv_within(Duration::from_secs(10)) {
            Some(Response::JobAssign(job)) => {
                let data: Vec<u8> = job.data.iter().rev().copied().collect();
                worker.send(Request::WorkComplete(WorkPayload {
                    handle: job.handle,
                    data: data.into(),
                }));
                return;
            }
            Some(Response::NoJob) => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("worker got {other:?}"),
        }
    });
    let url = format!("http://127.0.0.1:{http_port}/reverse_http");
    let mut reply = None;
    while reply.is_none() {
        let out = gearman_tests::run(
            "curl",
            &["-s", "--max-time", "10", "--data-binary", "abc", &url],
            b"",
            Duration::from_secs(15),
        );
        if out.status.success() {
            reply = Some(String::from_utf8_lossy(&out.stdout).into_owned());
        } else {
            assert!(
                Instant::now() < deadline + Duration::from_secs(10),
                "HTTP not up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    working.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reply.as_deref(), Some("cba"));
}
