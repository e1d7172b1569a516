//! The blocking worker: for every server, `concurrency` threads, each with its own
//! connection running one job at a time inline; reconnect (and re-register) with backoff.

use crate::{Client, Error, Unreachable};
use crate::{Connector, StdConnector, Stream};
use bytes::Bytes;
use gearman_async::blocking::{
    connect, flush, log_close, log_refused_function, log_server_error, wait,
};
use gearman_async::WorkerHandle;
use gearman_core::machine::Machine;
use gearman_core::worker::functions::{Functions, Handler};
use gearman_core::worker::map_reduce::{self, MapPlan};
use gearman_core::worker::{
    AssignedJob, Report, WorkError, WorkResult, WorkerConnection, WorkerEvent, WorkerOptions,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

    /// Sends a progress report (WORK_STATUS, WORK_DATA or WORK_WARNING) right away: it
    /// returns once the stream took the packet, so a handler streaming its output goes no
    /// faster than the server reads it.
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

    /// WORK_WARNING.
    pub fn warning(&mut self, data: impl Into<Bytes>) {
        self.report(Report::Warning(data.into()));
    }
}

type Plain = Box<dyn Fn(&mut JobContext<'_>) -> WorkResult + Send + Sync>;
type Mapper = Box<dyn Fn(&mut JobContext<'_>) -> Result<Vec<Bytes>, WorkError> + Send + Sync>;
type Aggregator = Box<dyn Fn(Vec<Bytes>) -> WorkResult + Send + Sync>;

/// A blocking Gearman worker.
pub struct Worker {
    servers: Vec<String>,
    functions: Functions<Plain, Mapper, Aggregator>,
    options: WorkerOptions,
    poll_interval: Duration,
    connector: Arc<dyn Connector>,
    handle: WorkerHandle,
}

impl Worker {
    /// A worker for these servers (`host:port`, `[v6]:port` or `unix:/path`); it serves
    /// every one of them. The same as [`worker()`](crate::worker) with these servers.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        Worker {
            servers: servers.into_iter().map(Into::into).collect(),
            functions: Functions::default(),
            options: WorkerOptions::default(),
            poll_interval: Duration::from_millis(200),
            connector: Arc::new(StdConnector),
            handle: WorkerHandle::default(),
        }
    }

    gearman_async::__worker_builder_methods!(Connector, options.config, options.backoff);
    gearman_async::__blocking_tls_method!();

    /// Jobs run at once per server: a thread and a connection each.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.options.concurrency = n.max(1);
        self
    }

    /// How long an idle connection waits for input before it looks at the stop handle
    /// again (default 200 ms): how quickly [`WorkerHandle::shutdown`] ends an idle worker.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Registers a function.
    pub fn function<F>(self, name: impl Into<Bytes>, f: F) -> Self
    where
        F: Fn(&mut JobContext<'_>) -> WorkResult + Send + Sync + 'static,
    {
        self.function_with_timeout(name, None, f)
    }

    /// Registers a function with a server-side run-time limit (CAN_DO_TIMEOUT).
    pub fn function_with_timeout<F, N>(mut self, name: N, timeout: Option<Duration>, f: F) -> Self
    where
        N: Into<Bytes>,
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

    /// A handle that controls the running worker: shutdown, unregister.
    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    /// Finishes the builder: the worker is its own builder.
    pub fn build(self) -> Self {
        self
    }

    /// Serves every server until shut down (`concurrency` threads and connections per
    /// server); reconnects (and re-registers) with backoff after a lost connection.
    pub fn run(&self) {
        std::thread::scope(|s| {
            for addr in &self.servers {
                for _ in 0..self.options.concurrency.max(1) {
                    s.spawn(move || self.serve_server(addr));
                }
            }
        });
    }

    fn serve_server(&self, addr: &str) {
        let mut reducer = self.reducer();
        let mut failures = 0;
        while !self.handle.is_stopping() {
            if let Ok(stream) = connect(&*self.connector, addr) {
                failures = 0;
                self.serve(stream, &mut reducer, addr, None);
            } else {
                failures += 1;
            }
            // After a lost connection too: a restarting server needs a moment.
            let delay = self.options.backoff.delay(failures.max(1));
            tracing::debug!(server = addr, retry_in = ?delay, "gearman worker: reconnecting");
            self.handle.sleep(delay);
        }
    }

    /// Works on at most one job, like PECL's `GearmanWorker::work()` with a timeout: a
    /// thread per server connects, registers the functions and waits up to `timeout` for
    /// an assignment; the first one stops the grabs on every connection (within the
    /// poll interval), runs, and its result is sent before the connections close.
    /// Returns the jobs done: 1, or 0 when none came within `timeout` (rarely 2 or more,
    /// when several servers assigned a job at the same moment: an assigned job is always
    /// run, never dropped). `Err(Error::NoServer)` lists each server's connect error when
    /// none was reachable.
    pub fn work_once(&self, timeout: Duration) -> Result<usize, Error> {
        if self.handle.is_stopping() {
            return Ok(0);
        }
        let once = Once {
            deadline: Instant::now() + timeout,
            taken: AtomicUsize::new(0),
        };
        let (mut connected, mut unreachable) = (Vec::new(), Vec::new());
        for addr in &self.servers {
            match connect(&*self.connector, addr) {
                Ok(stream) => connected.push((addr, stream)),
                Err(e) => unreachable.push(Unreachable {
                    server: addr.clone(),
                    error: Arc::new(e),
                }),
            }
        }
        if connected.is_empty() {
            return Err(Error::NoServer(unreachable));
        }
        std::thread::scope(|s| {
            for (addr, stream) in connected {
                let once = &once;
                s.spawn(move || self.serve(stream, &mut self.reducer(), addr, Some(once)));
            }
        });
        Ok(once.taken.load(Ordering::SeqCst))
    }

    /// The client that runs a map/reduce job's pieces.
    fn reducer(&self) -> Client {
        let reducer = crate::client().servers(self.servers.clone());
        reducer.connector(self.connector.clone()).build()
    }

    fn serve(
        &self,
        mut stream: Box<dyn Stream>,
        reducer: &mut Client,
        addr: &str,
        once: Option<&Once>,
    ) {
        let mut config = self.options.config.clone();
        if once.is_some() {
            config.max_in_flight = 1;
        }
        let mut conn = WorkerConnection::new(config);
        let skip = |f: &[u8]| self.handle.is_unregistered(f);
        for (function, e) in self.functions.register_except(&mut conn, skip) {
            log_refused_function(addr, &function, &e);
        }
        let (mut out, mut buf, mut seen) = (Vec::new(), vec![0u8; 64 * 1024], 0);
        loop {
            let stopping = self.handle.is_stopping() || once.is_some_and(Once::is_over);
            if stopping {
                // A grab the server never answers holds the stop GRAB_REPLY_WAIT at most.
                conn.stop_grabbing_at(Instant::now());
            }
            self.handle.apply_unregistered(&mut conn, &mut seen);
            flush(&mut conn, &mut *stream, &mut out);
            // Only once the last WORK_COMPLETE is written may a stopping worker leave.
            if stopping && conn.is_quiescent() {
                return;
            }
            if let Some(event) = conn.poll_event() {
                if let WorkerEvent::ServerError { code, text } = &event {
                    log_server_error(addr, code, text);
                }
                if let WorkerEvent::JobAssigned(job) = event {
                    if let Some(once) = once {
                        once.taken.fetch_add(1, Ordering::SeqCst);
                        conn.stop_grabbing_at(Instant::now());
                    }
                    let result = {
                        let (job, conn, stream) = (&job, &mut conn, &mut *stream);
                        self.run_job(JobContext { job, conn, stream }, reducer)
                    };
                    // A stop asked for during the job (a handler counting its jobs): no
                    // grab after this one's result.
                    if self.handle.is_stopping() {
                        conn.stop_grabbing_at(Instant::now());
                    }
                    // A job the server took back (CANT_DO) is no longer ours to finish.
                    let _ = conn.finish_job(&job.handle, result);
                }
                // Finishing queued WORK_COMPLETE and the next grab: send them before
                // any wait (the machine contract: drain output after every call).
                continue;
            }
            if conn.is_closed() {
                return log_close(addr, conn.error());
            }
            // A work_once connection also wakes at its deadline.
            let tick = once.map_or(self.poll_interval, |o| {
                let left = o.deadline.saturating_duration_since(Instant::now());
                self.poll_interval.min(left).max(Duration::from_millis(1))
            });
            wait(&mut conn, &mut *stream, &mut buf, tick);
        }
    }

    fn run_job(&self, mut ctx: JobContext<'_>, reducer: &mut Client) -> WorkResult {
        let Some(handler) = self.functions.get(&ctx.job.function) else {
            return Err(WorkError::Fail);
        };
        let run = || match handler {
            Handler::Plain(plain) => plain(&mut ctx),
            Handler::MapReduce(mapper, aggregator) => {
                let input = match map_reduce::plan(ctx.job, mapper(&mut ctx)?) {
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

/// What the connections of one [`Worker::work_once`] call share.
struct Once {
    deadline: Instant,
    /// Jobs assigned so far.
    taken: AtomicUsize,
}

impl Once {
    /// No more grabs: a job was assigned somewhere, or the time is up.
    fn is_over(&self) -> bool {
        self.taken.load(Ordering::SeqCst) > 0 || Instant::now() >= self.deadline
    }
}
