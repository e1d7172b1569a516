//! A raw protocol connection that reports every failure as an error (never panics): the
//! probe, the fault injectors and the admin checks talk to the server through it.

use bytes::{Bytes, BytesMut};
use gearman_core::proto::{FrameDecoder, Packet, Request, Response, SubmitJob, SubmitMode};
use gearman_core::Limits;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One connection to the server.
pub struct RawConn {
    /// The socket (public for the faults that abuse it).
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no reply in time")
}

impl RawConn {
    /// Connects within `wait`.
    pub fn connect(addr: SocketAddr, wait: Duration) -> io::Result<RawConn> {
        let stream = TcpStream::connect_timeout(&addr, wait)?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(Limits::default()),
        })
    }

    /// Sends one request.
    pub fn send(&mut self, req: &Request) -> io::Result<()> {
        self.stream.write_all(&req.to_bytes())
    }

    /// The next packet within `wait`; `UnexpectedEof` when the server closed.
    pub fn recv(&mut self, wait: Duration) -> io::Result<Response> {
        let deadline = Instant::now() + wait;
        loop {
            let decoded = self
                .decoder
                .decode(&mut self.buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if let Some(frame) = decoded {
                return Response::parse(&frame)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            }
            self.fill(deadline)?;
        }
    }

    /// Reads more bytes into the buffer before `deadline`.
    fn fill(&mut self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out()),
            Err(e) => Err(e),
        }
    }

    /// ECHO_REQ round trip.
    pub fn echo(&mut self, data: &'static [u8], wait: Duration) -> io::Result<()> {
        self.send(&Request::Echo {
            data: Bytes::from_static(data),
        })?;
        match self.recv(wait)? {
            Response::EchoRes { data: back } if back == data => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Submits a job; returns the JOB_CREATED handle, or the server's ERROR as an error.
    pub fn submit(
        &mut self,
        function: &'static str,
        unique: &str,
        mode: SubmitMode,
        data: Bytes,
        wait: Duration,
    ) -> io::Result<Bytes> {
        self.send(&Request::Submit(SubmitJob {
            function: function.into(),
            unique: Bytes::copy_from_slice(unique.as_bytes()),
            mode,
            data,
        }))?;
        match self.recv(wait)? {
            Response::JobCreated { handle } => Ok(handle),
            other => Err(unexpected(&other)),
        }
    }

    /// Waits for the WORK_COMPLETE of a foreground job, skipping progress packets.
    pub fn complete(&mut self, wait: Duration) -> io::Result<Bytes> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Response::WorkComplete(p) => return Ok(p.data),
                Response::WorkData(_) | Response::WorkStatus(_) | Response::WorkWarning(_) => {}
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// An admin command; returns the text up to the closing `.` line (or a single OK/ERR line).
    pub fn admin(&mut self, line: &str, wait: Duration) -> io::Result<String> {
        self.stream.write_all(line.as_bytes())?;
        self.stream.write_all(b"\n")?;
        let deadline = Instant::now() + wait;
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            let single =
                (text.starts_with("OK") || text.starts_with("ERR")) && text.ends_with('\n');
            if text == ".\n" || text.ends_with("\n.\n") || single {
                self.buf.clear();
                return Ok(text);
            }
            self.fill(deadline)?;
        }
    }

    /// Waits until the server closes the connection (or sends anything at all, which is
    /// returned): how a refused packet is detected.
    pub fn closed_or_answered(&mut self, wait: Duration) -> io::Result<()> {
        match self.fill(Instant::now() + wait) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(e),
            Err(_) => Ok(()), // EOF or reset: closed.
        }
    }

    /// Closes with SO_LINGER 0, so the server sees a reset instead of a FIN.
    pub fn reset(self) {
        crate::sys::linger_zero(&self.stream);
    }
}

fn unexpected(reply: &Response) -> io::Error {
    io::Error::other(format!("unexpected reply {reply:?}"))
}

/// The `status` lines for functions whose name starts with `prefix`: name, total, running,
/// available workers.
pub fn parse_status(text: &str, prefix: &str) -> Vec<(String, u64, u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 4 || !cols[0].starts_with(prefix) {
                return None;
            }
            Some((
                cols[0].to_string(),
                cols[1].parse().ok()?,
                cols[2].parse().ok()?,
                cols[3].parse().ok()?,
            ))
        })
        .collect()
}
