//! The async worker: one connection per server, each holding up to `concurrency` jobs;
//! handlers run as spawned tasks and report back through the connection's command channel.
//! A handler outlives a lost connection and counts against the concurrency of the
//! server's next connection until it returns (`Slots`); a graceful shutdown waits for it.

use crate::client::{Client, ClientBuilder};
use crate::driver::{drive, Role};
use crate::{connect, BoxFuture, Connector, Error, Runtime, Unreachable};
use bytes::Bytes;
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::channel::oneshot;
use futures::future::{self, join_all, select, Either};
use futures::{FutureExt, StreamExt};
use gearman_core::backoff::Backoff;
use gearman_core::worker::functions::{Functions, Handler as FnKind};
use gearman_core::worker::map_reduce::{self, MapPlan};
use gearman_core::worker::{
    AssignedJob, Report, WorkError, WorkResult, WorkerConfig, WorkerConnection, WorkerEvent,
};
use gearman_core::ConnError;
use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

enum Cmd {
    Report(Bytes, Report),
    Finish(Bytes, WorkResult),
    Shutdown,
    /// CANT_DO for one function, or RESET_ABILITIES for `None`.
    Unregister(Option<Bytes>),
    /// A handler of an earlier connection to this server returned: room for one more job.
    Room,
}

/// One server's running handlers, over every connection (session) made to it, so that
/// `concurrency` holds across reconnects: a session may hold only `concurrency` minus
/// the handlers of earlier sessions still running, and grabs again as those return.
/// Reconnecting does not wait for them (the server would be left unserved meanwhile).
struct Slots {
    concurrency: usize,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// The current session's number.
    session: u64,
    /// Handlers of the current session still running.
    current: usize,
    /// Handlers of earlier sessions still running (their results are dropped: the server
    /// requeued their jobs when the connection went).
    earlier: usize,
    /// The current session's commands, told of [`Cmd::Room`].
    tx: Option<UnboundedSender<Cmd>>,
}

impl Slots {
    fn new(concurrency: usize) -> Self {
        Slots {
            concurrency: concurrency.max(1),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session commanded through `tx`: its number and the jobs it may hold now.
    fn begin(&self, tx: UnboundedSender<Cmd>) -> (u64, usize) {
        let mut s = self.lock();
        s.earlier += std::mem::take(&mut s.current);
        s.session += 1;
        s.tx = Some(tx);
        (s.session, self.concurrency.saturating_sub(s.earlier))
    }

    /// The jobs the current session may hold now.
    fn room(&self) -> usize {
        self.concurrency.saturating_sub(self.lock().earlier)
    }

    /// Waits until every handler has returned, those of every session so far (a
    /// graceful stop lets running jobs finish, a lost connection's too). Call it once
    /// no session runs: it ends the current one, to be told as each handler returns.
    async fn all_returned(&self) {
        let (tx, mut returned) = unbounded();
        self.begin(tx);
        while self.lock().earlier > 0 {
            // A handler returning between the check and here has queued its message.
            returned.next().await;
        }
    }

    /// A handler of `session` starts; it counts until the guard is dropped.
    fn start(self: &Arc<Self>, session: u64) -> Running {
        let mut s = self.lock();
        match s.session == session {
            true => s.current += 1,
            // Not reached: a session spawns handlers only while it is the current one.
            false => s.earlier += 1,
        }
        Running {
            slots: self.clone(),
            session,
        }
    }
}

/// A running handler's place in its server's [`Slots`].
struct Running {
    slots: Arc<Slots>,
    session: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut s = self.slots.lock();
        if s.session == self.session {
            s.current = s.current.saturating_sub(1);
        } else {
            s.earlier = s.earlier.saturating_sub(1);
            if let Some(tx) = &s.tx {
                let _ = tx.unbounded_send(Cmd::Room);
            }
        }
    }
}

/// How many bytes a worker connection may hold unsent before
/// [`JobContext::send_data_async`] and [`JobContext::report_async`] wait: reports its
/// handlers queued and the connection has not yet taken, plus output it has not yet
/// written to the socket. A server (or network) slower than a handler streaming WORK_DATA
/// then holds the handler back instead of letting the worker's memory grow.
pub const REPORT_BACKLOG: usize = 4 * 1024 * 1024;

/// One connection's unsent output, shared by its driver and its jobs' contexts: the
/// bytes queued or not yet written, the handlers waiting for room, and why the
/// connection ended, once it has.
#[derive(Default)]
struct Backlog {
    /// Reports queued by handlers and not yet taken by the driver, plus the driver's
    /// output not yet written.
    bytes: AtomicUsize,
    /// True while `waiters` may hold wakers (the driver only locks it then).
    waiting: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
    closed: AtomicBool,
    reason: Mutex<Option<ConnError>>,
}

impl Backlog {
    /// What a report adds to the backlog (about its packet's size); the driver takes the
    /// same off when it takes the report.
    fn cost(handle: &Bytes, report: &Report) -> usize {
        let body = match report {
            Report::Status(..) => 2 * 11,
            Report::Data(data) | Report::Warning(data) => data.len(),
        };
        12 + handle.len() + 1 + body
    }

