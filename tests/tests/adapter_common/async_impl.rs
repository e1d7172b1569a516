//! The [`Adapter`] facade for every runtime of the shared async layer.

use super::workload::Generator;
use super::{Adapter, ClientOpts, Outcome, Spec};
use bytes::Bytes;
use futures::StreamExt;
use gearman_async::{
    Backoff, Client, ClientBuilder, Connector, Error, Job, JobStream, Runtime, Selection,
    ShutdownHandle, TlsRuntime, WorkError, WorkerBuilder,
};
use std::future::Future;
use std::marker::PhantomData;
use std::thread::JoinHandle;
use std::time::Duration;

/// A runtime plus the way to block on it from a test thread.
pub trait Exec: Send + Sync + 'static {
    type Rt: TlsRuntime;
    type Connector: Connector;
    fn rt() -> Self::Rt;
    fn connector() -> Self::Connector;
    fn block_on<F: Future>(f: F) -> F::Output;
}

pub struct AsyncAdapter<E>(PhantomData<E>);

fn job(spec: &Spec) -> Job {
    let (function, reducer) = match spec.function.split_once('+') {
        Some((f, r)) => (f, Some(r)),
        None => (spec.function, None),
    };
    let mut job = Job::new(
        Bytes::copy_from_slice(function.as_bytes()),
        spec.data.clone(),
    )
    .unique(spec.unique.clone())
    .priority(spec.priority);
    if let Some(at) = spec.epoch {
        job = job.at_epoch(at);
    }
    if let Some(r) = reducer {
        job = job.reducer(Bytes::copy_from_slice(r.as_bytes()));
    }
    if let Some(t) = spec.timeout {
        job = job.timeout(t);
    }
    job
}

fn outcome(e: Error) -> Outcome {
    super::outcome(Err(e))
}

async fn run_one<Rt: Runtime>(c: &Client<Rt>, spec: Spec) -> (Vec<String>, Outcome) {
    match c.submit(job(&spec)).await {
        Ok(stream) => events_until_the_end(stream).await,
        Err(e) => (vec![], outcome(e)),
    }
}

/// A job's events (as [`super::describe`] writes them) and its end.
async fn events_until_the_end(mut stream: JobStream) -> (Vec<String>, Outcome) {
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                if let Some(result) = event.clone().into_result() {
                    return (events, super::outcome(result));
                }
                events.extend(super::describe(&event));
            }
            Err(e) => return (events, outcome(e)),
        }
    }
    (events, Outcome::Other("stream ended".into()))
}

