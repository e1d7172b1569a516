//! Scale in connections: 10,000 idle connections are accepted and stay served, and a fresh
//! client's job runs among them. Not timed: memory per connection and speed are measured by
//! `gearman-bench --memory` and the load modes, never here.

mod common;

use common::{Conn, Server};
use gearman_core::proto::{Packet, Request, Response};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::Uid;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const CONNECTIONS: usize = 10_000;
/// Descriptors beyond the idle connections: the test's own files, the job's connections.
const SPARE_FILES: u64 = 200;

/// Raises this process's open-file limit to `wanted` where it is lower (past the hard limit
/// too when running as root, as on CI); returns the limit now in force.
fn allow_open_files(wanted: u64) -> u64 {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < wanted {
        let hard = if Uid::effective().is_root() {
            hard.max(wanted)
        } else {
            hard
        };
        // As root the hard limit may still be capped (fs.nr_open): fall back to it.
        if setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard).is_err() {
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
            let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard);
        }
    }
    getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit").0
}

#[test]
fn ten_thousand_idle_connections_are_accepted_and_all_answered() {
    let wanted = CONNECTIONS as u64 + SPARE_FILES;
    let limit = allow_open_files(wanted);
    assert!(
        limit >= wanted,
        "the open-file limit is {limit}; this test needs {wanted} (run it as root, or raise \
         the hard limit)"
    );
    // The server inherits the raised limit; -f asks for it explicitly as well.
    let server = Server::start(&["-f", &wanted.to_string()]);

    let address = SocketAddr::from(([127, 0, 0, 1], server.port));
    let mut idle = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        // Bounded: a server that stopped accepting leaves connects hanging past its backlog.
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connection {i} of {CONNECTIONS}: {e}"));
        idle.push(stream);
    }

    // A fresh client's job runs while they are all open.
    let mut client = Conn::new(server.port);
    let mut worker = Conn::new(server.port);
    gearman_tests::run_job(&mut client, &mut worker, "among_ten_thousand");

    // Every one of them is still served: an ECHO goes out on each, then each reply is read.
    let echo = Request::Echo {
        data: "still here".into(),
    }
    .to_bytes();
    let expected = Response::EchoRes {
        data: "still here".into(),
    }
    .to_bytes();
    for (i, stream) in idle.iter_mut().enumerate() {
        stream
            .write_all(&echo)
            .unwrap_or_else(|e| panic!("ECHO on connection {i}: {e}"));
    }
    let mut reply = vec![0u8; expected.len()];
    for (i, stream) in idle.iter_mut().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("no ECHO reply on connection {i}: {e}"));
        assert_eq!(reply, &expected[..], "ECHO reply on connection {i}");
    }
    // The server still knows every one of them (its admin `workers` lists a line each).
    let listed = client.admin("workers\n").lines().count();
    assert!(
        listed > CONNECTIONS,
        "admin workers lists {listed} connections, expected over {CONNECTIONS}"
    );
}
