//! What one request costs the server machine as it fills up: a background submit, a grab
//! and complete, and the admin listings, with 1M jobs queued, with workers registering
//! thousands of functions, and with thousands of functions spread over workers. Run with
//! `cargo bench -p gearman-core --bench server_scale`; prints nanoseconds per request
//! (milliseconds for the listings, whose output grows with what they list). No network:
//! the machine is driven through its public API, as an adapter drives it.
//!
//! `SCALE_JOBS`, `SCALE_WORKERS` and `SCALE_FUNCTIONS` override 1,000,000 / 1,000 / 1,000
//! (the many-functions case spreads 10 x SCALE_FUNCTIONS functions, 10 per worker).

use bytes::{Bytes, BytesMut};
use gearman_core::proto::{
    FrameDecoder, GrabMode, Packet, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use gearman_core::server::{ConnId, PeerInfo, Server, ServerConfig};
use gearman_core::Limits;
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Bench {
    server: Server,
    now: Instant,
    fd: u64,
    out: Vec<u8>,
}

impl Bench {
    fn new() -> Bench {
        let now = Instant::now();
        let mut config = ServerConfig::new(now, 1_700_000_000);
        config.handle_prefix = "H:bench".into();
        Bench {
            server: Server::new(config, now),
            now,
            fd: 0,
            out: Vec::new(),
        }
    }

    fn connect(&mut self) -> ConnId {
        self.fd += 1;
        let peer = PeerInfo {
            fd: self.fd,
            ip: "127.0.0.1".into(),
        };
        self.server.accept(peer, self.now)
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) {
        self.server.handle_input(conn, bytes, self.now);
    }

    /// Takes everything queued for every connection; returns what `conn` got.
    fn drain(&mut self, conn: ConnId) -> Vec<u8> {
        let mut mine = Vec::new();
        while let Some(c) = self.server.poll_writable() {
            self.out.clear();
            while self.server.poll_transmit(c, &mut self.out) > 0 {}
            if c == conn {
                mine.extend_from_slice(&self.out);
            }
        }
        while self.server.poll_event().is_some() {}
        mine
    }
}

fn submit_bg(function: &str, data: &Bytes) -> Bytes {
    Request::Submit(SubmitJob {
        function: Bytes::copy_from_slice(function.as_bytes()),
        unique: Bytes::new(),
        mode: SubmitMode::Background(Priority::Normal),
        data: data.clone(),
    })
    .to_bytes()
}

fn can_do(function: &str) -> Bytes {
    Request::CanDo {
        function: Bytes::copy_from_slice(function.as_bytes()),
    }
    .to_bytes()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nanoseconds per background submit to `function`, over `n` submits from one client.
fn time_submits(b: &mut Bench, client: ConnId, function: &str, n: usize) -> f64 {
    let packet = submit_bg(function, &Bytes::from(vec![b'x'; 64]));
    time_packets(b, client, &packet, n)
}

/// Nanoseconds per `packet` sent by `client` (and its reply drained), over `n` sends.
fn time_packets(b: &mut Bench, client: ConnId, packet: &[u8], n: usize) -> f64 {
    let mut spent = Duration::ZERO;
    for _ in 0..n / 1000 {
        let start = Instant::now();
        for _ in 0..1000 {
            b.send(client, packet);
        }
        spent += start.elapsed();
        b.drain(client);
    }
    spent.as_nanos() as f64 / n as f64
}

/// Nanoseconds per GRAB_JOB and per WORK_COMPLETE of `worker`, over `n` jobs.
fn time_grab_complete(b: &mut Bench, worker: ConnId, n: usize) -> (f64, f64) {
    let grab = Request::GrabJob(GrabMode::Plain).to_bytes();
    let (mut grabbing, mut completing) = (Duration::ZERO, Duration::ZERO);
    let mut decoder = FrameDecoder::new(Limits::default());
    for _ in 0..n {
        let start = Instant::now();
        b.send(worker, &grab);
        grabbing += start.elapsed();
        let mut reply = BytesMut::from(&b.drain(worker)[..]);
        let handle = match decoder
            .decode(&mut reply)
            .ok()
            .flatten()
            .map(|f| Response::parse(&f))
        {
            Some(Ok(Response::JobAssign(a))) => a.handle,
            other => panic!("no job assigned: {other:?}"),
        };
        let done = Request::WorkComplete(WorkPayload {
            handle,
            data: Bytes::new(),
        })
        .to_bytes();
        let start = Instant::now();
        b.send(worker, &done);
        completing += start.elapsed();
        b.drain(worker);
    }
    (
        grabbing.as_nanos() as f64 / n as f64,
        completing.as_nanos() as f64 / n as f64,
    )
}

/// Milliseconds for one admin command, and the bytes it answered.
fn time_admin(b: &mut Bench, line: &str) -> (f64, usize) {
    let admin = b.connect();
    let start = Instant::now();
    b.send(admin, line.as_bytes());
    let mut out = Vec::new();
    while b.server.poll_transmit(admin, &mut out) > 0 {}
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    b.drain(admin);
    b.server.handle_eof(admin, b.now);
    (ms, black_box(out).len())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn row(what: &str, value: f64, unit: &str) {
    println!("{what:<72} {value:>12.1} {unit}");
}

fn main() {
    let jobs = env("SCALE_JOBS", 1_000_000);
    let workers = env("SCALE_WORKERS", 1_000);
    let functions = env("SCALE_FUNCTIONS", 1_000);
    let sample = 20_000;

    // An empty server: one worker (awake) for the function.
    let mut b = Bench::new();
    let (client, worker) = (b.connect(), b.connect());
    b.send(worker, &can_do("f"));
    // Warm up (allocations, caches), leaving the queue empty again.
    time_submits(&mut b, client, "f", sample);
    time_grab_complete(&mut b, worker, sample);
    row(
        "bg submit, empty server",
        time_submits(&mut b, client, "f", sample),
        "ns",
    );
    let (g, c) = time_grab_complete(&mut b, worker, sample);
    row("GRAB_JOB, worker with 1 function", g, "ns");
    row("WORK_COMPLETE of a bg job", c, "ns");

    // 1M jobs queued.
    let fill = Instant::now();
    time_submits(&mut b, client, "f", jobs);
    row(
        &format!("(queueing {jobs} bg jobs took)"),
        fill.elapsed().as_secs_f64() * 1000.0,
        "ms",
    );
    row(
        &format!("bg submit, {jobs} jobs queued"),
        time_submits(&mut b, client, "f", sample),
        "ns",
    );
    let (g, c) = time_grab_complete(&mut b, worker, sample);
    row(&format!("GRAB_JOB, {jobs} jobs queued"), g, "ns");
    row(&format!("WORK_COMPLETE, {jobs} jobs queued"), c, "ns");
    for line in ["status\n", "show jobs\n"] {
        let (ms, bytes) = time_admin(&mut b, line);
        row(
            &format!("admin {} with {jobs} jobs ({bytes} B out)", line.trim()),
            ms,
            "ms",
        );
    }
    drop(b);

    // Workers registering thousands of functions (gearmand issue #393): every worker
    // can do every function; they are busy (awake), then asleep.
    let mut b = Bench::new();
    let client = b.connect();
    let names: Vec<String> = (0..functions).map(|i| format!("fn{i:05}")).collect();
    let mut registrations = BytesMut::new();
    for name in &names {
        registrations.extend_from_slice(&can_do(name));
    }
    let start = Instant::now();
    let ws: Vec<ConnId> = (0..workers)
        .map(|_| {
            let w = b.connect();
            b.send(w, &registrations);
            w
        })
        .collect();
    b.drain(client);
    row(
        &format!("CAN_DO, {workers} workers x {functions} functions"),
        start.elapsed().as_nanos() as f64 / (workers * functions) as f64,
        "ns",
    );
    let last = names.last().map_or("fn0", String::as_str);
    row(
        &format!("bg submit, {workers} awake workers can do it"),
        time_submits(&mut b, client, last, sample),
        "ns",
    );
    let (g, _) = time_grab_complete(&mut b, ws[0], sample);
    row(
        &format!("GRAB_JOB, worker with {functions} functions, work in the last"),
        g,
        "ns",
    );
    let sleep = Request::PreSleep.to_bytes();
    let packet = submit_bg(last, &Bytes::from(vec![b'x'; 64]));
    let (mut sleeping, mut waking) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let start = Instant::now();
        for &w in &ws {
            b.send(w, &sleep);
        }
        sleeping.push(start.elapsed().as_nanos() as f64 / workers as f64);
        b.drain(client);
        // One submit wakes every sleeper (worker_wakeup 0): its cost is the wake-ups.
        let start = Instant::now();
        b.send(client, &packet);
        waking.push(start.elapsed().as_nanos() as f64);
        b.drain(client);
        time_grab_complete(&mut b, ws[0], 1);
    }
    row(
        &format!("PRE_SLEEP, worker with {functions} functions (median of 10)"),
        median(sleeping),
        "ns",
    );
    row(
        &format!("one bg submit waking {workers} sleeping workers (median of 10)"),
        median(waking),
        "ns",
    );
    for line in ["status\n", "workers\n"] {
        let (ms, bytes) = time_admin(&mut b, line);
        row(&format!("admin {} ({bytes} B out)", line.trim()), ms, "ms");
    }
    drop(b);

    // Many functions spread over workers: 10 functions each.
    let mut b = Bench::new();
    let client = b.connect();
    let spread = 10 * functions;
    for w in 0..workers {
        let worker = b.connect();
        let mut regs = BytesMut::new();
        for k in 0..spread / workers.max(1) {
            regs.extend_from_slice(&can_do(&format!("g{:06}", w * 1000 + k)));
        }
        b.send(worker, &regs);
    }
    b.drain(client);
    row(
        &format!("bg submit, {spread} functions over {workers} workers"),
        time_submits(&mut b, client, "g000000", sample),
        "ns",
    );
    let (ms, bytes) = time_admin(&mut b, "status\n");
    row(
        &format!("admin status with {spread} functions ({bytes} B out)"),
        ms,
        "ms",
    );
    // GET_STATUS_UNIQUE names no function: it must not look through all of them.
    b.send(client, &submit_unique("g000000", "known"));
    b.drain(client);
    row(
        &format!("GET_STATUS_UNIQUE, {spread} functions (known unique)"),
        time_status_unique(&mut b, client, "known", sample),
        "ns",
    );
    row(
        &format!("GET_STATUS_UNIQUE, {spread} functions (unknown unique)"),
        time_status_unique(&mut b, client, "unknown", sample),
        "ns",
    );
    // A submit's lookup must not grow with the functions holding its unique: each
    // repeated submit coalesces on the job already queued.
    let alone = submit_unique("g000001", "alone");
    b.send(client, &alone);
    b.drain(client);
    row(
        "bg submit coalescing on a unique one function holds",
        time_packets(&mut b, client, &alone, sample.min(100_000)),
        "ns",
    );
    for f in 0..spread {
        b.send(client, &submit_unique(&format!("g{f:06}"), "shared"));
        b.drain(client);
    }
    row(
        &format!("bg submit coalescing on a unique {spread} functions hold"),
        time_packets(
            &mut b,
            client,
            &submit_unique("g000001", "shared"),
            sample.min(100_000),
        ),
        "ns",
    );
    row(
        &format!("GET_STATUS_UNIQUE of a unique {spread} functions hold"),
        time_status_unique(&mut b, client, "shared", sample.min(1_000)),
        "ns",
    );
}

fn submit_unique(function: &str, unique: &str) -> Bytes {
    Request::Submit(SubmitJob {
        function: Bytes::copy_from_slice(function.as_bytes()),
        unique: Bytes::copy_from_slice(unique.as_bytes()),
        mode: SubmitMode::Background(Priority::Normal),
        data: Bytes::from_static(b"x"),
    })
    .to_bytes()
}

/// Nanoseconds per GET_STATUS_UNIQUE of `unique` (and its reply), over `n` requests.
fn time_status_unique(b: &mut Bench, client: ConnId, unique: &str, n: usize) -> f64 {
    let packet = Request::GetStatusUnique {
        unique: Bytes::copy_from_slice(unique.as_bytes()),
    }
    .to_bytes();
    time_packets(b, client, &packet, n.min(100_000))
}
