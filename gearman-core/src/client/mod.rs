//! The client connection machine: submissions, status queries, echo and options on one
//! connection to one server, with every reply matched to the request it answers.
//!
//! Server choice across several connections ([`selector`]) and the reconnect schedule
//! ([`backoff`](crate::backoff)) are pure data here too, so every adapter makes the same
//! decisions.

mod call;
pub mod pool;
mod router;
mod schedule;
pub mod selector;
mod set;
mod state;
mod waiters;
mod workload;

pub use call::{Call, CallError, Job};
pub use pool::{ClientOptions, Selection, ServerPool};
pub use router::{Connection, Route, Router, Step};
pub use schedule::Schedule;
pub use set::{ClientSet, Member};
pub use waiters::Waiters;
pub use workload::WORKLOAD_CHUNK;

use crate::error::{ConnError, UsageError, WorkloadError};
use crate::limits::Limits;
use crate::machine::{Link, RequestId, Role};
use crate::proto::{
    Packet, Request, Response, StatusRes, StatusResUnique, SubmitJob, SubmitJobSched,
    SubmitReduceJob,
};
use bytes::Bytes;
use state::{Correlator, Expect, INTERNAL};
use std::time::Instant;
use workload::Outgoing;

/// How a client connection introduces itself.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// Size limits for what the server sends.
    pub limits: Limits,
    /// Sent as SET_CLIENT_ID first thing, if set.
    pub client_id: Option<Bytes>,
    /// Sends `OPTION_REQ exceptions` first thing, so WORK_EXCEPTION reaches this client
    /// instead of being downgraded to WORK_FAIL.
    pub exceptions: bool,
}

/// What a client connection reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// JOB_CREATED: the server accepted submission `req` as job `handle`. A background
    /// submission is finished with this event.
    Created {
        /// The submission.
        req: RequestId,
        /// The job handle.
        handle: Bytes,
        /// True for a background submission: nothing more will come for it.
        background: bool,
    },
    /// WORK_STATUS for a foreground submission.
    Status {
        /// The submission.
        req: RequestId,
        /// The job handle.
        handle: Bytes,
        /// Progress so far.
        numerator: u32,
        /// Progress total.
        denominator: u32,
    },
    /// WORK_DATA for a foreground submission.
    Data {
        /// The submission.
        req: RequestId,
        /// The job handle.
        handle: Bytes,
        /// The chunk.
        data: Bytes,
    },
    /// WORK_WARNING for a foreground submission.
    Warning {
        /// The submission.
        req: RequestId,
        /// The job handle.
        handle: Bytes,
        /// The warning.
        data: Bytes,
    },
    /// WORK_COMPLETE: the job succeeded; the submission is finished.
    Complete {
        /// The submission.
        req: RequestId,
        /// The job handle.
        handle: Bytes,
        /// The result.
        data: Bytes,
    },
    /// WORK_FAIL: the job failed; the submission is finished.
    Failed {
        /// The submission.
        req: RequestId,
        /// The job handle.
        handle: Bytes,
    },
    /// WORK_EXCEPTION (only with the `exceptions` option); the submission is finished.
    Exception {
        /// The submission.
        req: RequestId,
        /// The job handle.
        handle: Bytes,
        /// The exception payload.
        data: Bytes,
    },
    /// STATUS_RES for a [`ClientConnection::get_status`].
    StatusRes {
        /// The query.
        req: RequestId,
        /// The reply.
        status: StatusRes,
    },
    /// STATUS_RES_UNIQUE for a [`ClientConnection::get_status_unique`].
    StatusResUnique {
        /// The query.
        req: RequestId,
        /// The reply.
        status: StatusResUnique,
    },
    /// ECHO_RES.
    EchoRes {
        /// The echo request.
        req: RequestId,
        /// The echoed bytes.
        data: Bytes,
    },
    /// OPTION_RES: the option is now on.
    OptionRes {
        /// The option request.
        req: RequestId,
        /// The option name as echoed.
        name: Bytes,
    },
    /// An ERROR packet. `req` is the request it answered, `None` if it answered none of
    /// the application's requests. The connection stays open.
    ServerError {
        /// The request it answered.
        req: Option<RequestId>,
        /// The code, e.g. `QUEUE_ERROR`.
        code: Bytes,
        /// The text.
        text: Bytes,
    },
    /// The deadline set with [`ClientConnection::set_deadline`] passed; nothing more is
    /// reported for `req` (the job itself keeps running on the server).
    TimedOut {
        /// The request.
        req: RequestId,
    },
    /// The connection is finished; every request still outstanding is lost.
    Closed {
        /// Why.
        reason: ConnError,
    },
}