fn sleep_ms(data: &[u8]) -> u64 {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn standard_functions<Rt: Runtime>(b: WorkerBuilder<Rt>) -> WorkerBuilder<Rt> {
    b.function("reverse", |ctx| async move {
        ctx.status(1, 2);
        ctx.send_data("chunk");
        Ok(ctx.data().iter().rev().copied().collect::<Vec<u8>>().into())
    })
    .sync_function("fail", |_| Err(WorkError::Fail))
    .sync_function("exception", |_| Err(WorkError::exception("boom")))
    .sync_function("panic", |_| panic!("handler panics on purpose"))
    .sync_function("sleep", |ctx| {
        let ms = sleep_ms(ctx.data());
        std::thread::sleep(Duration::from_millis(ms));
        Ok(format!("slept {ms}").into())
    })
    .sync_function("verify", |ctx| Ok(super::workload::verify(ctx.data())))
    .sync_function("record", |ctx| {
        super::record(ctx.data());
        Ok(Bytes::new())
    })
    .sync_function("upper", |ctx| {
        if ctx.data().as_ref() == b"fail" {
            return Err(WorkError::Fail);
        }
        Ok(ctx.data().to_ascii_uppercase().into())
    })
    .map_reduce(
        "map",
        |ctx| async move {
            let words = ctx.data().split(|b| *b == b' ');
            Ok(words.map(Bytes::copy_from_slice).collect())
        },
        |results| Ok(results.join(&b","[..]).into()),
    )
}

pub struct RunningWorker {
    shutdown: ShutdownHandle,
    thread: JoinHandle<()>,
}

impl<E: Exec> Adapter for AsyncAdapter<E> {
    type Client = Client<E::Rt>;
    type Worker = RunningWorker;
    fn client_with(servers: &[String], opts: ClientOpts) -> Self::Client {
        let selection = if opts.by_unique {
            Selection::ByUnique
        } else {
            Selection::RoundRobin
        };
        let mut b = ClientBuilder::new(E::rt(), E::connector())
            .exceptions(opts.exceptions)
            .selection(selection);
        for s in servers {
            b = b.server(s.clone());
        }
        if let Some(tls) = super::server::client_tls_for(servers) {
            b = b.tls(tls);
        }
        b.build()
    }

    fn run(c: &mut Self::Client, spec: Spec) -> (Vec<String>, Outcome) {
        E::block_on(run_one(c, spec))
    }

    fn run_streamed(c: &mut Self::Client, spec: Spec, source: Generator) -> (Vec<String>, Outcome) {
        let len = source.declared;
        E::block_on(async {
            match c.submit_streamed(job(&spec), len, source).await {
                Ok(stream) => events_until_the_end(stream).await,
                Err(e) => (vec![], outcome(e)),
            }
        })
    }

    fn run_streamed_result(c: &mut Self::Client, spec: Spec, source: Generator) -> Outcome {
        let len = source.declared;
        super::outcome(E::block_on(c.run_streamed(job(&spec), len, source)))
    }

    fn run_many(c: &mut Self::Client, specs: Vec<Spec>) -> Vec<Outcome> {
        let runs = specs.into_iter().map(|s| run_one(c, s));
        E::block_on(futures::future::join_all(runs))
            .into_iter()
            .map(|(_, o)| o)
            .collect()
    }

    fn background(c: &mut Self::Client, spec: Spec) -> Result<Vec<u8>, String> {
        E::block_on(c.submit_background(job(&spec)))
            .map(|h| h.to_vec())
            .map_err(|e| e.to_string())
    }

    fn scheduled(
        c: &mut Self::Client,
        spec: Spec,
        schedule: gearman_async::Schedule,
    ) -> Result<bytes::Bytes, gearman_async::Error> {
        E::block_on(c.submit_scheduled(job(&spec), schedule))
    }

    fn status(c: &mut Self::Client, handle: Vec<u8>) -> Result<(bool, bool, u32, u32), String> {
        let s = E::block_on(c.status(handle)).map_err(|e| e.to_string())?;
        Ok((s.known, s.running, s.numerator, s.denominator))
    }

    fn status_unique(c: &mut Self::Client, unique: &str) -> Result<(bool, bool, u32), String> {
        let s = E::block_on(c.status_unique(unique.to_string())).map_err(|e| e.to_string())?;
        Ok((s.known, s.running, s.client_count))
    }

    fn echo(c: &mut Self::Client, data: Vec<u8>) -> Result<Vec<u8>, String> {
        E::block_on(c.echo(data))
            .map(|d| d.to_vec())
            .map_err(|e| e.to_string())
    }

    fn worker_with_backoff(
        servers: &[String],
        concurrency: usize,
        backoff: Duration,
    ) -> RunningWorker {
        let mut b = WorkerBuilder::new(E::rt(), E::connector())
            .concurrency(concurrency)
            .backoff(Backoff {
                initial: backoff,
                max: backoff * 4,
            });
        for s in servers {
            b = b.server(s.clone());
        }
        if let Some(tls) = super::server::client_tls_for(servers) {
            b = b.tls(tls);
        }
        let worker = standard_functions(b).build();
        let shutdown = worker.shutdown_handle();
        let thread = std::thread::spawn(move || E::block_on(worker.run()));
        RunningWorker { shutdown, thread }
    }

    fn batch(
        c: &mut Self::Client,
        tasks: Vec<gearman_async::Task>,
    ) -> (
        Vec<(usize, gearman_async::JobEvent)>,
        Vec<super::TaskResult>,
    ) {
        let mut events = Vec::new();
        let outputs = E::block_on(c.run_batch(tasks, |i, e| events.push((i, e.clone()))));
        (events, outputs)
    }

    fn connect(c: &mut Self::Client) -> Result<(), Error> {
        E::block_on(c.connect())
    }

    fn ping(c: &mut Self::Client) -> Result<Duration, Error> {
        E::block_on(c.ping())
    }

    fn unregister(w: &RunningWorker, function: &str) {
        w.shutdown.unregister(function.to_string());
    }

    fn unregister_all(w: &RunningWorker) {
        w.shutdown.unregister_all();
    }

    fn work_once(servers: &[String], timeout: Duration) -> Result<usize, Error> {
        let mut b = WorkerBuilder::new(E::rt(), E::connector()).servers(servers.to_vec());
        if let Some(tls) = super::server::client_tls_for(servers) {
            b = b.tls(tls);
        }
        let worker = standard_functions(b).build();
        E::block_on(worker.work_once(timeout))
    }

    fn stop(w: RunningWorker) {
        w.shutdown.shutdown();
        w.thread.join().expect("worker thread");
    }
}
