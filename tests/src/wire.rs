//! A raw protocol connection for tests: send requests or raw bytes, read replies with
//! timeouts so no test can hang; over TCP or a Unix socket, plaintext or TLS.

use bytes::Bytes;
use gearman_core::proto::{FrameDecoder, Packet, Request, Response, SubmitJob, SubmitMode};
use gearman_core::Limits;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A socket a [`Conn`] runs over: TCP or a Unix stream.
pub trait WireStream: Read + Write {
    /// Sets the read timeout (both std sockets have one).
    fn set_read_timeout(&self, wait: Option<Duration>) -> std::io::Result<()>;
}

impl WireStream for TcpStream {
    fn set_read_timeout(&self, wait: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, wait)
    }
}

#[cfg(unix)]
impl WireStream for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, wait: Option<Duration>) -> std::io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, wait)
    }
}

/// A raw protocol connection with read timeouts, so no test can hang; plaintext or TLS,
/// over TCP (the default) or a Unix socket ([`Conn::unix`]).
pub struct Conn<S: WireStream = TcpStream> {
    /// The socket (public for raw reads, timeouts and shutdowns; under TLS, raw reads and
    /// writes here bypass the encryption).
    pub stream: S,
    /// The TLS session when connected with [`Conn::tls`].
    tls: Option<gearman_tls::rustls::ClientConnection>,
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
        Conn::over(stream)
    }

    /// Connects to 127.0.0.1:`port` over TLS and completes the handshake, verifying the
    /// server as `server_name`; the error is the handshake's (a refused certificate...).
    /// Under TLS 1.3 a server's refusal of the client certificate arrives after the
    /// handshake: it shows at the first read.
    pub fn tls(
        port: u16,
        tls: &gearman_tls::ClientTls,
        server_name: &str,
    ) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Conn::tls_over(stream, tls, server_name)
    }
}

#[cfg(unix)]
impl Conn<std::os::unix::net::UnixStream> {
    /// Connects to the Unix socket at `path` (panics if it cannot).
    pub fn unix(path: &std::path::Path) -> Self {
        let stream = std::os::unix::net::UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
        Conn::over(stream)
    }
}

impl<S: WireStream> Conn<S> {
    /// Wraps a connected socket of any kind (read timeout 5 s).
    pub fn over(stream: S) -> Conn<S> {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Conn {
            stream,
            tls: None,
            buf: bytes::BytesMut::new(),
            decoder: FrameDecoder::new(Limits::default()),
        }
    }

    /// Runs a TLS handshake over a connected socket, verifying the server as
    /// `server_name` (see [`Conn::tls`]).
    pub fn tls_over(
        stream: S,
        tls: &gearman_tls::ClientTls,
        server_name: &str,
    ) -> std::io::Result<Conn<S>> {
        let name = tls
            .server_name(server_name)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let session = gearman_tls::rustls::ClientConnection::new(tls.config(), name)
            .map_err(std::io::Error::other)?;
        let mut conn = Conn::over(stream);
        conn.tls = Some(session);
        if let Some(session) = conn.tls.as_mut() {
            while session.is_handshaking() {
                session.complete_io(&mut conn.stream)?;
            }
        }
        Ok(conn)
    }

    fn write_io(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.tls.as_mut() {
            Some(session) => {
                let mut io = gearman_tls::rustls::Stream::new(session, &mut self.stream);
                io.write_all(bytes)?;
                io.flush()
            }
            None => self.stream.write_all(bytes),
        }
    }

    fn read_io(&mut self, chunk: &mut [u8]) -> std::io::Result<usize> {
        match self.tls.as_mut() {
            Some(session) => {
                gearman_tls::rustls::Stream::new(session, &mut self.stream).read(chunk)
            }
            None => self.stream.read(chunk),
        }
    }

    /// Sends one request packet.
    pub fn send(&mut self, req: Request) {
        self.write_io(&req.to_bytes()).unwrap();
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
        self.write_io(bytes).unwrap();
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
            match self.read_io(&mut chunk) {
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
        self.write_io(line.as_bytes()).unwrap();
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
            match self.read_io(&mut chunk) {
                Ok(0) => return text,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read: {e} after {text:?}"),
            }
        }
    }

    /// Sends ECHO_REQ and checks the reply: the connection is usable end to end.
    pub fn echo_ok(&mut self) {
        self.send(Request::Echo { data: "hi".into() });
        assert_eq!(self.recv(), Response::EchoRes { data: "hi".into() });
    }
}

/// One foreground job end to end: `worker` registers `function` and grabs, `client`
/// submits `payload` and gets the worker's `done`.
pub fn run_job<S: WireStream>(client: &mut Conn<S>, worker: &mut Conn<S>, function: &str) {
    use gearman_core::proto::{GrabMode, Priority, WorkPayload};
    worker.send(Request::CanDo {
        function: function.to_string().into(),
    });
    client.send(Request::Submit(SubmitJob {
        function: function.to_string().into(),
        unique: "".into(),
        mode: SubmitMode::Foreground(Priority::Normal),
        data: "payload".into(),
    }));
    let handle = match client.recv() {
        Response::JobCreated { handle } => handle,
        other => panic!("expected JOB_CREATED, got {other:?}"),
    };
    worker.send(Request::GrabJob(GrabMode::Plain));
    let assigned = match worker.recv() {
        Response::JobAssign(a) => a,
        other => panic!("expected JOB_ASSIGN, got {other:?}"),
    };
    assert_eq!(assigned.data, "payload");
    worker.send(Request::WorkComplete(WorkPayload {
        handle: assigned.handle,
        data: "done".into(),
    }));
    assert_eq!(
        client.recv(),
        Response::WorkComplete(WorkPayload {
            handle,
            data: "done".into()
        })
    );
}