    fn has_room(&self) -> bool {
        self.bytes.load(Ordering::SeqCst) < REPORT_BACKLOG
    }

    /// The error a send on this connection ends with once it is gone.
    fn error(&self) -> Error {
        let reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        Error::Connection(reason.clone().unwrap_or(ConnError::Closed))
    }

    /// Waits until the backlog is below [`REPORT_BACKLOG`]; fails once the connection is
    /// gone.
    async fn room(&self) -> Result<(), Error> {
        future::poll_fn(|cx| {
            if self.closed.load(Ordering::SeqCst) {
                return Poll::Ready(Err(self.error()));
            }
            if self.has_room() {
                return Poll::Ready(Ok(()));
            }
            {
                let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
                self.waiting.store(true, Ordering::SeqCst);
            }
            // Looked at again after registering: the driver may have written meanwhile
            // and seen no waiter.
            if self.closed.load(Ordering::SeqCst) {
                Poll::Ready(Err(self.error()))
            } else if self.has_room() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Driver side: the backlog grew by `grow` bytes and shrank by `shrink`.
    fn update(&self, grow: usize, shrink: usize) {
        if grow > shrink {
            self.bytes.fetch_add(grow - shrink, Ordering::SeqCst);
        } else if shrink > grow {
            self.bytes.fetch_sub(shrink - grow, Ordering::SeqCst);
        }
        if self.waiting.load(Ordering::SeqCst) && self.has_room() {
            self.wake_all();
        }
    }

    /// The connection is gone: every waiting handler gets its error.
    fn close(&self, reason: ConnError) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert(reason);
        drop(r);
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    fn wake_all(&self) {
        let waiters = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            self.waiting.store(false, Ordering::SeqCst);
            std::mem::take(&mut *waiters)
        };
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// A job being worked on: its fields, and the way to report progress.
///
/// If the connection the job came on is lost, the server requeues the job and the
/// handler's result is dropped; the handler is not cancelled, counts against the
/// worker's concurrency (on the server's next connection) until it returns, and is waited
/// for by a graceful shutdown. It can tell
/// with [`is_connection_lost`](Self::is_connection_lost), or from the error of
/// [`send_data_async`](Self::send_data_async) and [`report_async`](Self::report_async),
/// and stop early.
///
/// Reports go out in the order they are made, and before the job's result. The plain
/// methods ([`send_data`](Self::send_data), [`report`](Self::report), ...) queue and
/// return at once, however far behind the connection is; a handler that streams a lot of
/// WORK_DATA should use [`send_data_async`](Self::send_data_async) (or
/// [`report_async`](Self::report_async)), which waits while the connection holds more
/// than [`REPORT_BACKLOG`] bytes unsent.
pub struct JobContext {
    /// The assignment.
    pub job: AssignedJob,
    tx: UnboundedSender<Cmd>,
    backlog: Arc<Backlog>,
}

impl JobContext {
    /// The workload.
    pub fn data(&self) -> &Bytes {
        &self.job.data
    }

    /// True once the connection this job came on is gone: the server has requeued the
    /// job, reports go nowhere and the result will be dropped, so the handler may stop.
    pub fn is_connection_lost(&self) -> bool {
        self.backlog.closed.load(Ordering::SeqCst)
    }

    /// Sends a progress report (WORK_STATUS, WORK_DATA or WORK_WARNING) without waiting:
    /// queued however much output the connection already holds unsent (it counts toward
    /// [`REPORT_BACKLOG`] for the waiting methods). A report on a lost connection is
    /// dropped (the server requeues the job).
    pub fn report(&self, report: Report) {
        let _ = self.queue(report);
    }

    /// Queues `report`; false if the connection is gone.
    fn queue(&self, report: Report) -> bool {
        let cost = Backlog::cost(&self.job.handle, &report);
        self.backlog.bytes.fetch_add(cost, Ordering::SeqCst);
        let cmd = Cmd::Report(self.job.handle.clone(), report);
        if self.tx.unbounded_send(cmd).is_err() {
            self.backlog.bytes.fetch_sub(cost, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Sends a progress report (WORK_STATUS, WORK_DATA or WORK_WARNING) once the
    /// connection holds less than [`REPORT_BACKLOG`] bytes unsent, waiting for the server
    /// to take what came before (backpressure). Reports keep their order with those of
    /// the plain methods and with the job's result. Fails with [`Error::Connection`] if
    /// the connection is gone: the server requeues the job, so the handler may as well
    /// stop.
    pub async fn report_async(&self, report: Report) -> Result<(), Error> {
        self.backlog.room().await?;
        match self.queue(report) {
            true => Ok(()),
            false => Err(self.backlog.error()),
        }
    }

    /// Reports progress (WORK_STATUS), without waiting.
    pub fn status(&self, numerator: u32, denominator: u32) {
        self.report(Report::Status(numerator, denominator));
    }

    /// Sends a chunk of output (WORK_DATA), without waiting: see
    /// [`send_data_async`](Self::send_data_async) for a stream of them.
    pub fn send_data(&self, data: impl Into<Bytes>) {
        self.report(Report::Data(data.into()));
    }

    /// Sends a chunk of output (WORK_DATA) once the connection holds less than
    /// [`REPORT_BACKLOG`] bytes unsent: a handler streaming its output this way goes no
    /// faster than the server takes it. Fails with [`Error::Connection`] if the
    /// connection is gone.
    ///
    /// ```
    /// use gearman_async::{Error, JobContext};
    ///
    /// /// Streams the workload back in 64 KiB chunks, as fast as the server reads them.
    /// async fn echo_in_chunks(job: &JobContext) -> Result<(), Error> {
    ///     for chunk in job.data().chunks(64 * 1024) {
    ///         job.send_data_async(job.data().slice_ref(chunk)).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn send_data_async(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.report_async(Report::Data(data.into())).await
    }

    /// Sends a warning (WORK_WARNING), without waiting.
    pub fn warning(&self, data: impl Into<Bytes>) {
        self.report(Report::Warning(data.into()));
    }
}

type Handler = Arc<dyn Fn(JobContext) -> BoxFuture<Result<Bytes, WorkError>> + Send + Sync>;
type Mapper = Arc<dyn Fn(JobContext) -> BoxFuture<Result<Vec<Bytes>, WorkError>> + Send + Sync>;
type Aggregator = Arc<dyn Fn(Vec<Bytes>) -> Result<Bytes, WorkError> + Send + Sync>;

type Registry = Functions<Handler, Mapper, Aggregator>;

/// Configures a [`Worker`].
pub struct WorkerBuilder<Rt: Runtime> {
    rt: Rt,
    connector: Arc<dyn Connector>,
    servers: Vec<String>,
    functions: Registry,
    config: WorkerConfig,
    backoff: Backoff,
}

impl<Rt: Runtime> WorkerBuilder<Rt> {
    /// A builder using runtime `rt`, connecting with `connector`.
    pub fn new(rt: Rt, connector: impl Connector) -> Self {
        WorkerBuilder {
            rt,
            connector: Arc::new(connector),
            servers: Vec::new(),
            functions: Functions::default(),
            config: WorkerConfig::default(),
            backoff: Backoff::default(),
        }
    }

    crate::__worker_builder_methods!(Connector, config, backoff);

    /// Connects over TLS with these settings (TCP or Unix sockets; replaces the
    /// connector): each server's certificate is verified, and its name too unless the
    /// settings say otherwise. A refused handshake is logged and retried with backoff. The
    /// runtime crate's docs have an example.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::ClientTls) -> Self
    where
        Rt: crate::TlsRuntime,
    {
        self.connector = self.rt.tls_connector(tls);
        self
    }

    /// Jobs run at once per server. This holds across reconnects: handlers still running
    /// from a lost connection (whose jobs the server requeued) count against it until
    /// they return, and the new connection grabs only what is left.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.max_in_flight = n.max(1);
        self
    }

    /// Registers an async handler.
    pub fn function<F, Fut>(self, name: impl Into<Bytes>, handler: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, WorkError>> + Send + 'static,
    {
        self.function_with_timeout(name, None, handler)
    }

    /// Registers an async handler with a server-side run-time limit (CAN_DO_TIMEOUT).
    pub fn function_with_timeout<F, Fut>(
        mut self,
        name: impl Into<Bytes>,
        timeout: Option<Duration>,
        handler: F,
    ) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, WorkError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| Box::pin(handler(ctx)));
        self.functions
            .insert(name.into(), FnKind::Plain(handler), timeout);
        self
    }

    /// Registers a closure run on the job's task.
    pub fn sync_function<F>(self, name: impl Into<Bytes>, handler: F) -> Self
    where
        F: Fn(&JobContext) -> Result<Bytes, WorkError> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.function(name, move |ctx| {
            let handler = handler.clone();
            async move { handler(&ctx) }
        })
    }

    /// Registers a map/reduce function (libgearman's partition + aggregator): the mapper
    /// splits the job; each piece runs as a foreground job of the job's reducer function;
    /// the aggregator turns their results into this job's result. Any failure fails the
    /// job. A job submitted without a reducer hands the pieces straight to the aggregator.
    pub fn map_reduce<M, Fut, A>(mut self, name: impl Into<Bytes>, mapper: M, aggregator: A) -> Self
    where
        M: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Bytes>, WorkError>> + Send + 'static,
        A: Fn(Vec<Bytes>) -> Result<Bytes, WorkError> + Send + Sync + 'static,
    {
        let mapper: Mapper = Arc::new(move |ctx| Box::pin(mapper(ctx)));
        let kind = FnKind::MapReduce(mapper, Arc::new(aggregator) as Aggregator);
        self.functions.insert(name.into(), kind, None);
        self
    }

    /// Builds the worker.
    pub fn build(self) -> Worker<Rt> {
        let mut reducer_client = ClientBuilder::new(self.rt.clone(), self.connector.clone());
        for s in &self.servers {
            reducer_client = reducer_client.server(s.clone());
        }
        Worker {
            shared: Arc::new(Shared {
                rt: self.rt,
                connector: self.connector,
                functions: self.functions,
                config: self.config,
                backoff: self.backoff,
                reducer_client: reducer_client.build(),
            }),
            servers: self.servers,
            shutdown: WorkerHandle::default(),
        }
    }
}

struct Shared<Rt: Runtime> {
    rt: Rt,
    connector: Arc<dyn Connector>,
    functions: Registry,
    config: WorkerConfig,
    backoff: Backoff,
    reducer_client: Client<Rt>,
}

/// Controls a running worker (async or blocking): a graceful
/// [`shutdown`](WorkerHandle::shutdown), and unregistering functions at run time. Cheap to
/// clone.
#[derive(Clone)]
pub struct WorkerHandle {
    stopping: Arc<AtomicBool>,
    drivers: Arc<Mutex<Vec<UnboundedSender<Cmd>>>>,
    unregistered: Arc<Mutex<Unregistered>>,
    trigger: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    stopped: future::Shared<oneshot::Receiver<()>>,
    // Wakes blocking threads sleeping in `sleep`.
    wake: Arc<(Mutex<()>, Condvar)>,
}

/// The earlier name of [`WorkerHandle`].
pub type ShutdownHandle = WorkerHandle;

/// Functions unregistered at run time: not registered again after a reconnect.
#[derive(Default)]
struct Unregistered {
    all: bool,
    names: HashSet<Bytes>,
    changes: u64,
}

impl Default for WorkerHandle {
    fn default() -> Self {
        let (trigger, stopped) = oneshot::channel();
        WorkerHandle {
            stopping: Arc::default(),
            drivers: Arc::default(),
            unregistered: Arc::default(),
            trigger: Arc::new(Mutex::new(Some(trigger))),
            stopped: stopped.shared(),
            wake: Arc::default(),
        }
    }
}

impl WorkerHandle {
    /// Asks every connection to stop after its running jobs: no more grabs, running jobs
    /// finish, and a reconnect wait or connect in progress is cut short. A grab already
    /// sent is waited for at most [`GRAB_REPLY_WAIT`](gearman_core::worker::GRAB_REPLY_WAIT)
    /// (5 s), so a hung server cannot hold the stop. Running handlers are waited for
    /// however long they take, those from a lost connection too: [`Worker::run`] returns
    /// once the last one has.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(mut trigger) = self.trigger.lock() {
            // Dropping the sender completes every `stopped` future.
            trigger.take();
        }
        let _guard = self.wake.0.lock();
        self.wake.1.notify_all();
        self.send(|| Cmd::Shutdown);
    }

    /// Stops serving `function` (CANT_DO on every connection, and not registered again
    /// after a reconnect). The server requeues that function's jobs this worker holds;
    /// their handlers are not cancelled: their results are dropped, and each counts
    /// against the worker's concurrency until it returns. A blocking worker's idle
    /// connection applies it within its poll interval (a busy one after its job).
    pub fn unregister(&self, function: impl Into<Bytes>) {
        let function = function.into();
        self.change(|u| {
            u.names.insert(function.clone());
        });
        self.send(|| Cmd::Unregister(Some(function.clone())));
    }

    /// Stops serving every function (RESET_ABILITIES on every connection). Running
    /// handlers go on as with [`unregister`](Self::unregister): their results are
    /// dropped, and they count against the concurrency until they return.
    pub fn unregister_all(&self) {
        self.change(|u| u.all = true);
        self.send(|| Cmd::Unregister(None));
    }

    fn change(&self, f: impl FnOnce(&mut Unregistered)) {
        let mut u = self.unregistered.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut u);
        u.changes += 1;
    }

