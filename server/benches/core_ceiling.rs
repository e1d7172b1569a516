//! The single-thread ceiling of gearmand-rs's core: the job server machine alone (no
//! sockets, no system calls), fed the shape of `gearman-bench --mode pipe` (4 clients with
//! 64 foreground jobs in flight each, 4 echo workers keeping 64 GRAB_JOBs out, 64 B
//! payloads). Only the server's own calls are timed (input handling with its decoding,
//! dispatch, and encoding the output), in this thread's CPU time, so other processes on a
//! shared machine do not count; the simulated peers' work is not timed.
//!
//! ```text
//! cargo bench -p gearman-server --bench core_ceiling
//! ```
//!
//! `CEILING_JOBS=N` sets the jobs per client of each measured run (100,000); with a small
//! N under `valgrind --tool=cachegrind` the instruction counts of two builds compare
//! without the machine's noise.
//!
//! The whole server's ceiling is lower by what its system calls cost per job; compare
//! with the server CPU per job that `gearman-bench --compare --mode pipe` reports.

use bytes::{Bytes, BytesMut};
use gearman_core::proto::{
    FrameDecoder, GrabMode, Packet, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use gearman_core::server::{ConnId, PeerInfo, Server, ServerConfig};
use gearman_core::Limits;
use nix::time::{clock_gettime, ClockId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .expect("the thread CPU clock")
}

const CLIENTS: usize = 4;
const WINDOW: usize = 64;
const WORKERS: usize = 4;
const GRABS: usize = 64;
const PAYLOAD: usize = 64;
const FUNCTION: &str = "gearman_bench_echo";

/// One simulated peer: its connection, what it has not sent yet, what it has not decoded.
struct Peer {
    conn: ConnId,
    outgoing: BytesMut,
    incoming: BytesMut,
    decoder: FrameDecoder,
}

impl Peer {
    fn new(server: &mut Server, fd: u64, now: Instant) -> Peer {
        let conn = server.accept(
            PeerInfo {
                fd,
                ip: "127.0.0.1".into(),
            },
            now,
        );
        Peer {
            conn,
            outgoing: BytesMut::new(),
            incoming: BytesMut::new(),
            decoder: FrameDecoder::new(Limits::default()),
        }
    }

    fn push(&mut self, request: &Request) {
        request.encode(&mut self.outgoing);
    }

    fn responses(&mut self) -> Vec<Response> {
        let mut out = Vec::new();
        while let Some(frame) = self
            .decoder
            .decode(&mut self.incoming)
            .expect("valid frame")
        {
            out.push(Response::parse(&frame).expect("valid response"));
        }
        out
    }
}

/// Runs `jobs_per_client` jobs on each client; returns the time spent inside the server.
fn run(jobs_per_client: u64) -> Duration {
    let start = Instant::now();
    let mut server = Server::new(ServerConfig::new(start, 0), start);
    let mut clients: Vec<Peer> = (0..CLIENTS)
        .map(|i| Peer::new(&mut server, i as u64, start))
        .collect();
    let mut workers: Vec<Peer> = (0..WORKERS)
        .map(|i| Peer::new(&mut server, (CLIENTS + i) as u64, start))
        .collect();
    let by_conn: HashMap<ConnId, (bool, usize)> = clients
        .iter()
        .enumerate()
        .map(|(i, p)| (p.conn, (true, i)))
        .chain(
            workers
                .iter()
                .enumerate()
                .map(|(i, p)| (p.conn, (false, i))),
        )
        .collect();
    let function = Bytes::from_static(FUNCTION.as_bytes());
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let grab = Request::GrabJob(GrabMode::Plain);
    for w in &mut workers {
        w.push(&Request::CanDo {
            function: function.clone(),
        });
        for _ in 0..GRABS {
            w.push(&grab);
        }
    }
    let mut submitted = [0u64; CLIENTS];
    let mut in_flight = [0usize; CLIENTS];
    let mut done = [0u64; CLIENTS];
    let mut outstanding_grabs = [GRABS; WORKERS];
    let mut inside = Duration::ZERO;
    let mut out = Vec::with_capacity(64 * 1024);
    while done.iter().sum::<u64>() < jobs_per_client * CLIENTS as u64 {
        for (i, c) in clients.iter_mut().enumerate() {
            while in_flight[i] < WINDOW && submitted[i] < jobs_per_client {
                c.push(&Request::Submit(SubmitJob {
                    function: function.clone(),
                    unique: format!("b{i}-{}", submitted[i]).into(),
                    mode: SubmitMode::Foreground(Priority::Normal),
                    data: payload.clone(),
                }));
                submitted[i] += 1;
                in_flight[i] += 1;
            }
        }
        // The server's turn: every peer's input, then every connection's output.
        let now = Instant::now();
        let cpu_before = thread_cpu();
        for p in clients.iter_mut().chain(workers.iter_mut()) {
            if !p.outgoing.is_empty() {
                let input = p.outgoing.split();
                server.handle_input(p.conn, &input, now);
            }
        }
        while let Some(conn) = server.poll_writable() {
            out.clear();
            let _ = server.poll_transmit(conn, &mut out);
            let (is_client, i) = by_conn[&conn];
            let peer = if is_client {
                &mut clients[i]
            } else {
                &mut workers[i]
            };
            peer.incoming.extend_from_slice(&out);
        }
        while server.poll_event().is_some() {}
        inside += thread_cpu().saturating_sub(cpu_before);
        // The peers' turn (not timed).
        for (i, c) in clients.iter_mut().enumerate() {
            for response in c.responses() {
                if let Response::WorkComplete(_) = response {
                    done[i] += 1;
                    in_flight[i] -= 1;
                }
            }
        }
        for (i, w) in workers.iter_mut().enumerate() {
            for response in w.responses() {
                match response {
                    Response::JobAssign(job) => {
                        w.push(&Request::WorkComplete(WorkPayload {
                            handle: job.handle,
                            data: job.data,
                        }));
                        w.push(&grab);
                    }
                    Response::NoJob => {
                        outstanding_grabs[i] -= 1;
                        if outstanding_grabs[i] == 0 {
                            w.push(&Request::PreSleep);
                        }
                    }
                    Response::Noop => {
                        for _ in 0..GRABS {
                            w.push(&grab);
                        }
                        outstanding_grabs[i] = GRABS;
                    }
                    _ => {}
                }
            }
        }
    }
    inside
}

fn main() {
    // Warm up, then three measured runs; the best is the ceiling (the machine is shared).
    run(5_000);
    // CEILING_JOBS: jobs per client (100,000), e.g. fewer under valgrind.
    let jobs_per_client = std::env::var("CEILING_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000u64);
    let total = jobs_per_client * CLIENTS as u64;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let inside = run(jobs_per_client);
        let rate = total as f64 / inside.as_secs_f64();
        println!(
            "core alone, pipe shape: {total} jobs, {:.3} s of CPU inside the server: {rate:.0} \
             jobs/s ({:.2} us/job)",
            inside.as_secs_f64(),
            inside.as_secs_f64() * 1e6 / total as f64
        );
        best = best.max(rate);
    }
    println!("single-thread ceiling of the core (best of 3): {best:.0} jobs/s");
}
