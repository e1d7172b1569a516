//! Streamed workloads (PECL's `setWorkloadCallback`): a generator source that is never
//! allocated whole, the worker-side check of what arrived, and the scenarios.
//!
//! Sizes: gearmand 1.1.20 takes any u32 body; gearmand-rs and our worker refuse bodies over
//! `Limits::DEFAULT_MAX_BODY` (64 MiB), and a body is function, unique and NULs as well as
//! the data. So the big workload is 64 MiB less 4 KiB, which both servers and the worker
//! accept.

use super::server::TestServer;
use super::{spec, Adapter, Outcome, Spec};
use gearman_core::client::WORKLOAD_CHUNK;
use gearman_core::proto::Packet;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The big workload: as near 64 MiB as both servers accept.
pub const BIG: u64 = (64 << 20) - 4096;

/// The pattern's period: a prime, so chunk boundaries never line up with it and a
/// dropped, repeated or reordered chunk shows.
const PERIOD: usize = 65_521;

fn pattern() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| (0..PERIOD).map(|i| ((i * 131) ^ (i >> 7)) as u8).collect())
}

/// The worker side (function `verify`): the length and whether every byte is the
/// pattern's, as `"<len> ok"` or `"<len> bad at <offset>"`.
pub fn verify(data: &[u8]) -> bytes::Bytes {
    let table = pattern();
    let bad = data
        .chunks(PERIOD)
        .position(|c| c != &table[..c.len()])
        .map(|i| {
            let c = &data[i * PERIOD..(i * PERIOD + PERIOD).min(data.len())];
            let j = c.iter().zip(table).position(|(a, b)| a != b).unwrap_or(0);
            i * PERIOD + j
        });
    match bad {
        None => format!("{} ok", data.len()).into(),
        Some(at) => format!("{} bad at {at}", data.len()).into(),
    }
}

/// How a generator ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// A read of zero bytes.
    Eof,
    /// A read error.
    Fail,
}

/// A source of pattern bytes, produced as they are read (never allocated whole). It says
/// `declared` bytes, produces `produces` and then ends as `end` says. Usable as a std
/// reader and as a futures-io one.
pub struct Generator {
    pub declared: u64,
    produces: u64,
    end: End,
    pos: u64,
    /// When set: what the server has received; the generator produces nothing more than
    /// `AHEAD` bytes beyond it, so a client that held the workload instead of sending it
    /// would stall (and the generator fail after `PACE_WAIT`).
    paced_by: Option<Arc<AtomicU64>>,
    /// The largest read the client asked for.
    pub largest_read: Arc<AtomicUsize>,
}

/// How far a paced generator may run ahead of what the server has received: the client's
/// one chunk, with room for what sits in socket buffers on the way.
pub const AHEAD: u64 = 8 * WORKLOAD_CHUNK as u64;
const PACE_WAIT: Duration = Duration::from_secs(15);

impl Generator {
    pub fn new(declared: u64, produces: u64, end: End) -> Generator {
        Generator {
            declared,
            produces,
            end,
            pos: 0,
            paced_by: None,
            largest_read: Arc::default(),
        }
    }

    /// Exactly `len` bytes, then the end.
    pub fn exact(len: u64) -> Generator {
        Generator::new(len, len, End::Eof)
    }

