//! One behaviour suite for every adapter: scenarios are written once against the
//! [`Adapter`] facade and instantiated per adapter by [`adapter_suite!`].
#![allow(dead_code)]

pub mod async_impl;
pub mod raw_server;
pub mod server;
pub mod unix_relay;
pub mod workload;

#[allow(unused_imports)] // Used by `adapter_suite!`, which not every test binary calls.
pub use workload::{
    streamed_job_reports_its_events, streamed_workload_is_sent_as_it_is_read,
    streamed_workload_reaches_the_worker_intact,
    streamed_workload_source_failures_end_the_submission,
};

use gearman_async::{JobEvent, Task, TaskOutput};
use gearman_core::proto::Priority;
use server::TestServer;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A job to run.
#[derive(Clone, Debug)]
pub struct Spec {
    pub function: &'static str,
    pub data: Vec<u8>,
    pub unique: String,
    pub timeout: Option<Duration>,
    pub priority: Priority,
    /// Run at this Unix time (SUBMIT_JOB_EPOCH).
    pub epoch: Option<i64>,
}

pub fn spec(function: &'static str, data: &str) -> Spec {
    Spec {
        function,
        data: data.as_bytes().to_vec(),
        unique: String::new(),
        timeout: None,
        priority: Priority::Normal,
        epoch: None,
    }
}

/// Client options the suite varies.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientOpts {
    /// Turn on the `exceptions` option.
    pub exceptions: bool,
    /// Pick servers by unique (consistent hashing) instead of round-robin.
    pub by_unique: bool,
}

/// What the standard `record` function saw: (workload, Unix time in ms when it ran).
static RECORDED: Mutex<Vec<(String, u128)>> = Mutex::new(Vec::new());

pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// The standard `record` function's body: remembers the workload and when it ran.
pub fn record(data: &[u8]) {
    let entry = (String::from_utf8_lossy(data).into_owned(), unix_ms());
    RECORDED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(entry);
}

/// The records whose workload starts with `tag:` (tests share the process), in run order,
/// without the tag.
pub fn recorded(tag: &str) -> Vec<(String, u128)> {
    let prefix = format!("{tag}:");
    let all = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .filter_map(|(d, t)| Some((d.strip_prefix(&prefix)?.to_string(), *t)))
        .collect()
}

/// A tag no other test in this process uses.
pub fn fresh_tag(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{name}-{}-{n}", std::process::id())
}

