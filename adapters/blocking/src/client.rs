//! The blocking client: one connection, one call at a time, failover on connect.

use crate::io::{connect, flush, wait, Error};
use bytes::Bytes;
use gearman_core::client::{ClientConfig, ClientConnection, ClientEvent};
use gearman_core::machine::{Machine, RequestId};
use gearman_core::proto::{Priority, StatusRes, SubmitJob, SubmitMode};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A job to submit.
#[derive(Clone, Debug)]
pub struct Job {
    function: Bytes,
    data: Bytes,
    unique: Bytes,
    priority: Priority,
    timeout: Option<Duration>,
}

impl Job {
    /// A normal-priority job for `function` with workload `data`.
    pub fn new(function: impl Into<Bytes>, data: impl Into<Bytes>) -> Self {
        Job {
            function: function.into(),
            data: data.into(),
            unique: Bytes::new(),
            priority: Priority::Normal,
            timeout: None,
        }
    }

    /// Sets the unique id.
    pub fn unique(mut self, unique: impl Into<Bytes>) -> Self {
        self.unique = unique.into();
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Gives up after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn submit(&self, background: bool) -> SubmitJob {
        SubmitJob {
            function: self.function.clone(),
            unique: self.unique.clone(),
            mode: if background {
                SubmitMode::Background(self.priority)
            } else {
                SubmitMode::Foreground(self.priority)
            },
            data: self.data.clone(),
        }
    }
}

/// A blocking Gearman client.
pub struct Client {
    servers: Vec<String>,
    config: ClientConfig,
    conn: Option<(TcpStream, ClientConnection)>,
}

impl Client {
    /// A client for these servers (`host:port`), tried in order.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        Client {
            servers: servers.into_iter().map(Into::into).collect(),
            config: ClientConfig::default(),
            conn: None,
        }
    }

    /// Turns on the `exceptions` option.
    pub fn exceptions(mut self, on: bool) -> Self {
        self.config.exceptions = on;
        self
    }

    /// Runs one request to its end; `on_event` sees every event for it. Returns the last.
    fn call(
        &mut self,
        start: impl FnOnce(&mut ClientConnection) -> Result<RequestId, gearman_core::UsageError>,
        timeout: Option<Duration>,
        mut on_event: impl FnMut(&ClientEvent),
    ) -> Result<ClientEvent, Error> {
        if self.conn.as_ref().is_none_or(|(_, c)| c.is_closed()) {
            let stream = connect(&self.servers)?;
            self.conn = Some((stream, ClientConnection::new(self.config.clone())));
        }
        let Some((stream, conn)) = self.conn.as_mut() else {
            return Err(Error::TimedOut);
        };
        let req = start(conn).map_err(Error::Usage)?;
        if let Some(t) = timeout {
            conn.set_deadline(req, Instant::now() + t);
        }
        let (mut out, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        loop {
            flush(conn, stream, &mut out);
            while let Some(event) = conn.poll_event() {
                if let ClientEvent::Closed { reason } = event {
                    return Err(Error::Connection(reason));
                }
                if event.request_id() == Some(req) {
                    on_event(&event);
                    if event.is_final() {
                        return Ok(event);
                    }
                }
            }
            wait(conn, stream, &mut buf, Duration::from_secs(1));
        }
    }

    /// Runs a foreground job; `on_event` sees status, data and warning events.
    pub fn run_with(
        &mut self,
        job: Job,
        on_event: impl FnMut(&ClientEvent),
    ) -> Result<Bytes, Error> {
        match self.call(|c| c.submit(job.submit(false)), job.timeout, on_event)? {
            ClientEvent::Complete { data, .. } => Ok(data),
            other => Err(error_of(other)),
        }
    }

    /// Runs a foreground job and returns its result.
    pub fn run(&mut self, job: Job) -> Result<Bytes, Error> {
        self.run_with(job, |_| {})
    }

    /// Submits a background job; returns its handle.
    pub fn submit_background(&mut self, job: Job) -> Result<Bytes, Error> {
        match self.call(|c| c.submit(job.submit(true)), job.timeout, |_| {})? {
            ClientEvent::Created { handle, .. } => Ok(handle),
            other => Err(error_of(other)),
        }
    }

    /// Asks for a job's status by handle.
    pub fn status(&mut self, handle: impl Into<Bytes>) -> Result<StatusRes, Error> {
        let handle = handle.into();
        match self.call(|c| c.get_status(handle), None, |_| {})? {
            ClientEvent::StatusRes { status, .. } => Ok(status),
            other => Err(error_of(other)),
        }
    }

    /// Sends ECHO_REQ; returns the echoed bytes.
    pub fn echo(&mut self, data: impl Into<Bytes>) -> Result<Bytes, Error> {
        let data = data.into();
        match self.call(|c| c.echo(data), None, |_| {})? {
            ClientEvent::EchoRes { data, .. } => Ok(data),
            other => Err(error_of(other)),
        }
    }
}

fn error_of(event: ClientEvent) -> Error {
    match event {
        ClientEvent::Failed { .. } => Error::JobFailed,
        ClientEvent::Exception { data, .. } => Error::JobException(data),
        ClientEvent::ServerError { code, text, .. } => Error::Server(code, text),
        ClientEvent::Closed { reason } => Error::Connection(reason),
        _ => Error::TimedOut,
    }
}
