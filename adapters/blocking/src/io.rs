//! The loop that moves bytes between a `TcpStream` and a core machine (str0m's loop: drain
//! output and events; read with a timeout that ends at the machine's next deadline).

use gearman_core::machine::Machine;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Connects to `addr` (`host:port`), without Nagle: requests are small and latency-bound.
pub(crate) fn connect(addr: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(stream)
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