/// Waits (bounded) until `tag` has `n` records; returns them.
pub fn wait_recorded(tag: &str, n: usize, within: Duration) -> Vec<(String, u128)> {
    let end = Instant::now() + within;
    loop {
        let got = recorded(tag);
        if got.len() >= n || Instant::now() > end {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How a job ended, as seen by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Vec<u8>),
    Failed,
    Exception(Vec<u8>),
    TimedOut,
    Other(String),
}

/// A job's end as the suite compares it (every adapter returns the same `Error`).
pub fn outcome(r: Result<bytes::Bytes, gearman_async::Error>) -> Outcome {
    use gearman_async::Error;
    match r {
        Ok(d) => Outcome::Ok(d.to_vec()),
        Err(Error::JobFailed) => Outcome::Failed,
        Err(Error::JobException(d)) => Outcome::Exception(d.to_vec()),
        Err(Error::TimedOut) => Outcome::TimedOut,
        Err(e) => Outcome::Other(e.to_string()),
    }
}

/// A progress event as the suite records it (`status n/d`, `data ..`, `warning ..`).
pub fn describe(e: &gearman_async::JobEvent) -> Option<String> {
    use gearman_async::JobEvent;
    let text = |d: &[u8]| String::from_utf8_lossy(d).into_owned();
    match e {
        JobEvent::Status(n, d) => Some(format!("status {n}/{d}")),
        JobEvent::Data(d) => Some(format!("data {}", text(d))),
        JobEvent::Warning(d) => Some(format!("warning {}", text(d))),
        _ => None,
    }
}

/// What each adapter offers the suite.
pub trait Adapter: 'static {
    type Client;
    type Worker: Send;
    fn client_with(servers: &[String], opts: ClientOpts) -> Self::Client;
    fn client(servers: &[String], exceptions: bool) -> Self::Client {
        let opts = ClientOpts {
            exceptions,
            by_unique: false,
        };
        Self::client_with(servers, opts)
    }
    /// Runs one foreground job; returns its events (`status n/d`, `data ..`, `warning ..`).
    fn run(c: &mut Self::Client, spec: Spec) -> (Vec<String>, Outcome);
    /// Runs one foreground job whose workload is streamed from `source`; returns its
    /// events as [`Adapter::run`] does.
    fn run_streamed(
        c: &mut Self::Client,
        spec: Spec,
        source: workload::Generator,
    ) -> (Vec<String>, Outcome);
    /// Runs one foreground job whose workload is streamed from `source` with the client's
    /// result-only call (`run_streamed`, no events).
    fn run_streamed_result(
        c: &mut Self::Client,
        spec: Spec,
        source: workload::Generator,
    ) -> Outcome;
    /// Runs jobs in parallel on one client.
    fn run_many(c: &mut Self::Client, specs: Vec<Spec>) -> Vec<Outcome>;
    fn background(c: &mut Self::Client, spec: Spec) -> Result<Vec<u8>, String>;
    /// Submits a recurring job (SUBMIT_JOB_SCHED); returns its handle.
    fn scheduled(
        c: &mut Self::Client,
        spec: Spec,
        schedule: gearman_async::Schedule,
    ) -> Result<bytes::Bytes, gearman_async::Error>;
    fn status(c: &mut Self::Client, handle: Vec<u8>) -> Result<(bool, bool, u32, u32), String>;
    /// (known, running, client_count).
    fn status_unique(c: &mut Self::Client, unique: &str) -> Result<(bool, bool, u32), String>;
    fn echo(c: &mut Self::Client, data: Vec<u8>) -> Result<Vec<u8>, String>;
    /// Starts a worker with the standard functions (reverse, fail, exception, panic, sleep,
    /// upper, record, verify ([`workload::verify`]), and the map/reduce function map) in
    /// the background.
    fn worker(servers: &[String], concurrency: usize) -> Self::Worker {
        Self::worker_with_backoff(servers, concurrency, Duration::from_millis(50))
    }
    /// Like [`Adapter::worker`], reconnecting after `backoff` (doubling up to 4x).
    fn worker_with_backoff(
        servers: &[String],
        concurrency: usize,
        backoff: Duration,
    ) -> Self::Worker;
    /// Graceful stop: running jobs finish; returns when the worker has stopped.
    fn stop(w: Self::Worker);
    /// Runs a batch; returns the per-task events and the outputs.
    fn batch(c: &mut Self::Client, tasks: Vec<Task>) -> (Vec<(usize, JobEvent)>, Vec<TaskResult>);
    /// Eager connect to every server.
    fn connect(c: &mut Self::Client) -> Result<(), gearman_async::Error>;
    /// An ECHO round trip.
    fn ping(c: &mut Self::Client) -> Result<Duration, gearman_async::Error>;
    /// Unregisters `function` on the running worker.
    fn unregister(w: &Self::Worker, function: &str);
    /// Unregisters every function on the running worker.
    fn unregister_all(w: &Self::Worker);
    /// One `work_once(timeout)` of a worker with the standard functions.
    fn work_once(servers: &[String], timeout: Duration) -> Result<usize, gearman_async::Error>;
}

pub type TaskResult = Result<TaskOutput, gearman_async::Error>;

/// Polls `done` every 20 ms for up to 4 s; whether it became true.
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

pub fn reverse(s: &str) -> Vec<u8> {
    s.bytes().rev().collect()
}

pub fn echo<A: Adapter>() {
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    assert_eq!(
        A::echo(&mut c, b"ping\0pong".to_vec()).unwrap(),
        b"ping\0pong"
    );
}

pub fn foreground_job_streams_events<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut c = A::client(&[s.addr()], false);
    let (events, outcome) = A::run(&mut c, spec("reverse", "hello"));
    assert_eq!(outcome, Outcome::Ok(reverse("hello")));
    assert_eq!(
        events,
        vec!["status 1/2".to_string(), "data chunk".to_string()]
    );
    A::stop(w);
}

pub fn exceptions_option<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut plain = A::client(&[s.addr()], false);
    let mut exc = A::client(&[s.addr()], true);
    assert_eq!(
        A::run(&mut exc, spec("exception", "")).1,
        Outcome::Exception(b"boom".to_vec())
    );
    // Without the option the server downgrades the exception to WORK_FAIL.
    assert_eq!(A::run(&mut plain, spec("exception", "")).1, Outcome::Failed);
    A::stop(w);
}

pub fn failures_and_panics<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut plain = A::client(&[s.addr()], false);
    assert_eq!(A::run(&mut plain, spec("fail", "")).1, Outcome::Failed);
    assert_eq!(A::run(&mut plain, spec("panic", "")).1, Outcome::Failed);
    // The worker carries on after a panicking handler.
    assert_eq!(
        A::run(&mut plain, spec("reverse", "ok")).1,
        Outcome::Ok(reverse("ok"))
    );
    A::stop(w);
}

