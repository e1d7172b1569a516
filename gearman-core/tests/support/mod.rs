//! In-memory harness for the server machine: a virtual clock, scripted peers speaking raw
//! packets, and seeded random re-chunking of every byte stream (TCP has no boundaries).
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use gearman_core::proto::Packet;
use gearman_core::proto::{FrameDecoder, Request, Response};
use gearman_core::server::{ConnId, PeerInfo, Server, ServerConfig, ServerEvent};
use gearman_core::Limits;
use std::time::{Duration, Instant};

pub struct Net {
    pub server: Server,
    pub now: Instant,
    pub start: Instant,
    rng: u64,
    pub events: Vec<ServerEvent>,
    next_fd: u64,
}

/// Unix time at the harness's start instant.
pub const UNIX_START: i64 = 1_700_000_000;

impl Net {
    pub fn new(seed: u64) -> Net {
        Net::with_config(seed, |_| {})
    }

    pub fn with_config(seed: u64, tweak: impl FnOnce(&mut ServerConfig)) -> Net {
        let start = Instant::now();
        let mut config = ServerConfig::new(start, UNIX_START);
        config.handle_prefix = "H:test".into();
        tweak(&mut config);
        Net {
            server: Server::new(config, start),
            now: start,
            start,
            rng: seed | 1,
            events: Vec::new(),
            next_fd: 10,
        }
    }

    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    pub fn connect(&mut self) -> ConnId {
        self.connect_from("127.0.0.1")
    }

    /// A connection whose peer address is `ip` (any text, as an adapter reports it).
    pub fn connect_from(&mut self, ip: &str) -> ConnId {
        self.next_fd += 1;
        self.server.accept(
            PeerInfo {
                fd: self.next_fd,
                ip: ip.into(),
            },
            self.now,
        )
    }

    /// Feeds `bytes` in random-sized pieces.
    pub fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = 1 + (self.next_rand() as usize % rest.len().min(17));
            let (piece, tail) = rest.split_at(n.min(rest.len()));
            self.server.handle_input(conn, piece, self.now);
            rest = tail;
        }
        self.collect_events();
        self.check();
    }

    pub fn send(&mut self, conn: ConnId, req: Request) {
        let bytes = req.to_bytes();
        self.send_raw(conn, &bytes);
    }

    pub fn admin(&mut self, conn: ConnId, line: &str) -> String {
        self.send_raw(conn, line.as_bytes());
        String::from_utf8_lossy(&self.raw(conn)).into_owned()
    }

    pub fn eof(&mut self, conn: ConnId) {
        self.server.handle_eof(conn, self.now);
        self.collect_events();
        self.check();
    }

    /// Everything `conn` is sent, handling requests held back while its output was large
    /// as an adapter does: once the output is transmitted.
    pub fn raw(&mut self, conn: ConnId) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            while self.server.poll_transmit(conn, &mut out) > 0 {}
            if !self.server.input_held(conn) {
                break;
            }
            self.server.handle_input(conn, &[], self.now);
        }
        self.collect_events();
        self.check();
        out
    }

    /// Every packet queued for `conn`, decoded.
    pub fn recv(&mut self, conn: ConnId) -> Vec<Response> {
        let mut buf = BytesMut::from(&self.raw(conn)[..]);
        let mut dec = FrameDecoder::new(Limits::default());
        let mut out = Vec::new();
        while let Some(frame) = dec.decode(&mut buf).expect("server sent a malformed frame") {
            out.push(Response::parse(&frame).expect("server sent an unparsable packet"));
        }
        assert!(buf.is_empty(), "server sent a partial frame");
        out
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        while self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        self.collect_events();
        self.check();
    }

    pub fn collect_events(&mut self) {
        while let Some(e) = self.server.poll_event() {
            self.events.push(e);
        }
    }

    pub fn check(&self) {
        if let Err(e) = self.server.check_invariants() {
            panic!("invariant violated: {e}");
        }
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}
