//! The adapter behaviour suite on gearman-blocking.

mod adapter_common;

use adapter_common::{Adapter, Outcome, Spec};
use gearman_blocking::{Client, ClientEvent, Error, Job, WorkError, Worker};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

struct Blocking;

fn job(spec: &Spec) -> Job {
    let mut job =
        Job::new(spec.function.as_bytes().to_vec(), spec.data.clone()).unique(spec.unique.clone());
    if let Some(t) = spec.timeout {
        job = job.timeout(t);
    }
    job
}

fn outcome(r: Result<bytes::Bytes, Error>) -> Outcome {
    match r {
        Ok(d) => Outcome::Ok(d.to_vec()),
        Err(Error::JobFailed) => Outcome::Failed,
        Err(Error::JobException(d)) => Outcome::Exception(d.to_vec()),
        Err(Error::TimedOut) => Outcome::TimedOut,
        Err(e) => Outcome::Other(e.to_string()),
    }
}

impl Adapter for Blocking {
    type Client = Client;
    type Worker = (Arc<AtomicBool>, JoinHandle<()>);
    const MAP_REDUCE: bool = false;

    fn client(servers: &[String], exceptions: bool) -> Client {
        Client::new(servers.iter().cloned()).exceptions(exceptions)
    }

    fn run(c: &mut Client, spec: Spec) -> (Vec<String>, Outcome) {
        let mut events = Vec::new();
        let r = c.run_with(job(&spec), |e| match e {
            ClientEvent::Status {
                numerator,
                denominator,
                ..
            } => events.push(format!("status {numerator}/{denominator}")),
            ClientEvent::Data { data, .. } => {
                events.push(format!("data {}", String::from_utf8_lossy(data)))
            }
            ClientEvent::Warning { data, .. } => {
                events.push(format!("warning {}", String::from_utf8_lossy(data)))
            }
            _ => {}
        });
        (events, outcome(r))
    }

    fn run_many(c: &mut Client, specs: Vec<Spec>) -> Vec<Outcome> {
        // One call at a time: the blocking client has no concurrency of its own.
        specs.into_iter().map(|s| outcome(c.run(job(&s)))).collect()
    }

    fn background(c: &mut Client, spec: Spec) -> Result<Vec<u8>, String> {
        c.submit_background(job(&spec))
            .map(|h| h.to_vec())
            .map_err(|e| e.to_string())
    }

    fn status(c: &mut Client, handle: Vec<u8>) -> Result<(bool, bool, u32, u32), String> {
        let s = c.status(handle).map_err(|e| e.to_string())?;
        Ok((s.known, s.running, s.numerator, s.denominator))
    }

    fn echo(c: &mut Client, data: Vec<u8>) -> Result<Vec<u8>, String> {
        c.echo(data).map(|d| d.to_vec()).map_err(|e| e.to_string())
    }

    fn worker(servers: &[String], _concurrency: usize) -> Self::Worker {
        let worker = Worker::new(servers.iter().cloned())
            .function("reverse", None, |ctx| {
                ctx.status(1, 2);
                ctx.send_data("chunk");
                Ok(ctx
                    .job
                    .data
                    .iter()
                    .rev()
                    .copied()
                    .collect::<Vec<u8>>()
                    .into())
            })
            .function("fail", None, |_| Err(WorkError::Fail))
            .function("exception", None, |_| {
                Err(WorkError::Exception("boom".into()))
            })
            .function("panic", None, |_| panic!("handler panics on purpose"))
            .function("sleep", None, |ctx| {
                let ms: u64 = std::str::from_utf8(&ctx.job.data)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                Ok(format!("slept {ms}").into())
            });
        let stop = worker.stop_flag();
        (stop, std::thread::spawn(move || worker.work()))
    }

    fn stop((stop, thread): Self::Worker) {
        stop.store(true, Ordering::SeqCst);
        thread.join().expect("worker thread");
    }
}

adapter_suite!(Blocking, no_map_reduce);
