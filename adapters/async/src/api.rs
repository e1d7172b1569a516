//! The types every adapter's API names, defined once so the async adapters and
//! `gearman-blocking` say the same thing: the [`Error`] a call ends with (an unreachable
//! server keeps its io error), the [`JobEvent`]s of a foreground job, and the [`Task`]s of
//! a batch with their [`TaskOutput`].

use bytes::Bytes;
use gearman_core::client::{Call, CallError, ClientEvent, Job};
use gearman_core::proto::{StatusRes, StatusResUnique};
use gearman_core::{ConnError, UsageError};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A server that could not be reached, and why.
#[derive(Clone, Debug)]
pub struct Unreachable {
    /// The server as configured (`host:port`, `[v6]:port` or `unix:/path`).
    pub server: String,
    /// The last connect error (shared: errors are cloned into every call that fails).
    pub error: Arc<io::Error>,
}

/// Why a client call failed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// No server could be reached: each one tried or backing off, with its last connect
    /// error (empty when no server is configured).
    NoServer(Vec<Unreachable>),
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
    /// The job raised an exception (WORK_EXCEPTION, with the `exceptions` option).
    JobException(Bytes),
    /// The per-call timeout passed.
    TimedOut,
    /// The reply was of another kind than the call expects.
    UnexpectedReply,
}

impl Error {
    /// [`Error::NoServer`] naming each server (address, last connect error) that failed.
    pub(crate) fn no_server(unreachable: Vec<(String, Arc<io::Error>)>) -> Error {
        let servers = unreachable.into_iter();
        Error::NoServer(
            servers
                .map(|(server, error)| Unreachable { server, error })
                .collect(),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoServer(servers) if servers.is_empty() => f.write_str("no job server"),
            Error::NoServer(servers) => {
                f.write_str("no job server reachable")?;
                for (i, s) in servers.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}{}: {}", s.server, s.error)?;
                }
                Ok(())
            }
            Error::Connection(e) => write!(f, "connection lost: {e}"),
            Error::Usage(e) => write!(f, "invalid request: {e}"),
            Error::Server { code, text } => write!(
                f,
                "server error {}: {}",
                String::from_utf8_lossy(code),
                String::from_utf8_lossy(text)
            ),
            Error::JobFailed => f.write_str("job failed"),
            Error::JobException(d) => write!(f, "job exception: {}", String::from_utf8_lossy(d)),
            Error::TimedOut => f.write_str("timed out"),
            Error::UnexpectedReply => f.write_str("reply does not fit the call"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::NoServer(servers) => servers.first().map(|s| &*s.error as _),
            Error::Connection(e) => Some(e),
            Error::Usage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Connection(e) => Error::Connection(e),
            CallError::Usage(e) => Error::Usage(e),
            CallError::Server { code, text } => Error::Server { code, text },
            CallError::JobFailed => Error::JobFailed,
            CallError::JobException(d) => Error::JobException(d),
            CallError::TimedOut => Error::TimedOut,
            // The adapter fills in the servers it tried.
            CallError::NoServer => Error::NoServer(Vec::new()),
            _ => Error::UnexpectedReply,
        }
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}

/// What a foreground job reports while it runs. The last event is `Complete`, `Failed` or
/// `Exception`; [`Client::run`](crate::Client::run) turns the last two into
/// [`Error::JobFailed`] and [`Error::JobException`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEvent {
    /// Accepted with this handle.
    Created(Bytes),
    /// Progress.
    Status(u32, u32),
    /// A data chunk.
    Data(Bytes),
    /// A warning.
    Warning(Bytes),
    /// Finished with this result.
    Complete(Bytes),
    /// Failed (WORK_FAIL).
    Failed,
    /// Raised an exception (WORK_EXCEPTION, with the `exceptions` option).
    Exception(Bytes),
}