    fn pace(&self, upto: u64) -> io::Result<()> {
        let Some(received) = &self.paced_by else {
            return Ok(());
        };
        let end = Instant::now() + PACE_WAIT;
        while received.load(Ordering::SeqCst) + AHEAD < upto {
            if Instant::now() > end {
                let got = received.load(Ordering::SeqCst);
                let msg = format!("asked for byte {upto} while the server had {got}");
                return Err(io::Error::other(msg));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest_read.fetch_max(buf.len(), Ordering::SeqCst);
        if self.pos >= self.produces {
            return match self.end {
                End::Eof => Ok(0),
                End::Fail => Err(io::Error::other("the generator fails on purpose")),
            };
        }
        let n = buf.len().min((self.produces - self.pos) as usize);
        self.pace(self.pos + n as u64)?;
        let table = pattern();
        let mut filled = 0;
        while filled < n {
            let at = ((self.pos + filled as u64) % PERIOD as u64) as usize;
            let take = (PERIOD - at).min(n - filled);
            buf[filled..filled + take].copy_from_slice(&table[at..at + take]);
            filled += take;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl futures::io::AsyncRead for Generator {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().read(buf))
    }
}

fn verify_spec() -> Spec {
    let mut s = spec("verify", "");
    // A stall shows as a timeout, not a hung test.
    s.timeout = Some(Duration::from_secs(120));
    s
}

/// 64 MiB (less 4 KiB) from a generator reach the worker byte for byte; the client never
/// asked the source for more than one chunk at a time.
pub fn streamed_workload_reaches_the_worker_intact<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut c = A::client(&[s.addr()], false);
    let source = Generator::exact(BIG);
    let largest = source.largest_read.clone();
    let (_, outcome) = A::run_streamed(&mut c, verify_spec(), source);
    assert_eq!(outcome, Outcome::Ok(format!("{BIG} ok").into_bytes()));
    let largest = largest.load(Ordering::SeqCst);
    assert!(
        largest <= WORKLOAD_CHUNK,
        "asked for {largest} bytes at once"
    );
    // The connection carries ordinary jobs afterwards.
    let (_, next) = A::run(&mut c, spec("reverse", "abc"));
    assert_eq!(next, Outcome::Ok(b"cba".to_vec()));
    A::stop(w);
}

/// A source that fails half-way, ends short or runs long ends its submission with an error
/// that says so (no hang); the server keeps serving this client and others, and no job
/// with a wrong workload ran.
pub fn streamed_workload_source_failures_end_the_submission<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut c = A::client(&[s.addr()], false);
    let len = 4 << 20;
    let cases = [
        (Generator::new(len, len / 2, End::Fail), "fails on purpose"),
        (
            Generator::new(len, len / 2, End::Eof),
            "streamed workload ended after 2097152 of 4194304 bytes",
        ),
        (
            Generator::new(len, len + 10, End::Eof),
            "streamed workload is longer than the 4194304 bytes declared",
        ),
    ];
    for (source, says) in cases {
        match A::run_streamed(&mut c, verify_spec(), source).1 {
            Outcome::Other(e) => assert!(e.contains(says), "{e:?} does not say {says:?}"),
            other => panic!("expected an error saying {says:?}, got {other:?}"),
        }
        let (_, next) = A::run(&mut c, spec("reverse", "abc"));
        assert_eq!(next, Outcome::Ok(b"cba".to_vec()), "same client afterwards");
    }
    let mut other = A::client(&[s.addr()], false);
    let (_, next) = A::run(&mut other, spec("reverse", "xyz"));
    assert_eq!(
        next,
        Outcome::Ok(b"zyx".to_vec()),
        "another client afterwards"
    );
    // Nothing half-sent became a job: a complete streamed workload is the next `verify`.
    let (_, ok) = A::run_streamed(&mut c, verify_spec(), Generator::exact(1000));
    assert_eq!(ok, Outcome::Ok(b"1000 ok".to_vec()));
    // The result-only call streams and fails the same way.
    let ok = A::run_streamed_result(&mut c, verify_spec(), Generator::exact(2000));
    assert_eq!(ok, Outcome::Ok(b"2000 ok".to_vec()));
    let short = Generator::new(len, len / 2, End::Eof);
    match A::run_streamed_result(&mut c, verify_spec(), short) {
        Outcome::Other(e) => assert!(e.contains("ended after"), "{e:?}"),
        other => panic!("expected an error for a short workload, got {other:?}"),
    }
    A::stop(w);
}

/// A job with a streamed workload reports its events as any job does: `reverse` sends a
/// status and a data chunk before its result; a failing job ends as failed.
pub fn streamed_job_reports_its_events<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut c = A::client(&[s.addr()], false);
    let (events, outcome) = A::run_streamed(&mut c, spec("reverse", ""), Generator::exact(5));
    let reversed: Vec<u8> = pattern()[..5].iter().rev().copied().collect();
    assert_eq!(events, ["status 1/2", "data chunk"]);
    assert_eq!(outcome, Outcome::Ok(reversed));
    let (events, outcome) = A::run_streamed(&mut c, spec("fail", ""), Generator::exact(5));
    assert_eq!((events, outcome), (vec![], Outcome::Failed));
    A::stop(w);
}

/// The client sends the workload as it reads it: against a server that counts what
/// arrives, a generator that refuses to run more than [`AHEAD`] bytes ahead of it still
/// delivers 16 MiB (a client that held the workload before sending would stall it).
pub fn streamed_workload_is_sent_as_it_is_read<A: Adapter>() {
    let len: u64 = 16 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let server = std::thread::spawn(move || -> Result<u64, String> {
        let (mut conn, _) = listener.accept().map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut header = [0u8; 12];
        conn.read_exact(&mut header).map_err(|e| e.to_string())?;
        counter.store(12, Ordering::SeqCst);
        let size = u64::from(u32::from_be_bytes([
            header[8], header[9], header[10], header[11],
        ]));
        let mut buf = vec![0u8; 256 * 1024];
        let mut body = 0;
        while body < size {
            let want = buf.len().min((size - body) as usize);
            let n = conn.read(&mut buf[..want]).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("client closed after {body} of {size} body bytes"));
            }
            body += n as u64;
            counter.fetch_add(n as u64, Ordering::SeqCst);
        }
        let handle = bytes::Bytes::from_static(b"H:raw:1");
        let replies = [
            gearman_core::proto::Response::JobCreated {
                handle: handle.clone(),
            },
            gearman_core::proto::Response::WorkComplete(gearman_core::proto::WorkPayload {
                handle,
                data: bytes::Bytes::from_static(b"done"),
            }),
        ];
        for r in replies {
            conn.write_all(&r.to_bytes()).map_err(|e| e.to_string())?;
        }
        Ok(size)
    });
    let mut c = A::client(&[addr], false);
    let mut source = Generator::exact(len);
    source.paced_by = Some(received);
    let (_, outcome) = A::run_streamed(&mut c, verify_spec(), source);
    let size = server.join().expect("server thread");
    assert_eq!(
        outcome,
        Outcome::Ok(b"done".to_vec()),
        "server saw {size:?}"
    );
    assert_eq!(size, Ok("verify\0\0".len() as u64 + len));
}