impl ClientEvent {
    /// True when this is the last event of its request.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            ClientEvent::Created {
                background: false,
                ..
            } | ClientEvent::Status { .. }
                | ClientEvent::Data { .. }
                | ClientEvent::Warning { .. }
                | ClientEvent::ServerError { req: None, .. }
        )
    }

    /// The request this event belongs to, if any.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            ClientEvent::Created { req, .. }
            | ClientEvent::Status { req, .. }
            | ClientEvent::Data { req, .. }
            | ClientEvent::Warning { req, .. }
            | ClientEvent::Complete { req, .. }
            | ClientEvent::Failed { req, .. }
            | ClientEvent::Exception { req, .. }
            | ClientEvent::StatusRes { req, .. }
            | ClientEvent::StatusResUnique { req, .. }
            | ClientEvent::EchoRes { req, .. }
            | ClientEvent::OptionRes { req, .. }
            | ClientEvent::TimedOut { req } => Some(*req),
            ClientEvent::ServerError { req, .. } => *req,
            ClientEvent::Closed { .. } => None,
        }
    }
}

/// One client connection to one server, without I/O.
#[derive(Debug)]
pub struct ClientConnection {
    limits: Limits,
    link: Link<ClientEvent, Outgoing>,
    correlator: Correlator,
}

fn check_arg(
    field: &'static str,
    value: &[u8],
    max: usize,
    nul_ok: bool,
) -> Result<(), UsageError> {
    if value.len() > max {
        return Err(UsageError::ArgumentTooLarge {
            field,
            len: value.len(),
            max,
        });
    }
    if !nul_ok && value.contains(&0) {
        return Err(UsageError::ContainsNul { field });
    }
    Ok(())
}

/// gearmand keeps option names in a 64-byte buffer.
const MAX_OPTION: usize = 63;

impl ClientConnection {
    /// A fresh connection; the config's client id and options are queued to send.
    pub fn new(config: ClientConfig) -> Self {
        let mut conn = ClientConnection {
            limits: config.limits,
            link: Link::new(config.limits, Outgoing::default()),
            correlator: Correlator::default(),
        };
        if let Some(id) = config.client_id {
            conn.link.out.push(Request::SetClientId { id });
        }
        if config.exceptions {
            conn.link.out.push(Request::Option {
                name: Bytes::from_static(b"exceptions"),
            });
            conn.correlator.expect(INTERNAL, Expect::Option);
        }
        conn
    }

    fn usable(&self) -> Result<(), UsageError> {
        self.link.usable()
    }

    fn send(&mut self, request: Request, expect: Expect) -> RequestId {
        let req = self.link.ids.next_id();
        self.link.out.push(request);
        self.correlator.expect(req, expect);
        req
    }

    /// Submits a job (foreground or background, any priority, or at an epoch time).
    /// Foreground results arrive as events carrying the returned id.
    pub fn submit(&mut self, job: SubmitJob) -> Result<RequestId, UsageError> {
        let (request, expect) = self.submission(Call::Submit(job))?;
        Ok(self.send(request, expect))
    }

    /// Submits a map/reduce job (SUBMIT_REDUCE_JOB or its background form).
    pub fn submit_reduce(&mut self, job: SubmitReduceJob) -> Result<RequestId, UsageError> {
        let (request, expect) = self.submission(Call::Reduce(job))?;
        Ok(self.send(request, expect))
    }

