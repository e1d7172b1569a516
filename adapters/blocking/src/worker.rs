//! The blocking worker: for every server, `concurrency` threads, each with its own
//! connection running one job at a time inline; reconnect (and re-register) with backoff.

use crate::Client;
use crate::{Connector, StdConnector, Stream};
use bytes::Bytes;
use gearman_async::blocking::{connect, flush, wait};
use gearman_core::machine::Machine;
use gearman_core::worker::functions::{Functions, Handler};
use gearman_core::worker::map_reduce::{self, MapPlan};
use gearman_core::worker::{
    AssignedJob, Report, WorkError, WorkResult, WorkerConnection, WorkerEvent, WorkerOptions,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The running job, for progress reports.
pub struct JobContext<'a> {
    /// The assignment.
    pub job: &'a AssignedJob,
    conn: &'a mut WorkerConnection,
    stream: &'a mut dyn Stream,
}

impl JobContext<'_> {
    /// The workload.
    pub fn data(&self) -> &Bytes {
        &self.job.data
    }

    /// Sends a progress report (WORK_STATUS, WORK_DATA or WORK_WARNING) right away.
    pub fn report(&mut self, report: Report) {
        if self.conn.report(&self.job.handle, report).is_ok() {
            flush(self.conn, self.stream, &mut Vec::new());
        }
    }

    /// WORK_STATUS.
    pub fn status(&mut self, numerator: u32, denominator: u32) {
        self.report(Report::Status(numerator, denominator));
    }

    /// WORK_DATA.
    pub fn send_data(&mut self, data: impl Into<Bytes>) {
        self.report(Report::Data(data.into()));
    }
}

