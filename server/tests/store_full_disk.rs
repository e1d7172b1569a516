//! A durable queue on a full disk, over real sockets: the server is started with a file
//! soft size limit of 0 (`ulimit -S -f 0`, SIGXFSZ ignored, so every write to the queue file fails
//! as it would on a full disk) on a file holding acknowledged jobs. It must start, restore
//! and drain them, refuse only new background jobs, log the failures once per interval
//! with a count (not once per refusal), and accept durable jobs again once the limit is
//! lifted (`prlimit`), with the drained jobs' deletes committed then.

mod common;

use common::http::curl;
use gearman_core::proto::{Request, Response, SubmitMode};
use gearman_tests::{free_port, gearmand_rs_binary, Conn};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STORED: usize = 20;
const REFUSED: usize = 200;

/// A server process, killed when dropped (so a failed assertion leaves none behind).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server on `port` with the queue at `db`; `limited` starts it under a soft file size
/// limit of 0 (soft, so that `prlimit` may lift it again without privileges). Its log
/// (stderr) lines are collected into `log`.
fn start(port: u16, http: u16, db: &str, limited: bool, log: &Arc<Mutex<Vec<String>>>) -> Server {
    let server = gearmand_rs_binary();
    let cmd = format!(
        "{} exec \"$0\" -L 127.0.0.1 -p {port} --http-port {http} --log-file stderr --verbose WARNING -q libsqlite3 --libsqlite3-db \"$1\"",
        if limited { "trap '' XFSZ; ulimit -S -f 0;" } else { "" }
    );
    let mut child = Server(
        Command::new("bash")
            .args(["-c", &cmd])
            .arg(&server)
            .arg(db)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash (to set the file size limit)"),
    );
    let stderr = child.0.stderr.take().expect("piped");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the server exited with {status}: {:?}", log.lock().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "the server did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn submit(conn: &mut Conn, n: usize) -> Response {
    conn.send(Request::Submit(gearman_core::proto::SubmitJob {
        function: "full".into(),
        unique: format!("u{n}").into(),
        mode: SubmitMode::Background(Default::default()),
        data: "x".into(),
    }));
    conn.recv()
}

fn queued(conn: &mut Conn) -> String {
    conn.admin("status\n")
        .lines()
        .find(|l| l.starts_with("full\t"))
        .unwrap_or("")
        .to_string()
}

fn kill(server: Server) {
    drop(server);
}

#[test]
fn full_disk_start_restore_drain_refuse_then_recover() {
    let dir = gearman_tests::temp_dir("full-disk");
    let db = dir.path().join("q.db").display().to_string();
    let log = Arc::new(Mutex::new(Vec::new()));
    let port = free_port();
    let http = free_port();

    // Acknowledged jobs in the file, then kill -9.
    let server = start(port, http, &db, false, &log);
    let mut conn = Conn::new(port);
    for n in 0..STORED {
        assert!(matches!(submit(&mut conn, n), Response::JobCreated { .. }));
    }
    kill(server);

    // Restart on the "full disk": it starts and restores.
    log.lock().unwrap().clear();
    let server = start(port, http, &db, true, &log);
    let mut conn = Conn::new(port);
    assert_eq!(queued(&mut conn), format!("full\t{STORED}\t0\t0"));

    // New background jobs are refused, with a clear error.
    for n in STORED..STORED + REFUSED {
        match submit(&mut conn, n) {
            Response::Error { code, .. } => assert_eq!(&code[..], b"QUEUE_ERROR"),
            other => panic!("a background job was not refused on a full disk: {other:?}"),
        }
    }

    // Health says why: the last commit failed.
    let ready = curl(&[&format!("http://127.0.0.1:{http}/readyz")]);
    assert_eq!(ready.status, 503, "/readyz on a full disk: {ready:?}");
    assert!(
        String::from_utf8_lossy(&ready.body).contains("commit failed"),
        "/readyz on a full disk: {ready:?}"
    );

    // The stored jobs drain to a worker.
    let mut worker = Conn::new(port);
    worker.send(Request::CanDo {
        function: "full".into(),
    });
    for _ in 0..STORED {
        worker.send(Request::GrabJob(gearman_core::proto::GrabMode::Plain));
        let handle = match worker.recv() {
            Response::JobAssign(a) => a.handle,
            other => panic!("expected a restored job, got {other:?}"),
        };
        worker.send(Request::WorkComplete(gearman_core::proto::WorkPayload {
            handle,
            data: "done".into(),
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while queued(&mut conn) != "full\t0\t0\t1" {
        assert!(
            Instant::now() < deadline,
            "not drained: {}",
            queued(&mut conn)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // It said so, once, not once per refusal.
    let lines = log.lock().unwrap().clone();
    let failures = lines.iter().filter(|l| l.contains("failed")).count();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cannot be written") && l.contains("stored jobs")),
        "no warning about the full disk at start: {lines:?}"
    );
    assert!(
        (1..=3).contains(&failures),
        "{failures} failure lines for {REFUSED} refusals and {STORED} deletes: {lines:?}"
    );

    // Space returns: durable jobs are accepted again.
    let status = Command::new("prlimit")
        .args(["--pid", &server.0.id().to_string(), "--fsize=unlimited"])
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match submit(&mut conn, 100_000) {
            Response::JobCreated { .. } => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("durable writes did not resume: {other:?}"),
        }
    }
    let ready = curl(&[&format!("http://127.0.0.1:{http}/readyz")]);
    assert_eq!(ready.status, 200, "/readyz once space returned: {ready:?}");
    drop(worker);
    kill(server);

    // The drained jobs' deletes were committed once space returned: only the new job is left.
    let server = start(port, http, &db, false, &log);
    let mut conn = Conn::new(port);
    assert_eq!(queued(&mut conn), "full\t1\t0\t0");
    kill(server);
}