pub fn background_job_and_status<A: Adapter>() {
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    let handle = A::background(&mut c, spec("reverse", "later")).unwrap();
    assert!(handle.starts_with(b"H:"), "{handle:?}");
    // No worker yet: known, not running.
    assert_eq!(
        A::status(&mut c, handle.clone()).unwrap(),
        (true, false, 0, 0)
    );
    let w = A::worker(&[s.addr()], 1);
    assert!(
        eventually(|| !A::status(&mut c, handle.clone()).unwrap().0),
        "background job never finished"
    );
    A::stop(w);
}

pub fn parallel_jobs_on_one_client<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 4);
    let mut c = A::client(&[s.addr()], false);
    let words: Vec<String> = (0..12).map(|i| format!("word{i}")).collect();
    let specs = words.iter().map(|w| spec("reverse", w)).collect();
    let outcomes = A::run_many(&mut c, specs);
    let want: Vec<_> = words.iter().map(|w| Outcome::Ok(reverse(w))).collect();
    assert_eq!(outcomes, want);
    A::stop(w);
}

pub fn coalesced_submissions_all_get_the_result<A: Adapter>() {
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    let mut specs = Vec::new();
    for _ in 0..3 {
        let mut sp = spec("sleep", "300");
        sp.unique = "same-unique".into();
        specs.push(sp);
    }
    let w = A::worker(&[s.addr()], 1);
    let outcomes = A::run_many(&mut c, specs);
    assert_eq!(outcomes, vec![Outcome::Ok(b"slept 300".to_vec()); 3]);
    A::stop(w);
}

pub fn per_call_timeout<A: Adapter>() {
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    // No worker: the job can never finish.
    let mut sp = spec("reverse", "x");
    sp.timeout = Some(Duration::from_millis(200));
    assert_eq!(A::run(&mut c, sp).1, Outcome::TimedOut);
    // The connection is still usable.
    assert_eq!(A::echo(&mut c, b"after".to_vec()).unwrap(), b"after");
    // A job that runs but outlasts its timeout.
    let w = A::worker(&[s.addr()], 1);
    let mut sp = spec("sleep", "1500");
    sp.timeout = Some(Duration::from_millis(300));
    assert_eq!(A::run(&mut c, sp).1, Outcome::TimedOut);
    let mut sp = spec("reverse", "in time");
    sp.timeout = Some(Duration::from_secs(20));
    assert_eq!(A::run(&mut c, sp).1, Outcome::Ok(reverse("in time")));
    A::stop(w);
}

/// A server that accepts and then stops reading (hung, SIGSTOPped) while a submission is
/// larger than the socket buffers: the call still ends at its timeout, not whenever the
/// server reads again.
pub fn a_server_that_stops_reading_cannot_outlast_the_timeout<A: Adapter>() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let held = std::thread::spawn(move || listener.accept().map(|(conn, _)| conn));
    // A hang must fail the test, not the whole run's time limit.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watched = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if !watched.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("a call to a server that stopped reading still blocks after 60 s");
            std::process::exit(1);
        }
    });
    let mut c = A::client(&[addr], false);
    let mut sp = spec("reverse", "");
    sp.data = vec![b'x'; 32 << 20];
    sp.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let outcome = A::run(&mut c, sp).1;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(outcome, Outcome::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "timed out only after {:?}",
        started.elapsed()
    );
    drop(held.join());
}

pub fn priorities_high_normal_low<A: Adapter>() {
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    let tag = fresh_tag("prio");
    // Queued before any worker exists, lowest first.
    for (priority, name) in [
        (Priority::Low, "low"),
        (Priority::Normal, "normal"),
        (Priority::High, "high"),
    ] {
        let mut sp = spec("record", &format!("{tag}:{name}"));
        sp.priority = priority;
        A::background(&mut c, sp).unwrap();
    }
    let w = A::worker(&[s.addr()], 1);
    let got = wait_recorded(&tag, 3, Duration::from_secs(20));
    let order: Vec<_> = got.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(order, ["high", "normal", "low"]);
    A::stop(w);
}

