//! The async client: server choice and failover, one driver task per server connection,
//! and waiters that turn core events into futures and streams.

use crate::driver::{drive, Role};
use crate::{Error, Runtime};
use bytes::Bytes;
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::lock::Mutex;
use futures::{Stream, StreamExt};
use gearman_core::client::backoff::{Backoff, ReconnectSchedule};
use gearman_core::client::selector::ServerSelector;
use gearman_core::client::{ClientConfig, ClientConnection, ClientEvent};
use gearman_core::machine::RequestId;
use gearman_core::proto::{
    Priority, StatusRes, StatusResUnique, SubmitJob, SubmitMode, SubmitReduceJob,
};
use gearman_core::UsageError;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How a client picks a server for a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Selection {
    /// Rotate through the servers.
    #[default]
    RoundRobin,
    /// Hash the unique id, so equal uniques meet (and coalesce) on one server; jobs without
    /// a unique rotate.
    ByUnique,
}

/// A job to submit.
#[derive(Clone, Debug)]
pub struct Job {
    function: Bytes,
    data: Bytes,
    unique: Bytes,
    priority: Priority,
    epoch: Option<i64>,
    reducer: Option<Bytes>,
    timeout: Option<Duration>,
}

impl Job {
    /// A normal-priority job for `function` with workload `data` and no unique id.
    pub fn new(function: impl Into<Bytes>, data: impl Into<Bytes>) -> Self {
        Job {
            function: function.into(),
            data: data.into(),
            unique: Bytes::new(),
            priority: Priority::Normal,
            epoch: None,
            reducer: None,
            timeout: None,
        }
    }

    /// Sets the unique id (submissions with equal uniques coalesce on the server).
    pub fn unique(mut self, unique: impl Into<Bytes>) -> Self {
        self.unique = unique.into();
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Runs the job (in the background) at or after this Unix time (SUBMIT_JOB_EPOCH).
    pub fn at_epoch(mut self, unix_secs: i64) -> Self {
        self.epoch = Some(unix_secs);
        self
    }

    /// Submits as a map/reduce job whose pieces go to `reducer` (SUBMIT_REDUCE_JOB).
    pub fn reducer(mut self, reducer: impl Into<Bytes>) -> Self {
        self.reducer = Some(reducer.into());
        self
    }

    /// Gives up waiting after `timeout` (the job keeps running on the server).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// What a foreground job reports while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEvent {
    /// Accepted with this handle.
    Created(Bytes),
    /// Progress.
    Status(u32, u32),
    /// A data chunk.
    Data(Bytes),
    /// A warning.
    Warning(Bytes),
    /// Finished with this result (the last event).
    Complete(Bytes),
}

/// A request for the connection task.
enum Op {
    Submit(SubmitJob),
    Reduce(SubmitReduceJob),
    Status(Bytes),
    StatusUnique(Bytes),
    Echo(Bytes),
}

struct Start {
    op: Op,
    timeout: Option<Duration>,
    events: UnboundedSender<Result<ClientEvent, Error>>,
}

/// The connection task's waiter bookkeeping.
struct ClientRole {
    conn: ClientConnection,
    waiters: HashMap<RequestId, UnboundedSender<Result<ClientEvent, Error>>>,
}

impl Role for ClientRole {
    type M = ClientConnection;
    type Cmd = Start;

    fn machine(&mut self) -> &mut ClientConnection {
        &mut self.conn
    }

    fn command(&mut self, start: Start, now: Instant) {
        let sent = match start.op {
            Op::Submit(job) => self.conn.submit(job),
            Op::Reduce(job) => self.conn.submit_reduce(job),
            Op::Status(handle) => self.conn.get_status(handle),
            Op::StatusUnique(unique) => self.conn.get_status_unique(unique),
            Op::Echo(data) => self.conn.echo(data),
        };
        match sent {
            Ok(req) => {
                if let Some(timeout) = start.timeout {
                    self.conn.set_deadline(req, now + timeout);
                }
                self.waiters.insert(req, start.events);
            }
            Err(e) => {
                let _ = start.events.unbounded_send(Err(Error::Usage(e)));
            }
        }
    }

