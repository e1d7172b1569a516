//! The adapter behaviour suite on gearman-blocking.

mod adapter_common;

use adapter_common::workload::Generator;
use adapter_common::{Adapter, ClientOpts, Outcome, Spec};
use gearman_blocking::{Backoff, Client, Error, Job, JobEvent, Selection, WorkError, WorkerHandle};
use std::thread::JoinHandle;
use std::time::Duration;

struct Blocking;

fn job(spec: &Spec) -> Job {
    let (function, reducer) = match spec.function.split_once('+') {
        Some((f, r)) => (f, Some(r)),
        None => (spec.function, None),
    };
    let mut job = Job::new(function.as_bytes().to_vec(), spec.data.clone())
        .unique(spec.unique.clone())
        .priority(spec.priority);
    if let Some(r) = reducer {
        job = job.reducer(r.as_bytes().to_vec());
    }
    if let Some(at) = spec.epoch {
        job = job.at_epoch(at);
    }
    if let Some(t) = spec.timeout {
        job = job.timeout(t);
    }
    job
}

fn outcome(r: Result<bytes::Bytes, Error>) -> Outcome {
    adapter_common::outcome(r)
}

fn describe(e: &JobEvent) -> Option<String> {
    adapter_common::describe(e)
}

impl Adapter for Blocking {
    type Client = Client;
    type Worker = (WorkerHandle, JoinHandle<()>);

    fn client_with(servers: &[String], opts: ClientOpts) -> Client {
        let selection = if opts.by_unique {
            Selection::ByUnique
        } else {
            Selection::RoundRobin
        };
        let mut b = gearman_blocking::client()
            .exceptions(opts.exceptions)
            .selection(selection);
        if let Some(tls) = adapter_common::server::client_tls_for(servers) {
            b = b.tls(tls);
        }
        b.servers(servers.iter().cloned()).build()
    }

    fn run(c: &mut Client, spec: Spec) -> (Vec<String>, Outcome) {
        let mut events = Vec::new();
        let r = c.run_with(job(&spec), |e| events.extend(describe(e)));
        (events, outcome(r))
    }

    fn run_streamed(c: &mut Client, spec: Spec, source: Generator) -> (Vec<String>, Outcome) {
        let (len, mut events) = (source.declared, Vec::new());
        let r = c.run_streamed_with(job(&spec), len, source, |e| events.extend(describe(e)));
        (events, outcome(r))
    }

    fn run_streamed_result(c: &mut Client, spec: Spec, source: Generator) -> Outcome {
        let len = source.declared;
        outcome(c.run_streamed(job(&spec), len, source))
    }

    fn run_many(c: &mut Client, specs: Vec<Spec>) -> Vec<Outcome> {
        // All at once, pipelined on one connection (PECL's addTask/runTasks).
        let jobs = specs.iter().map(job).collect();
        c.run_tasks(jobs, |_, _| {})
            .into_iter()
            .map(outcome)
            .collect()
    }

    fn background(c: &mut Client, spec: Spec) -> Result<Vec<u8>, String> {
        c.submit_background(job(&spec))
            .map(|h| h.to_vec())
            .map_err(|e| e.to_string())
    }

    fn scheduled(
        c: &mut Client,
        spec: Spec,
        schedule: gearman_blocking::Schedule,
    ) -> Result<bytes::Bytes, Error> {
        c.submit_scheduled(job(&spec), schedule)
    }

    fn status(c: &mut Client, handle: Vec<u8>) -> Result<(bool, bool, u32, u32), String> {
        let s = c.status(handle).map_err(|e| e.to_string())?;
        Ok((s.known, s.running, s.numerator, s.denominator))
    }

    fn status_unique(c: &mut Client, unique: &str) -> Result<(bool, bool, u32), String> {
        let s = c
            .status_unique(unique.to_string())
            .map_err(|e| e.to_string())?;
        Ok((s.known, s.running, s.client_count))
    }

    fn echo(c: &mut Client, data: Vec<u8>) -> Result<Vec<u8>, String> {
        c.echo(data).map(|d| d.to_vec()).map_err(|e| e.to_string())
    }

    fn worker_with_backoff(
        servers: &[String],
        concurrency: usize,
        backoff: Duration,
    ) -> Self::Worker {
        let worker = standard_worker(servers, concurrency, backoff);
        let handle = worker.handle();
        (handle, std::thread::spawn(move || worker.run()))
    }

    fn work_once(servers: &[String], timeout: Duration) -> Result<usize, Error> {
        standard_worker(servers, 1, Duration::from_millis(50)).work_once(timeout)
    }

    fn batch(
        c: &mut Client,
        tasks: Vec<gearman_blocking::Task>,
    ) -> (Vec<(usize, JobEvent)>, Vec<adapter_common::TaskResult>) {
        let mut events = Vec::new();
        let outputs = c.run_batch(tasks, |i, e| events.push((i, e.clone())));
        (events, outputs)
    }

    fn connect(c: &mut Client) -> Result<(), Error> {
        c.connect()
    }

    fn ping(c: &mut Client) -> Result<Duration, Error> {
        c.ping()
    }

    fn unregister((handle, _): &Self::Worker, function: &str) {
        handle.unregister(function.to_string());
    }

    fn unregister_all((handle, _): &Self::Worker) {
        handle.unregister_all();
    }

    fn stop((handle, thread): Self::Worker) {
        handle.shutdown();
        thread.join().expect("worker thread");
    }
}

adapter_suite!(Blocking);

/// A blocking worker with the suite's standard functions.
fn standard_worker(
    servers: &[String],
    concurrency: usize,
    backoff: Duration,
) -> gearman_blocking::Worker {
    let mut b = gearman_blocking::worker()
        .concurrency(concurrency)
        .backoff(Backoff {
            initial: backoff,
            max: backoff * 4,
        });
    if let Some(tls) = adapter_common::server::client_tls_for(servers) {
        b = b.tls(tls);
    }
    servers
        .iter()
        .fold(b, |b, s| b.server(s.clone()))
        .function("reverse", |ctx| {
            ctx.status(1, 2);
            ctx.send_data("chunk");
            Ok(ctx.data().iter().rev().copied().collect::<Vec<u8>>().into())
        })
        .function("fail", |_| Err(WorkError::Fail))
        .function("exception", |_| Err(WorkError::Exception("boom".into())))
        .function("panic", |_| panic!("handler panics on purpose"))
        .function("sleep", |ctx| {
            let ms: u64 = std::str::from_utf8(ctx.data())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            Ok(format!("slept {ms}").into())
        })
        .function("verify", |ctx| {
            Ok(adapter_common::workload::verify(ctx.data()))
        })
        .function("record", |ctx| {
            adapter_common::record(ctx.data());
            Ok(bytes::Bytes::new())
        })
        .function("upper", |ctx| {
            if ctx.data().as_ref() == b"fail" {
                return Err(WorkError::Fail);
            }
            Ok(ctx.data().to_ascii_uppercase().into())
        })
        .map_reduce(
            "map",
            |ctx| {
                let words = ctx.data().split(|b| *b == b' ');
                Ok(words.map(bytes::Bytes::copy_from_slice).collect())
            },
            |results| Ok(results.join(&b","[..]).into()),
        )
}
