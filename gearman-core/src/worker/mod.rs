//! The worker connection machine: abilities, the grab/sleep cycle (internal, see
//! [`state`]), up to `max_in_flight` jobs held at once, and result reporting.

pub mod functions;
pub mod map_reduce;
pub mod state;

use crate::backoff::Backoff;
use crate::error::{ConnError, ProtocolError, UsageError};
use crate::limits::Limits;
use crate::machine::{Link, RequestId, RequestQueue, Role};
use crate::proto::{
    GrabMode, JobAssign, Packet, PacketType, Request, Response, WorkPayload, WorkStatus,
};
use bytes::Bytes;
use state::{transition, GrabAction, GrabInput, GrabState};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a stopping worker connection waits for the reply to a grab it already sent,
/// from [`WorkerConnection::stop_grabbing_at`]: a server answers a grab at once (NO_JOB
/// or a job), so one silent this long is hung, and a graceful shutdown must not wait on
/// it forever. Past it, a connection holding no job counts as
/// [quiescent](WorkerConnection::is_quiescent) and may be closed; a job the server
/// assigns meanwhile is requeued by the server when the connection closes.
pub const GRAB_REPLY_WAIT: Duration = Duration::from_secs(5);

/// How a worker connection behaves.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Size limits for what the server sends.
    pub limits: Limits,
    /// Sent as SET_CLIENT_ID first thing, if set (shown by the admin `workers` command).
    pub client_id: Option<Bytes>,
    /// Which grab packet to send.
    pub grab_mode: GrabMode,
    /// How many jobs this connection may hold at once (at least 1), counting those taken
    /// back by CANT_DO or RESET_ABILITIES until their results are finished.
    pub max_in_flight: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            limits: Limits::default(),
            client_id: None,
            grab_mode: GrabMode::All,
            max_in_flight: 1,
        }
    }
}

/// Everything a worker adapter is configured with besides its functions.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Per-connection behaviour.
    pub config: WorkerConfig,
    /// Jobs run at once per server.
    pub concurrency: usize,
    /// Reconnect backoff.
    pub backoff: Backoff,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            config: WorkerConfig::default(),
            concurrency: 1,
            backoff: Backoff::default(),
        }
    }
}

/// A job handed to this worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignedJob {
    /// Job handle, used to report results.
    pub handle: Bytes,
    /// The function it was submitted to.
    pub function: Bytes,
    /// Unique id (empty with [`GrabMode::Plain`]).
    pub unique: Bytes,
    /// The reducer function, for a map/reduce job grabbed with [`GrabMode::All`].
    pub reducer: Option<Bytes>,
    /// The workload.
    pub data: Bytes,
}

/// How a job ends other than by success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkError {
    /// Send WORK_FAIL.
    Fail,
    /// Send WORK_EXCEPTION with this payload (clients without the `exceptions` option see
    /// WORK_FAIL).
    Exception(Bytes),
}

impl WorkError {
    /// An exception carrying `message`.
    pub fn exception(message: impl std::fmt::Display) -> Self {
        WorkError::Exception(Bytes::from(message.to_string()))
    }
}

/// A progress report for a held job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// WORK_STATUS.
    Status(u32, u32),
    /// WORK_DATA.
    Data(Bytes),
    /// WORK_WARNING.
    Warning(Bytes),
}

/// What a job handler returns: the WORK_COMPLETE body, or how it failed.
pub type WorkResult = Result<Bytes, WorkError>;

/// What a worker connection reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// Run this job, then report its result.
    JobAssigned(AssignedJob),
    /// ECHO_RES for [`WorkerConnection::echo`].
    EchoRes {
        /// The echo request.
        req: RequestId,
        /// The echoed bytes.
        data: Bytes,
    },
    /// An ERROR packet, e.g. `JOB_NOT_FOUND` for a result sent after the server took the
    /// job back (CAN_DO_TIMEOUT). The connection stays open.
    ServerError {
        /// The code.
        code: Bytes,
        /// The text.
        text: Bytes,
    },
    /// The connection is finished; held jobs are lost (the server requeues them).
    Closed {
        /// Why.
        reason: ConnError,
    },
}