    fn send(&self, cmd: impl Fn() -> Cmd) {
        if let Ok(drivers) = self.drivers.lock() {
            for tx in drivers.iter() {
                let _ = tx.unbounded_send(cmd());
            }
        }
    }

    /// Whether `function` was unregistered (for drivers registering a new connection).
    pub fn is_unregistered(&self, function: &[u8]) -> bool {
        let u = self.unregistered.lock().unwrap_or_else(|e| e.into_inner());
        u.all || u.names.contains(function)
    }

    /// For a blocking driver: applies the unregistrations made since its count `seen`
    /// (starting at 0) to `conn`, and updates `seen`.
    pub fn apply_unregistered(&self, conn: &mut WorkerConnection, seen: &mut u64) {
        let u = self.unregistered.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::replace(seen, u.changes) == u.changes {
            return;
        }
        // Already-dropped names again are harmless: CANT_DO of an unknown function is a no-op.
        let _ = match u.all {
            true => conn.reset_abilities(),
            false => u.names.iter().try_for_each(|f| conn.cant_do(f.clone())),
        };
    }

    /// Whether [`WorkerHandle::shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// For a blocking driver: sleeps for `duration` or until shutdown.
    pub fn sleep(&self, duration: Duration) {
        let guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        let stopping = |_: &mut ()| !self.is_stopping();
        let _ = self.wake.1.wait_timeout_while(guard, duration, stopping);
    }

