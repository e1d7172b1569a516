//! Bad input over real sockets against gearmand-rs: the scenarios of
//! `gearman_tests::hostile` (also run against the C gearmand), plus our --max-packet-size.

mod common;

use common::Server;
use gearman_core::proto::{Packet, Request, Response};
use gearman_tests::hostile::{self, closed};

#[test]
fn garbage_bytes_close_that_connection_only() {
    hostile::garbage_bytes_close_that_connection_only(&Server::start(&[]));
}

#[test]
fn text_garbage_gets_an_err_line() {
    hostile::text_garbage_gets_an_err_line(&Server::start(&[]));
}

#[test]
fn unknown_packet_type_closes() {
    hostile::unknown_packet_type_closes(&Server::start(&[]));
}

#[test]
fn four_gib_length_header_is_refused_before_any_body() {
    let server = Server::start(&[]);
    let mut bad = hostile::four_gib_length_header_blocks_nobody(&server);
    // Deliberately stricter than gearmand 1.1.20, which waits for the 4 GiB body.
    assert!(closed(&mut bad));
    hostile::still_serves(&server);
}

#[test]
fn half_sent_packet_then_silence_blocks_nobody() {
    hostile::half_sent_packet_then_silence_blocks_nobody(&Server::start(&[]));
}

#[test]
fn work_complete_for_unknown_handle_gets_an_error() {
    hostile::work_complete_for_unknown_handle_gets_an_error(&Server::start(&[]));
}

#[test]
fn oversize_packet_limit_is_configurable() {
    let server = Server::start(&["--max-packet-size", "1024"]);
    let mut bad = server.conn();
    bad.send(Request::Echo {
        data: vec![b'x'; 2000].into(),
    });
    // Told why, then closed.
    match bad.recv() {
        Response::Error { code, text } => {
            assert_eq!(&code[..], b"PACKET_TOO_LARGE");
            let text = String::from_utf8_lossy(&text);
            assert!(text.contains("exceeds the limit of 1024"), "{text:?}");
        }
        other => panic!("expected an ERROR, got {other:?}"),
    }
    assert!(closed(&mut bad));
    let mut ok = server.conn();
    ok.send(Request::Echo {
        data: vec![b'y'; 1000].into(),
    });
    assert_eq!(
        ok.recv(),
        Response::EchoRes {
            data: vec![b'y'; 1000].into()
        }
    );
}

/// `echo status | nc -N host 4730`: the request and the end of the client's stream arrive
/// together, and the reply must still go out before the connection closes.
#[test]
fn requests_sent_with_a_half_close_are_answered() {
    use std::io::{Read, Write};
    let server = Server::start(&[]);
    for request in [&b"version\n"[..], &b"status\n"[..]] {
        let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        conn.write_all(request).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).unwrap();
        assert!(
            !reply.is_empty(),
            "no reply to {:?}",
            String::from_utf8_lossy(request)
        );
    }
}

/// Many small requests with large replies (`status` over thousands of long function
/// names), sent at once by a peer that reads only after it has sent everything and closed
/// its side: every reply arrives, in full. The server handles the requests as their
/// replies go out instead of queueing all of them (40 MB here, past the output bound,
/// which would close the connection; by default that bound is 128 MiB per connection).
#[test]
fn many_requests_with_large_replies_are_answered_as_they_are_read() {
    use std::io::{Read, Write};
    // The output bound is then its floor, 16 MiB.
    let server = Server::start(&["--max-packet-size", "1048576"]);
    let mut worker = std::net::TcpStream::connect(server.addr()).unwrap();
    let functions = 2000;
    let can_do: Vec<u8> = (0..functions)
        .flat_map(|i| {
            Request::CanDo {
                function: format!("{i:04}{}", "f".repeat(996)).into(),
            }
            .to_bytes()
        })
        .collect();
    worker.write_all(&can_do).unwrap();
    let mut client = std::net::TcpStream::connect(server.addr()).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    // Every function is registered before the burst (the reply lists them all).
    let registered = |client: &mut std::net::TcpStream| {
        client.write_all(b"status\n").unwrap();
        let mut reply = Vec::new();
        let mut chunk = [0u8; 65536];
        while !reply.ends_with(b"\n.\n") {
            let n = client.read(&mut chunk).unwrap();
            assert!(n > 0, "closed");
            reply.extend_from_slice(&chunk[..n]);
        }
        reply.split(|&b| b == b'\n').count() - 2
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while registered(&mut client) < functions {
        assert!(
            std::time::Instant::now() < deadline,
            "functions not registered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let requests = 20;
    client.write_all(&b"status\n".repeat(requests)).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut replies = Vec::new();
    client.read_to_end(&mut replies).unwrap();
    let ends = replies
        .split(|&b| b == b'\n')
        .filter(|line| line == b".")
        .count();
    assert_eq!(ends, requests, "{} bytes of replies", replies.len());
    drop(worker);
}