/// One worker connection to one server, without I/O.
#[derive(Debug)]
pub struct WorkerConnection {
    config: WorkerConfig,
    link: Link<WorkerEvent, RequestQueue>,
    state: GrabState,
    grabbing_enabled: bool,
    abilities: BTreeMap<Bytes, Option<u32>>,
    /// handle -> function, for the jobs this connection holds.
    held: HashMap<Bytes, Bytes>,
    /// Jobs the server took back (CANT_DO, RESET_ABILITIES) whose results have not been
    /// finished yet: their handlers still run, so they still take a place.
    taken_back: Vec<Bytes>,
    echoes: VecDeque<RequestId>,
    /// When a stopping connection stops waiting for its outstanding grab's reply.
    grab_deadline: Option<Instant>,
    /// That deadline passed with the grab still outstanding.
    grab_given_up: bool,
}

impl WorkerConnection {
    /// A fresh connection; the config's client id is queued to send. Grabbing starts with
    /// the first [`WorkerConnection::can_do`].
    pub fn new(mut config: WorkerConfig) -> Self {
        config.max_in_flight = config.max_in_flight.max(1);
        let mut out = RequestQueue::default();
        if let Some(id) = &config.client_id {
            out.push(Request::SetClientId { id: id.clone() });
        }
        WorkerConnection {
            link: Link::new(config.limits, out),
            config,
            state: GrabState::Idle,
            grabbing_enabled: true,
            abilities: BTreeMap::new(),
            held: HashMap::new(),
            taken_back: Vec::new(),
            echoes: VecDeque::new(),
            grab_deadline: None,
            grab_given_up: false,
        }
    }

    fn usable(&self) -> Result<(), UsageError> {
        self.link.usable()
    }

    fn can_grab(&self) -> bool {
        self.grabbing_enabled
            && !self.abilities.is_empty()
            && self.held.len() + self.taken_back.len() < self.config.max_in_flight
    }

    /// Runs one transition of the grab cycle.
    fn step(&mut self, input: GrabInput) -> Result<(), ConnError> {
        let (next, action) = transition(self.state, input, self.can_grab()).map_err(|()| {
            let ty = match input {
                GrabInput::NoJob => PacketType::NoJob,
                _ => PacketType::JobAssign,
            };
            ConnError::from(ProtocolError::Unexpected { ty })
        })?;
        self.state = next;
        match action {
            GrabAction::None => {}
            GrabAction::Grab => self.link.out.push(Request::GrabJob(self.config.grab_mode)),
            GrabAction::PreSleep => self.link.out.push(Request::PreSleep),
        }
        Ok(())
    }

    /// A local input: local inputs are legal in every state, so this cannot fail.
    fn kick(&mut self, input: GrabInput) {
        if !self.link.is_closed() {
            let _ = self.step(input);
        }
    }

    fn check_function(&self, function: &[u8]) -> Result<(), UsageError> {
        let max = self.config.limits.max_argument;
        if function.len() > max {
            return Err(UsageError::ArgumentTooLarge {
                field: "function",
                len: function.len(),
                max,
            });
        }
        if function.contains(&0) {
            return Err(UsageError::ContainsNul { field: "function" });
        }
        Ok(())
    }