pub fn epoch_job_runs_at_its_time_not_before<A: Adapter>() {
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    let tag = fresh_tag("epoch");
    let at = i64::try_from(unix_ms() / 1000).unwrap() + 3;
    let mut sp = spec("record", &format!("{tag}:due"));
    sp.epoch = Some(at);
    let handle = A::background(&mut c, sp).unwrap();
    assert!(!handle.is_empty());
    // This worker grabs before the job is due and goes to sleep. gearmand 2.0 and
    // gearmand-rs wake it at the due time; 1.1.20 never does (protocol.md §2.2.3), so a
    // worker started after the due time must get the job there.
    let early = A::worker(&[s.addr()], 1);
    let due_ms = u128::try_from(at).unwrap() * 1000;
    let mut got = Vec::new();
    while unix_ms() < due_ms + 1500 && got.is_empty() {
        got = recorded(&tag);
        std::thread::sleep(Duration::from_millis(20));
    }
    let late = got.is_empty().then(|| A::worker(&[s.addr()], 1));
    let got = wait_recorded(&tag, 1, Duration::from_secs(15));
    assert_eq!(got.len(), 1, "epoch job ran {} times", got.len());
    assert!(
        got[0].1 >= due_ms,
        "epoch job ran {} ms before its time",
        due_ms - got[0].1
    );
    if s.kind.is_gearmand_rs() {
        assert!(
            late.is_none(),
            "gearmand-rs did not wake the sleeping worker"
        );
    }
    A::stop(early);
    if let Some(w) = late {
        A::stop(w);
    }
}

pub fn status_by_unique<A: Adapter>() {
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    let tag = fresh_tag("su");
    let mut sp = spec("record", &format!("{tag}:x"));
    sp.unique = tag.clone();
    A::background(&mut c, sp).unwrap();
    // Queued, nobody attached (background).
    assert_eq!(A::status_unique(&mut c, &tag).unwrap(), (true, false, 0));
    assert_eq!(
        A::status_unique(&mut c, &format!("{tag}-other")).unwrap(),
        (false, false, 0)
    );
    let w = A::worker(&[s.addr()], 1);
    assert_eq!(wait_recorded(&tag, 1, Duration::from_secs(20)).len(), 1);
    assert!(
        eventually(|| !A::status_unique(&mut c, &tag).unwrap().0),
        "finished job still known by unique"
    );
    A::stop(w);
}

/// Status by handle goes to the server that created the job (the core's router remembers
/// it from JOB_CREATED): with two servers, a job queued on the second is known there only
/// (a handle the client does not know would be asked of the first).
pub fn status_by_handle_asks_the_server_that_made_it<A: Adapter>() {
    use gearman_core::client::selector::consistent_index;
    let (s0, s1) = (TestServer::start(), TestServer::start());
    let opts = ClientOpts {
        exceptions: false,
        by_unique: true,
    };
    let mut c = A::client_with(&[s0.addr(), s1.addr()], opts);
    let mut on_second = (0..64).map(|i| format!("home-{i}"));
    let unique = on_second.find(|u| consistent_index(u.as_bytes(), 2) == Some(1));
    let mut sp = spec("nobody", "x");
    sp.unique = unique.expect("a unique on the second server");
    let handle = A::background(&mut c, sp).unwrap();
    assert_eq!(
        [admin_queued(&s0, "nobody"), admin_queued(&s1, "nobody")],
        [0, 1]
    );
    assert_eq!(A::status(&mut c, handle).unwrap(), (true, false, 0, 0));
}

pub fn selection_by_unique_is_consistent_across_servers<A: Adapter>() {
    use gearman_core::client::selector::consistent_index;
    let (s0, s1) = (TestServer::start(), TestServer::start());
    let servers = [s0.addr(), s1.addr()];
    let opts = ClientOpts {
        exceptions: false,
        by_unique: true,
    };
    let uniques: Vec<String> = (0..16).map(|i| format!("sel-{i}")).collect();
    let mut want = [0u32; 2];
    for u in &uniques {
        want[consistent_index(u.as_bytes(), 2).unwrap()] += 1;
    }
    assert!(
        want[0] > 0 && want[1] > 0,
        "pick uniques that use both servers"
    );
    // Two clients (as two processes would) submit the same uniques: each pair must meet on
    // one server and coalesce there.
    for _ in 0..2 {
        let mut c = A::client_with(&servers, opts);
        for u in &uniques {
            let mut sp = spec("nobody", "x");
            sp.unique = u.clone();
            A::background(&mut c, sp).unwrap();
        }
    }
    let queued = [admin_queued(&s0, "nobody"), admin_queued(&s1, "nobody")];
    assert_eq!(queued, want);
    // Status by unique goes to the same server.
    let mut c = A::client_with(&servers, opts);
    for u in &uniques {
        assert_eq!(
            A::status_unique(&mut c, u).unwrap(),
            (true, false, 0),
            "{u}"
        );
    }
}

pub fn failover_to_the_next_server<A: Adapter>() {
    let dead = format!("127.0.0.1:{}", server::free_port());
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut c = A::client(&[dead, s.addr()], false);
    assert_eq!(
        A::run(&mut c, spec("reverse", "abc")).1,
        Outcome::Ok(reverse("abc"))
    );
    A::stop(w);
}

