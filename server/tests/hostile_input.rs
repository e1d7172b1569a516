//! Bad input over real sockets against gearmand-rs: the scenarios of
//! `gearman_tests::hostile` (also run against the C gearmand), plus our --max-packet-size.

mod common;

use common::Server;
use gearman_core::proto::{Request, Response};
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