    /// Registers a function (CAN_DO), or with a run-time limit (CAN_DO_TIMEOUT; gearmand
    /// counts in milliseconds and raises anything below one second to one second).
    pub fn can_do(&mut self, function: Bytes, timeout: Option<Duration>) -> Result<(), UsageError> {
        self.usable()?;
        self.check_function(&function)?;
        let timeout_ms = timeout
            .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX))
            .filter(|ms| *ms > 0);
        self.link.out.push(match timeout_ms {
            Some(timeout_ms) => Request::CanDoTimeout {
                function: function.clone(),
                timeout_ms,
            },
            None => Request::CanDo {
                function: function.clone(),
            },
        });
        self.abilities.insert(function, timeout_ms);
        self.kick(GrabInput::AbilityAdded);
        Ok(())
    }

    /// Unregisters a function (CANT_DO). gearmand requeues the jobs of it this connection
    /// holds, so they are no longer held here either: their reports and results are not
    /// sent. Until each is finished ([`WorkerConnection::finish_job`] and the like, which
    /// then send nothing), it still counts against `max_in_flight`, as its handler still
    /// runs, and keeps the connection from being [quiescent](Self::is_quiescent).
    pub fn cant_do(&mut self, function: Bytes) -> Result<(), UsageError> {
        self.usable()?;
        self.check_function(&function)?;
        self.abilities.remove(&function);
        let taken_back = &mut self.taken_back;
        self.held.retain(|handle, f| {
            let keep = *f != function;
            if !keep {
                taken_back.push(handle.clone());
            }
            keep
        });
        self.link.out.push(Request::CantDo { function });
        self.kick(GrabInput::Kick);
        Ok(())
    }

    /// Unregisters every function (RESET_ABILITIES); held jobs are taken back (requeued by
    /// the server) as with [`WorkerConnection::cant_do`]: they count against
    /// `max_in_flight` until finished.
    pub fn reset_abilities(&mut self) -> Result<(), UsageError> {
        self.usable()?;
        self.abilities.clear();
        self.taken_back
            .extend(self.held.drain().map(|(handle, _)| handle));
        self.link.out.push(Request::ResetAbilities);
        Ok(())
    }

    /// Sends SET_CLIENT_ID.
    pub fn set_client_id(&mut self, id: Bytes) -> Result<(), UsageError> {
        self.usable()?;
        self.link.out.push(Request::SetClientId { id });
        Ok(())
    }

    /// Sends ECHO_REQ; the reply is [`WorkerEvent::EchoRes`].
    pub fn echo(&mut self, data: Bytes) -> Result<RequestId, UsageError> {
        self.usable()?;
        let req = self.link.ids.next_id();
        self.echoes.push_back(req);
        self.link.out.push(Request::Echo { data });
        Ok(req)
    }

    /// Stops asking for jobs (graceful shutdown); held jobs may still be reported. A grab
    /// already sent keeps the connection from being [quiescent](Self::is_quiescent) until
    /// the server answers it: see [`WorkerConnection::stop_grabbing_at`] for a bound.
    pub fn stop_grabbing(&mut self) {
        self.grabbing_enabled = false;
    }

    /// [`WorkerConnection::stop_grabbing`], and waits for the reply to a grab already
    /// sent no longer than [`GRAB_REPLY_WAIT`] from `now`: past that (a timer, see
    /// [`Machine::poll_timeout`](crate::machine::Machine::poll_timeout)), the grab no
    /// longer keeps the connection from being [quiescent](Self::is_quiescent). Called
    /// again while stopped, it keeps the first deadline.
    pub fn stop_grabbing_at(&mut self, now: Instant) {
        self.stop_grabbing();
        self.grab_deadline.get_or_insert(now + GRAB_REPLY_WAIT);
    }

    /// Asks for jobs again after [`WorkerConnection::stop_grabbing`].
    pub fn resume_grabbing(&mut self) {
        self.grabbing_enabled = true;
        self.grab_deadline = None;
        self.grab_given_up = false;
        self.kick(GrabInput::Kick);
    }

    /// Changes how many jobs this connection may hold at once (0: none for now). Raised,
    /// it grabs again if it was idle for lack of room; lowered, it never drops a held
    /// job: it just grabs no more until it holds fewer than `n` (a grab already sent may
    /// still bring one). An async worker uses it so that handlers still running from a
    /// lost connection count against its concurrency on the new one.
    pub fn set_max_in_flight(&mut self, n: usize) {
        self.config.max_in_flight = n;
        self.kick(GrabInput::Kick);
    }

    /// How many jobs this connection may hold at once.
    pub fn max_in_flight(&self) -> usize {
        self.config.max_in_flight
    }

    /// Jobs held now.
    pub fn in_flight(&self) -> usize {
        self.held.len()
    }

    /// Jobs the server took back (CANT_DO, RESET_ABILITIES) and not finished yet: they
    /// count against `max_in_flight` beside [`in_flight`](Self::in_flight).
    pub fn taken_back(&self) -> usize {
        self.taken_back.len()
    }

    /// True when no job is held (nor taken back with its result not yet finished, see
    /// [`WorkerConnection::cant_do`]) and no grab is outstanding, or only one the server has
    /// left unanswered for [`GRAB_REPLY_WAIT`] since [`WorkerConnection::stop_grabbing_at`]:
    /// after a stop, the connection may then be closed without losing work (a job
    /// assigned to that grab goes back to the server's queue with the connection).
    pub fn is_quiescent(&self) -> bool {
        self.held.is_empty()
            && self.taken_back.is_empty()
            && (self.state != GrabState::Grabbing || self.grab_given_up)
    }

    /// Where the grab cycle is.
    pub fn grab_state(&self) -> GrabState {
        self.state
    }

    /// The registered functions and their timeouts in milliseconds.
    pub fn abilities(&self) -> impl Iterator<Item = (&Bytes, Option<u32>)> {
        self.abilities.iter().map(|(f, t)| (f, *t))
    }

    fn held_check(&self, handle: &Bytes) -> Result<(), UsageError> {
        self.usable()?;
        if self.held.contains_key(handle) {
            Ok(())
        } else {
            Err(UsageError::UnknownHandle(handle.clone()))
        }
    }

    /// Reports progress (WORK_STATUS).
    pub fn work_status(
        &mut self,
        handle: &Bytes,
        numerator: u32,
        denominator: u32,
    ) -> Result<(), UsageError> {
        self.held_check(handle)?;
        self.link.out.push(Request::WorkStatus(WorkStatus {
            handle: handle.clone(),
            numerator,
            denominator,
        }));
        Ok(())
    }

    /// Sends a chunk of output (WORK_DATA).
    pub fn work_data(&mut self, handle: &Bytes, data: Bytes) -> Result<(), UsageError> {
        self.held_check(handle)?;
        self.link.out.push(Request::WorkData(WorkPayload {
            handle: handle.clone(),
            data,
        }));
        Ok(())
    }

    /// Sends a warning (WORK_WARNING).
    pub fn work_warning(&mut self, handle: &Bytes, data: Bytes) -> Result<(), UsageError> {
        self.held_check(handle)?;
        self.link.out.push(Request::WorkWarning(WorkPayload {
            handle: handle.clone(),
            data,
        }));
        Ok(())
    }

    /// Sends `request`, the result of held job `handle`. A job taken back instead frees
    /// its place and sends nothing (its error says it is not held).
    fn finish(&mut self, handle: &Bytes, request: Request) -> Result<(), UsageError> {
        if let Err(not_held) = self.held_check(handle) {
            if let Some(i) = self.taken_back.iter().position(|h| h == handle) {
                self.taken_back.swap_remove(i);
                self.kick(GrabInput::Kick);
            }
            return Err(not_held);
        }
        self.held.remove(handle);
        self.link.out.push(request);
        self.kick(GrabInput::Kick);
        Ok(())
    }

    /// Completes the job (WORK_COMPLETE).
    pub fn work_complete(&mut self, handle: &Bytes, data: Bytes) -> Result<(), UsageError> {
        let request = Request::WorkComplete(WorkPayload {
            handle: handle.clone(),
            data,
        });
        self.finish(handle, request)
    }

    /// Fails the job (WORK_FAIL).
    pub fn work_fail(&mut self, handle: &Bytes) -> Result<(), UsageError> {
        let request = Request::WorkFail {
            handle: handle.clone(),
        };
        self.finish(handle, request)
    }

    /// Ends the job with an exception (WORK_EXCEPTION; clients without the `exceptions`
    /// option see WORK_FAIL).
    pub fn work_exception(&mut self, handle: &Bytes, data: Bytes) -> Result<(), UsageError> {
        let request = Request::WorkException(WorkPayload {
            handle: handle.clone(),
            data,
        });
        self.finish(handle, request)
    }

    /// Sends a progress report for a held job.
    pub fn report(&mut self, handle: &Bytes, report: Report) -> Result<(), UsageError> {
        match report {
            Report::Status(n, d) => self.work_status(handle, n, d),
            Report::Data(data) => self.work_data(handle, data),
            Report::Warning(data) => self.work_warning(handle, data),
        }
    }

    /// Ends the job the way `result` says: WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION.
    /// For a job the server took back ([`WorkerConnection::cant_do`]) it sends nothing
    /// and fails with [`UsageError::UnknownHandle`], but frees the job's place.
    pub fn finish_job(&mut self, handle: &Bytes, result: WorkResult) -> Result<(), UsageError> {
        match result {
            Ok(data) => self.work_complete(handle, data),
            Err(WorkError::Fail) => self.work_fail(handle),
            Err(WorkError::Exception(data)) => self.work_exception(handle, data),
        }
    }

    fn on_assign(&mut self, job: JobAssign) -> Result<(), ConnError> {
        if self.state != GrabState::Grabbing || self.held.contains_key(&job.handle) {
            return Err(ProtocolError::Unexpected {
                ty: PacketType::JobAssign,
            }
            .into());
        }
        self.held.insert(job.handle.clone(), job.function.clone());
        let unique = Bytes::copy_from_slice(job.unique());
        let reducer = job.reducer().cloned();
        self.link
            .events
            .push_back(WorkerEvent::JobAssigned(AssignedJob {
                handle: job.handle,
                function: job.function,
                unique,
                reducer,
                data: job.data,
            }));
        self.step(GrabInput::Assigned)
    }
}