pub fn worker_reconnects_after_server_restart<A: Adapter>() {
    let s = TestServer::start();
    let port = s.port;
    let w = A::worker(&[s.addr()], 1);
    {
        let mut c = A::client(&[s.addr()], false);
        assert_eq!(
            A::run(&mut c, spec("reverse", "one")).1,
            Outcome::Ok(reverse("one"))
        );
    }
    drop(s);
    let s = TestServer::start_on(port);
    let mut c = A::client(&[s.addr()], false);
    let mut sp = spec("reverse", "two");
    sp.timeout = Some(Duration::from_secs(20));
    assert_eq!(A::run(&mut c, sp).1, Outcome::Ok(reverse("two")));
    A::stop(w);
}

pub fn shutdown_cuts_the_reconnect_wait_short<A: Adapter>() {
    // Nothing listens there: the worker waits an hour between connect attempts.
    let dead = format!("127.0.0.1:{}", server::free_port());
    let w = A::worker_with_backoff(&[dead], 1, Duration::from_secs(3600));
    std::thread::sleep(Duration::from_millis(200));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        A::stop(w);
        let _ = done_tx.send(());
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "shutdown waited for the hour-long reconnect backoff"
    );
}

pub fn graceful_shutdown_finishes_the_running_job<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let addr = s.addr();
    let job = std::thread::spawn(move || {
        let mut c = A::client(&[addr], false);
        A::run(&mut c, spec("sleep", "700")).1
    });
    // Wait until the job is running, then stop the worker.
    let mut running = false;
    for _ in 0..200 {
        running = admin_running(&s, "sleep");
        if running {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(running, "sleep job never started");
    A::stop(w);
    assert_eq!(job.join().unwrap(), Outcome::Ok(b"slept 700".to_vec()));
}

/// (total, running) of `function` from the admin `status` command.
pub fn admin_status(s: &TestServer, function: &str) -> Option<(u32, u32)> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(s.admin_addr()).unwrap();
    stream.write_all(b"status\r\n").unwrap();
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line.unwrap();
        if line == "." {
            break;
        }
        let cols: Vec<_> = line.split('\t').collect();
        if cols.first() == Some(&function) {
            let n = |i: usize| cols.get(i).and_then(|c| c.parse().ok());
            return Some((n(1)?, n(2)?));
        }
    }
    None
}

/// Workers that can do `function`, from the admin `status` command.
pub fn admin_workers(s: &TestServer, function: &str) -> u32 {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(s.admin_addr()).unwrap();
    stream.write_all(b"status\r\n").unwrap();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        if line == "." {
            break;
        }
        let cols: Vec<_> = line.split('\t').collect();
        if cols.first() == Some(&function) {
            return cols.get(3).and_then(|c| c.parse().ok()).unwrap_or(0);
        }
    }
    0
}

/// Jobs of `function` queued and not running.
pub fn admin_queued(s: &TestServer, function: &str) -> u32 {
    admin_status(s, function).map_or(0, |(total, running)| total - running)
}

/// Whether a job of `function` is running, from the admin `status` command.
pub fn admin_running(s: &TestServer, function: &str) -> bool {
    admin_status(s, function).is_some_and(|(_, running)| running > 0)
}

pub fn map_reduce<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 4);
    let mut c = A::client(&[s.addr()], false);
    // "function+reducer" submits SUBMIT_REDUCE_JOB(function, reducer).
    let (_, outcome) = A::run(&mut c, spec("map+upper", "a bb ccc"));
    assert_eq!(outcome, Outcome::Ok(b"A,BB,CCC".to_vec()));
    // A failing piece fails the whole job.
    let (_, outcome) = A::run(&mut c, spec("map+upper", "a fail c"));
    assert_eq!(outcome, Outcome::Failed);
    A::stop(w);
}

/// Over a Unix socket: gearmand-rs's own (`-L unix:PATH`), removed when it stops; gearmand
/// 1.1.20 has none, so a relay fronts its TCP port.
pub fn unix_socket_client_and_worker<A: Adapter>() {
    let own_socket = std::env::temp_dir().join(format!("{}.sock", fresh_tag("gmrs-unix")));
    let (s, _relay, addr) = match server::TestServer::current_kind() {
        server::ServerKind::GearmandRs | server::ServerKind::GearmandRsTls => {
            let listen = format!("unix:{}", own_socket.display());
            (TestServer::start_with(&["-L", &listen]), None, listen)
        }
        server::ServerKind::Gearmand => {
            let s = TestServer::start();
            let relay = unix_relay::UnixRelay::to(s.addr());
            let addr = relay.addr();
            (s, Some(relay), addr)
        }
    };
    let w = A::worker(std::slice::from_ref(&addr), 1);
    let mut c = A::client(std::slice::from_ref(&addr), false);
    let (events, outcome) = A::run(&mut c, spec("reverse", "over unix"));
    assert_eq!(outcome, Outcome::Ok(reverse("over unix")));
    assert_eq!(events, ["status 1/2", "data chunk"]);
    assert_eq!(A::echo(&mut c, b"unix".to_vec()).unwrap(), b"unix");
    A::stop(w);
    drop(s);
    // Killed, not stopped: it leaves its socket file.
    let _ = std::fs::remove_file(&own_socket);
}

