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