impl Role for WorkerConnection {
    type Event = WorkerEvent;
    type Out = RequestQueue;

    fn link(&self) -> &Link<WorkerEvent, RequestQueue> {
        &self.link
    }

    fn link_mut(&mut self) -> &mut Link<WorkerEvent, RequestQueue> {
        &mut self.link
    }

    fn on_response(&mut self, response: Response) -> Result<(), ConnError> {
        let ty = response.packet_type();
        match response {
            Response::JobAssign(job) => self.on_assign(job),
            Response::NoJob => self.step(GrabInput::NoJob),
            Response::Noop => self.step(GrabInput::Noop),
            Response::EchoRes { data } => match self.echoes.pop_front() {
                Some(req) => {
                    self.link
                        .events
                        .push_back(WorkerEvent::EchoRes { req, data });
                    Ok(())
                }
                None => Err(ProtocolError::UnsolicitedReply { ty }.into()),
            },
            Response::Error { code, text } => {
                self.link
                    .events
                    .push_back(WorkerEvent::ServerError { code, text });
                Ok(())
            }
            _ => Err(ProtocolError::Unexpected { ty }.into()),
        }
    }

    fn on_close(&mut self, reason: ConnError) -> WorkerEvent {
        self.held.clear();
        self.taken_back.clear();
        self.echoes.clear();
        self.state = GrabState::Idle;
        WorkerEvent::Closed { reason }
    }

    /// The stop's deadline for an outstanding grab's reply, while it matters.
    fn next_deadline(&self) -> Option<Instant> {
        let waiting = self.state == GrabState::Grabbing && !self.grab_given_up;
        self.grab_deadline.filter(|_| waiting)
    }

    fn expire(&mut self, now: Instant) {
        if self.next_deadline().is_some_and(|d| d <= now) {
            self.grab_given_up = true;
        }
    }
}
