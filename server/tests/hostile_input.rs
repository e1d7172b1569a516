//! Bad input over real sockets: after each, the offending connection is answered or closed
//! and another connection is still served.

mod common;

use common::{Conn, Server};
use gearman_core::proto::{Request, Response, WorkPayload};
use std::io::{Read, Write};
use std::time::Duration;

fn still_serves(server: &Server) {
    let mut c = server.conn();
    c.send(Request::Echo {
        data: "alive".into(),
    });
    assert_eq!(
        c.recv(),
        Response::EchoRes {
            data: "alive".into()
        }
    );
}

/// True once the server has closed `conn` (read returns 0 or reset) within a few seconds.
fn closed(conn: &mut Conn) -> bool {
    conn.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 256];
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn garbage_bytes_close_that_connection_only() {
    let server = Server::start(&[]);
    let mut bad = server.conn();
    bad.send_raw(b"\0GARBAGE\x01\x02\x03\x04\x05\x06\x07\x08");
    assert!(closed(&mut bad));
    still_serves(&server);
}

#[test]
fn text_garbage_gets_an_err_line() {
    let server = Server::start(&[]);
    let mut c = server.conn();
    assert_eq!(
        c.admin("hello there\r\n"),
        "ERR UNKNOWN_COMMAND Unknown+server+commandhello\r\n"
    );
    still_serves(&server);
}

#[test]
fn unknown_packet_type_closes() {
    let server = Server::start(&[]);
    let mut bad = server.conn();
    bad.send_raw(b"\0REQ\0\0\0\x63\0\0\0\0");
    assert!(closed(&mut bad));
    still_serves(&server);
}

#[test]
fn four_gib_length_header_is_refused_before_any_body() {
    let server = Server::start(&[]);
    let mut bad = server.conn();
    bad.send_raw(b"\0REQ\0\0\0\x10\xff\xff\xff\xff");
    assert!(closed(&mut bad));
    still_serves(&server);
}

#[test]
fn half_sent_packet_then_silence_blocks_nobody() {
    let server = Server::start(&[]);
    let mut half = server.conn();
    half.send_raw(b"\0REQ\0\0\0\x10\0\0\0\x20only part of it");
    half.stream.flush().unwrap();
    still_serves(&server);
    // The silent peer's connection stays open and can still finish its packet.
    half.send_raw(&[b'.'; 17]);
    assert_eq!(
        half.recv(),
        Response::EchoRes {
            data: "only part of it.................".into()
        }
    );
}

#[test]
fn work_complete_for_unknown_handle_gets_an_error() {
    let server = Server::start(&[]);
    let mut w = server.conn();
    w.send(Request::WorkComplete(WorkPayload {
        handle: "H:nobody:1".into(),
        data: "x".into(),
    }));
    assert_eq!(
        w.recv(),
        Response::error("JOB_NOT_FOUND", "Job given in work result not found")
    );
    w.send(Request::Echo {
        data: "same conn".into(),
    });
    assert_eq!(
        w.recv(),
        Response::EchoRes {
            data: "same conn".into()
        }
    );
    still_serves(&server);
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
