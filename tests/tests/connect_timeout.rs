//! A call's timeout covers connecting to its server: a host that drops SYNs (here, a
//! listener whose backlog is full) must not hold a call for the kernel's connect timeout
//! (about two minutes on Linux), async or blocking; nor, blocking, a resolver that does
//! not answer or a Unix listener whose backlog is full. Each call is watched for at most 10 s, so a hang fails the test instead of
//! holding it.

use gearman_blocking::{Client, Connector, Error, Job, ServerAddr, StdConnector};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// A listener that never accepts, with its backlog full: connects to it hang in SYN_SENT.
/// Returns its address and what keeps it so.
fn blackhole() -> (String, TcpListener, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let mut held = Vec::new();
    for _ in 0..10_000 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => return (addr.to_string(), listener, held),
        }
    }
    panic!("the backlog never filled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_connect_that_hangs_ends_with_the_calls_timeout() {
    let (addr, _listener, _held) = blackhole();
    let client = gearman_tokio::client().server(addr).build();
    let job = gearman_tokio::Job::new("f", "x").timeout(Duration::from_millis(300));
    let started = Instant::now();
    let submitted = client.submit_background(job);
    let r = tokio::time::timeout(Duration::from_secs(10), submitted).await;
    assert!(
        matches!(r, Ok(Err(gearman_tokio::Error::TimedOut))),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The check connect() makes: within the client's timeout too.
    let (addr, _listener, _held) = blackhole();
    let client = gearman_tokio::client()
        .server(addr)
        .timeout(Duration::from_millis(300))
        .build();
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), client.connect()).await;
    assert!(
        matches!(r, Ok(Err(gearman_tokio::Error::NoServer(_)))),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Runs `call` with `client` on a thread; its result and how long it took, or a panic
/// when it takes more than 10 s.
fn within_10s<T: Send + 'static>(
    mut client: Client,
    call: impl FnOnce(&mut Client) -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let started = Instant::now();
        let r = call(&mut client);
        let _ = tx.send((r, started.elapsed()));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the call still hung after 10 s")
}

/// A blocking call with a 500 ms timeout to `addr` ends with `TimedOut` well before 3 s.
fn assert_a_500ms_call_times_out(addr: String) {
    let client = Client::new([addr]);
    let (r, took) = within_10s(client, |c| {
        let job = Job::new("f", "x").timeout(Duration::from_millis(500));
        c.submit_background(job)
    });
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn blocking_connect_that_hangs_ends_with_the_calls_timeout() {
    let (addr, _listener, _held) = blackhole();
    assert_a_500ms_call_times_out(addr);
}

#[test]
fn blocking_client_timeout_bounds_connect() {
    // The check connect() makes: within the client's timeout too, the server unreachable.
    let (addr, _listener, _held) = blackhole();
    let client = gearman_blocking::client()
        .server(addr)
        .timeout(Duration::from_millis(500))
        .build();
    let (r, took) = within_10s(client, Client::connect);
    assert!(matches!(r, Err(Error::NoServer(_))), "{r:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // And a call with the client's default timeout.
    let (addr, _listener, _held) = blackhole();
    let client = gearman_blocking::client()
        .server(addr)
        .timeout(Duration::from_millis(500))
        .build();
    let (r, took) = within_10s(client, |c| c.echo("x"));
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn blocking_name_resolution_that_hangs_ends_with_the_calls_timeout() {
    // A resolver stuck for 5 s, as getaddrinfo is when the DNS server does not answer.
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&asked);
    let stuck = move |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
        counted.fetch_add(1, Ordering::SeqCst);
        thread::sleep(Duration::from_secs(5));
        Err(io::ErrorKind::NotFound.into())
    };
    let client = gearman_blocking::client()
        .server("gearman.invalid:4730")
        .connector(StdConnector::with_resolver(stuck))
        .build();
    let (r, took) = within_10s(client, |c| {
        let job = Job::new("f", "x").timeout(Duration::from_millis(500));
        c.submit_background(job)
    });
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the resolver was asked");
}

#[test]
fn blocking_connect_by_host_name_within_a_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let deadline = Some(Instant::now() + Duration::from_secs(5));
    // The system resolver, on its thread.
    let localhost = ServerAddr::Tcp {
        host: "localhost".into(),
        port,
    };
    let connected = StdConnector.connect_within(&localhost, deadline);
    assert!(connected.is_ok(), "{:?}", connected.err());
    // A resolver of the program's own.
    let table = move |host: &str, port: u16| match host {
        "gearman.test" => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
        _ => Err(io::ErrorKind::NotFound.into()),
    };
    let by_table = StdConnector::with_resolver(table);
    let named = ServerAddr::Tcp {
        host: "gearman.test".into(),
        port,
    };
    let connected = by_table.connect_within(&named, deadline);
    assert!(connected.is_ok(), "{:?}", connected.err());
    let other = ServerAddr::Tcp {
        host: "elsewhere.test".into(),
        port,
    };
    let refused = by_table.connect_within(&other, deadline).err();
    assert_eq!(refused.map(|e| e.kind()), Some(io::ErrorKind::NotFound));
}

/// A Unix listener that never accepts, with its backlog (0) full: a blocking connect to it
/// waits until it accepts. Returns its address and what keeps it so.
#[cfg(unix)]
fn unix_blackhole(dir: &std::path::Path) -> (String, Vec<socket2::Socket>) {
    use socket2::{Domain, SockAddr, Socket, Type};
    let path = dir.join("full.sock");
    let addr = SockAddr::unix(&path).expect("socket path");
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    listener.bind(&addr).expect("bind");
    listener.listen(0).expect("listen");
    let mut held = vec![listener];
    for _ in 0..100 {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
        s.set_nonblocking(true).expect("nonblocking");
        match s.connect(&addr) {
            Ok(()) => held.push(s),
            // Full: a blocking connect would wait here.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return (format!("unix:{}", path.display()), held);
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    panic!("the backlog never filled");
}

#[cfg(unix)]
#[test]
fn blocking_unix_connect_to_a_full_backlog_ends_with_the_calls_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (addr, _held) = unix_blackhole(dir.path());
    assert_a_500ms_call_times_out(addr);
}