    fn event(&mut self, event: ClientEvent) {
        if let ClientEvent::Closed { reason } = &event {
            for (_, waiter) in self.waiters.drain() {
                let _ = waiter.unbounded_send(Err(Error::Connection(reason.clone())));
            }
            return;
        }
        let Some(req) = event.request_id() else {
            return;
        };
        let event_final = event.is_final();
        if let Some(waiter) = self.waiters.get(&req) {
            if waiter.unbounded_send(Ok(event)).is_err() {
                // The caller went away: stop reporting, keep consuming replies.
                self.conn.forget(req);
            }
        }
        if event_final {
            self.waiters.remove(&req);
        }
    }
}

struct Pool {
    selector: ServerSelector,
    schedule: ReconnectSchedule,
    conns: Vec<Option<UnboundedSender<Start>>>,
    /// Which server created each background handle, to ask the right one for its status.
    homes: HashMap<Bytes, usize>,
}

struct Inner<Rt: Runtime> {
    rt: Rt,
    servers: Vec<String>,
    config: ClientConfig,
    selection: Selection,
    timeout: Option<Duration>,
    pool: Mutex<Pool>,
}

/// Configures a [`Client`].
pub struct ClientBuilder<Rt: Runtime> {
    rt: Rt,
    servers: Vec<String>,
    config: ClientConfig,
    selection: Selection,
    timeout: Option<Duration>,
    backoff: Backoff,
}

impl<Rt: Runtime> ClientBuilder<Rt> {
    /// A builder using runtime `rt`.
    pub fn new(rt: Rt) -> Self {
        ClientBuilder {
            rt,
            servers: Vec::new(),
            config: ClientConfig::default(),
            selection: Selection::RoundRobin,
            timeout: None,
            backoff: Backoff::default(),
        }
    }

    /// Adds a server (`host:port`); the first added is tried first.
    pub fn server(mut self, addr: impl Into<String>) -> Self {
        self.servers.push(addr.into());
        self
    }

    /// How to pick a server per submission.
    pub fn selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// Default timeout for every call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the id shown by the admin `workers` command.
    pub fn client_id(mut self, id: impl Into<Bytes>) -> Self {
        self.config.client_id = Some(id.into());
        self
    }

    /// Turns on the `exceptions` option on every connection.
    pub fn exceptions(mut self, on: bool) -> Self {
        self.config.exceptions = on;
        self
    }

