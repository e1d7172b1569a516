//! Entry points for the fuzz targets. Private: enabled by the `__fuzz` feature, not a stable
//! API. Each function panics only when a property it checks is broken.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use crate::client::{ClientConfig, ClientConnection};
use crate::machine::Machine;
use crate::proto::admin::AdminCommand;
use crate::proto::{FrameDecoder, Request, Response};
use crate::server::{PeerInfo, Server, ServerConfig};
use crate::worker::{WorkerConfig, WorkerConnection};
use crate::Limits;
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

fn small_limits() -> Limits {
    Limits {
        max_body: 4096,
        max_admin_line: 256,
        ..Limits::default()
    }
}

/// Bytes -> frames: never panics, consumes nothing it cannot use, errors stick, and every
/// packet that parses re-encodes to bytes that parse to the same value.
pub fn frame_decode(data: &[u8]) {
    let mut dec = FrameDecoder::new(small_limits());
    let mut buf = BytesMut::from(data);
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(frame)) => {
                if let Ok(r) = Request::parse(&frame) {
                    reparse_request(&r);
                }
                if let Ok(r) = Response::parse(&frame) {
                    reparse_response(&r);
                }
            }
            Ok(None) => {
                assert!(dec.needed(&buf) > 0 || buf.len() >= 12);
                return;
            }
            Err(e) => {
                assert_eq!(dec.decode(&mut buf), Err(e), "errors must be sticky");
                return;
            }
        }
    }
}

fn one_frame(bytes: &[u8]) -> crate::proto::Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameDecoder::new(Limits::default())
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    frame
}

fn reparse_request(r: &Request) {
    let bytes = r.to_bytes();
    assert_eq!(bytes.len(), r.encoded_len());
    assert_eq!(&Request::parse(&one_frame(&bytes)).unwrap(), r);
}

fn reparse_response(r: &Response) {
    let bytes = r.to_bytes();
    assert_eq!(bytes.len(), r.encoded_len());
    assert_eq!(&Response::parse(&one_frame(&bytes)).unwrap(), r);
}

/// A stream of well-formed requests cut at arbitrary points decodes to the same packets.
pub fn chunked_decode(data: &[u8], cuts: &[u16]) {
    let mut dec = FrameDecoder::new(Limits::default());
    let mut whole = BytesMut::from(data);
    let mut requests = Vec::new();
    while let Ok(Some(f)) = dec.decode(&mut whole) {
        if let Ok(r) = Request::parse(&f) {
            requests.push(r);
        }
    }
    let mut stream = Vec::new();
    for r in &requests {
        r.encode(&mut stream);
    }
    let mut dec = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut pos = 0;
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (stream.len() + 1))
        .collect();
    points.push(stream.len());
    points.sort_unstable();
    for p in points {
        buf.extend_from_slice(&stream[pos..p]);
        pos = p;
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            got.push(Request::parse(&f).unwrap());
        }
    }
    assert_eq!(got, requests);
}

/// Admin lines: never panic; a parsed command parses the same way again with CRLF.
pub fn admin_line(data: &[u8]) {
    let line = &data[..data.len().min(1024)];
    if let Ok(cmd) = AdminCommand::parse(line) {
        let mut crlf = line
            .strip_suffix(b"\n")
            .unwrap_or(line)
            .strip_suffix(b"\r")
            .unwrap_or(line)
            .to_vec();
        if !crlf.contains(&b'\n') {
            crlf.extend_from_slice(b"\r\n");
            assert_eq!(AdminCommand::parse(&crlf), Ok(cmd));
        }
    }
}