    /// `fut`'s output, or `None` if shutdown comes first.
    async fn unless_stopped<T>(&self, fut: BoxFuture<T>) -> Option<T> {
        match select(fut, self.stopped.clone()).await {
            Either::Left((value, _)) => Some(value),
            Either::Right(_) => None,
        }
    }
}

/// An async Gearman worker.
pub struct Worker<Rt: Runtime> {
    shared: Arc<Shared<Rt>>,
    servers: Vec<String>,
    shutdown: WorkerHandle,
}

struct WorkerRole<Rt: Runtime> {
    conn: WorkerConnection,
    shared: Arc<Shared<Rt>>,
    tx: UnboundedSender<Cmd>,
    /// The connection's unsent output, for its jobs' waiting reports.
    backlog: Arc<Backlog>,
    /// Report bytes taken from the channel since the last [`Role::unwritten`], and the
    /// output it last saw unwritten.
    taken: usize,
    unwritten: usize,
    stopping: bool,
    /// Set for [`Worker::work_once`]: the first assignment stops every connection's grabs.
    once: Option<Arc<Once>>,
    /// The server's running handlers, and this session's number among its connections.
    slots: Arc<Slots>,
    session: u64,
    /// The server, for the log.
    server: String,
}

/// What the connections of one [`Worker::work_once`] call share.
#[derive(Default)]
struct Once {
    /// Jobs assigned so far.
    taken: AtomicUsize,
    /// Every connection's command channel.
    drivers: Mutex<Vec<UnboundedSender<Cmd>>>,
}

impl Once {
    /// No more grabs anywhere; jobs already assigned still run and report.
    fn stop_all(&self) {
        let drivers = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        for tx in drivers.iter() {
            let _ = tx.unbounded_send(Cmd::Shutdown);
        }
    }
}

impl<Rt: Runtime> Role for WorkerRole<Rt> {
    type M = WorkerConnection;
    type Cmd = Cmd;