    /// Sets the reconnect backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Builds the client; connections are opened lazily.
    pub fn build(self) -> Client<Rt> {
        let n = self.servers.len();
        Client {
            inner: Arc::new(Inner {
                rt: self.rt,
                config: self.config,
                selection: self.selection,
                timeout: self.timeout,
                pool: Mutex::new(Pool {
                    selector: ServerSelector::new(n),
                    schedule: ReconnectSchedule::new(n, self.backoff),
                    conns: vec![None; n],
                    homes: HashMap::new(),
                }),
                servers: self.servers,
            }),
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

/// The events of one foreground job, ending with [`JobEvent::Complete`] or an error.
pub struct JobStream {
    events: UnboundedReceiver<Result<ClientEvent, Error>>,
    done: bool,
    // Keeps the connection alive while the job is awaited.
    _keep: Arc<dyn Send + Sync>,
}

impl Stream for JobStream {
    type Item = Result<JobEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let event = match self.events.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => Err(Error::Connection(gearman_core::ConnError::Closed)),
            Poll::Ready(Some(event)) => event,
        };
        let (item, last) = match event {
            Ok(ClientEvent::Created { handle, .. }) => (Ok(JobEvent::Created(handle)), false),
            Ok(ClientEvent::Status {
                numerator,
                denominator,
                ..
            }) => (Ok(JobEvent::Status(numerator, denominator)), false),
            Ok(ClientEvent::Data { data, .. }) => (Ok(JobEvent::Data(data)), false),
            Ok(ClientEvent::Warning { data, .. }) => (Ok(JobEvent::Warning(data)), false),
            Ok(ClientEvent::Complete { data, .. }) => (Ok(JobEvent::Complete(data)), true),
            Ok(other) => (Err(final_error(other)), true),
            Err(e) => (Err(e), true),
        };
        self.done = last;
        Poll::Ready(Some(item))
    }
}

/// The error a final non-success event stands for.
fn final_error(event: ClientEvent) -> Error {
    match event {
        ClientEvent::Failed { .. } => Error::JobFailed,
        ClientEvent::Exception { data, .. } => Error::JobException(data),
        ClientEvent::ServerError { code, text, .. } => Error::Server { code, text },
        ClientEvent::TimedOut { .. } => Error::TimedOut,
        ClientEvent::Closed { reason } => Error::Connection(reason),
        _ => Error::Usage(UsageError::Closed),
    }
}

impl<Rt: Runtime> Client<Rt> {
    /// Connection to server `first`, or the next reachable one (failover), connecting and
    /// spawning its driver task if needed.
    async fn connection(&self, first: usize) -> Result<(usize, UnboundedSender<Start>), Error> {
        let inner = &self.inner;
        let mut pool = inner.pool.lock().await;
        let order: Vec<usize> = pool.selector.failover_order(first).collect();
        for idx in order {
            if let Some(Some(tx)) = pool.conns.get(idx) {
                if !tx.is_closed() {
                    return Ok((idx, tx.clone()));
                }
            }
            if !pool.schedule.is_ready(idx, inner.rt.now()) {
                continue;
            }
            let Some(addr) = inner.servers.get(idx) else {
                continue;
            };
            match inner.rt.connect(addr.clone()).await {
                Ok(io) => {
                    pool.schedule.on_success(idx);
                    let (tx, rx) = unbounded();
                    let rt = inner.rt.clone();
                    let mut role = ClientRole {
                        conn: ClientConnection::new(inner.config.clone()),
                        waiters: HashMap::new(),
                    };
                    inner.rt.spawn(Box::pin(async move {
                        drive(&mut role, io, rx, &rt).await;
                    }));
                    if let Some(slot) = pool.conns.get_mut(idx) {
                        *slot = Some(tx.clone());
                    }
                    return Ok((idx, tx));
                }
                Err(_) => pool.schedule.on_failure(idx, inner.rt.now()),
            }
        }
        Err(Error::NoServer)
    }

    async fn pick(&self, unique: &[u8]) -> usize {
        let mut pool = self.inner.pool.lock().await;
        let pick = match self.inner.selection {
            Selection::RoundRobin => pool.selector.round_robin(),
            Selection::ByUnique => pool.selector.by_unique(unique),
        };
        pick.unwrap_or(0)
    }

    /// Sends `op` to a server; returns the server index and the event receiver.
    async fn start(
        &self,
        server: usize,
        op: impl Fn() -> Op,
        timeout: Option<Duration>,
    ) -> Result<(usize, JobStream), Error> {
        for _ in 0..self.inner.servers.len().max(1) {
            let (idx, tx) = self.connection(server).await?;
            let (events, rx) = unbounded();
            let start = Start {
                op: op(),
                timeout: timeout.or(self.inner.timeout),
                events,
            };
            if tx.unbounded_send(start).is_ok() {
                let stream = JobStream {
                    events: rx,
                    done: false,
                    _keep: self.inner.clone(),
                };
                return Ok((idx, stream));
            }
            // That connection just died; forget it and fail over.
            if let Some(slot) = self.inner.pool.lock().await.conns.get_mut(idx) {
                *slot = None;
            }
        }
        Err(Error::NoServer)
    }

