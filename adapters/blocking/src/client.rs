//! The blocking client: a lazily opened connection per server, failover and backoff from
//! the core's [`ClientSet`], and many calls pipelined at once (PECL's addTask/runTasks).

use crate::Error;
use crate::{Connector, StdConnector, Stream};
use bytes::Bytes;
use gearman_async::blocking::{connect, flush, wait};
use gearman_core::client::{Call, ClientEvent, ClientOptions, ClientSet, Job};
use gearman_core::proto::{StatusRes, StatusResUnique};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A blocking Gearman client over several servers.
pub struct Client {
    set: ClientSet<Box<dyn Stream>>,
    connector: Arc<dyn Connector>,
}

impl Client {
    /// A client for these servers (`host:port`, `[v6]:port` or `unix:/path`): round-robin,
    /// failing over in list order. A malformed address fails like an unreachable server.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        Self::with_options(servers, ClientOptions::default())
    }

    /// A client with options: selection, backoff, timeout, `exceptions`, client id.
    pub fn with_options<S>(servers: impl IntoIterator<Item = S>, options: ClientOptions) -> Self
    where
        S: Into<String>,
    {
        let addrs = servers.into_iter().map(Into::into).collect();
        let set = ClientSet::new(addrs, &options);
        let connector = Arc::new(StdConnector);
        Client { set, connector }
    }

    /// Replaces the connector (how a stream to a server is opened: TLS plugs in here).
    pub fn connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = connector;
        self
    }

    /// Sends every call (pipelined per connection), then runs each busy connection until
    /// its calls end; `on_event(i, event)` sees each event of call `i`.
    fn run_calls(
        &mut self,
        calls: Vec<(Call, Option<Duration>)>,
        mut on_event: impl FnMut(usize, &ClientEvent),
    ) -> Vec<Result<ClientEvent, Error>> {
        let connector = &*self.connector;
        let open = |addr: &str| connect(connector, addr);
        self.set.start(calls, Instant::now(), open);
        let (mut out, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        let busy = self.set.busy();
        // Every server gets its calls before we wait on any one of them.
        for &idx in &busy {
            if let Some(m) = self.set.member(idx) {
                flush(&mut m.machine, &mut *m.io, &mut out);
            }
        }
        for idx in busy {
            while let Some(m) = self.set.member(idx) {
                flush(&mut m.machine, &mut *m.io, &mut out);
                if !self.set.drain(idx, Instant::now(), &mut on_event) {
                    break;
                }
                if let Some(m) = self.set.member(idx) {
                    wait(&mut m.machine, &mut *m.io, &mut buf, Duration::from_secs(1));
                }
            }
        }
        self.set.take_results()
    }

    fn call(&mut self, call: Call, timeout: Option<Duration>) -> Result<ClientEvent, Error> {
        let mut results = self.run_calls(vec![(call, timeout)], |_, _| {});
        results.pop().unwrap_or(Err(Error::NoServer))
    }

    /// Runs many foreground jobs at once; `on_event(i, event)` sees the created, status,
    /// data and warning events of job `i`. Returns the results in job order.
    pub fn run_tasks(
        &mut self,
        jobs: Vec<Job>,
        on_event: impl FnMut(usize, &ClientEvent),
    ) -> Vec<Result<Bytes, Error>> {
        let calls = jobs
            .iter()
            .map(|j| (j.call(false), j.call_timeout()))
            .collect();
        let results = self.run_calls(calls, on_event).into_iter();
        results.map(|r| r?.into_bytes()).collect()
    }

    /// Runs a foreground job; `on_event` sees its created, status, data and warning events.
    pub fn run_with(&mut self, job: Job, mut on: impl FnMut(&ClientEvent)) -> Result<Bytes, Error> {
        let mut results = self.run_tasks(vec![job], |_, e| on(e));
        results.pop().unwrap_or(Err(Error::NoServer))
    }

    /// Runs a foreground job and returns its result.
    pub fn run(&mut self, job: Job) -> Result<Bytes, Error> {
        self.run_with(job, |_| {})
    }

    /// Submits a background (or epoch) job; returns its handle.
    pub fn submit_background(&mut self, job: Job) -> Result<Bytes, Error> {
        self.call(job.call(true), job.call_timeout())?.into_bytes()
    }

    /// Asks for a job's status by handle (on the server that created it, if known here).
    pub fn status(&mut self, handle: impl Into<Bytes>) -> Result<StatusRes, Error> {
        self.call(Call::Status(handle.into()), None)?.into_status()
    }

    /// Asks for a job's status by unique id.
    pub fn status_unique(&mut self, unique: impl Into<Bytes>) -> Result<StatusResUnique, Error> {
        self.call(Call::StatusUnique(unique.into()), None)?
            .into_status_unique()
    }

    /// Sends ECHO_REQ; returns the echoed bytes.
    pub fn echo(&mut self, data: impl Into<Bytes>) -> Result<Bytes, Error> {
        self.call(Call::Echo(data.into()), None)?.into_bytes()
    }
}
