//! The async client: one driver task per server connection, and waiters that turn core
//! events into futures and streams. Server choice, failover and backoff are the core's
//! [`ServerPool`]; event dispatch is the core's [`Waiters`].

use crate::driver::{drive, Role, WorkloadSource};
use crate::{connect, Connector, Error, JobEvent, Runtime, Task, TaskOutput, Unreachable};
use bytes::Bytes;
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::io::AsyncRead;
use futures::{Stream, StreamExt};
use gearman_core::client::{
    Call, CallError, ClientConfig, ClientConnection, ClientEvent, ClientOptions, Job, Schedule,
    ServerPool, Waiters,
};
use gearman_core::machine::RequestId;
use gearman_core::proto::{StatusRes, StatusResUnique};
use gearman_core::ConnError;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long [`Client::connect`] waits for a server's ECHO when the client has no call
/// timeout.
pub const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

type Results = UnboundedSender<Result<ClientEvent, CallError>>;

/// A call for the connection task.
struct Start {
    call: Call,
    timeout: Option<Duration>,
    events: Results,
    /// A streamed submission's source.
    source: Option<WorkloadSource>,
}

/// The connection task's waiter bookkeeping.
struct ClientRole {
    conn: ClientConnection,
    waiters: Waiters<Results>,
    sources: HashMap<RequestId, WorkloadSource>,
}

impl Role for ClientRole {
    type M = ClientConnection;
    type Cmd = Start;

    fn machine(&mut self) -> &mut ClientConnection {
        &mut self.conn
    }

