//! The adapters say what goes wrong through `tracing`: a worker (tokio, smol, blocking) or
//! a client pointed at a dead port logs a warning naming the server and the io error, and
//! keeps retrying (the warning comes again), instead of retrying forever in silence.
//!
//! One subscriber for the whole test binary (the adapters log from their own threads and
//! runtimes, so a thread-local default would miss them); each test reads only the lines
//! naming its own dead port.

use gearman_tests::free_port;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Everything logged in this test binary.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .init();
        log
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The logged lines naming `server` at WARN level.
fn warnings_about(server: &str) -> Vec<String> {
    let log = captured().lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains(server))
        .map(str::to_string)
        .collect()
}

/// Waits (bounded) until `server` has at least `n` warnings; returns them.
fn wait_for_warnings(server: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = warnings_about(server);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} warning(s) about {server}, expected {n}: {lines:?}",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Each warning says the server cannot be reached and why.
fn assert_names_the_cause(lines: &[String], server: &str) {
    for line in lines {
        assert!(line.contains("cannot connect"), "{line}");
        // `server=ADDR` or `server="ADDR"` (Display or Debug of the field).
        let named = [format!("server={server}"), format!("server=\"{server}\"")];
        assert!(named.iter().any(|n| line.contains(n)), "{line}");
        assert!(line.contains("Connection refused"), "{line}");
    }
}

fn dead_port() -> String {
    captured();
    format!("127.0.0.1:{}", free_port())
}

/// A fast backoff, so the test sees a retry within its bound.
fn fast() -> gearman_async::Backoff {
    gearman_async::Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    }
}

#[test]
fn tokio_worker_on_a_dead_port_says_so_and_retries() {
    let dead = dead_port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let worker = gearman_tokio::worker()
        .server(dead.clone())
        .backoff(fast())
        .sync_function("f", |job| Ok(job.data().clone()))
        .build();
    let stop = worker.handle();
    let running = rt.spawn(worker.run());
    let lines = wait_for_warnings(&dead, 2);
    assert_names_the_cause(&lines, &dead);
    stop.shutdown();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), running).await })
        .expect("worker stopped")
        .unwrap();
}

#[test]
fn smol_worker_on_a_dead_port_says_so_and_retries() {
    let dead = dead_port();
    let worker = gearman_async_std::worker()
        .server(dead.clone())
        .backoff(fast())
        .sync_function("f", |job| Ok(job.data().clone()))
        .build();
    let stop = worker.handle();
    let thread = std::thread::spawn(move || smol::block_on(worker.run()));
    let lines = wait_for_warnings(&dead, 2);
    assert_names_the_cause(&lines, &dead);
    stop.shutdown();
    thread.join().unwrap();
}

#[test]
fn blocking_worker_on_a_dead_port_says_so_and_retries() {
    let dead = dead_port();
    let worker = gearman_blocking::worker()
        .server(dead.clone())
        .backoff(fast())
        .function("f", |job| Ok(job.data().clone()))
        .build();
    let stop = worker.handle();
    let thread = std::thread::spawn(move || worker.run());
    let lines = wait_for_warnings(&dead, 2);
    assert_names_the_cause(&lines, &dead);
    stop.shutdown();
    thread.join().unwrap();
}

#[test]
fn clients_on_a_dead_port_say_so() {
    let dead = dead_port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tokio_client = gearman_tokio::client().server(dead.clone()).build();
    assert!(rt.block_on(tokio_client.echo("x")).is_err());
    assert_names_the_cause(&wait_for_warnings(&dead, 1), &dead);

    let dead = dead_port();
    let mut blocking_client = gearman_blocking::client().server(dead.clone()).build();
    assert!(blocking_client.echo("x").is_err());
    assert_names_the_cause(&wait_for_warnings(&dead, 1), &dead);
}

/// A server that refuses every CAN_DO with ERROR PERMISSION_DENIED, as gearmand-rs does
/// under an ACL, and has no job for any grab; returns its address.
fn refusing_server() -> String {
    use std::io::Read;
    captured();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || loop {
                let mut header = [0u8; 12];
                if conn.read_exact(&mut header).is_err() {
                    return;
                }
                let ty = u32::from_be_bytes(header[4..8].try_into().unwrap());
                let len = u32::from_be_bytes(header[8..12].try_into().unwrap());
                let mut body = vec![0u8; len as usize];
                if conn.read_exact(&mut body).is_err() {
                    return;
                }
                let (ty, body): (u32, &[u8]) = match ty {
                    // CAN_DO, CAN_DO_TIMEOUT: ERROR
                    1 | 23 => (
                        19,
                        b"PERMISSION_DENIED\0can_do not permitted for anonymous: f",
                    ),
                    // GRAB_JOB*: NO_JOB
                    9 | 30 | 39 => (10, b""),
                    _ => continue,
                };
                let mut out = b"\0RES".to_vec();
                out.extend_from_slice(&ty.to_be_bytes());
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(body);
                let _ = conn.write_all(&out);
            });
        }
    });
    addr
}

/// Each warning names the refusal.
fn assert_names_the_refusal(lines: &[String]) {
    for line in lines {
        assert!(line.contains("server error"), "{line}");
        assert!(line.contains("PERMISSION_DENIED"), "{line}");
        assert!(line.contains("not permitted"), "{line}");
    }
}

#[test]
fn workers_say_when_the_server_refuses_a_function() {
    let server = refusing_server();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let worker = gearman_tokio::worker()
        .server(server.clone())
        .sync_function("f", |job| Ok(job.data().clone()))
        .build();
    let stop = worker.handle();
    let running = rt.spawn(worker.run());
    assert_names_the_refusal(&wait_for_warnings(&server, 1));
    stop.shutdown();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), running).await })
        .expect("worker stopped")
        .unwrap();

    let server = refusing_server();
    let worker = gearman_blocking::worker()
        .server(server.clone())
        .function("f", |job| Ok(job.data().clone()))
        .build();
    let stop = worker.handle();
    let thread = std::thread::spawn(move || worker.run());
    assert_names_the_refusal(&wait_for_warnings(&server, 1));
    stop.shutdown();
    thread.join().unwrap();
}

/// Waits (bounded) for an ERROR line naming `server` and containing `text`.
fn wait_for_error(server: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = {
            let log = captured().lock().unwrap();
            let log = String::from_utf8_lossy(&log);
            let mut lines = log.lines();
            let line =
                lines.find(|l| l.contains(" ERROR ") && l.contains(server) && l.contains(text));
            line.map(str::to_string)
        };
        if let Some(line) = found {
            return line;
        }
        assert!(Instant::now() < deadline, "no error about {server}: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn workers_say_which_function_they_cannot_register() {
    let server = refusing_server();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let worker = gearman_tokio::worker()
        .server(server.clone())
        .sync_function("bad\0name", |job| Ok(job.data().clone()))
        .build();
    let stop = worker.handle();
    let running = rt.spawn(worker.run());
    let line = wait_for_error(&server, "function not registered");
    assert!(line.contains("bad") && line.contains("NUL"), "{line}");
    stop.shutdown();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), running).await })
        .expect("worker stopped")
        .unwrap();

    let server = refusing_server();
    let long = "f".repeat(10_000);
    let worker = gearman_blocking::worker()
        .server(server.clone())
        .function(long, |job| Ok(job.data().clone()))
        .build();
    let stop = worker.handle();
    let thread = std::thread::spawn(move || worker.run());
    let line = wait_for_error(&server, "function not registered");
    assert!(line.contains("exceeds the limit"), "{line}");
    stop.shutdown();
    thread.join().unwrap();
}