    /// Submits a job whose `len` data bytes the adapter streams from a source (`call` is a
    /// submission with empty data): its header and arguments go out first, then whatever
    /// [`ClientConnection::workload_input`] is given, and no other packet until the data
    /// is complete. A source that fails closes the connection
    /// ([`ConnError::Workload`]).
    pub fn submit_streamed(&mut self, call: Call, len: u64) -> Result<RequestId, UsageError> {
        let (request, expect) = self.submission(call)?;
        let data_empty = match &request {
            Request::Submit(job) => job.data.is_empty(),
            Request::SubmitReduce(job) => job.data.is_empty(),
            _ => false,
        };
        if !data_empty {
            return Err(UsageError::NotStreamable);
        }
        let body = request.encoded_len() - crate::proto::HEADER_LEN;
        let max = u32::MAX as usize - body;
        if len > max as u64 {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let field = "streamed workload";
            return Err(UsageError::ArgumentTooLarge { field, len, max });
        }
        let req = self.link.ids.next_id();
        self.link.out.push_streamed(req, request, len);
        self.correlator.expect(req, expect);
        Ok(req)
    }

    /// The streamed submission whose source the adapter should read now, and the most
    /// bytes to read ([`WORKLOAD_CHUNK`] at most). `None` while earlier output is not yet
    /// taken by `poll_transmit`, or when nothing is streaming.
    pub fn workload_wanted(&self) -> Option<(RequestId, usize)> {
        self.link.out.wanted()
    }

    /// Bytes read from the streamed workload's source; an empty slice means the source
    /// ended. A source that ends early or runs long fails the connection.
    pub fn workload_input(&mut self, bytes: &[u8]) {
        if let Err((_, e)) = self.link.out.feed(bytes) {
            self.fail(ConnError::Workload(e));
        }
    }

    /// Reading the streamed workload's source failed: the connection fails.
    pub fn workload_error(&mut self, error: impl std::fmt::Display) {
        if self.link.out.streaming().is_some() {
            self.fail(ConnError::Workload(WorkloadError::Read(error.to_string())));
        }
    }

    /// Checks a submission and turns it into its request.
    fn submission(&self, call: Call) -> Result<(Request, Expect), UsageError> {
        self.usable()?;
        let max_arg = self.limits.max_argument;
        let max_unique = self.limits.max_unique;
        match call {
            Call::Submit(job) => {
                check_arg("function", &job.function, max_arg, false)?;
                check_arg("unique", &job.unique, max_unique, false)?;
                let foreground = !job.mode.is_background();
                Ok((Request::Submit(job), Expect::Created { foreground }))
            }
            Call::Reduce(job) => {
                check_arg("function", &job.function, max_arg, false)?;
                check_arg("unique", &job.unique, max_unique, false)?;
                // gearmand checks the reducer against the unique limit (protocol.md §2.10).
                check_arg("reducer", &job.reducer, max_unique, false)?;
                check_arg("aggregator", &job.aggregator, max_arg, false)?;
                let foreground = !job.background;
                Ok((
                    Request::SubmitReduce(Box::new(job)),
                    Expect::Created { foreground },
                ))
            }
            _ => Err(UsageError::NotStreamable),
        }
    }

    /// Submits a recurring background job (SUBMIT_JOB_SCHED, a gearmand-rs extension:
    /// gearmand answers it with an error). The schedule is checked here with the server's
    /// parser, so a bad field is refused before sending, naming the field; the returned
    /// request ends with [`ClientEvent::Created`] carrying the schedule's handle.
    pub fn submit_sched(&mut self, job: SubmitJobSched) -> Result<RequestId, UsageError> {
        self.usable()?;
        check_arg("function", &job.function, self.limits.max_argument, false)?;
        check_arg("unique", &job.unique, self.limits.max_unique, false)?;
        if let Err(e) = crate::cron::CronSpec::parse(job.schedule.clone()) {
            return Err(UsageError::InvalidSchedule(e.0));
        }
        let created = Expect::Created { foreground: false };
        Ok(self.send(Request::SubmitSched(Box::new(job)), created))
    }

