//! `--http-port`: Prometheus metrics (promtool-clean under load, bakins' gauges equal to
//! admin `status`, bounded labels, a real Prometheus scraping them), health checks, and
//! gearmand's HTTP job protocol answered as gearmand 1.1.20 answers it (same curl
//! requests against both).

mod common;

use common::http::{curl, get, sample, start_with_http, Load, Worker};
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitMode};
use gearman_tests::{free_port, run, Conn, ServerProcess};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// `status` as (function -> [total, running, workers]).
fn admin_status(conn: &mut Conn) -> BTreeMap<String, [u64; 3]> {
    conn.admin("status\n")
        .lines()
        .filter(|l| *l != ".")
        .map(|l| {
            let f: Vec<&str> = l.rsplitn(4, '\t').collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            (f[3].to_string(), [n(2), n(1), n(0)])
        })
        .collect()
}

/// Background jobs on `alpha` (one high, two low) and `beta` (two), one alpha job held by
/// a worker: a state that stays put while other functions are busy.
fn steady_state(port: u16) -> Conn {
    let mut client = Conn::new(port);
    client.submit("alpha", SubmitMode::Background(Priority::High));
    client.submit("alpha", SubmitMode::Background(Priority::Low));
    client.submit("alpha", SubmitMode::Background(Priority::Low));
    client.submit("beta", SubmitMode::Background(Priority::Normal));
    client.submit("beta", SubmitMode::Background(Priority::Normal));
    let mut holder = Conn::new(port);
    holder.send(Request::CanDo {
        function: "alpha".into(),
    });
    holder.send(Request::CanDo {
        function: "gamma".into(),
    });
    holder.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(holder.recv(), Response::JobAssign(_)));
    holder
}

#[test]
fn metrics_under_load_pass_promtool_and_bakins_gauges_match_status() {
    let (server, base) = start_with_http(&[]);
    let _holder = steady_state(server.port);
    let worker = Worker::start(server.port, &["busy", "fail_busy"]);
    let load = Load::start(server.port, "busy");
    let failing = Load::start(server.port, "fail_busy");
    std::thread::sleep(Duration::from_millis(300));
    let metrics = get(&format!("{base}/metrics"));
    let mut admin = Conn::new(server.port);
    let status = admin_status(&mut admin);

    // promtool reads the same text (from stdin) while the load runs.
    let check = run("promtool", &["check", "metrics"], metrics.as_bytes(), LIMIT);
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let live = get(&format!("{base}/metrics"));
    let check = run("promtool", &["check", "metrics"], live.as_bytes(), LIMIT);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    assert_eq!(sample(&metrics, "gearman_up"), Some(1.0));
    let version = format!(
        "gearman_version_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&metrics, &version), Some(1.0));
    for function in ["alpha", "beta", "gamma"] {
        let [total, running, workers] = status[function];
        let g = |name: &str| sample(&metrics, &format!("{name}{{function=\"{function}\"}}"));
        assert_eq!(g("gearman_jobs"), Some(total as f64), "{function}");
        assert_eq!(
            g("gearman_jobs_running"),
            Some(running as f64),
            "{function}"
        );
        assert_eq!(
            g("gearman_jobs_waiting"),
            Some((total - running) as f64),
            "{function}"
        );
        assert_eq!(g("gearman_workers"), Some(workers as f64), "{function}");
    }
    assert_eq!(status["alpha"], [3, 1, 1]);
    let queued = |f: &str, p: &str| {
        sample(
            &metrics,
            &format!("gearman_jobs_queued{{function=\"{f}\",priority=\"{p}\"}}"),
        )
    };
    assert_eq!(
        queued("alpha", "high"),
        Some(0.0),
        "the high one is running"
    );
    assert_eq!(queued("alpha", "low"), Some(2.0));
    assert_eq!(queued("beta", "normal"), Some(2.0));
    assert_eq!(
        sample(&metrics, "gearman_jobs_submitted_total{function=\"alpha\"}"),
        Some(3.0)
    );

    let (done, failed) = (load.stop(), failing.stop());
    worker.stop();
    assert!(done > 0 && failed > 0, "no load ran: {done} {failed}");
    let after = get(&format!("{base}/metrics"));
    let completed = sample(&after, "gearman_jobs_completed_total{function=\"busy\"}").unwrap();
    assert!(completed >= done as f64, "{completed} < {done}");
    let fails = sample(&after, "gearman_jobs_failed_total{function=\"fail_busy\"}").unwrap();
    assert!(fails >= failed as f64, "{fails} < {failed}");
    let runs = sample(&after, "gearman_job_run_seconds_count{function=\"busy\"}").unwrap();
    assert!(runs >= done as f64);
    let inf = sample(
        &after,
        "gearman_job_queue_wait_seconds_bucket{function=\"busy\",le=\"+Inf\"}",
    )
    .unwrap();
    assert!(inf >= done as f64);
    assert!(sample(&after, "gearman_connections").unwrap() >= 2.0);
}

#[test]
fn function_labels_are_capped_and_the_rest_summed() {
    let (server, base) = start_with_http(&[]);
    let mut admin = Conn::new(server.port);
    let mut client = Conn::new(server.port);
    for i in 0..130 {
        assert_eq!(admin.admin(&format!("create function f{i:03}\n")), "OK\r\n");
    }
    for _ in 0..4 {
        client.submit("f129", SubmitMode::Background(Priority::Normal));
    }
    let metrics = get(&format!("{base}/metrics"));
    let labels: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("gearman_jobs{function=\""))
        .collect();
    assert_eq!(labels.len(), 101, "100 functions and _other");
    assert!(labels.iter().any(|l| l.starts_with("_other\"")));
    // The busiest function keeps its own label.
    assert_eq!(
        sample(&metrics, "gearman_jobs{function=\"f129\"}"),
        Some(4.0)
    );
    let total: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("gearman_jobs{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 4.0);
}

#[test]
fn health_and_readiness() {
    let (server, base) = start_with_http(&["--shutdown-timeout", "20"]);
    assert_eq!(get(&format!("{base}/healthz")), "ok\n");
    assert_eq!(get(&format!("{base}/readyz")), "ready\n");
    // A running job holds the shutdown; meanwhile the server is alive but not ready.
    let mut worker = Conn::new(server.port);
    worker.send(Request::CanDo {
        function: "slow".into(),
    });
    let mut client = Conn::new(server.port);
    client.submit("slow", SubmitMode::Foreground(Priority::Normal));
    worker.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(worker.recv(), Response::JobAssign(_)));
    server.terminate();
    let deadline = Instant::now() + LIMIT;
    loop {
        let r = curl(&[&format!("{base}/readyz")]);
        if r.status == 503 {
            assert_eq!(r.body, b"shutting down\n");
            break;
        }
        assert!(Instant::now() < deadline, "still ready while shutting down");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(&format!("{base}/healthz")), "ok\n");
    let status = get(&format!("{base}/api/status"));
    assert!(status.contains("\"accepting\":false"), "{status}");
}

