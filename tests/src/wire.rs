//! A raw protocol connection for tests: send requests or raw bytes, read replies with
//! timeouts so no test can hang.

use bytes::Bytes;
use gearman_core::proto::{FrameDecoder, Request, Response, SubmitJob, SubmitMode};
use gearman_core::Limits;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A raw protocol connection with read timeouts, so no test can hang.
pub struct Conn {
    /// The socket (public for raw reads, timeouts and shutdowns).
    pub stream: TcpStream,
    buf: bytes::BytesMut,
    decoder: FrameDecoder,
}

impl Conn {
    /// Connects to 127.0.0.1:`port` (panics if it cannot).
    pub fn new(port: u16) -> Conn {
        Conn::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    /// Wraps a connected socket (e.g. one reached over IPv6).
    pub fn from_stream(stream: TcpStream) -> Conn {
        // Requests that get no reply (WORK_COMPLETE) followed by one that does (GRAB_JOB)
        // would otherwise wait out Nagle against the server's delayed ACK: ~40 ms each.
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Conn {
            stream,
            buf: bytes::BytesMut::new(),
            decoder: FrameDecoder::new(Limits::default()),
        }
    }

    /// Sends one request packet.
    pub fn send(&mut self, req: Request) {
        self.stream.write_all(&req.to_bytes()).unwrap();
    }

    /// Submits a job with an empty unique and data `x`; returns the handle of its
    /// JOB_CREATED (panics on any other reply).
    pub fn submit(&mut self, function: &'static str, mode: SubmitMode) -> Bytes {
        self.send(Request::Submit(SubmitJob {
            function: function.into(),
            unique: "".into(),
            mode,
            data: "x".into(),
        }));
        match self.recv() {
            Response::JobCreated { handle } => handle,
            other => panic!("expected JOB_CREATED, got {other:?}"),
        }
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next packet, or `None` if nothing arrives within `wait`.
    pub fn recv_within(&mut self, wait: Duration) -> Option<Response> {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let deadline = Instant::now() + wait;
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).expect("valid frame") {
                return Some(Response::parse(&frame).expect("valid packet"));
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                // Reset or aborted: the server went away, so nothing will arrive.
                Err(_) => return None,
            }
        }
    }

    /// The next packet; panics if none arrives within 5 s.
    pub fn recv(&mut self) -> Response {
        self.recv_within(Duration::from_secs(5))
            .expect("a reply within 5 s")
    }

    /// Reads text until a line equal to `.` or a single OK/ERR line.
    pub fn admin(&mut self, line: &str) -> String {
        self.stream.write_all(line.as_bytes()).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            let done = text.ends_with("\n.\n")
                || text == ".\n"
                || ((text.starts_with("OK") || text.starts_with("ERR")) && text.ends_with('\n'));
            if done {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "admin reply incomplete: {text:?}"
            );
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return text,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read: {e} after {text:?}"),
            }
        }
    }
}
