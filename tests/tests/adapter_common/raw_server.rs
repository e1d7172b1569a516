//! A scripted job server for tests that check what a client or worker sends and when:
//! a std `TcpListener` on 127.0.0.1 whose test reads requests and writes replies itself.
//! Every read is bounded, so a peer that never sends fails the test instead of hanging it.

use bytes::BytesMut;
use gearman_core::proto::{FrameDecoder, Packet, Request, Response};
use gearman_core::Limits;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A listening socket nobody answers until the test does.
pub struct RawServer {
    listener: TcpListener,
}

impl RawServer {
    pub fn bind() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        RawServer { listener }
    }

    pub fn addr(&self) -> String {
        self.listener.local_addr().expect("local addr").to_string()
    }

    /// The next connection; panics if none comes within `wait`.
    pub fn accept(&self, wait: Duration) -> RawConn {
        let end = Instant::now() + wait;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => return RawConn::new(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("no connection within {wait:?}: {e}"),
            }
        }
    }
}

/// One accepted connection: requests in, responses out.
pub struct RawConn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl RawConn {
    fn new(stream: TcpStream) -> RawConn {
        stream.set_nonblocking(false).expect("blocking stream");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(Limits::default()),
        }
    }

    /// The next request, or `None` if none arrives within `wait` (or the peer closed).
    pub fn recv_within(&mut self, wait: Duration) -> Option<Request> {
        let end = Instant::now() + wait;
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).expect("valid frame") {
                return Some(Request::parse(&frame).expect("valid request"));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads requests until one matches `want`; panics (naming what came) if none does
    /// within `wait`.
    pub fn expect(
        &mut self,
        wait: Duration,
        what: &str,
        want: impl Fn(&Request) -> bool,
    ) -> Request {
        let end = Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.recv_within(left) {
                Some(req) if want(&req) => return req,
                Some(req) => seen.push(req),
                None => panic!("no {what} within {wait:?}; got {seen:?}"),
            }
        }
    }

    pub fn send(&mut self, res: Response) {
        self.stream.write_all(&res.to_bytes()).expect("write reply");
    }
}
