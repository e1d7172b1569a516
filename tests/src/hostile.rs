//! Bad input over real sockets, as scenarios run against any server (gearmand-rs in
//! `server/tests/hostile_input.rs`, the C gearmand in `tests/tests/interop_gearmand.rs`):
//! after each, the offending connection is answered or closed and another connection is
//! still served.

use crate::{Conn, ServerProcess};
use gearman_core::proto::{Request, Response, WorkPayload};
use std::io::{Read, Write};
use std::time::Duration;

/// Another connection still gets an ECHO answered.
pub fn still_serves(server: &ServerProcess) {
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
pub fn closed(conn: &mut Conn) -> bool {
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

/// Bytes with a bad magic close that connection only.
pub fn garbage_bytes_close_that_connection_only(server: &ServerProcess) {
    let mut bad = server.conn();
    bad.send_raw(b"\0GARBAGE\x01\x02\x03\x04\x05\x06\x07\x08");
    assert!(closed(&mut bad));
    still_serves(server);
}

/// An unknown text command gets gearmand's ERR line; the connection stays usable.
pub fn text_garbage_gets_an_err_line(server: &ServerProcess) {
    let mut c = server.conn();
    assert_eq!(
        c.admin("hello there\r\n"),
        "ERR UNKNOWN_COMMAND Unknown+server+commandhello\r\n"
    );
    still_serves(server);
}

/// A packet type beyond the known range closes that connection.
pub fn unknown_packet_type_closes(server: &ServerProcess) {
    let mut bad = server.conn();
    bad.send_raw(b"\0REQ\0\0\0\x63\0\0\0\0");
    assert!(closed(&mut bad));
    still_serves(server);
}

/// The header of a 4 GiB packet blocks no one else. (gearmand-rs also closes that
/// connection at once; gearmand 1.1.20 keeps it waiting for the body, so that part is
/// checked only in `server/tests/hostile_input.rs`.)
pub fn four_gib_length_header_blocks_nobody(server: &ServerProcess) -> Conn {
    let mut bad = server.conn();
    bad.send_raw(b"\0REQ\0\0\0\x10\xff\xff\xff\xff");
    still_serves(server);
    bad
}

/// A half-sent packet followed by silence blocks no one, and can still be finished.
pub fn half_sent_packet_then_silence_blocks_nobody(server: &ServerProcess) {
    let mut half = server.conn();
    half.send_raw(b"\0REQ\0\0\0\x10\0\0\0\x20only part of it");
    half.stream.flush().unwrap();
    still_serves(server);
    // The silent peer's connection stays open and can still finish its packet.
    half.send_raw(&[b'.'; 17]);
    assert_eq!(
        half.recv(),
        Response::EchoRes {
            data: "only part of it.................".into()
        }
    );
}

/// WORK_COMPLETE for a handle nobody holds gets an ERROR; that connection carries on.
pub fn work_complete_for_unknown_handle_gets_an_error(server: &ServerProcess) {
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
    still_serves(server);
}
