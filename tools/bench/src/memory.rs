//! `--memory`: what a queued background job and an idle connection cost in the server's
//! resident memory (VmRSS from /proc/PID/status, before and after), on a fresh server each.

use crate::server::Server;
use bytes::{Bytes, BytesMut};
use gearman_core::proto::{
    FrameDecoder, Packet, Priority, Request, Response, SubmitJob, SubmitMode,
};
use gearman_core::Limits;
use serde::Serialize;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// What one memory run does.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct MemoryPlan {
    /// Background jobs queued per job figure.
    pub(crate) jobs: u64,
    /// Payload bytes per job.
    pub(crate) payload: usize,
    /// Unique bytes per job in the second job figure.
    pub(crate) unique_len: usize,
    /// Connections per connection figure.
    pub(crate) conns: usize,
    /// The function the jobs are queued on.
    pub(crate) function: String,
}

/// One server's figures, in bytes of RSS.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct MemoryFigures {
    pub(crate) server: String,
    /// Per queued background job with an empty unique.
    pub(crate) per_job: f64,
    /// Per queued background job with a `unique_len`-byte unique.
    pub(crate) per_job_unique: f64,
    /// Per idle connection (one ECHO answered, then nothing).
    pub(crate) per_idle_conn: f64,
    /// Per connection that sent half a packet header after its ECHO.
    pub(crate) per_half_sent_conn: f64,
}

/// Both servers' figures.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct MemoryComparison {
    pub(crate) plan: MemoryPlan,
    pub(crate) reference: MemoryFigures,
    pub(crate) ours: MemoryFigures,
}

impl MemoryComparison {
    /// The table: figure, gearmand, gearmand-rs, ratio ours/gearmand.
    pub(crate) fn text(&self) -> String {
        let p = &self.plan;
        let (r, o) = (&self.reference, &self.ours);
        let rows = [
            (
                format!("RSS per queued bg job, {} jobs, empty unique", p.jobs),
                r.per_job,
                o.per_job,
            ),
            (
                format!("same, {}-byte uniques", p.unique_len),
                r.per_job_unique,
                o.per_job_unique,
            ),
            (
                format!("RSS per idle connection, {} connections", p.conns),
                r.per_idle_conn,
                o.per_idle_conn,
            ),
            (
                format!("RSS per half-sent connection, {} more", p.conns),
                r.per_half_sent_conn,
                o.per_half_sent_conn,
            ),
        ];
        let mut out = format!(
            "memory, {} B payloads\n{:<55} {:>10} {:>12} {:>7}\n",
            p.payload, "figure", r.server, o.server, "ratio"
        );
        for (name, a, b) in rows {
            let ratio = if a > 0.0 { b / a } else { f64::NAN };
            out += &format!("{name:<55} {a:>8.0} B {b:>10.0} B {ratio:>7.2}\n");
        }
        out
    }
}

/// Runs every figure against `binary`, starting a fresh server for each.
pub(crate) fn measure(
    label: &str,
    binary: &Path,
    extra: &[String],
    plan: &MemoryPlan,
) -> Result<MemoryFigures, String> {
    let fail = |what: &str, e: io::Error| format!("{label}: {what}: {e}");
    let mut figures = MemoryFigures {
        server: label.to_owned(),
        ..MemoryFigures::default()
    };
    for (unique_len, slot) in [
        (0, &mut figures.per_job),
        (plan.unique_len, &mut figures.per_job_unique),
    ] {
        let server = Server::start(binary, extra)?;
        let before = settled_rss(server.pid()).map_err(|e| fail("VmRSS", e))?;
        submit_background(server.port, plan, unique_len).map_err(|e| fail("submitting", e))?;
        let after = settled_rss(server.pid()).map_err(|e| fail("VmRSS", e))?;
        *slot = per(after, before, plan.jobs);
    }
    let server = Server::start(binary, extra)?;
    let before = settled_rss(server.pid()).map_err(|e| fail("VmRSS", e))?;
    let idle = open_connections(server.port, plan.conns, false)
        .map_err(|e| fail("opening connections", e))?;
    let with_idle = settled_rss(server.pid()).map_err(|e| fail("VmRSS", e))?;
    let half = open_connections(server.port, plan.conns, true)
        .map_err(|e| fail("opening connections", e))?;
    let with_half = settled_rss(server.pid()).map_err(|e| fail("VmRSS", e))?;
    figures.per_idle_conn = per(with_idle, before, plan.conns as u64);
    figures.per_half_sent_conn = per(with_half, with_idle, plan.conns as u64);
    drop((idle, half));
    Ok(figures)
}

