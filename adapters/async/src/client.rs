//! The async client: one driver task per server connection, and waiters that turn core
//! events into futures and streams. Server choice, failover, backoff and connect errors
//! are the core's [`Router`] (the blocking client's too); event dispatch is the core's
//! [`Waiters`].

use crate::driver::{drive, Role, WorkloadSource};
use crate::{connect, Connector, Error, JobEvent, Runtime, Task, TaskOutput};
use bytes::Bytes;
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::io::AsyncRead;
use futures::{Stream, StreamExt};
use gearman_core::client::{
    Call, CallError, ClientConfig, ClientConnection, ClientEvent, ClientOptions, Connection, Job,
    Router, Schedule, Step, Waiters,
};
use gearman_core::machine::RequestId;
use gearman_core::proto::{StatusRes, StatusResUnique};
use gearman_core::ConnError;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long [`Client::connect`] waits for a server's ECHO when the client has no call
/// timeout.
pub const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

type Results = UnboundedSender<Result<ClientEvent, CallError>>;

/// A call for the connection task.
struct Start {
    call: Call,
    /// When the call times out (its connect included).
    deadline: Option<Instant>,
    events: Results,
    /// A streamed submission's source.
    source: Option<WorkloadSource>,
}

/// A server's connection as the router holds it: the channel to its driver task.
struct Conn(UnboundedSender<Start>);

impl Connection for Conn {
    fn is_open(&self) -> bool {
        !self.0.is_closed()
    }
}

/// The client's servers, shared by its tasks and told what each connection reports. Never
/// locked across an await: connects to different servers run side by side.
type Servers = Mutex<Router<Conn, Arc<io::Error>>>;

fn lock(servers: &Servers) -> MutexGuard<'_, Router<Conn, Arc<io::Error>>> {
    // A poisoned lock only means another task panicked mid-update of plain data.
    servers.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection task's waiter bookkeeping.
struct ClientRole {
    conn: ClientConnection,
    waiters: Waiters<Results>,
    sources: HashMap<RequestId, WorkloadSource>,
    /// The router, told of this server's handles and of the connection's loss (weak: a
    /// dropped client's connections must close).
    servers: Weak<Servers>,
    idx: usize,
}

impl Role for ClientRole {
    type M = ClientConnection;
    type Cmd = Start;

    fn machine(&mut self) -> &mut ClientConnection {
        &mut self.conn
    }

    fn command(&mut self, start: Start, _now: Instant) {
        match self.conn.start(start.call) {
            Ok(req) => {
                if let Some(deadline) = start.deadline {
                    self.conn.set_deadline(req, deadline);
                }
                self.waiters.insert(req, start.events);
                if let Some(source) = start.source {
                    self.sources.insert(req, source);
                }
            }
            Err(e) => {
                let _ = start.events.unbounded_send(Err(CallError::Usage(e)));
            }
        }
    }

    fn event(&mut self, event: ClientEvent, now: Instant) {
        // Before the waiters: a status call made on a new handle must find its server.
        if let Some(servers) = self.servers.upgrade() {
            lock(&servers).on_event(self.idx, &event, now);
        }
        let gone = self
            .waiters
            .dispatch(event, |tx, result| tx.unbounded_send(result).is_ok());
        if let Some(req) = gone {
            // The caller went away: stop reporting, keep consuming replies.
            self.conn.forget(req);
        }
    }

    fn workload(&mut self) -> Option<(usize, Option<&mut WorkloadSource>)> {
        let (req, want) = self.conn.workload_wanted()?;
        Some((want, self.sources.get_mut(&req)))
    }

    fn workload_read(&mut self, read: io::Result<&[u8]>) {
        let Some((req, _)) = self.conn.workload_wanted() else {
            return;
        };
        match read {
            Ok(bytes) if !bytes.is_empty() => self.conn.workload_input(bytes),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The source ended or failed: the core says whether the workload is complete.
            ended => {
                self.sources.remove(&req);
                match ended {
                    Ok(_) => self.conn.workload_input(&[]),
                    Err(e) => self.conn.workload_error(e),
                }
            }
        }
    }
}

struct Inner<Rt: Runtime> {
    rt: Rt,
    connector: Arc<dyn Connector>,
    config: ClientConfig,
    timeout: Option<Duration>,
    servers: Arc<Servers>,
}

/// Configures a [`Client`].
pub struct ClientBuilder<Rt: Runtime> {
    rt: Rt,
    connector: Arc<dyn Connector>,
    addrs: Vec<String>,
    options: ClientOptions,
}

