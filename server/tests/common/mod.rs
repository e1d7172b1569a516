//! Starting `gearmand-rs` on a free 127.0.0.1 port, raw packet sockets, and running peers.
#![allow(dead_code)]

use gearman_core::proto::{FrameDecoder, Request, Response};
use gearman_core::Limits;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    pub child: Child,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_gearmand-rs"))
            .args([
                "-L",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--log-file",
                "none",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start gearmand-rs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "gearmand-rs did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { port, child }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn conn(&self) -> Conn {
        Conn::new(self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw protocol connection with read timeouts, so no test can hang.
pub struct Conn {
    pub stream: TcpStream,
    buf: bytes::BytesMut,
    decoder: FrameDecoder,
}

impl Conn {
    pub fn new(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Conn {
            stream,
            buf: bytes::BytesMut::new(),
            decoder: FrameDecoder::new(Limits::default()),
        }
    }

    pub fn send(&mut self, req: Request) {
        self.stream.write_all(&req.to_bytes()).unwrap();
    }

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

/// Runs a peer program to completion with a time limit; panics (test fails) if the program
/// is missing, so a CI machine without the peer fails loudly instead of skipping.
pub fn run(program: &str, args: &[&str], stdin: &[u8], limit: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("peer {program} is not installed ({e}); run .ci/run to install it")
        });
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{program} {args:?} did not finish in {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts a long-running peer (a worker), killed on drop.
pub struct Peer(pub Child);

impl Peer {
    pub fn spawn(program: &str, args: &[&str]) -> Peer {
        Peer(
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("peer {program} is not installed ({e}); run .ci/run to install it")
                }),
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits until `status` shows at least `n` workers for `function`.
pub fn wait_for_workers(server: &Server, function: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.conn().admin("status\r\n");
        let workers = status
            .lines()
            .find_map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                (cols.first() == Some(&function))
                    .then(|| cols.get(3).and_then(|w| w.parse::<usize>().ok()))
            })
            .flatten()
            .unwrap_or(0);
        if workers >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {function} worker registered: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