/// Arbitrary operations on the server from up to four connections: bytes, EOFs, clock
/// ticks and store acknowledgements. Invariants are checked after every step.
pub fn server_ops(data: &[u8]) {
    let start = Instant::now();
    let mut config = ServerConfig::new(start, 1_700_000_000);
    config.limits = small_limits();
    config.max_output_bytes = 1 << 16;
    config.persist_background = data.first().is_some_and(|b| b & 1 == 1);
    config.job_retries = data.get(1).map(|b| u32::from(b % 4)).filter(|&n| n < 3);
    let mut server = Server::new(config, start);
    let mut now = start;
    let mut conns: Vec<_> = (0..4)
        .map(|i| {
            server.accept(
                PeerInfo {
                    fd: i,
                    ip: "127.0.0.1".into(),
                },
                now,
            )
        })
        .collect();
    let mut pending = Vec::new();
    let mut rest = data.get(2..).unwrap_or_default();
    let mut out = Vec::new();
    while let Some((&op, tail)) = rest.split_first() {
        let slot = usize::from(op >> 6);
        match op & 0x3f {
            0..=47 => {
                let len = usize::from(op & 0x3f).min(tail.len());
                server.handle_input(conns[slot], &tail[..len], now);
                rest = &tail[len..];
            }
            48..=51 => {
                server.handle_eof(conns[slot], now);
                conns[slot] = server.accept(
                    PeerInfo {
                        fd: 9,
                        ip: "::1".into(),
                    },
                    now,
                );
                rest = tail;
            }
            52..=59 => {
                now += Duration::from_millis(u64::from(op & 7) * 400);
                if server.poll_timeout().is_some_and(|t| t <= now) {
                    server.handle_timeout(now);
                }
                rest = tail;
            }
            _ => {
                if let Some(id) = pending.pop() {
                    let result = if op & 1 == 0 {
                        Ok(())
                    } else {
                        Err("store failed".into())
                    };
                    server.persisted(id, result, now);
                }
                rest = tail;
            }
        }
        while let Some(event) = server.poll_event() {
            match event {
                crate::server::ServerEvent::Persist(r) => pending.push(r.durable_id),
                crate::server::ServerEvent::Close { conn, .. } => server.handle_eof(conn, now),
                _ => {}
            }
        }
        while let Some(c) = server.poll_writable() {
            out.clear();
            let _ = server.poll_transmit(c, &mut out);
        }
        if let Err(e) = server.check_invariants() {
            panic!("server invariant broken: {e}");
        }
        assert!(server
            .poll_timeout()
            .is_none_or(|t| t + Duration::from_secs(86_400 * 365 * 300) > now));
    }
}

/// Arbitrary server bytes into a client and a worker with requests outstanding: never
/// panics, and a closed machine stays closed.
pub fn client_worker_input(data: &[u8]) {
    let now = Instant::now();
    let mut client = ClientConnection::new(ClientConfig {
        limits: small_limits(),
        ..ClientConfig::default()
    });
    let job = crate::proto::SubmitJob {
        function: Bytes::from_static(b"f"),
        unique: Bytes::new(),
        mode: crate::proto::SubmitMode::Foreground(crate::proto::Priority::Normal),
        data: Bytes::from_static(b"x"),
    };
    let _ = client.submit(job.clone());
    let _ = client.get_status(Bytes::from_static(b"H:1"));
    let _ = client.echo(Bytes::from_static(b"e"));
    let mut worker = WorkerConnection::new(WorkerConfig {
        limits: small_limits(),
        ..WorkerConfig::default()
    });
    let _ = worker.can_do(Bytes::from_static(b"f"), None);
    let mut out = Vec::new();
    for chunk in data.chunks(7) {
        let _ = client.handle_input(chunk, now);
        let _ = worker.handle_input(chunk, now);
        while client.poll_event().is_some() {}
        while let Some(ev) = worker.poll_event() {
            if let crate::worker::WorkerEvent::JobAssigned(j) = ev {
                let _ = worker.work_complete(&j.handle, Bytes::new());
            }
        }
        let _ = client.poll_transmit(&mut out);
        let _ = worker.poll_transmit(&mut out);
        out.clear();
        let _ = client.submit(job.clone());
    }
    let (c_closed, w_closed) = (client.is_closed(), worker.is_closed());
    let _ = client.handle_input(b"\0RES\0\0\0\x06\0\0\0\0", now);
    let _ = worker.handle_input(b"\0RES\0\0\0\x06\0\0\0\0", now);
    assert!(!c_closed || client.is_closed());
    assert!(!w_closed || worker.is_closed());
    client.handle_eof(now);
    worker.handle_eof(now);
}