    fn machine(&mut self) -> &mut WorkerConnection {
        &mut self.conn
    }

    fn command(&mut self, cmd: Cmd, now: Instant) {
        // A handle this connection no longer holds (connection replaced, CANT_DO) is
        // a usage error with nothing left to do.
        let _ = match cmd {
            Cmd::Report(h, report) => {
                self.taken += Backlog::cost(&h, &report);
                self.conn.report(&h, report)
            }
            Cmd::Finish(h, result) => self.conn.finish_job(&h, result),
            Cmd::Shutdown => {
                self.stopping = true;
                self.conn.stop_grabbing_at(now);
                Ok(())
            }
            Cmd::Unregister(Some(function)) => self.conn.cant_do(function),
            Cmd::Unregister(None) => self.conn.reset_abilities(),
            Cmd::Room => {
                self.conn.set_max_in_flight(self.slots.room());
                Ok(())
            }
        };
    }

    fn event(&mut self, event: WorkerEvent, now: Instant) {
        if let WorkerEvent::Closed { reason } = &event {
            self.backlog.close(reason.clone());
        }
        if let WorkerEvent::ServerError { code, text } = &event {
            log_server_error(&self.server, code, text);
        }
        if let WorkerEvent::JobAssigned(job) = event {
            if let Some(once) = &self.once {
                once.taken.fetch_add(1, Ordering::SeqCst);
                self.stopping = true;
                self.conn.stop_grabbing_at(now);
                once.stop_all();
            }
            let handle = job.handle.clone();
            let function = self.shared.functions.get(&job.function).cloned();
            let ctx = JobContext {
                job,
                tx: self.tx.clone(),
                backlog: self.backlog.clone(),
            };
            let tx = self.tx.clone();
            let shared = self.shared.clone();
            let running = self.slots.start(self.session);
            self.shared.rt.spawn(Box::pin(async move {
                let run = run_job(shared, function, ctx);
                let result = AssertUnwindSafe(run)
                    .catch_unwind()
                    .await
                    .unwrap_or(Err(WorkError::Fail));
                // Its slot is free before its result lets the connection grab again.
                drop(running);
                let _ = tx.unbounded_send(Cmd::Finish(handle, result));
            }));
        }
    }