impl<Rt: Runtime> ClientBuilder<Rt> {
    /// A builder using runtime `rt`, connecting with `connector`.
    pub fn new(rt: Rt, connector: impl Connector) -> Self {
        ClientBuilder {
            rt,
            connector: Arc::new(connector),
            addrs: Vec::new(),
            options: ClientOptions::default(),
        }
    }

    crate::__client_builder_methods!(Connector);

    /// Connects over TLS with these settings (TCP or Unix sockets; replaces the
    /// connector): each server's certificate is verified, and its name too unless the
    /// settings say otherwise. A refused handshake is that server's connect error. The
    /// runtime crate's docs have an example.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::ClientTls) -> Self
    where
        Rt: crate::TlsRuntime,
    {
        self.connector = self.rt.tls_connector(tls);
        self
    }

    /// Builds the client; connections are opened lazily.
    pub fn build(self) -> Client<Rt> {
        let router = Router::new(self.addrs, &self.options);
        let inner = Inner {
            rt: self.rt,
            connector: self.connector,
            config: self.options.config,
            timeout: self.options.timeout,
            servers: Arc::new(Mutex::new(router)),
        };
        Client {
            inner: Arc::new(inner),
        }
    }
}

/// An async Gearman client; cheap to clone, usable from many tasks at once.
pub struct Client<Rt: Runtime> {
    inner: Arc<Inner<Rt>>,
}

impl<Rt: Runtime> Clone for Client<Rt> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
        }
    }
}

/// The events of one foreground job, ending with `Complete`, `Failed` or `Exception` (or
/// an error: timeout, lost connection).
pub struct JobStream {
    events: UnboundedReceiver<Result<ClientEvent, CallError>>,
    done: bool,
    // Keeps the client's connections open while the job is awaited.
    _client: Arc<dyn Send + Sync>,
}

impl JobStream {
    /// The final result of a single-reply call.
    async fn reply(mut self) -> Result<ClientEvent, CallError> {
        self.events
            .next()
            .await
            .unwrap_or(Err(CallError::Connection(ConnError::Closed)))
    }
}

impl Stream for JobStream {
    type Item = Result<JobEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let event = match self.events.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => Err(CallError::Connection(ConnError::Closed)),
            Poll::Ready(Some(event)) => event,
        };
        let item = JobEvent::from_result(event).unwrap_or(Err(Error::UnexpectedReply));
        self.done = item.as_ref().map_or(true, JobEvent::is_final);
        Poll::Ready(Some(item))
    }
}

/// A foreground job's result: its last event, failures as errors.
async fn finish(mut stream: JobStream) -> Result<Bytes, Error> {
    while let Some(event) = stream.next().await {
        if let Some(result) = event?.into_result() {
            return result;
        }
    }
    Err(Error::Connection(ConnError::Closed))
}

