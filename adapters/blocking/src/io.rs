//! The loop that moves bytes between a `TcpStream` and a core machine.

use bytes::Bytes;
use gearman_core::machine::Machine;
use gearman_core::ConnError;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use std::{fmt, io};

/// Why a blocking call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No server could be reached.
    NoServer(io::Error),
    /// The connection died.
    Connection(ConnError),
    /// The request was refused before sending.
    Usage(gearman_core::UsageError),
    /// The server answered with ERROR.
    Server(Bytes, Bytes),
    /// WORK_FAIL.
    JobFailed,
    /// WORK_EXCEPTION.
    JobException(Bytes),
    /// The call's timeout passed.
    TimedOut,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoServer(e) => write!(f, "no job server reachable: {e}"),
            Error::Connection(e) => write!(f, "connection lost: {e}"),
            Error::Usage(e) => write!(f, "invalid request: {e}"),
            Error::Server(c, t) => write!(
                f,
                "server error {}: {}",
                String::from_utf8_lossy(c),
                String::from_utf8_lossy(t)
            ),
            Error::JobFailed => f.write_str("job failed"),
            Error::JobException(d) => write!(f, "job exception: {}", String::from_utf8_lossy(d)),
            Error::TimedOut => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for Error {}

/// Connects to the first reachable server.
pub(crate) fn connect(servers: &[String]) -> Result<TcpStream, Error> {
    let mut last = io::Error::new(ErrorKind::NotFound, "no server configured");
    for addr in servers {
        match TcpStream::connect(addr.as_str()) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(Error::NoServer(last))
}

/// Writes everything `m` wants to send.
pub(crate) fn flush<M: Machine>(m: &mut M, stream: &mut TcpStream, out: &mut Vec<u8>) {
    while m.poll_transmit(out) > 0 {}
    if !out.is_empty() {
        if stream.write_all(out).is_err() {
            m.handle_eof(Instant::now());
        }
        out.clear();
    }
}

/// One wait: reads until input, the machine's deadline, or `tick` (so callers can look at
/// a stop flag). Runs due timers.
pub(crate) fn wait<M: Machine>(m: &mut M, stream: &mut TcpStream, buf: &mut [u8], tick: Duration) {
    let now = Instant::now();
    let until = m.poll_timeout().map_or(now + tick, |d| d.min(now + tick));
    let wait = until
        .saturating_duration_since(now)
        .max(Duration::from_millis(1));
    let _ = stream.set_read_timeout(Some(wait));
    match stream.read(buf) {
        Ok(0) => m.handle_eof(Instant::now()),
        Ok(n) => {
            let _ = m.handle_input(buf.get(..n).unwrap_or_default(), Instant::now());
        }
        // Unix reports WouldBlock, Windows TimedOut: both mean the wait ended.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(e) if e.kind() == ErrorKind::Interrupted => {}
        Err(_) => m.handle_eof(Instant::now()),
    }
    m.handle_timeout(Instant::now());
}
