//! Backpressure over a real socket: a peer that sends without reading its replies is no
//! longer read from (TCP pushes back on it), so the server's memory stays bounded; once the
//! peer reads, every reply arrives intact.

mod common;

use common::Server;
use gearman_core::proto::{Packet, Request, Response};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ECHO_SIZE: usize = 1024 * 1024;
const ECHOES: usize = 128;

fn resident_kib(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

#[test]
fn a_peer_not_reading_its_replies_is_paused_not_buffered() {
    let server = Server::start(&[]);
    let mut conn = server.conn();
    let mut sender = conn.stream.try_clone().unwrap();
    let packet = Request::Echo {
        data: vec![b'e'; ECHO_SIZE].into(),
    }
    .to_bytes();
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_by_thread = sent.clone();
    let writer = std::thread::spawn(move || {
        for _ in 0..ECHOES {
            if sender.write_all(&packet).is_err() {
                return;
            }
            sent_by_thread.fetch_add(1, Ordering::Release);
        }
    });
    // Wait until the sender is stuck: no progress for 600 ms (bounded by 30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = usize::MAX;
    let mut still = 0;
    while still < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = sent.load(Ordering::Acquire);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    let stuck_at = sent.load(Ordering::Acquire);
    assert!(
        stuck_at < ECHOES,
        "the server read all {ECHOES} MiB without the peer reading a reply"
    );
    let rss_mib = resident_kib(server.child.id()) / 1024;
    assert!(
        rss_mib < 48,
        "server holds {rss_mib} MiB after {stuck_at} MiB of unread echoes"
    );
    // Now read: every echo comes back whole, and the sender finishes.
    for i in 0..ECHOES {
        match conn.recv_within(Duration::from_secs(10)) {
            Some(Response::EchoRes { data }) => assert_eq!(data.len(), ECHO_SIZE, "echo {i}"),
            other => panic!("echo {i}: {other:?}"),
        }
    }
    writer.join().unwrap();
    assert_eq!(sent.load(Ordering::Acquire), ECHOES);
}