pub fn task_batch_runs_foreground_background_and_status<A: Adapter>() {
    use gearman_async::Error;
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 2);
    let mut c = A::client(&[s.addr()], false);
    let tag = fresh_tag("batch");
    let job = |f: &'static str, d: &str| gearman_async::Job::new(f, d.to_string());
    let tasks = vec![
        Task::Run(job("reverse", "abc")),
        Task::Background(job("record", &format!("{tag}:bg"))),
        Task::Run(job("fail", "")),
        Task::Status("H:nobody:1".into()),
    ];
    let (events, outputs) = A::batch(&mut c, tasks);
    assert!(
        matches!(&outputs[0], Ok(TaskOutput::Complete(d)) if d.as_ref() == b"cba"),
        "{outputs:?}"
    );
    assert!(
        matches!(&outputs[1], Ok(TaskOutput::Created(h)) if h.starts_with(b"H:")),
        "{outputs:?}"
    );
    assert!(matches!(&outputs[2], Err(Error::JobFailed)), "{outputs:?}");
    assert!(
        matches!(&outputs[3], Ok(TaskOutput::Status(st)) if !st.known),
        "{outputs:?}"
    );
    let of = |i: usize| -> Vec<JobEvent> {
        let mine = events
            .iter()
            .filter(|(t, e)| *t == i && !matches!(e, JobEvent::Created(_)));
        mine.map(|(_, e)| e.clone()).collect()
    };
    assert_eq!(
        of(0),
        [
            JobEvent::Status(1, 2),
            JobEvent::Data("chunk".into()),
            JobEvent::Complete("cba".into())
        ]
    );
    assert_eq!(of(2), [JobEvent::Failed]);
    assert!(of(1).is_empty() && of(3).is_empty(), "{events:?}");
    assert_eq!(wait_recorded(&tag, 1, Duration::from_secs(10)).len(), 1);
    A::stop(w);
}

/// Client and worker connections carry TCP keepalive, so a worker waiting for work hears
/// of a server host that vanished (`ss` shows the keepalive timer of each socket).
pub fn connections_carry_tcp_keepalive<A: Adapter>() {
    let s = TestServer::start();
    let addr = s.addr();
    let port = addr.rsplit(':').next().expect("a port");
    let mut c = A::client(std::slice::from_ref(&addr), false);
    A::connect(&mut c).expect("connected");
    let w = A::worker(std::slice::from_ref(&addr), 1);
    assert!(
        eventually(|| admin_workers(&s, "reverse") == 1),
        "the worker did not register"
    );
    // A socket with unacknowledged data shows its retransmit timer instead: ask again.
    let listing = || {
        let out = std::process::Command::new("ss")
            .args(["-tno", "state", "established"])
            .arg(format!("( dport = :{port} )"))
            .output()
            .expect("ss (iproute2) is required");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let all_kept = |text: &str| {
        let sockets: Vec<&str> = text.lines().skip(1).collect();
        sockets.len() >= 2 && sockets.iter().all(|l| l.contains("keepalive"))
    };
    if !eventually(|| all_kept(&listing())) {
        panic!(
            "client and worker sockets without keepalive timers:\n{}",
            listing()
        );
    }
    A::stop(w);
}

pub fn connect_fails_at_once_on_a_dead_port_with_the_io_error<A: Adapter>() {
    let dead = format!("127.0.0.1:{}", server::free_port());
    let mut c = A::client(std::slice::from_ref(&dead), false);
    match A::connect(&mut c) {
        Err(gearman_async::Error::NoServer(servers)) => {
            assert_eq!(servers.len(), 1, "{servers:?}");
            assert_eq!(servers[0].server, dead);
            assert_eq!(
                servers[0].error.kind(),
                std::io::ErrorKind::ConnectionRefused
            );
        }
        other => panic!("connect to a dead port: {other:?}"),
    }
    // A call says the same, naming the server and the cause.
    let err = A::echo(&mut c, b"x".to_vec()).unwrap_err();
    assert!(
        err.contains(&dead) && err.to_lowercase().contains("refused"),
        "{err}"
    );
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    A::connect(&mut c).unwrap();
    assert!(A::ping(&mut c).unwrap() < Duration::from_secs(5));
}

pub fn worker_unregisters_at_run_time<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut c = A::client(&[s.addr()], false);
    assert_eq!(
        A::run(&mut c, spec("reverse", "ab")).1,
        Outcome::Ok(reverse("ab"))
    );
    assert_eq!(admin_workers(&s, "upper"), 1);
    A::unregister(&w, "reverse");
    assert!(
        eventually(|| admin_workers(&s, "reverse") == 0),
        "reverse still registered"
    );
    assert_eq!(
        admin_workers(&s, "upper"),
        1,
        "only reverse is unregistered"
    );
    let mut sp = spec("reverse", "nobody does this now");
    sp.timeout = Some(Duration::from_millis(500));
    assert_eq!(A::run(&mut c, sp).1, Outcome::TimedOut);
    A::unregister_all(&w);
    assert!(
        eventually(|| admin_workers(&s, "upper") == 0),
        "upper still registered"
    );
    A::stop(w);
}