    fn submit_op(job: &Job, background: bool) -> Op {
        match &job.reducer {
            Some(reducer) => Op::Reduce(SubmitReduceJob {
                function: job.function.clone(),
                unique: job.unique.clone(),
                reducer: reducer.clone(),
                aggregator: Bytes::new(),
                background,
                data: job.data.clone(),
            }),
            None => Op::Submit(SubmitJob {
                function: job.function.clone(),
                unique: job.unique.clone(),
                mode: match (job.epoch, background) {
                    (Some(epoch), _) => SubmitMode::Epoch(epoch),
                    (None, true) => SubmitMode::Background(job.priority),
                    (None, false) => SubmitMode::Foreground(job.priority),
                },
                data: job.data.clone(),
            }),
        }
    }

    /// Submits a foreground job and streams its events.
    pub async fn submit(&self, job: Job) -> Result<JobStream, Error> {
        let server = self.pick(&job.unique).await;
        let (_, stream) = self
            .start(server, || Self::submit_op(&job, false), job.timeout)
            .await?;
        Ok(stream)
    }

    /// Submits a foreground job and waits for its result.
    pub async fn run(&self, job: Job) -> Result<Bytes, Error> {
        let mut stream = self.submit(job).await?;
        while let Some(event) = stream.next().await {
            if let JobEvent::Complete(data) = event? {
                return Ok(data);
            }
        }
        Err(Error::Connection(gearman_core::ConnError::Closed))
    }

    /// Submits a background job (or an epoch job); returns its handle.
    pub async fn submit_background(&self, job: Job) -> Result<Bytes, Error> {
        let server = self.pick(&job.unique).await;
        let (idx, mut stream) = self
            .start(server, || Self::submit_op(&job, true), job.timeout)
            .await?;
        match stream.next().await {
            Some(Ok(JobEvent::Created(handle))) => {
                self.inner
                    .pool
                    .lock()
                    .await
                    .homes
                    .insert(handle.clone(), idx);
                Ok(handle)
            }
            Some(Err(e)) => Err(e),
            _ => Err(Error::Connection(gearman_core::ConnError::Closed)),
        }
    }

    async fn one_reply(&self, server: usize, op: impl Fn() -> Op) -> Result<ClientEvent, Error> {
        let (_, mut stream) = self.start(server, op, None).await?;
        match stream.events.next().await {
            Some(Ok(ClientEvent::ServerError { code, text, .. })) => {
                Err(Error::Server { code, text })
            }
            Some(Ok(ClientEvent::TimedOut { .. })) => Err(Error::TimedOut),
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(e),
            None => Err(Error::Connection(gearman_core::ConnError::Closed)),
        }
    }

    /// Asks for a job's status by handle (on the server that created it, if known here).
    pub async fn status(&self, handle: impl Into<Bytes>) -> Result<StatusRes, Error> {
        let handle = handle.into();
        let home = self.inner.pool.lock().await.homes.get(&handle).copied();
        match self
            .one_reply(home.unwrap_or(0), || Op::Status(handle.clone()))
            .await?
        {
            ClientEvent::StatusRes { status, .. } => Ok(status),
            other => Err(final_error(other)),
        }
    }

    /// Asks for a job's status by unique id (on the server the unique maps to).
    pub async fn status_unique(&self, unique: impl Into<Bytes>) -> Result<StatusResUnique, Error> {
        let unique = unique.into();
        let server = match self.inner.selection {
            Selection::ByUnique => self.pick(&unique).await,
            Selection::RoundRobin => 0,
        };
        match self
            .one_reply(server, || Op::StatusUnique(unique.clone()))
            .await?
        {
            ClientEvent::StatusResUnique { status, .. } => Ok(status),
            other => Err(final_error(other)),
        }
    }

    /// Sends ECHO_REQ to the first reachable server; returns the echoed bytes.
    pub async fn echo(&self, data: impl Into<Bytes>) -> Result<Bytes, Error> {
        let data = data.into();
        match self.one_reply(0, || Op::Echo(data.clone())).await? {
            ClientEvent::EchoRes { data, .. } => Ok(data),
            other => Err(final_error(other)),
        }
    }
}