    fn finished(&self) -> bool {
        self.stopping && self.conn.is_quiescent()
    }

    fn unwritten(&mut self, bytes: usize) {
        let shrink = std::mem::take(&mut self.taken) + self.unwritten;
        self.unwritten = bytes;
        self.backlog.update(bytes, shrink);
    }
}

impl<Rt: Runtime> Drop for WorkerRole<Rt> {
    fn drop(&mut self) {
        // However the driver ended: no handler may wait for a connection that is gone.
        self.backlog.close(ConnError::Closed);
    }
}

/// Says (`tracing`) that `server` answered this worker with an ERROR packet: a function it
/// may not register (`PERMISSION_DENIED`), a result for a job it no longer holds
/// (`JOB_NOT_FOUND`). The worker carries on, but the application must hear of it.
pub fn log_server_error(server: &str, code: &[u8], text: &[u8]) {
    let (code, text) = (String::from_utf8_lossy(code), String::from_utf8_lossy(text));
    tracing::warn!(server, %code, %text, "gearman worker: server error");
}

/// Says (`tracing`) that function `function` cannot be registered with `server` (a name
/// too long, or containing NUL): the worker serves the others, never this one.
pub fn log_refused_function(server: &str, function: &[u8], error: &gearman_core::UsageError) {
    let name = String::from_utf8_lossy(function.get(..64).unwrap_or(function));
    tracing::error!(server, function = %name, %error, "gearman worker: function not registered");
}

async fn run_job<Rt: Runtime>(
    shared: Arc<Shared<Rt>>,
    function: Option<FnKind<Handler, Mapper, Aggregator>>,
    ctx: JobContext,
) -> Result<Bytes, WorkError> {
    match function {
        None => Err(WorkError::Fail),
        Some(FnKind::Plain(handler)) => handler(ctx).await,
        Some(FnKind::MapReduce(mapper, aggregator)) => {
            let job = ctx.job.clone();
            let pieces = mapper(ctx).await?;
            let input = match map_reduce::plan(&job, pieces) {
                MapPlan::Aggregate(pieces) => pieces,
                MapPlan::Reduce(jobs) => {
                    let runs = jobs.into_iter().map(|j| shared.reducer_client.run(j));
                    map_reduce::collect(join_all(runs).await)?
                }
            };
            aggregator(input)
        }
    }
}

impl<Rt: Runtime> Worker<Rt> {
    /// A handle that controls the running worker: shutdown, unregister.
    pub fn handle(&self) -> WorkerHandle {
        self.shutdown.clone()
    }