    /// Asks for a job's status by handle. Handles longer than 63 bytes are refused here:
    /// gearmand would drop the connection.
    pub fn get_status(&mut self, handle: Bytes) -> Result<RequestId, UsageError> {
        self.usable()?;
        check_arg("handle", &handle, self.limits.max_handle, false)?;
        Ok(self.send(Request::GetStatus { handle }, Expect::Status))
    }

    /// Asks for a job's status by unique id. Uniques longer than 63 bytes are refused here:
    /// gearmand would never answer, which would break reply matching.
    pub fn get_status_unique(&mut self, unique: Bytes) -> Result<RequestId, UsageError> {
        self.usable()?;
        check_arg("unique", &unique, self.limits.max_unique.min(63), false)?;
        Ok(self.send(Request::GetStatusUnique { unique }, Expect::StatusUnique))
    }

    /// Sends ECHO_REQ.
    pub fn echo(&mut self, data: Bytes) -> Result<RequestId, UsageError> {
        self.usable()?;
        Ok(self.send(Request::Echo { data }, Expect::Echo))
    }

    /// Sends OPTION_REQ (gearmand knows only `exceptions`; others get a `ServerError`).
    pub fn set_option(&mut self, name: Bytes) -> Result<RequestId, UsageError> {
        self.usable()?;
        check_arg("option", &name, MAX_OPTION, false)?;
        Ok(self.send(Request::Option { name }, Expect::Option))
    }

    /// Sends SET_CLIENT_ID (no reply).
    pub fn set_client_id(&mut self, id: Bytes) -> Result<(), UsageError> {
        self.usable()?;
        check_arg("client id", &id, self.limits.max_argument, true)?;
        self.link.out.push(Request::SetClientId { id });
        Ok(())
    }

    /// Reports [`ClientEvent::TimedOut`] for `req` at `deadline` unless it finished first.
    pub fn set_deadline(&mut self, req: RequestId, deadline: Instant) {
        self.correlator.set_deadline(req, deadline);
    }

    /// Stops reporting anything for `req` (e.g. its waiter went away). Returns false if it
    /// was already finished.
    pub fn forget(&mut self, req: RequestId) -> bool {
        self.correlator.forget(req)
    }

    /// Whether `req` still expects a reply or result (false once its final event is
    /// queued, or after a timeout or [`ClientConnection::forget`]).
    pub fn is_outstanding(&self, req: RequestId) -> bool {
        self.correlator.is_live(req)
    }

    /// Requests that still expect a reply or result.
    pub fn outstanding(&self) -> usize {
        self.correlator.outstanding()
    }
}

impl Role for ClientConnection {
    type Event = ClientEvent;
    type Out = Outgoing;

    fn link(&self) -> &Link<ClientEvent, Outgoing> {
        &self.link
    }

    fn link_mut(&mut self) -> &mut Link<ClientEvent, Outgoing> {
        &mut self.link
    }

    fn on_response(&mut self, response: Response) -> Result<(), ConnError> {
        self.correlator.on_response(response, &mut self.link.events)
    }

    fn on_close(&mut self, reason: ConnError) -> ClientEvent {
        self.correlator.clear();
        ClientEvent::Closed { reason }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.correlator.next_deadline()
    }

    fn expire(&mut self, now: Instant) {
        let streaming = self.link.out.progress();
        let live = streaming.is_some_and(|(req, ..)| self.correlator.is_live(req));
        self.correlator.expire(now, &mut self.link.events);
        // A streamed submission that timed out mid-frame: its source may never produce the
        // rest, and every later packet waits behind the frame, so the connection must go.
        if let Some((req, len, sent)) = streaming.filter(|_| live) {
            if !self.correlator.is_live(req) {
                self.fail(ConnError::Workload(WorkloadError::TimedOut { len, sent }));
            }
        }
    }
}