impl JobEvent {
    /// The event a call result stands for, if it is one of a foreground job's: job
    /// failures become `Failed`/`Exception` events; other errors stay errors.
    pub fn from_result(result: Result<ClientEvent, CallError>) -> Option<Result<JobEvent, Error>> {
        Some(Ok(match result {
            Ok(ClientEvent::Created { handle, .. }) => JobEvent::Created(handle),
            Ok(ClientEvent::Status {
                numerator,
                denominator,
                ..
            }) => JobEvent::Status(numerator, denominator),
            Ok(ClientEvent::Data { data, .. }) => JobEvent::Data(data),
            Ok(ClientEvent::Warning { data, .. }) => JobEvent::Warning(data),
            Ok(ClientEvent::Complete { data, .. }) => JobEvent::Complete(data),
            Err(CallError::JobFailed) => JobEvent::Failed,
            Err(CallError::JobException(data)) => JobEvent::Exception(data),
            Ok(_) => return None,
            Err(e) => return Some(Err(e.into())),
        }))
    }

    /// The event a foreground job's client event stands for, if any.
    pub fn from_event(event: &ClientEvent) -> Option<JobEvent> {
        JobEvent::from_result(Ok(event.clone()))?.ok()
    }

    /// The last event a job failure stands for (`Failed`, `Exception`), if it is one.
    pub fn from_error(error: &Error) -> Option<JobEvent> {
        match error {
            Error::JobFailed => Some(JobEvent::Failed),
            Error::JobException(data) => Some(JobEvent::Exception(data.clone())),
            _ => None,
        }
    }

    /// True for the job's last event.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobEvent::Complete(_) | JobEvent::Failed | JobEvent::Exception(_)
        )
    }

    /// A final event as `run()` returns it: the result, or the job's failure as an error.
    pub fn into_result(self) -> Option<Result<Bytes, Error>> {
        match self {
            JobEvent::Complete(data) => Some(Ok(data)),
            JobEvent::Failed => Some(Err(Error::JobFailed)),
            JobEvent::Exception(data) => Some(Err(Error::JobException(data))),
            _ => None,
        }
    }
}

/// One task of a batch (PECL's `addTask`, `addTaskBackground`, `addTaskStatus`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Task {
    /// A foreground job: its events reach the batch's callback; it ends with its result.
    Run(Job),
    /// A background (or epoch) job: it ends with its handle.
    Background(Job),
    /// A status query by job handle.
    Status(Bytes),
    /// A status query by unique id.
    StatusUnique(Bytes),
}

impl Task {
    /// The call this task sends, and its timeout.
    pub fn call(&self) -> (Call, Option<Duration>) {
        match self {
            Task::Run(job) => (job.call(false), job.call_timeout()),
            Task::Background(job) => (job.call(true), job.call_timeout()),
            Task::Status(handle) => (Call::Status(handle.clone()), None),
            Task::StatusUnique(unique) => (Call::StatusUnique(unique.clone()), None),
        }
    }
}

/// How a task of a batch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskOutput {
    /// A foreground job's result.
    Complete(Bytes),
    /// A background job's handle.
    Created(Bytes),
    /// A status query's reply.
    Status(StatusRes),
    /// A status-by-unique query's reply.
    StatusUnique(StatusResUnique),
}

impl TaskOutput {
    /// A task's final call result as its output.
    pub fn from_result(result: Result<ClientEvent, CallError>) -> Result<TaskOutput, Error> {
        TaskOutput::from_event(result?)
    }

    /// The bytes of a job result or a background handle.
    pub fn into_bytes(self) -> Result<Bytes, Error> {
        match self {
            TaskOutput::Complete(data) | TaskOutput::Created(data) => Ok(data),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// A task's final event as its output.
    pub fn from_event(event: ClientEvent) -> Result<TaskOutput, Error> {
        match event {
            ClientEvent::Complete { data, .. } => Ok(TaskOutput::Complete(data)),
            ClientEvent::Created { handle, .. } => Ok(TaskOutput::Created(handle)),
            ClientEvent::StatusRes { status, .. } => Ok(TaskOutput::Status(status)),
            ClientEvent::StatusResUnique { status, .. } => Ok(TaskOutput::StatusUnique(status)),
            _ => Err(Error::UnexpectedReply),
        }
    }
}