fn per(after: u64, before: u64, n: u64) -> f64 {
    after.saturating_sub(before) as f64 / n.max(1) as f64
}

/// VmRSS of `pid` in bytes.
pub(crate) fn rss(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS line"))
}

/// RSS once the server has had a moment to finish what it was given.
fn settled_rss(pid: u32) -> io::Result<u64> {
    std::thread::sleep(Duration::from_millis(300));
    rss(pid)
}

/// Queues `plan.jobs` background jobs on one pipelined connection and waits for every
/// JOB_CREATED.
fn submit_background(port: u16, plan: &MemoryPlan, unique_len: usize) -> io::Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let (jobs, payload, function) = (plan.jobs, plan.payload, plan.function.clone());
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let function = Bytes::from(function);
        let data = Bytes::from(vec![b'x'; payload]);
        let mut buf = BytesMut::with_capacity(128 * 1024);
        for i in 0..jobs {
            let unique = if unique_len == 0 {
                Bytes::new()
            } else {
                let mut u = format!("{i:0unique_len$}");
                u.truncate(unique_len);
                Bytes::from(u)
            };
            Request::Submit(SubmitJob {
                function: function.clone(),
                unique,
                mode: SubmitMode::Background(Priority::Normal),
                data: data.clone(),
            })
            .encode(&mut buf);
            if buf.len() >= 64 * 1024 {
                writer.write_all(&buf)?;
                buf.clear();
            }
        }
        writer.write_all(&buf)
    });
    let created = read_responses(&stream, jobs, |r| matches!(r, Response::JobCreated { .. }));
    let sent = sender
        .join()
        .map_err(|_| io::Error::other("the sending thread panicked"))?;
    sent.and(created)
}

/// Reads until `n` responses arrived, each of which must pass `expected`.
fn read_responses(
    mut stream: &TcpStream,
    n: u64,
    expected: impl Fn(&Response) -> bool,
) -> io::Result<()> {
    let mut decoder = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut seen = 0;
    while seen < n {
        while let Some(frame) = decoder.decode(&mut buf).map_err(io::Error::other)? {
            let response = Response::parse(&frame).map_err(io::Error::other)?;
            if !expected(&response) {
                return Err(io::Error::other(format!("unexpected reply {response:?}")));
            }
            seen += 1;
        }
        if seen >= n {
            break;
        }
        match stream.read(&mut chunk)? {
            0 => return Err(io::Error::other("the server closed the connection")),
            k => buf.extend_from_slice(chunk.get(..k).unwrap_or_default()),
        }
    }
    Ok(())
}

/// Opens `n` connections, each answered one ECHO (so the server has surely accepted it);
/// with `half_sent` each then sends the first half of a packet header.
pub(crate) fn open_connections(port: u16, n: usize, half_sent: bool) -> io::Result<Vec<TcpStream>> {
    let mut echo = BytesMut::new();
    Request::Echo {
        data: Bytes::from_static(b"ping"),
    }
    .encode(&mut echo);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(&echo)?;
        read_responses(&stream, 1, |r| matches!(r, Response::EchoRes { .. }))?;
        if half_sent {
            stream.write_all(b"\0REQ\0\0")?;
        }
        conns.push(stream);
    }
    Ok(conns)
}
