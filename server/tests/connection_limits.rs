//! Connection limits over real sockets: `--max-connections` refuses with a reason in the
//! peer's dialect and admits again once a slot frees; running out of descriptors (a low
//! `--file-descriptors`) is logged once per interval, not once per failed accept, and the
//! server serves again when descriptors return. Both refusals' logs are counted.

mod common;

use common::Server;
use gearman_core::proto::{Packet, Request, Response};
use gearman_tests::Conn;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A log file for one test, under the test target's temporary directory.
fn log_file(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("limits-{}-{name}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Lines of `log` containing `needle`.
fn count_lines(log: &PathBuf, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Whether `conn` gets its ECHO back (`false`: refused or closed).
fn echoes(conn: &mut Conn) -> bool {
    conn.send(Request::Echo { data: "hi".into() });
    matches!(
        conn.recv_within(Duration::from_secs(3)),
        Some(Response::EchoRes { .. })
    )
}

/// A connection the server has admitted: retried while earlier ones (the start probe) are
/// still being closed.
fn admitted(port: u16) -> Conn {
    admitted_within(port, Duration::from_secs(10))
}

#[test]
fn max_connections_refuses_with_a_reason_and_admits_again() {
    let log = log_file("max");
    let log_arg = log.to_str().unwrap();
    let server = Server::start(&[
        "--max-connections",
        "3",
        "--log-file",
        log_arg,
        "--verbose",
        "WARNING",
    ]);
    let mut kept: Vec<Conn> = (0..3).map(|_| admitted(server.port)).collect();

    // A binary client past the limit: an ERROR packet naming the limit, then the close.
    let mut refused = Conn::new(server.port);
    refused.send(Request::Echo { data: "x".into() });
    match refused.recv_within(Duration::from_secs(5)) {
        Some(Response::Error { code, text }) => {
            assert_eq!(&code[..], b"MAX_CONNECTIONS");
            assert!(String::from_utf8_lossy(&text).contains('3'), "{text:?}");
        }
        other => panic!("past the limit: {other:?}"),
    }
    assert_eq!(refused.recv_within(Duration::from_secs(3)), None, "closed");
    // An admin client past the limit: an ERR line.
    let reply = Conn::new(server.port).admin("status\n");
    assert!(reply.starts_with("ERR MAX_CONNECTIONS "), "{reply:?}");
    // Many more refusals within the interval: still one log line.
    for _ in 0..20 {
        let _ = Conn::new(server.port).admin("version\n");
    }
    // The admitted connections are untouched.
    assert!(kept.iter_mut().all(echoes));
    // A slot freed is a slot filled.
    drop(kept.pop());
    let mut again = admitted(server.port);
    assert!(echoes(&mut again));
    let logged = count_lines(&log, "--max-connections");
    assert_eq!(logged, 1, "{}", std::fs::read_to_string(&log).unwrap());
}

#[test]
fn out_of_descriptors_is_logged_once_per_interval_and_the_server_recovers() {
    let log = log_file("emfile");
    let log_arg = log.to_str().unwrap();
    let server = Server::start(&[
        "--file-descriptors",
        "48",
        "--log-file",
        log_arg,
        "--verbose",
        "WARNING",
    ]);
    let addr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    // Far more connections than descriptors: the kernel completes them into the backlog,
    // the server's accepts fail with EMFILE.
    let crowd: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
        .collect();
    assert!(crowd.len() > 48, "only {} connections opened", crowd.len());
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_lines(&log, "accept failed") == 0 {
        assert!(Instant::now() < deadline, "no accept failure logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The accept loop retries every 50 ms: a second of failures is one line, not twenty.
    std::thread::sleep(Duration::from_secs(1));
    let failures = count_lines(&log, "accept failed");
    assert_eq!(failures, 1, "{}", std::fs::read_to_string(&log).unwrap());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("Too many open files"),
        "the cause is named"
    );
    // The accept loop backs off instead of spinning: the next report, once the 10 s
    // interval is over, counts the failures held back meanwhile, about one per 50 ms
    // (a loop retrying at once would count thousands).
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_lines(&log, "accept failed") < 2 {
        assert!(Instant::now() < deadline, "no second report after 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let second = text.lines().filter(|l| l.contains("accept failed")).nth(1);
    let held_back: u64 = second
        .and_then(|l| l.split(" (and ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of held-back failures in {second:?}"));
    assert!(
        (1..=400).contains(&held_back),
        "{held_back} failed accepts in one 10 s interval: {text}"
    );
    // Descriptors back: the server serves again.
    drop(crowd);
    let mut fresh = admitted(server.port);
    assert!(echoes(&mut fresh));
}

/// Peers that send a request with a large reply, half-close and never read leave the
/// server output it cannot deliver: those sockets count against the limit while the server
/// tries, and are dropped after a bounded linger, not kept for as long as the peer stays.
#[test]
fn closing_connections_that_never_read_count_and_are_dropped() {
    use std::io::Write;
    let server = Server::start(&["--max-connections", "2"]);
    drop(admitted(server.port));
    // 5 MiB: more than the kernel buffers (up to ~3 MiB of payload in the server's send
    // buffer at tcp_wmem's 4 MiB, a 4 KiB window at the peer), and less than that plus the
    // server's 4 MiB backlog at which it stops reading (and would not see the half-close).
    let echo = Request::Echo {
        data: vec![b'x'; 5 << 20].into(),
    }
    .to_bytes();
    let mut silent = Vec::new();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
        socket.connect(&addr.into()).unwrap();
        let mut conn: TcpStream = socket.into();
        conn.write_all(&echo).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        silent.push(conn);
    }
    std::thread::sleep(Duration::from_millis(300));
    // Both still hold their sockets, with replies unread: no room for a third.
    let mut third = Conn::new(server.port);
    assert!(!echoes(&mut third), "a third connection was admitted");
    // Within the linger (10 s) and a margin, they are dropped and room frees.
    let started = Instant::now();
    drop(admitted_within(server.port, Duration::from_secs(20)));
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "room freed at once: were the silent peers admitted?"
    );
    drop(silent);
}

/// A connection admitted within `within`, retried every 50 ms.
fn admitted_within(port: u16, within: Duration) -> Conn {
    let deadline = Instant::now() + within;
    loop {
        let mut conn = Conn::new(port);
        if echoes(&mut conn) {
            return conn;
        }
        assert!(
            Instant::now() < deadline,
            "no connection admitted within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