    fn command(&mut self, start: Start, now: Instant) {
        match self.conn.start(start.call) {
            Ok(req) => {
                if let Some(timeout) = start.timeout {
                    self.conn.set_deadline(req, now + timeout);
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

    fn event(&mut self, event: ClientEvent) {
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

struct Pool {
    servers: ServerPool,
    conns: Vec<Option<UnboundedSender<Start>>>,
    // Each server's last connect error, for `Error::NoServer`.
    errors: Vec<Option<Arc<io::Error>>>,
}

struct Inner<Rt: Runtime> {
    rt: Rt,
    connector: Arc<dyn Connector>,
    addrs: Vec<String>,
    config: ClientConfig,
    timeout: Option<Duration>,
    // Never held across an await: connects to different servers run side by side.
    pool: Mutex<Pool>,
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
        let n = self.addrs.len();
        let pool = Pool {
            servers: self.options.pool(n),
            conns: vec![None; n],
            errors: vec![None; n],
        };
        let inner = Inner {
            rt: self.rt,
            connector: self.connector,
            addrs: self.addrs,
            config: self.options.config,
            timeout: self.options.timeout,
            pool: Mutex::new(pool),
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
    fn pool(&self) -> MutexGuard<'_, Pool> {
        // A poisoned lock only means another task panicked mid-update of plain data.
        self.inner.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live connection to `idx`, if any.
    fn live(&self, idx: usize) -> Option<UnboundedSender<Start>> {
        let pool = self.pool();
        pool.conns.get(idx)?.clone().filter(|tx| !tx.is_closed())
    }

    /// Every server with a connect error, for [`Error::NoServer`].
    fn no_server(&self) -> Error {
        let pool = self.pool();
        let failed = pool.errors.iter().zip(&self.inner.addrs);
        let servers = failed.filter_map(|(e, server)| {
            let error = e.clone()?;
            let server = server.clone();
            Some(Unreachable { server, error })
        });
        Error::NoServer(servers.collect())
    }

    /// The connection to server `idx`: the live one, or a new one with its driver task.
    async fn open(&self, idx: usize) -> Result<UnboundedSender<Start>, Arc<io::Error>> {
        if let Some(tx) = self.live(idx) {
            return Ok(tx);
        }
        let inner = &self.inner;
        let addr = inner.addrs.get(idx).map_or("", String::as_str);
        let io = match connect(&*inner.connector, addr).await {
            Ok(io) => io,
            Err(e) => {
                let e = Arc::new(e);
                let mut pool = self.pool();
                pool.servers.on_failure(idx, inner.rt.now());
                tracing::warn!(server = addr, error = %e, "gearman client: cannot connect");
                if let Some(slot) = pool.errors.get_mut(idx) {
                    *slot = Some(e.clone());
                }
                return Err(e);
            }
        };
        tracing::debug!(server = addr, "gearman client: connected");
        let mut pool = self.pool();
        pool.servers.on_connected(idx);
        // Another task may have connected meanwhile: use its connection, drop ours.
        if let Some(Some(tx)) = pool
            .conns
            .get(idx)
            .filter(|c| c.as_ref().is_some_and(|tx| !tx.is_closed()))
        {
            return Ok(tx.clone());
        }
        let (tx, rx) = unbounded();
        let rt = inner.rt.clone();
        let mut role = ClientRole {
            conn: ClientConnection::new(inner.config.clone()),
            waiters: Waiters::default(),
            sources: HashMap::new(),
        };
        let server = addr.to_owned();
        inner.rt.spawn(Box::pin(async move {
            drive(&mut role, io, rx, &rt, &server).await;
        }));
        if let Some(slot) = pool.conns.get_mut(idx) {
            *slot = Some(tx.clone());
        }
        Ok(tx)
    }

    /// A connection for a call whose first choice is `first`, failing over in the pool's
    /// order; connects (without holding the pool lock) where needed.
    async fn connection(&self, first: usize) -> Result<(usize, UnboundedSender<Start>), Error> {
        let now = self.inner.rt.now();
        let order = {
            let pool = self.pool();
            let conns = &pool.conns;
            let live = |i: usize| {
                conns
                    .get(i)
                    .is_some_and(|c| c.as_ref().is_some_and(|tx| !tx.is_closed()))
            };
            pool.servers.candidates(first, now, live)
        };
        for idx in order {
            if let Ok(tx) = self.open(idx).await {
                return Ok((idx, tx));
            }
        }
        Err(self.no_server())
    }

    /// Sends `call` to a server; returns the server index and the event stream.
    async fn start(
        &self,
        call: Call,
        timeout: Option<Duration>,
    ) -> Result<(usize, JobStream), Error> {
        self.start_with(call, timeout, None).await
    }

    /// [`Client::start`] with a streamed workload's source.
    async fn start_with(
        &self,
        call: Call,
        timeout: Option<Duration>,
        mut source: Option<WorkloadSource>,
    ) -> Result<(usize, JobStream), Error> {
        let first = self.pool().servers.first_choice(&call);
        for _ in 0..=self.inner.addrs.len() {
            let (idx, tx) = self.connection(first).await?;
            let (events, rx) = unbounded();
            let start = Start {
                call: call.clone(),
                timeout: timeout.or(self.inner.timeout),
                events,
                source: source.take(),
            };
            match tx.unbounded_send(start) {
                Ok(()) => {
                    let stream = JobStream {
                        events: rx,
                        done: false,
                        _client: self.inner.clone(),
                    };
                    return Ok((idx, stream));
                }
                // The source goes to the next server.
                Err(unsent) => source = unsent.into_inner().source,
            }
            // That connection just closed: forget it and try again (reconnecting, or
            // failing over if the server is gone: a failed connect backs it off).
            if let Some(slot) = self.pool().conns.get_mut(idx) {
                *slot = None;
            }
        }
        Err(self.no_server())
    }

    /// Opens the connection to server `idx` and confirms with one ECHO round trip that a
    /// Gearman server answers on it (a TCP connect alone also succeeds on a TLS-only port
    /// or another service), within the client's call timeout or [`CONNECT_CHECK_TIMEOUT`].
    /// A failed check is that server's connect error, and its connection is dropped.
    async fn open_checked(&self, idx: usize) -> Result<(), Arc<io::Error>> {
        let tx = self.open(idx).await?;
        let (events, rx) = unbounded();
        let start = Start {
            call: Call::Echo(Bytes::from_static(b"gearman-rs: connect check")),
            timeout: Some(self.inner.timeout.unwrap_or(CONNECT_CHECK_TIMEOUT)),
            events,
            source: None,
        };
        let stream = JobStream {
            events: rx,
            done: false,
            _client: self.inner.clone(),
        };
        let answered = match tx.unbounded_send(start) {
            Ok(()) => stream.reply().await.and_then(ClientEvent::into_bytes),
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
        let addr = self.inner.addrs.get(idx).map_or("", String::as_str);
        tracing::warn!(server = addr, error = %e, "gearman client: connect check failed");
        let mut pool = self.pool();
        pool.servers.on_failure(idx, self.inner.rt.now());
        if let Some(slot) = pool.errors.get_mut(idx) {
            *slot = Some(e.clone());
        }
        if let Some(slot) = pool.conns.get_mut(idx) {
            *slot = None;
        }
        Err(e)
    }

    /// Connects to every server now (connections are otherwise opened on first use) and
    /// checks with an ECHO round trip that each answers as a Gearman server, so a wrong
    /// address, a dead port or a TLS-only port without TLS shows at once. Fails with
    /// [`Error::NoServer`] naming each server that could not be reached or did not answer
    /// (within the call timeout, or [`CONNECT_CHECK_TIMEOUT`]); the others stay connected.
    pub async fn connect(&self) -> Result<(), Error> {
        let opens = (0..self.inner.addrs.len()).map(|idx| self.open_checked(idx));
        let opened = futures::future::join_all(opens).await;
        let failed = opened.iter().zip(&self.inner.addrs);
        let failed: Vec<_> = failed
            .filter_map(|(r, server)| {
                let error = r.as_ref().err()?.clone();
                Some(Unreachable {
                    server: server.clone(),
                    error,
                })
            })
            .collect();
        match failed.is_empty() && !self.inner.addrs.is_empty() {
            true => Ok(()),
            false => Err(Error::NoServer(failed)),
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
        let (_, stream) = self.start(job.call(false), job.call_timeout()).await?;
        Ok(stream)
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
        let started = self.start_with(call, job.call_timeout(), Some(source));
        Ok(started.await?.1)
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
                Ok((idx, stream)) => streams.push(stream.events.map(move |e| (i, idx, e))),
                Err(e) => outputs[i] = Err(e),
            }
        }
        let mut events = futures::stream::select_all(streams);
        while let Some((i, idx, result)) = events.next().await {
            let is_final = result.as_ref().map_or(true, ClientEvent::is_final);
            if let (Some(Task::Run(_)), Some(Ok(event))) =
                (tasks.get(i), JobEvent::from_result(result.clone()))
            {
                on_event(i, &event);
            }
            if let Ok(ClientEvent::Created {
                handle,
                background: true,
                ..
            }) = &result
            {
                self.pool().servers.remember(handle.clone(), idx);
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
        let (idx, stream) = self.start_with(call, timeout, source).await?;
        let handle = stream.reply().await?.into_bytes()?;
        self.pool().servers.remember(handle.clone(), idx);
        Ok(handle)
    }

    /// Asks for a job's status by handle (on the server that created it, if known here).
    pub async fn status(&self, handle: impl Into<Bytes>) -> Result<StatusRes, Error> {
        let (_, stream) = self.start(Call::Status(handle.into()), None).await?;
        Ok(stream.reply().await?.into_status()?)
    }

    /// Asks for a job's status by unique id (on the server the unique maps to with
    /// [`Selection::ByUnique`](crate::Selection::ByUnique), else the first reachable one).
    pub async fn status_unique(&self, unique: impl Into<Bytes>) -> Result<StatusResUnique, Error> {
        let (_, stream) = self.start(Call::StatusUnique(unique.into()), None).await?;
        Ok(stream.reply().await?.into_status_unique()?)
    }

    /// Sends ECHO_REQ to the first reachable server; returns the echoed bytes.
    pub async fn echo(&self, data: impl Into<Bytes>) -> Result<Bytes, Error> {
        let (_, stream) = self.start(Call::Echo(data.into()), None).await?;
        Ok(stream.reply().await?.into_bytes()?)
    }
}