#[test]
fn readiness_fails_when_the_store_cannot_commit() {
    let dir = gearman_tests::temp_dir("ready");
    let db = dir.path().join("q.db");
    let (server, base) =
        start_with_http(&["-q", "libsqlite3", "--libsqlite3-db", db.to_str().unwrap()]);
    assert_eq!(get(&format!("{base}/readyz")), "ready\n");
    let mut client = Conn::new(server.port);
    client.submit("f", SubmitMode::Background(Priority::Normal));
    let metrics = get(&format!("{base}/metrics"));
    assert!(sample(&metrics, "gearman_store_commits_total").unwrap() >= 1.0);
    assert!(sample(&metrics, "gearman_store_commit_seconds_count").unwrap() >= 1.0);
    assert!(sample(&metrics, "gearman_store_commit_batch_size_bucket{le=\"1\"}").unwrap() >= 1.0);
    // Make the file unwritable under the server: the next commit fails.
    let lock = rusqlite_lock(&db);
    client.send(Request::Submit(gearman_core::proto::SubmitJob {
        function: "f".into(),
        unique: "u2".into(),
        mode: SubmitMode::Background(Priority::Normal),
        data: "x".into(),
    }));
    let reply = client.recv_within(Duration::from_secs(15));
    assert!(matches!(reply, Some(Response::Error { .. })), "{reply:?}");
    let r = curl(&[&format!("{base}/readyz")]);
    assert_eq!(r.status, 503, "{r:?}");
    drop(lock);
    drop(server);
}