pub fn work_once_does_one_job_then_returns<A: Adapter>() {
    let s = TestServer::start();
    // Nothing queued: back after the timeout with no job done (and not much later).
    let started = Instant::now();
    let done = A::work_once(&[s.addr()], Duration::from_millis(300)).unwrap();
    assert_eq!(done, 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "returned after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "returned after {waited:?}"
    );
    // Two jobs queued: each call does exactly one, and the other stays queued.
    let tag = fresh_tag("once");
    let mut c = A::client(&[s.addr()], false);
    for n in ["a", "b"] {
        A::background(&mut c, spec("record", &format!("{tag}:{n}"))).unwrap();
    }
    assert_eq!(
        A::work_once(&[s.addr()], Duration::from_secs(10)).unwrap(),
        1
    );
    assert_eq!(recorded(&tag).len(), 1);
    assert_eq!(admin_queued(&s, "record"), 1);
    // The worker has closed its socket; the server may not have read the close yet.
    assert!(
        eventually(|| admin_workers(&s, "record") == 0),
        "the connection is closed"
    );
    assert_eq!(
        A::work_once(&[s.addr()], Duration::from_secs(10)).unwrap(),
        1
    );
    assert_eq!(recorded(&tag).len(), 2);
    assert_eq!(admin_queued(&s, "record"), 0);
    // A foreground caller gets the result of a job done by work_once.
    let caller = std::thread::spawn({
        let addr = s.addr();
        move || A::run(&mut A::client(&[addr], false), spec("reverse", "once")).1
    });
    assert!(
        eventually(|| admin_queued(&s, "reverse") == 1),
        "not queued"
    );
    assert_eq!(
        A::work_once(&[s.addr()], Duration::from_secs(10)).unwrap(),
        1
    );
    assert_eq!(caller.join().unwrap(), Outcome::Ok(reverse("once")));
    // No server: the io error of each.
    let dead = format!("127.0.0.1:{}", server::free_port());
    match A::work_once(std::slice::from_ref(&dead), Duration::from_secs(1)) {
        Err(gearman_async::Error::NoServer(servers)) => {
            assert_eq!(servers.len(), 1, "{servers:?}");
            assert_eq!(servers[0].server, dead);
            assert_eq!(
                servers[0].error.kind(),
                std::io::ErrorKind::ConnectionRefused
            );
        }
        other => panic!("work_once on a dead port: {other:?}"),
    }
}

/// `show schedules` lines (handle, function, unique, fields, next firing, fired,
/// skipped), without the final `.`.
pub fn admin_schedules(s: &TestServer) -> Vec<Vec<String>> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(s.admin_addr()).unwrap();
    stream.write_all(b"show schedules\r\n").unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        if line == "." {
            break;
        }
        lines.push(line.split('\t').map(str::to_string).collect());
    }
    lines
}