type Plain = Box<dyn Fn(&mut JobContext<'_>) -> WorkResult + Send + Sync>;
type Mapper = Box<dyn Fn(&mut JobContext<'_>) -> Result<Vec<Bytes>, WorkError> + Send + Sync>;
type Aggregator = Box<dyn Fn(Vec<Bytes>) -> WorkResult + Send + Sync>;

/// Stops a running [`Worker`]: no more grabs, running jobs finish, reconnect waits end.
#[derive(Clone, Default)]
pub struct StopHandle(Arc<(Mutex<bool>, Condvar)>);

impl StopHandle {
    /// Asks the worker to stop.
    pub fn stop(&self) {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0 .1.notify_all();
    }

    /// Whether [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps for `d` or until stopped.
    fn sleep(&self, d: Duration) {
        let stopped = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.0 .1.wait_timeout_while(stopped, d, |s| !*s);
    }
}

/// A blocking Gearman worker.
pub struct Worker {
    addrs: Vec<String>,
    functions: Functions<Plain, Mapper, Aggregator>,
    options: WorkerOptions,
    poll_interval: Duration,
    connector: Arc<dyn Connector>,
    stop: StopHandle,
}

impl Worker {
    /// A worker for these servers (`host:port`, `[v6]:port` or `unix:/path`); it serves
    /// every one of them.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        Worker {
            addrs: servers.into_iter().map(Into::into).collect(),
            functions: Functions::default(),
            options: WorkerOptions::default(),
            poll_interval: Duration::from_millis(200),
            connector: Arc::new(StdConnector),
            stop: StopHandle::default(),
        }
    }

    /// Sets the options: concurrency (jobs at once per server, a thread and connection
    /// each), reconnect backoff, client id.
    pub fn options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        self
    }

    /// Replaces the connector (how a stream to a server is opened: TLS plugs in here).
    pub fn connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = connector;
        self
    }

    /// How long an idle connection waits for input before it looks at the stop handle
    /// again (default 200 ms): how quickly [`StopHandle::stop`] ends an idle worker.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Registers a function, optionally with a server-side timeout (CAN_DO_TIMEOUT).
    pub fn function<F>(mut self, name: impl Into<Bytes>, timeout: Option<Duration>, f: F) -> Self
    where
        F: Fn(&mut JobContext<'_>) -> WorkResult + Send + Sync + 'static,
    {
        let handler = Handler::Plain(Box::new(f) as Plain);
        self.functions.insert(name.into(), handler, timeout);
        self
    }

    /// Registers a map/reduce function: the mapper splits the job, each piece runs as a
    /// foreground job of the job's reducer, and the aggregator turns their results into
    /// this job's result. Any failure fails the job.
    pub fn map_reduce<M, A>(mut self, name: impl Into<Bytes>, mapper: M, aggregator: A) -> Self
    where
        M: Fn(&mut JobContext<'_>) -> Result<Vec<Bytes>, WorkError> + Send + Sync + 'static,
        A: Fn(Vec<Bytes>) -> WorkResult + Send + Sync + 'static,
    {
        let handler = Handler::MapReduce(Box::new(mapper) as Mapper, Box::new(aggregator) as _);
        self.functions.insert(name.into(), handler, None);
        self
    }

    /// A handle that stops [`Worker::work`] after the running jobs.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Works until stopped; reconnects after a lost connection.
    pub fn work(&self) {
        std::thread::scope(|s| {
            for addr in &self.addrs {
                for _ in 0..self.options.concurrency.max(1) {
                    s.spawn(move || self.serve_server(addr));
                }
            }
        });
    }

    fn serve_server(&self, addr: &str) {
        let mut reducer = Client::new(self.addrs.clone()).connector(self.connector.clone());
        let mut failures = 0;
        while !self.stop.is_stopped() {
            if let Ok(stream) = connect(&*self.connector, addr) {
                failures = 0;
                self.serve(stream, &mut reducer);
            } else {
                failures += 1;
            }
            // After a lost connection too: a restarting server needs a moment.
            self.stop.sleep(self.options.backoff.delay(failures.max(1)));
        }
    }

    fn serve(&self, mut stream: Box<dyn Stream>, reducer: &mut Client) {
        let mut conn = WorkerConnection::new(self.options.config.clone());
        self.functions.register(&mut conn);
        let (mut out, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        loop {
            if self.stop.is_stopped() {
                conn.stop_grabbing();
                if conn.is_quiescent() {
                    return;
                }
            }
            flush(&mut conn, &mut *stream, &mut out);
            if let Some(event) = conn.poll_event() {
                if let WorkerEvent::JobAssigned(job) = event {
                    let result = self.run_job(&job, &mut conn, &mut *stream, reducer);
                    // A job the server took back (CANT_DO) is no longer ours to finish.
                    let _ = conn.finish_job(&job.handle, result);
                }
                // Finishing queued WORK_COMPLETE and the next grab: send them before
                // any wait (the machine contract: drain output after every call).
                continue;
            }
            if conn.is_closed() {
                return;
            }
            wait(&mut conn, &mut *stream, &mut buf, self.poll_interval);
        }
    }

    fn run_job(
        &self,
        job: &AssignedJob,
        conn: &mut WorkerConnection,
        stream: &mut dyn Stream,
        reducer: &mut Client,
    ) -> WorkResult {
        let Some(handler) = self.functions.get(&job.function) else {
            return Err(WorkError::Fail);
        };
        let mut ctx = JobContext { job, conn, stream };
        let run = || match handler {
            Handler::Plain(plain) => plain(&mut ctx),
            Handler::MapReduce(mapper, aggregator) => {
                let input = match map_reduce::plan(job, mapper(&mut ctx)?) {
                    MapPlan::Aggregate(pieces) => pieces,
                    MapPlan::Reduce(jobs) => {
                        map_reduce::collect(reducer.run_tasks(jobs, |_, _| {}))?
                    }
                };
                aggregator(input)
            }
        };
        // A panicking handler fails its job; the worker carries on.
        catch_unwind(AssertUnwindSafe(run)).unwrap_or(Err(WorkError::Fail))
    }
}