    /// A handle that stops [`Worker::run`] gracefully (the same as [`Worker::handle`]).
    pub fn shutdown_handle(&self) -> WorkerHandle {
        self.shutdown.clone()
    }

    /// Serves every server until shut down; reconnects (and re-registers) with backoff
    /// when a connection is lost. After [`WorkerHandle::shutdown`] it returns once every
    /// handler has returned, those still running from a lost connection too (whose
    /// results are dropped); a handler can stop early with
    /// [`JobContext::is_connection_lost`].
    pub async fn run(self) {
        let worker = &self;
        let loops = self.servers.iter().map(|addr| async move {
            let slots = Arc::new(Slots::new(worker.shared.config.max_in_flight));
            worker.serve(addr.clone(), &slots).await;
            slots.all_returned().await;
        });
        join_all(loops).await;
    }

    async fn serve(&self, addr: String, slots: &Arc<Slots>) {
        let rt = &self.shared.rt;
        let mut failures = 0u32;
        while !self.shutdown.is_stopping() {
            let connecting = connect(&*self.shared.connector, &addr);
            let io = match self.shutdown.unless_stopped(connecting).await {
                None => return,
                Some(Ok(io)) => io,
                Some(Err(e)) => {
                    failures = failures.saturating_add(1);
                    let delay = self.shared.backoff.delay(failures);
                    tracing::warn!(server = %addr, error = %e, retry_in = ?delay, "gearman worker: cannot connect");
                    let wait = rt.sleep_until(rt.now() + delay);
                    self.shutdown.unless_stopped(wait).await;
                    continue;
                }
            };
            tracing::debug!(server = %addr, "gearman worker: connected");
            failures = 0;
            let (mut role, rx) = self.session(slots, None, &addr);
            drive(&mut role, io, rx, rt, &addr).await;
            let wait = rt.sleep_until(rt.now() + self.shared.backoff.delay(1));
            self.shutdown.unless_stopped(wait).await;
        }
    }