/// Holds an exclusive lock on the SQLite file (a second process, so the server's commits
/// fail with "database is locked" once its busy timeout runs out).
fn rusqlite_lock(db: &std::path::Path) -> Child {
    let script = format!(
        "import sqlite3,time\nc=sqlite3.connect({:?},isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\ntime.sleep(60)\n",
        db.to_str().unwrap()
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// The parts of a reply both servers must agree on.
fn job_answer(
    base: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, Option<String>, Option<String>, String) {
    let mut args = vec!["-X", "POST", "--data-binary", body];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    let url = format!("{base}{path}");
    args.push(&url);
    let r = curl(&args);
    (
        r.status,
        r.headers.get("x-gearman-job-handle").cloned(),
        r.headers.get("x-gearman-command").cloned(),
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

#[test]
fn http_job_protocol_answers_as_gearmand_does() {
    let gearmand_http = free_port().to_string();
    let gearmand = ServerProcess::gearmand(&[
        "-r",
        "http",
        "--http-port",
        &gearmand_http,
        "--job-handle-prefix",
        "H:t",
    ]);
    let (ours, ours_base) = start_with_http(&["--job-handle-prefix", "H:t"]);
    let gearmand_base = format!("http://127.0.0.1:{gearmand_http}");
    let requests: [(&str, &[&str], &str); 6] = [
        ("/reverse", &[], "hello"),
        ("/reverse", &["X-Gearman-Background: true"], "later"),
        ("/fail", &[], "x"),
        ("/", &[], "x"),
        (
            "/reverse",
            &["X-Gearman-Unique: u1", "X-Gearman-Priority: high"],
            "abc",
        ),
        ("//reverse", &["X-Gearman-Priority: low"], "xyz"),
    ];
    let mut answers = Vec::new();
    for (server, base) in [(&gearmand, &gearmand_base), (&ours.0, &ours_base)] {
        let worker = Worker::start(server.port, &["reverse", "fail"]);
        gearman_tests::wait_for_workers(server, "fail", 1);
        let got: Vec<_> = requests
            .iter()
            .map(|(path, headers, body)| job_answer(base, path, headers, body))
            .collect();
        worker.stop();
        answers.push(got);
    }
    let (theirs, ours) = (&answers[0], &answers[1]);
    assert_eq!(
        ours[0],
        (
            200,
            Some("H:t:1".into()),
            Some("WORK_COMPLETE".into()),
            "olleh".into()
        )
    );
    assert_eq!(
        ours[1],
        (
            200,
            Some("H:t:2".into()),
            Some("JOB_CREATED".into()),
            String::new()
        )
    );
    assert_eq!(ours[3], (404, None, None, String::new()));
    for (i, (t, o)) in theirs.iter().zip(ours).enumerate() {
        if i == 2 {
            // gearmand cuts the last byte off a WORK_FAIL's handle; ours is whole.
            assert_eq!((t.0, &t.2, &t.3), (o.0, &o.2, &o.3), "request {i}");
            let (th, oh) = (t.1.clone().unwrap(), o.1.clone().unwrap());
            assert!(oh.starts_with(&th) && oh.len() == th.len() + 1, "{th} {oh}");
            assert_eq!(oh, "H:t:3");
        } else {
            assert_eq!(t, o, "request {i}: {:?}", requests[i]);
        }
    }
}

/// A throwaway Prometheus server scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    /// Removed after `Drop::drop` has killed the child (fields drop after it).
    _dir: gearman_tests::TempDir,
    port: u16,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let port = free_port();
        let dir = gearman_tests::temp_dir("prom");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: gearmand-rs\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus; .ci/install-20-prometheus.sh)");
        Prometheus {
            child,
            _dir: dir,
            port,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_gauges() {
    let (server, base) = start_with_http(&[]);
    let _holder = steady_state(server.port);
    let target = base.trim_start_matches("http://");
    let prometheus = Prometheus::start(target);
    let query = format!(
        "http://127.0.0.1:{}/api/v1/query?query=gearman_jobs%7Bfunction%3D%22alpha%22%7D",
        prometheus.port
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let r = run("curl", &["-s", "--max-time", "5", &query], b"", LIMIT);
        let body = String::from_utf8_lossy(&r.stdout).into_owned();
        // {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[t,"3"]}]}}
        if body.contains("\"function\":\"alpha\"") && body.contains(",\"3\"]") {
            assert!(body.contains("\"job\":\"gearmand-rs\""), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned gearman_jobs{{function=\"alpha\"}} 3: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn http_priority_unique_and_background_headers_as_gearmand_reads_them() {
    let gearmand_http = free_port().to_string();
    let gearmand = ServerProcess::gearmand(&["-r", "http", "--http-port", &gearmand_http]);
    let (ours, ours_base) = start_with_http(&[]);
    let gearmand_base = format!("http://127.0.0.1:{gearmand_http}");
    let mut seen = Vec::new();
    for (server, base) in [(&gearmand, &gearmand_base), (&ours.0, &ours_base)] {
        let bg = |headers: &[&str], body: &str| {
            let mut h = vec!["X-Gearman-Background: true"];
            h.extend_from_slice(headers);
            job_answer(base, "/queue", &h, body)
        };
        let a = bg(&["X-Gearman-Priority: high", "X-Gearman-Unique: same"], "1");
        let b = bg(&["X-Gearman-Unique: same"], "2");
        bg(&["X-Gearman-Priority: LOW"], "3");
        bg(&["X-Gearman-Priority: urgent"], "4");
        // Without X-Gearman-Unique the unique is "-": equal workloads coalesce.
        let c = bg(&[], "5");
        let d = bg(&[], "5");
        assert_eq!(a.1, b.1, "same unique, same job");
        assert_eq!(c.1, d.1, "same workload, same job");
        assert_ne!(a.1, c.1);
        let status = server.conn().admin("prioritystatus\n");
        seen.push(status);
    }
    assert_eq!(seen[0], seen[1]);
    // high: "same"; normal: "urgent" (unknown means normal) and "5"; low: "3".
    assert_eq!(seen[1], "queue\t1\t2\t1\t0\n.\n");
}

#[test]
fn the_acl_applies_to_http_jobs_as_anonymous() {
    let dir = gearman_tests::temp_dir("http-acl");
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "anonymous admin-read\nanonymous submit open_*\nanonymous register open_*\n",
    )
    .unwrap();
    let (server, base) = start_with_http(&["--acl-file", acl.to_str().unwrap()]);
    let worker = Worker::start(server.port, &["open_echo"]);
    let allowed = curl(&["--data-binary", "hello", &format!("{base}/open_echo")]);
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(allowed.body, b"hello");
    let refused = curl(&["--data-binary", "hello", &format!("{base}/closed_echo")]);
    assert_eq!(refused.status, 503, "{refused:?}");
    let why = String::from_utf8_lossy(&refused.body);
    assert!(
        why.contains("PERMISSION_DENIED") && why.contains("anonymous"),
        "{why}"
    );
    worker.stop();
}

/// A worker streaming more WORK_DATA than one packet may hold to an HTTP job: the server
/// answers 507 instead of gathering it all in memory.
#[test]
fn an_http_jobs_streamed_result_is_bounded_by_the_packet_limit() {
    let (server, base) = start_with_http(&["--max-packet-size", "4096"]);
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: "big".into(),
    });
    gearman_tests::wait_for_workers(&server, "big", 1);
    let answer = std::thread::spawn(move || job_answer(&base, "/big", &[], "x"));
    let handle = loop {
        worker.send(Request::GrabJob(GrabMode::Uniq));
        match worker.recv() {
            Response::JobAssign(a) => break a.handle,
            Response::NoJob => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("{other:?}"),
        }
    };
    for _ in 0..3 {
        worker.send(Request::WorkData(gearman_core::proto::WorkPayload {
            handle: handle.clone(),
            data: vec![b'd'; 3000].into(),
        }));
    }
    worker.send(Request::WorkComplete(gearman_core::proto::WorkPayload {
        handle,
        data: "end".into(),
    }));
    let (status, _, _, body) = answer.join().unwrap();
    assert_eq!(status, 507, "{} bytes of body", body.len());
    assert!(body.contains("4096"), "{body}");
}

/// The `host:port` of an HTTP base URL.
fn http_addr(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// Reads from `stream` until the server closes it, at most `wait`: the bytes it sent and
/// how long it took, or panics if it is still open after `wait`.
fn read_until_closed(stream: &mut std::net::TcpStream, wait: Duration) -> (String, Duration) {
    use std::io::Read;
    let start = Instant::now();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A close with unread bytes in the server's buffer is a reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); received {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
        assert!(start.elapsed() < wait, "still open after {wait:?}");
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

/// Sends `GET /healthz` on a kept-alive connection.
fn send_healthz(stream: &mut std::net::TcpStream) {
    use std::io::Write;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
}

/// The reply to a `GET /healthz` sent on `stream`, if it comes within `wait`.
fn healthz_reply(stream: &mut std::net::TcpStream, wait: Duration) -> Option<String> {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok\n") {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// `GET /healthz` on `stream`, answered within [`LIMIT`].
fn healthz_served(stream: &mut std::net::TcpStream) -> bool {
    send_healthz(stream);
    healthz_reply(stream, LIMIT).is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

/// --http-read-timeout: a client that stalls in its request headers, or sends none, is
/// closed once the timeout has passed (here 1 s; hyper answers 408 first).
#[test]
fn a_stalled_request_header_is_closed_after_the_read_timeout() {
    use std::io::Write;
    let (_server, base) = start_with_http(&["--http-read-timeout", "1"]);
    let mut partial = std::net::TcpStream::connect(http_addr(&base)).unwrap();
    let mut silent = std::net::TcpStream::connect(http_addr(&base)).unwrap();
    partial
        .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nX-Gearman-Uni")
        .unwrap();
    for stream in [&mut partial, &mut silent] {
        let (got, took) = read_until_closed(stream, Duration::from_secs(6));
        assert!(took < Duration::from_secs(5), "closed after {took:?}");
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got}");
    }
}

/// --http-read-timeout also bounds a job request's body: one that stalls short of its
/// Content-Length gets 408 and is closed.
#[test]
fn a_stalled_job_body_is_closed_after_the_read_timeout() {
    use std::io::Write;
    let (server, base) = start_with_http(&["--http-read-timeout", "1"]);
    let _worker = Worker::start(server.port, &["echo"]);
    let mut stream = std::net::TcpStream::connect(http_addr(&base)).unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n\r\nabc")
        .unwrap();
    let (got, took) = read_until_closed(&mut stream, Duration::from_secs(6));
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
}

/// The read and write timeouts bound reading a request and writing its reply, not the wait
/// for its job's result: a job with no worker for three times the timeouts is still
/// answered once one comes.
#[test]
fn an_http_job_waits_for_a_worker_longer_than_the_read_timeout() {
    let (server, base) =
        start_with_http(&["--http-read-timeout", "1", "--http-write-timeout", "1"]);
    let answer = std::thread::spawn(move || job_answer(&base, "/late_echo", &[], "patience"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!answer.is_finished(), "answered with no worker");
    let worker = Worker::start(server.port, &["late_echo"]);
    let (status, _, command, body) = answer.join().unwrap();
    assert_eq!(
        (status, command.as_deref(), body.as_str()),
        (200, Some("WORK_COMPLETE"), "patience")
    );
    worker.stop();
}

/// --http-write-timeout: a client that sends a job and never reads its reply, far larger
/// than the socket buffers, is closed once the reply has made no progress for the timeout
/// (here 1 s), and its connection slot goes to the next client (here the only slot).
#[test]
fn a_client_that_never_reads_its_reply_is_closed_after_the_write_timeout() {
    use std::io::Write;
    let (server, base) =
        start_with_http(&["--http-write-timeout", "1", "--http-max-connections", "1"]);
    let worker = Worker::start(server.port, &["echo"]);
    gearman_tests::wait_for_workers(&server, "echo", 1);
    // Linux lets the server's send buffer grow to 4 MiB (tcp_wmem); the client's receive
    // buffer is made small, so most of the reply cannot leave the server.
    const WORKLOAD: usize = 16 << 20;
    let addr: std::net::SocketAddr = http_addr(&base).parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // Before connecting: the window offered is fixed then.
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut stalled: std::net::TcpStream = socket.into();
    stalled
        .write_all(
            format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {WORKLOAD}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    // The server reads the whole workload before the job runs, so this returns.
    stalled.write_all(&vec![b'w'; WORKLOAD]).unwrap();

    let mut next = std::net::TcpStream::connect(addr).unwrap();
    send_healthz(&mut next);
    let reply = healthz_reply(&mut next, LIMIT)
        .expect("the next client was not served: the one not reading still holds the slot");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // The stalled client can still read what the kernel holds of its reply, then the end.
    let (got, _) = read_until_closed(&mut stalled, LIMIT);
    assert!(
        got.starts_with("HTTP/1.1 200"),
        "{:?}",
        &got[..got.len().min(200)]
    );
    assert!(
        got.len() < WORKLOAD,
        "the whole reply arrived ({} bytes): it never stalled",
        got.len()
    );
    worker.stop();
}

/// --http-max-connections: past the cap a new connection is not served until an open one
/// closes (it waits in the listen backlog), then it is.
#[test]
fn http_connections_past_the_cap_wait_for_one_to_close() {
    let (_server, base) = start_with_http(&["--http-max-connections", "2"]);
    let addr = http_addr(&base);
    let mut first = std::net::TcpStream::connect(addr).unwrap();
    let mut second = std::net::TcpStream::connect(addr).unwrap();
    // Both served (the readiness probe's connection may take a moment to be let go).
    assert!(healthz_served(&mut first));
    assert!(healthz_served(&mut second));
    let mut third = std::net::TcpStream::connect(addr).unwrap();
    send_healthz(&mut third);
    let early = healthz_reply(&mut third, Duration::from_millis(1500));
    assert_eq!(early, None, "served past the cap");
    // The open ones are still served; closing one lets the third in.
    assert!(healthz_served(&mut first));
    drop(first);
    let reply = healthz_reply(&mut third, LIMIT).expect("served once one closed");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(healthz_served(&mut second));
}
