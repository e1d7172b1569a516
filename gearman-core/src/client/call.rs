//! What an adapter asks a client connection to do, described once: the [`Job`] builder,
//! the [`Call`] it turns into, and the [`CallError`] a call ends with.

use super::{ClientConnection, ClientEvent, Schedule};
use crate::error::{ConnError, UsageError};
use crate::machine::RequestId;
use crate::proto::{
    Priority, StatusRes, StatusResUnique, SubmitJob, SubmitJobSched, SubmitMode, SubmitReduceJob,
};
use bytes::Bytes;
use std::fmt;
use std::time::Duration;

/// A job to submit, built by the application and shared by every adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
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

    /// Runs the job in the background at or after this Unix time (SUBMIT_JOB_EPOCH; the
    /// server always queues it as a background normal-priority job).
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

    /// The unique id, which server selection by unique hashes.
    pub fn unique_id(&self) -> &Bytes {
        &self.unique
    }

    /// The per-call timeout, if set.
    pub fn call_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The submission, foreground or background. An epoch job is always background.
    pub fn call(&self, background: bool) -> Call {
        if let Some(reducer) = &self.reducer {
            return Call::Reduce(SubmitReduceJob {
                function: self.function.clone(),
                unique: self.unique.clone(),
                reducer: reducer.clone(),
                aggregator: Bytes::new(),
                background,
                data: self.data.clone(),
            });
        }
        let mode = match (self.epoch, background) {
            (Some(epoch), _) => SubmitMode::Epoch(epoch),
            (None, true) => SubmitMode::Background(self.priority),
            (None, false) => SubmitMode::Foreground(self.priority),
        };
        Call::Submit(SubmitJob {
            function: self.function.clone(),
            unique: self.unique.clone(),
            mode,
            data: self.data.clone(),
        })
    }

    /// The submission as a recurring background job on `schedule` (SUBMIT_JOB_SCHED): its
    /// function, unique and data; priority, epoch and reducer do not apply. A schedule
    /// with the same function and non-empty unique as an existing one is that one.
    pub fn scheduled_call(&self, schedule: &Schedule) -> Call {
        Call::Sched(SubmitJobSched {
            function: self.function.clone(),
            unique: self.unique.clone(),
            schedule: schedule.fields().clone(),
            data: self.data.clone(),
        })
    }

    /// The submission with its workload streamed: `len` bytes from a source the adapter
    /// reads, in place of the job's data (which must be empty).
    pub fn streamed_call(&self, background: bool, len: u64) -> Call {
        Call::Streamed {
            call: Box::new(self.call(background)),
            len,
        }
    }
}

/// One request a client sends; its replies are [`ClientEvent`]s carrying the returned id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Call {
    /// A submission (any mode).
    Submit(SubmitJob),
    /// A map/reduce submission.
    Reduce(SubmitReduceJob),
    /// A recurring background job (SUBMIT_JOB_SCHED).
    Sched(SubmitJobSched),
    /// GET_STATUS by handle.
    Status(Bytes),
    /// GET_STATUS_UNIQUE.
    StatusUnique(Bytes),
    /// ECHO_REQ.
    Echo(Bytes),
    /// A submission (`Submit` or `Reduce`, data empty) whose `len` data bytes the adapter
    /// streams from a source ([`ClientConnection::submit_streamed`]).
    Streamed {
        /// The submission.
        call: Box<Call>,
        /// The workload's length.
        len: u64,
    },
}

impl ClientConnection {
    /// Sends `call`; its events carry the returned id.
    pub fn start(&mut self, call: Call) -> Result<RequestId, UsageError> {
        match call {
            Call::Submit(job) => self.submit(job),
            Call::Reduce(job) => self.submit_reduce(job),
            Call::Sched(job) => self.submit_sched(job),
            Call::Status(handle) => self.get_status(handle),
            Call::StatusUnique(unique) => self.get_status_unique(unique),
            Call::Echo(data) => self.echo(data),
            Call::Streamed { call, len } => self.submit_streamed(*call, len),
        }
    }
}

/// Why a client call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// No server could be reached (all failed or are backing off).
    NoServer,
    /// The connection the request was on died.
    Connection(ConnError),
    /// The request was refused before sending.
    Usage(UsageError),
    /// The server answered with an ERROR packet.
    Server {
        /// Code, e.g. `QUEUE_ERROR`.
        code: Bytes,
        /// Text.
        text: Bytes,
    },
    /// The job failed (WORK_FAIL).
    JobFailed,
    /// The job raised an exception (WORK_EXCEPTION).
    JobException(Bytes),
    /// The per-call timeout passed.
    TimedOut,
    /// The reply was of another kind than the call expects (a bug, not a peer error: the
    /// connection matches replies to requests by kind).
    UnexpectedReply,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoServer => f.write_str("no job server reachable"),
            CallError::Connection(e) => write!(f, "connection lost: {e}"),
            CallError::Usage(e) => write!(f, "invalid request: {e}"),
            CallError::Server { code, text } => write!(
                f,
                "server error {}: {}",
                String::from_utf8_lossy(code),
                String::from_utf8_lossy(text)
            ),
            CallError::JobFailed => f.write_str("job failed"),
            CallError::JobException(d) => {
                write!(f, "job exception: {}", String::from_utf8_lossy(d))
            }
            CallError::TimedOut => f.write_str("timed out"),
            CallError::UnexpectedReply => f.write_str("reply does not fit the call"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<UsageError> for CallError {
    fn from(e: UsageError) -> Self {
        CallError::Usage(e)
    }
}

impl ClientEvent {
    /// The event as a call result: the ends that are not successes (fail, exception,
    /// server error, timeout, closed connection) become errors; everything else is `Ok`.
    pub fn into_result(self) -> Result<ClientEvent, CallError> {
        match self {
            ClientEvent::Failed { .. } => Err(CallError::JobFailed),
            ClientEvent::Exception { data, .. } => Err(CallError::JobException(data)),
            ClientEvent::ServerError { code, text, .. } => Err(CallError::Server { code, text }),
            ClientEvent::TimedOut { .. } => Err(CallError::TimedOut),
            ClientEvent::Closed { reason } => Err(CallError::Connection(reason)),
            other => Ok(other),
        }
    }

    /// The result bytes of a finished call: the WORK_COMPLETE body, the handle of a
    /// background JOB_CREATED, or the echoed bytes.
    pub fn into_bytes(self) -> Result<Bytes, CallError> {
        match self.into_result()? {
            ClientEvent::Complete { data, .. } | ClientEvent::EchoRes { data, .. } => Ok(data),
            ClientEvent::Created { handle, .. } => Ok(handle),
            _ => Err(CallError::UnexpectedReply),
        }
    }

    /// The reply of a status-by-handle call.
    pub fn into_status(self) -> Result<StatusRes, CallError> {
        match self.into_result()? {
            ClientEvent::StatusRes { status, .. } => Ok(status),
            _ => Err(CallError::UnexpectedReply),
        }
    }

    /// The reply of a status-by-unique call.
    pub fn into_status_unique(self) -> Result<StatusResUnique, CallError> {
        match self.into_result()? {
            ClientEvent::StatusResUnique { status, .. } => Ok(status),
            _ => Err(CallError::UnexpectedReply),
        }
    }
}