pub fn scheduled_job_is_listed_and_a_bad_schedule_is_refused<A: Adapter>() {
    use gearman_async::{Error, Schedule};
    use gearman_core::UsageError;
    let s = TestServer::start();
    let mut c = A::client(&[s.addr()], false);
    let mut sp = spec("record", "nightly");
    sp.unique = fresh_tag("sched");
    let weekday_nights = Schedule::parse("*/15 3 * * 1-5").unwrap();
    let result = A::scheduled(&mut c, sp.clone(), weekday_nights.clone());
    if s.kind == server::ServerKind::Gearmand {
        // gearmand has no SUBMIT_JOB_SCHED: its refusal reaches the caller.
        match result {
            Err(Error::Server { code, .. }) => assert_eq!(&code[..], b"INVALID_COMMAND"),
            other => panic!("gearmand and SUBMIT_JOB_SCHED: {other:?}"),
        }
        return;
    }
    let handle = result.expect("a schedule's handle");
    let handle = String::from_utf8(handle.to_vec()).unwrap();
    assert!(handle.starts_with("H:"), "{handle}");
    let listed = admin_schedules(&s);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0][..4],
        [&handle, "record", &sp.unique, "*/15 3 * * 1-5"]
    );
    // The same function and unique name the same schedule.
    let again = A::scheduled(&mut c, sp.clone(), weekday_nights).unwrap();
    assert_eq!(again, handle.as_bytes());
    // A bad field is refused before sending, naming the field; nothing new is listed.
    let bad = Schedule::every_minute().minute(61);
    sp.unique = fresh_tag("sched");
    match A::scheduled(&mut c, sp, bad) {
        Err(e @ Error::Usage(UsageError::InvalidSchedule(_))) => assert_eq!(
            e.to_string(),
            "invalid request: invalid schedule: minute \"61\": out of range 0-59"
        ),
        other => panic!("minute 61: {other:?}"),
    }
    assert_eq!(admin_schedules(&s).len(), 1);
    // The client is still usable.
    assert_eq!(A::echo(&mut c, b"ok".to_vec()).unwrap(), b"ok");
}

/// Instantiates every scenario for adapter `$A` three times: against C gearmand 1.1.20
/// (module `gearmand`), against gearmand-rs built from this tree (module `gearmand_rs`),
/// and against that gearmand-rs with TLS, the adapters connecting over TLS (module
/// `gearmand_rs_tls`).
#[macro_export]
macro_rules! adapter_suite {
    ($A:ty) => {
        mod gearmand {
            use super::*;
            $crate::adapter_suite!(@each $A, Gearmand);
        }
        mod gearmand_rs {
            use super::*;
            $crate::adapter_suite!(@each $A, GearmandRs);
        }
        mod gearmand_rs_tls {
            use super::*;
            $crate::adapter_suite!(@each $A, GearmandRsTls);
        }
        /// Against a counting raw server: the same for either job server.
        #[test]
        fn streamed_workload_is_sent_as_it_is_read() {
            adapter_common::streamed_workload_is_sent_as_it_is_read::<$A>()
        }
        #[test]
        fn connections_carry_tcp_keepalive() {
            adapter_common::connections_carry_tcp_keepalive::<$A>()
        }
        /// Against a raw server that never reads.
        #[test]
        fn a_server_that_stops_reading_cannot_outlast_the_timeout() {
            adapter_common::a_server_that_stops_reading_cannot_outlast_the_timeout::<$A>()
        }
    };
    (@each $A:ty, $kind:ident) => {
        $crate::adapter_suite!(@tests $A, $kind,
            echo,
            foreground_job_streams_events,
            exceptions_option,
            failures_and_panics,
            background_job_and_status,
            parallel_jobs_on_one_client,
            coalesced_submissions_all_get_the_result,
            per_call_timeout,
            failover_to_the_next_server,
            worker_reconnects_after_server_restart,
            graceful_shutdown_finishes_the_running_job,
            shutdown_cuts_the_reconnect_wait_short,
            priorities_high_normal_low,
            epoch_job_runs_at_its_time_not_before,
            status_by_unique,
            status_by_handle_asks_the_server_that_made_it,
            selection_by_unique_is_consistent_across_servers,
            map_reduce,
            unix_socket_client_and_worker,
            task_batch_runs_foreground_background_and_status,
            connect_fails_at_once_on_a_dead_port_with_the_io_error,
            worker_unregisters_at_run_time,
            work_once_does_one_job_then_returns,
            scheduled_job_is_listed_and_a_bad_schedule_is_refused,
            streamed_workload_reaches_the_worker_intact,
            streamed_workload_source_failures_end_the_submission,
            streamed_job_reports_its_events,
        );
    };
    (@tests $A:ty, $kind:ident, $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                use adapter_common::server::{with_server, ServerKind};
                with_server(ServerKind::$kind, adapter_common::$name::<$A>)
            }
        )*
    };
}

/// Joins `thread` within `bound`, so a stuck worker fails the test instead of hanging it.
pub fn join_within(thread: std::thread::JoinHandle<()>, bound: std::time::Duration, what: &str) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(thread.join());
    });
    let joined = rx.recv_timeout(bound);
    assert!(
        matches!(joined, Ok(Ok(()))),
        "{what} did not stop within {bound:?}: {joined:?}"
    );
}
