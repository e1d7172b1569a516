//! One behaviour suite for every adapter: scenarios are written once against the
//! [`Adapter`] facade and instantiated per adapter by [`adapter_suite!`].
#![allow(dead_code)]

pub mod async_impl;
pub mod server;

use server::TestServer;
use std::time::Duration;

/// A job to run.
#[derive(Clone, Debug)]
pub struct Spec {
    pub function: &'static str,
    pub data: Vec<u8>,
    pub unique: String,
    pub timeout: Option<Duration>,
}

pub fn spec(function: &'static str, data: &str) -> Spec {
    Spec {
        function,
        data: data.as_bytes().to_vec(),
        unique: String::new(),
        timeout: None,
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

/// What each adapter offers the suite.
pub trait Adapter: 'static {
    type Client;
    type Worker;
    const MAP_REDUCE: bool;
    fn client(servers: &[String], exceptions: bool) -> Self::Client;
    /// Runs one foreground job; returns its events (`status n/d`, `data ..`, `warning ..`).
    fn run(c: &mut Self::Client, spec: Spec) -> (Vec<String>, Outcome);
    /// Runs jobs in parallel on one client.
    fn run_many(c: &mut Self::Client, specs: Vec<Spec>) -> Vec<Outcome>;
    fn background(c: &mut Self::Client, spec: Spec) -> Result<Vec<u8>, String>;
    fn status(c: &mut Self::Client, handle: Vec<u8>) -> Result<(bool, bool, u32, u32), String>;
    fn echo(c: &mut Self::Client, data: Vec<u8>) -> Result<Vec<u8>, String>;
    /// Starts a worker with the standard functions (reverse, fail, exception, panic, sleep,
    /// upper, map) in the background.
    fn worker(servers: &[String], concurrency: usize) -> Self::Worker;
    /// Graceful stop: running jobs finish; returns when the worker has stopped.
    fn stop(w: Self::Worker);
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

pub fn failures_exceptions_and_panics<A: Adapter>() {
    let s = TestServer::start();
    let w = A::worker(&[s.addr()], 1);
    let mut plain = A::client(&[s.addr()], false);
    let mut exc = A::client(&[s.addr()], true);
    assert_eq!(A::run(&mut plain, spec("fail", "")).1, Outcome::Failed);
    assert_eq!(
        A::run(&mut exc, spec("exception", "")).1,
        Outcome::Exception(b"boom".to_vec())
    );
    // Without the option gearmand downgrades the exception to WORK_FAIL.
    assert_eq!(A::run(&mut plain, spec("exception", "")).1, Outcome::Failed);
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
    let mut known = true;
    for _ in 0..200 {
        known = A::status(&mut c, handle.clone()).unwrap().0;
        if !known {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!known, "background job never finished");
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

/// Running count of `function` from the admin `status` command.
pub fn admin_running(s: &TestServer, function: &str) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(s.addr()).unwrap();
    stream.write_all(b"status\r\n").unwrap();
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line.unwrap();
        if line == "." {
            break;
        }
        let cols: Vec<_> = line.split('\t').collect();
        if cols.first() == Some(&function) {
            return cols.get(2).is_some_and(|r| *r != "0");
        }
    }
    false
}

pub fn map_reduce<A: Adapter>() {
    assert!(
        A::MAP_REDUCE,
        "adapter without map/reduce: use adapter_suite!(A, no_map_reduce)"
    );
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

#[macro_export]
macro_rules! adapter_suite {
    // For an adapter that lacks map/reduce: the scenario is reported as ignored, with the
    // reason, instead of passing without testing anything.
    ($A:ty, no_map_reduce) => {
        $crate::adapter_suite!(@common $A);
        #[test]
        #[ignore = "this adapter has no map/reduce yet"]
        fn map_reduce() {
            adapter_common::map_reduce::<$A>()
        }
    };
    ($A:ty) => {
        $crate::adapter_suite!(@common $A);
        #[test]
        fn map_reduce() {
            adapter_common::map_reduce::<$A>()
        }
    };
    (@common $A:ty) => {
        #[test]
        fn echo() {
            adapter_common::echo::<$A>()
        }
        #[test]
        fn foreground_job_streams_events() {
            adapter_common::foreground_job_streams_events::<$A>()
        }
        #[test]
        fn failures_exceptions_and_panics() {
            adapter_common::failures_exceptions_and_panics::<$A>()
        }
        #[test]
        fn background_job_and_status() {
            adapter_common::background_job_and_status::<$A>()
        }
        #[test]
        fn parallel_jobs_on_one_client() {
            adapter_common::parallel_jobs_on_one_client::<$A>()
        }
        #[test]
        fn coalesced_submissions_all_get_the_result() {
            adapter_common::coalesced_submissions_all_get_the_result::<$A>()
        }
        #[test]
        fn per_call_timeout() {
            adapter_common::per_call_timeout::<$A>()
        }
        #[test]
        fn failover_to_the_next_server() {
            adapter_common::failover_to_the_next_server::<$A>()
        }
        #[test]
        fn worker_reconnects_after_server_restart() {
            adapter_common::worker_reconnects_after_server_restart::<$A>()
        }
        #[test]
        fn graceful_shutdown_finishes_the_running_job() {
            adapter_common::graceful_shutdown_finishes_the_running_job::<$A>()
        }
    };
}