    /// A connection's worker state with the functions registered (minus those
    /// unregistered at run time), room for the jobs `slots` has left, and its command
    /// channel known to the handle.
    fn session(
        &self,
        slots: &Arc<Slots>,
        once: Option<Arc<Once>>,
        server: &str,
    ) -> (WorkerRole<Rt>, UnboundedReceiver<Cmd>) {
        let (tx, rx) = unbounded();
        let mut conn = WorkerConnection::new(self.shared.config.clone());
        let (session, room) = slots.begin(tx.clone());
        // Before the registration: the first CAN_DO grabs.
        conn.set_max_in_flight(room);
        // An invalid name (NUL, too long) is skipped, and said; the others still register.
        let skip = |f: &[u8]| self.shutdown.is_unregistered(f);
        for (function, e) in self.shared.functions.register_except(&mut conn, skip) {
            log_refused_function(server, &function, &e);
        }
        if let Ok(mut drivers) = self.shutdown.drivers.lock() {
            drivers.retain(|d| !d.is_closed());
            drivers.push(tx.clone());
        }
        if self.shutdown.is_stopping() {
            conn.stop_grabbing_at(self.shared.rt.now());
        }
        let role = WorkerRole {
            stopping: self.shutdown.is_stopping(),
            conn,
            shared: self.shared.clone(),
            tx,
            backlog: Arc::default(),
            taken: 0,
            unwritten: 0,
            once,
            slots: slots.clone(),
            session,
            server: server.to_owned(),
        };
        (role, rx)
    }

    /// Works on at most one job, like PECL's `GearmanWorker::work()` with a timeout:
    /// connects to every server, registers the functions, and waits up to `timeout` for
    /// an assignment; the first one stops the grabs on every connection, runs, and its
    /// result is sent before the connections close. Returns the jobs done: 1, or 0 when
    /// none came within `timeout` (rarely 2 or more, when several servers assigned a job
    /// at the same moment: an assigned job is always run, never dropped). It returns once
    /// the job's handler has, also when the connection was lost meanwhile (the result is
    /// then dropped, the server requeued the job). `Err(Error::NoServer)` lists each
    /// server's connect error when none was reachable.
    pub async fn work_once(&self, timeout: Duration) -> Result<usize, Error> {
        let rt = &self.shared.rt;
        let deadline = rt.now() + timeout;
        if self.shutdown.is_stopping() {
            return Ok(0);
        }
        let connects = self.servers.iter().map(|addr| async move {
            let connecting = connect(&*self.shared.connector, addr);
            let failed = |error| Unreachable {
                server: addr.clone(),
                error: Arc::new(error),
            };
            match select(connecting, rt.sleep_until(deadline)).await {
                Either::Left((Ok(io), _)) => Ok((addr, io)),
                Either::Left((Err(e), _)) => Err(failed(e)),
                Either::Right(_) => Err(failed(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "not connected within the timeout",
                ))),
            }
        });
        let mut connected = Vec::new();
        let mut unreachable = Vec::new();
        for result in join_all(connects).await {
            match result {
                Ok(conn) => connected.push(conn),
                Err(u) => {
                    tracing::warn!(server = %u.server, error = %u.error, "gearman worker: cannot connect");
                    unreachable.push(u);
                }
            }
        }
        if connected.is_empty() {
            return Err(Error::NoServer(unreachable));
        }
        let once = Arc::new(Once::default());
        let sessions = connected.into_iter().map(|(addr, io)| {
            // One job at most, and no reconnect.
            let slots = Arc::new(Slots::new(1));
            let (mut role, rx) = self.session(&slots, Some(once.clone()), addr);
            if let Ok(mut drivers) = once.drivers.lock() {
                drivers.push(role.tx.clone());
            }
            async move {
                drive(&mut role, io, rx, rt, addr).await;
                // Its handlers hear the connection is gone before they are waited for.
                drop(role);
                slots.all_returned().await;
            }
        });
        let sessions = Box::pin(join_all(sessions));
        // At the deadline only the grabs stop: a job assigned by then still finishes.
        let timer = rt.sleep_until(deadline);
        if let Either::Right((_, sessions)) = select(sessions, timer).await {
            once.stop_all();
            sessions.await;
        }
        Ok(once.taken.load(Ordering::SeqCst))
    }
}