impl<Rt: Runtime> Client<Rt> {
    fn servers(&self) -> MutexGuard<'_, Router<Conn, Arc<io::Error>>> {
        lock(&self.inner.servers)
    }

    /// The connection to server `idx`: the open one, or a new one with its driver task.
    /// The router hears how the connect went.
    async fn open(&self, idx: usize) -> Result<UnboundedSender<Start>, Arc<io::Error>> {
        let addr = {
            let servers = self.servers();
            if let Some(conn) = servers.open(idx) {
                return Ok(conn.0.clone());
            }
            servers.addr(idx).to_owned()
        };
        let inner = &self.inner;
        let connected = connect(&*inner.connector, &addr).await;
        let mut servers = self.servers();
        let io = match connected {
            Ok(io) => io,
            Err(e) => {
                let e = Arc::new(e);
                tracing::warn!(server = addr, error = %e, "gearman client: cannot connect");
                servers.failed(idx, inner.rt.now(), e.clone());
                return Err(e);
            }
        };
        tracing::debug!(server = addr, "gearman client: connected");
        // Another task may have connected meanwhile: use its connection, drop ours.
        if let Some(conn) = servers.open(idx) {
            return Ok(conn.0.clone());
        }
        let (tx, rx) = unbounded();
        servers.connected(idx, || Conn(tx.clone()));
        drop(servers);
        let mut role = ClientRole {
            conn: ClientConnection::new(inner.config.clone()),
            waiters: Waiters::default(),
            sources: HashMap::new(),
            servers: Arc::downgrade(&inner.servers),
            idx,
        };
        let rt = inner.rt.clone();
        inner.rt.spawn(Box::pin(async move {
            drive(&mut role, io, rx, &rt, &addr).await;
        }));
        Ok(tx)
    }

    /// [`Client::open`], given up at `deadline`: a connect still pending then (a host that
    /// drops SYNs, a TLS handshake never answered) is that server's failure, with a
    /// `TimedOut` error.
    async fn open_by(
        &self,
        idx: usize,
        deadline: Option<Instant>,
    ) -> Result<UnboundedSender<Start>, Arc<io::Error>> {
        let Some(deadline) = deadline else {
            return self.open(idx).await;
        };
        let timer = self.inner.rt.sleep_until(deadline);
        match futures::future::select(Box::pin(self.open(idx)), timer).await {
            futures::future::Either::Left((opened, _)) => opened,
            futures::future::Either::Right(_) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "not connected within the timeout");
                let e = Arc::new(e);
                let mut servers = self.servers();
                if servers.open(idx).is_none() {
                    let server = servers.addr(idx);
                    tracing::warn!(server, error = %e, "gearman client: cannot connect");
                    servers.failed(idx, self.inner.rt.now(), e.clone());
                }
                Err(e)
            }
        }
    }

    /// Sends `start` to the server the router picks, connecting and failing over as it
    /// says; a connection found closed on the way is replaced. A connect that outlasts
    /// the call's deadline ends the call with [`Error::TimedOut`].
    async fn send(&self, mut start: Start) -> Result<(), Error> {
        let mut route = self.servers().route(&start.call);
        loop {
            let step = match self.servers().next(&mut route, self.inner.rt.now()) {
                Step::Use(_, conn) => Ok(conn.0.clone()),
                Step::Connect(idx) => Err(Some(idx)),
                Step::NoServer => Err(None),
            };
            match step {
                Ok(tx) => match tx.unbounded_send(start) {
                    Ok(()) => return Ok(()),
                    Err(unsent) => start = unsent.into_inner(),
                },
                Err(Some(idx)) => {
                    let opened = self.open_by(idx, start.deadline).await;
                    let now = self.inner.rt.now();
                    if opened.is_err() && start.deadline.is_some_and(|d| d <= now) {
                        return Err(Error::TimedOut);
                    }
                }
                Err(None) => {
                    let unreachable = self.servers().unreachable();
                    return Err(Error::no_server(unreachable));
                }
            }
        }
    }

    /// Sends `call` to a server; returns its event stream.
    async fn start(&self, call: Call, timeout: Option<Duration>) -> Result<JobStream, Error> {
        self.start_with(call, timeout, None).await
    }

    /// [`Client::start`] with a streamed workload's source.
    async fn start_with(
        &self,
        call: Call,
        timeout: Option<Duration>,
        source: Option<WorkloadSource>,
    ) -> Result<JobStream, Error> {
        let (events, rx) = unbounded();
        let timeout = timeout.or(self.inner.timeout);
        let start = Start {
            call,
            deadline: timeout.map(|t| self.inner.rt.now() + t),
            events,
            source,
        };
        self.send(start).await?;
        Ok(self.stream(rx))
    }

    fn stream(&self, events: UnboundedReceiver<Result<ClientEvent, CallError>>) -> JobStream {
        JobStream {
            events,
            done: false,
            _client: self.inner.clone(),
        }
    }

    /// Opens the connection to server `idx` and confirms with one ECHO round trip that a
    /// Gearman server answers on it (a TCP connect alone also succeeds on a TLS-only port
    /// or another service), within the client's call timeout or [`CONNECT_CHECK_TIMEOUT`].
    /// A failed check is that server's connect error, and its connection is dropped.
    async fn open_checked(&self, idx: usize) -> Result<(), Arc<io::Error>> {
        let timeout = self.inner.timeout.unwrap_or(CONNECT_CHECK_TIMEOUT);
        let deadline = Some(self.inner.rt.now() + timeout);
        let tx = self.open_by(idx, deadline).await?;
        let (events, rx) = unbounded();
        let start = Start {
            call: Call::Echo(Bytes::from_static(b"gearman-rs: connect check")),
            deadline,
            events,
            source: None,
        };
        let answered = match tx.unbounded_send(start) {
            Ok(()) => self
                .stream(rx)
                .reply()
                .await
                .and_then(ClientEvent::into_bytes),
            Err(_) => Err(CallError::Connection(ConnError::Closed)),
        };
        let Err(e) = answered.map_err(Error::from) else {
            return Ok(());
        };
        let kind = match e {
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::Connection(_) => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::InvalidData,
        };
        let e = Arc::new(io::Error::new(
            kind,
            format!("connected, but the server did not answer an ECHO: {e}"),
        ));
        let mut servers = self.servers();
        let server = servers.addr(idx);
        tracing::warn!(server, error = %e, "gearman client: connect check failed");
        servers.failed(idx, self.inner.rt.now(), e.clone());
        Err(e)
    }

    /// Connects to every server now (connections are otherwise opened on first use) and
    /// checks with an ECHO round trip that each answers as a Gearman server, so a wrong
    /// address, a dead port or a TLS-only port without TLS shows at once. Fails with
    /// [`Error::NoServer`] naming each server that could not be reached or did not answer
    /// (within the call timeout, or [`CONNECT_CHECK_TIMEOUT`]); the others stay connected.
    pub async fn connect(&self) -> Result<(), Error> {
        let servers = self.servers().len();
        let opens = (0..servers).map(|idx| self.open_checked(idx));
        let opened = futures::future::join_all(opens)
            .await
            .into_iter()
            .enumerate();
        let failed: Vec<_> = opened
            .filter_map(|(idx, r)| Some((self.servers().addr(idx).to_owned(), r.err()?)))
            .collect();
        match failed.is_empty() && servers > 0 {
            true => Ok(()),
            false => Err(Error::no_server(failed)),
        }
    }

    /// An ECHO round trip to a server (the one the next call would use): its time.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let start = self.inner.rt.now();
        self.echo("ping").await?;
        Ok(self.inner.rt.now().saturating_duration_since(start))
    }

    /// Submits a foreground job and streams its events.
    pub async fn submit(&self, job: Job) -> Result<JobStream, Error> {
        self.start(job.call(false), job.call_timeout()).await
    }

    /// Submits a foreground job and waits for its result; a failed job or an exception is
    /// an error ([`Error::JobFailed`], [`Error::JobException`]).
    pub async fn run(&self, job: Job) -> Result<Bytes, Error> {
        finish(self.submit(job).await?).await
    }

    /// Submits a foreground job whose workload is streamed (PECL's `setWorkloadCallback`):
    /// exactly `len` bytes read from `reader`, in place of the job's data (which must be
    /// empty), copied onto the wire as they are read, a chunk at a time; the reader must
    /// end after them (a longer one can be cut with `AsyncReadExt::take`). Other requests
    /// on that connection wait until the workload is sent. A reader that fails, ends
    /// early or runs long closes the connection and ends the job with
    /// [`Error::Connection`]`(`[`ConnError::Workload`]`)`; nothing runs on the server.
    /// So does a timeout that passes before the reader produced the whole workload (the
    /// job ends with [`Error::TimedOut`], the connection's other calls with that error).
    ///
    /// ```no_run
    /// # async fn demo<Rt: gearman_async::Runtime>(client: gearman_async::Client<Rt>) -> Result<(), gearman_async::Error> {
    /// use futures::io::{AsyncReadExt, Cursor};
    /// use gearman_async::Job;
    /// // Any futures-io reader: a file, a socket, a generator.
    /// let source = Cursor::new(vec![7u8; 1 << 20]);
    /// let result = client.run_streamed(Job::new("checksum", ""), 1 << 20, source).await?;
    /// // A reader longer than the workload, cut to length.
    /// let endless = futures::io::repeat(0).take(4096);
    /// let handle = client.submit_background_streamed(Job::new("log", ""), 4096, endless).await?;
    /// # let _ = (result, handle); Ok(()) }
    /// ```
    pub async fn submit_streamed(
        &self,
        job: Job,
        len: u64,
        reader: impl AsyncRead + Send + Unpin + 'static,
    ) -> Result<JobStream, Error> {
        let (call, source) = (job.streamed_call(false, len), Box::new(reader));
        self.start_with(call, job.call_timeout(), Some(source))
            .await
    }

    /// [`Client::submit_streamed`], waiting for the result as [`Client::run`] does.
    pub async fn run_streamed(
        &self,
        job: Job,
        len: u64,
        reader: impl AsyncRead + Send + Unpin + 'static,
    ) -> Result<Bytes, Error> {
        finish(self.submit_streamed(job, len, reader).await?).await
    }

    /// A background job whose workload is streamed as in [`Client::submit_streamed`];
    /// returns its handle.
    pub async fn submit_background_streamed(
        &self,
        job: Job,
        len: u64,
        reader: impl AsyncRead + Send + Unpin + 'static,
    ) -> Result<Bytes, Error> {
        let (call, source) = (job.streamed_call(true, len), Box::new(reader));
        self.created(call, job.call_timeout(), Some(source)).await
    }

    /// Runs a batch of tasks at once (PECL's `addTask*`/`runTasks`, `addTaskStatus`): each
    /// goes to its server as a call is; `on_event(i, event)` sees the events of foreground
    /// task `i`, its last one included. Returns each task's output, in task order.
    pub async fn run_batch(
        &self,
        tasks: Vec<Task>,
        mut on_event: impl FnMut(usize, &JobEvent),
    ) -> Vec<Result<TaskOutput, Error>> {
        let closed = || Err(Error::Connection(ConnError::Closed));
        let mut outputs: Vec<Result<TaskOutput, Error>> = tasks.iter().map(|_| closed()).collect();
        let mut streams = Vec::new();
        for (i, task) in tasks.iter().enumerate() {
            let (call, timeout) = task.call();
            match self.start(call, timeout).await {
                Ok(stream) => streams.push(stream.events.map(move |e| (i, e))),
                Err(e) => outputs[i] = Err(e),
            }
        }
        let mut events = futures::stream::select_all(streams);
        while let Some((i, result)) = events.next().await {
            let is_final = result.as_ref().map_or(true, ClientEvent::is_final);
            if let (Some(Task::Run(_)), Some(Ok(event))) =
                (tasks.get(i), JobEvent::from_result(result.clone()))
            {
                on_event(i, &event);
            }
            if is_final {
                outputs[i] = TaskOutput::from_result(result);
            }
        }
        outputs
    }

    /// Runs many foreground jobs at once; `on_event(i, event)` sees the events of job `i`.
    /// Returns the results in job order.
    pub async fn run_tasks(
        &self,
        jobs: Vec<Job>,
        on_event: impl FnMut(usize, &JobEvent),
    ) -> Vec<Result<Bytes, Error>> {
        let tasks = jobs.into_iter().map(Task::Run).collect();
        let outputs = self.run_batch(tasks, on_event).await.into_iter();
        outputs.map(|o| o?.into_bytes()).collect()
    }

    /// Submits a background job (or an epoch job); returns its handle.
    pub async fn submit_background(&self, job: Job) -> Result<Bytes, Error> {
        self.created(job.call(true), job.call_timeout(), None).await
    }

    /// Submits `job` as a recurring background job on `schedule` (SUBMIT_JOB_SCHED, a
    /// gearmand-rs extension: gearmand answers [`Error::Server`]); returns the schedule's
    /// handle, which admin `show schedules` lists and `cancel job` ends. A field the server
    /// would refuse is [`Error::Usage`] naming it, and nothing is sent.
    pub async fn submit_scheduled(&self, job: Job, schedule: Schedule) -> Result<Bytes, Error> {
        let call = job.scheduled_call(&schedule);
        self.created(call, job.call_timeout(), None).await
    }

    /// Sends a call that ends with JOB_CREATED (streaming its workload from `source`, if
    /// any); returns the handle.
    async fn created(
        &self,
        call: Call,
        timeout: Option<Duration>,
        source: Option<WorkloadSource>,
    ) -> Result<Bytes, Error> {
        let stream = self.start_with(call, timeout, source).await?;
        Ok(stream.reply().await?.into_bytes()?)
    }

    /// Asks for a job's status by handle (on the server that created it, if known here).
    pub async fn status(&self, handle: impl Into<Bytes>) -> Result<StatusRes, Error> {
        let stream = self.start(Call::Status(handle.into()), None).await?;
        Ok(stream.reply().await?.into_status()?)
    }

    /// Asks for a job's status by unique id (on the server the unique maps to with
    /// [`Selection::ByUnique`](crate::Selection::ByUnique), else the first reachable one).
    pub async fn status_unique(&self, unique: impl Into<Bytes>) -> Result<StatusResUnique, Error> {
        let stream = self.start(Call::StatusUnique(unique.into()), None).await?;
        Ok(stream.reply().await?.into_status_unique()?)
    }

    /// Sends ECHO_REQ to the first reachable server; returns the echoed bytes.
    pub async fn echo(&self, data: impl Into<Bytes>) -> Result<Bytes, Error> {
        let stream = self.start(Call::Echo(data.into()), None).await?;
        Ok(stream.reply().await?.into_bytes()?)
    }
}
