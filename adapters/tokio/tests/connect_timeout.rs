//! A call's timeout covers connecting to its server: a host that drops SYNs (here, a
//! listener whose backlog is full) must not hold a call for the kernel's connect timeout.

use std::net::{TcpListener, TcpStream};
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
async fn a_connect_that_hangs_ends_with_the_calls_timeout() {
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
