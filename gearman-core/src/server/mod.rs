//! The job server machine: per-connection sessions beside one single-owner job state.
//!
//! [`Server`] owns every queue, unique map and timer (gearmand's "processing thread"), with
//! no locks, no I/O and no clock: the adapter feeds it bytes and the current time, and takes
//! out bytes per connection, events and the next deadline. Peer faults never surface as
//! `Err`: a bad packet gets an ERROR reply, a fatal one a [`ServerEvent::Close`].
//!
//! Inside, the job state (jobs, functions, uniques, timers, store writes, retries,
//! schedules, kept results) changes a job's phase only through one lifecycle transition;
//! the connections (framing, output, client and worker roles) are apart from it, and the
//! request handlers in between read the one and drive the other.
//!
//! Semantics follow gearmand 2.0 where it fixed 1.1.20 (protocol.md §9): priority is global
//! across a worker's functions, functions are served round-robin, epoch jobs fire on a
//! timer, CAN_DO_TIMEOUT is a per-assignment deadline, and `job_retries` counts retries.

mod access;
mod admin;
mod client;
mod config;
mod conn;
mod dispatch;
mod event;
pub mod extra;
mod framing;
mod id_map;
mod invariants;
mod jobs;
mod output;
mod queries;
mod record;
mod roles;
mod session;
pub mod stats;
mod wakeups;
mod worker;

pub use self::config::{RetryPolicy, ServerConfig, DEFAULT_INPUT_PAUSE_BYTES};
pub use self::event::ServerEvent;
pub use self::jobs::{kept, retry, schedule};
pub use extra::{ExtraKind, ExtraRecord};
pub use kept::{KeptResult, Outcome};
pub use record::JobRecord;
pub use retry::{DeadLetter, Failure};
pub use schedule::Schedule;
pub use session::PeerInfo;
pub use stats::{ExtrasGauges, FunctionGauges, FunctionStats, Snapshot, Stats, WorkerInfo};

use self::access::Access;
use self::conn::{Conn, Conns};
use self::jobs::JobState;
use self::roles::{ClientRole, WorkerRole};
use self::session::Session;
use self::wakeups::Sleepers;
use crate::acl::Identity;
use crate::proto::{DecodeError, Response};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

/// Names one connection for as long as the server knows it; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// The whole job server, without I/O.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// Jobs and everything hanging off them.
    jobs: JobState,
    /// Sessions and roles of the open connections.
    conns: Conns,
    /// Per function, the workers to wake when it gets work.
    sleepers: Sleepers,
    /// Connection events (closes, shutdown, refusals); store events are the job state's.
    events: VecDeque<ServerEvent>,
    /// Connections to close once the current call's work is done (never closed re-entrantly).
    to_close: Vec<(ConnId, String)>,
    /// The permissions in force; `None` allows everything.
    acl: Option<crate::acl::Acl>,
    /// Reused for the handle of a reply written from borrowed parts.
    handle_scratch: Vec<u8>,
}

impl Server {
    /// A server with no connections and no jobs.
    pub fn new(config: ServerConfig, now: Instant) -> Server {
        Server {
            jobs: JobState::new(&config, now),
            config,
            conns: Conns::default(),
            sleepers: Sleepers::default(),
            events: VecDeque::new(),
            to_close: Vec::new(),
            acl: None,
            handle_scratch: Vec::new(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Registers a new connection from an anonymous peer (see [`Server::accept_as`]).
    pub fn accept(&mut self, peer: PeerInfo, _now: Instant) -> ConnId {
        let access = Access::new(Identity::Anonymous, self.acl.as_ref());
        self.conns.insert(Conn {
            session: Session::new(peer, access, self.config.limits),
            client: ClientRole::new(self.config.exceptions_by_default),
            worker: WorkerRole::default(),
        })
    }

    /// Registers a new connection whose peer is `identity` (see [`crate::acl`]).
    pub fn accept_as(&mut self, peer: PeerInfo, identity: Identity, now: Instant) -> ConnId {
        let id = self.accept(peer, now);
        let access = Access::new(identity, self.acl.as_ref());
        if let Some(c) = self.conns.get_mut(id) {
            c.session.access = access;
        }
        id
    }

    /// Feeds bytes read from `conn`. Unknown or closing connections are ignored.
    ///
    /// Once the connection's pending output reaches
    /// [`ServerConfig::input_pause_bytes`], the rest of its requests wait
    /// ([`Server::input_held`]): transmit its output, then call this again (with no new
    /// bytes) to go on with them; read nothing more from the peer until they are handled.
    pub fn handle_input(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        match self.conns.get_mut(conn) {
            Some(c) if !c.session.closing => c.session.framing.push(bytes),
            _ => return,
        }
        let pause_at = self.config.input_pause_bytes;
        loop {
            let next = match self.conns.get_mut(conn) {
                Some(c) if !c.session.closing => {
                    let s = &mut c.session;
                    s.input_held = s.output.pending() >= pause_at && s.framing.has_input();
                    if s.input_held {
                        break;
                    }
                    s.framing.next()
                }
                _ => break,
            };
            match next {
                Ok(Some(inbound)) => self.dispatch(conn, inbound, now),
                Ok(None) => break,
                Err(e) => {
                    let why = e.to_string();
                    if let Some(code) = fatal_error_code(&e) {
                        // Said before the close (the output is written first), so the
                        // peer's library can tell its user why (libgearman reports an
                        // ERROR's text), instead of only seeing the connection drop.
                        let text = Bytes::from(why.clone());
                        let code = Bytes::from_static(code.as_bytes());
                        self.send(conn, Response::Error { code, text });
                    }
                    self.to_close.push((conn, why));
                    break;
                }
            }
            // A request may close other connections (their output overflowed); they go
            // now, and this connection's later requests are still handled (the loop ends
            // if it was this one).
            self.run_closes(now);
        }
        self.run_closes(now);
    }

    /// Whether `conn` has requests left unhandled because its output is large (see
    /// [`Server::handle_input`]).
    #[must_use]
    pub fn input_held(&self, conn: ConnId) -> bool {
        self.conns.get(conn).is_some_and(|c| c.session.input_held)
    }

    /// The peer closed (or the adapter gave up on) `conn`: its held jobs are requeued, its
    /// foreground submissions detached, and the connection forgotten.
    pub fn handle_eof(&mut self, conn: ConnId, now: Instant) {
        if self.conns.get(conn).is_some_and(|c| !c.session.closing) {
            self.detach(conn, now);
        }
        self.conns.remove(conn);
        self.run_closes(now);
    }

    /// Appends `conn`'s pending output to `out`; returns the number of bytes appended.
    #[must_use]
    pub fn poll_transmit(&mut self, conn: ConnId, out: &mut Vec<u8>) -> usize {
        self.conns.transmit(conn, out)
    }

    /// The next connection with output ready (each reported once until drained).
    #[must_use]
    pub fn poll_writable(&mut self) -> Option<ConnId> {
        self.conns.pop_writable()
    }

    /// The next event for the adapter: store writes first, in order, then connection events.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.jobs
            .events
            .pop_front()
            .or_else(|| self.events.pop_front())
    }

    /// When [`Server::handle_timeout`] next needs to run.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.jobs.next_deadline()
    }

    /// Runs every timer due at `now`: scheduled jobs becoming runnable, run-time limits
    /// expiring, schedules firing, kept results expiring.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((timer, job, kind)) = self.jobs.pop_due_timer(now) {
            self.fire(timer, job, kind, now);
        }
        self.jobs.run_due(&self.config, now);
        self.apply_effects();
        self.run_closes(now);
    }

    /// The store committed (or failed to commit) a job announced by [`ServerEvent::Persist`],
    /// or a record announced by [`ServerEvent::PutExtra`] with `acknowledge`.
    pub fn persisted(&mut self, durable_id: u64, result: Result<(), String>, now: Instant) {
        if let Some(answer) = self.jobs.persisted(&self.config, durable_id, result, now) {
            for conn in answer.waiting {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.session.output.resolve(durable_id, answer.reply.clone());
                }
                self.conns.mark_writable(conn);
            }
        }
        self.apply_effects();
        self.run_closes(now);
    }

    /// Re-creates stored background jobs on start, in priority then arrival order.
    pub fn restore(&mut self, jobs: Vec<JobRecord>, now: Instant) {
        self.restore_with(jobs, Vec::new(), now);
    }

    /// Re-creates stored background jobs and the records beyond the queue (retry state,
    /// dead letters, schedules, kept results) on start. A job that is also a dead letter (a
    /// crash between the two writes) stays dead; records this version cannot decode stay
    /// in the store, unused, each reported as [`ServerEvent::UnreadableRecord`].
    pub fn restore_with(&mut self, jobs: Vec<JobRecord>, extras: Vec<ExtraRecord>, now: Instant) {
        self.jobs.restore(&self.config, jobs, extras, now);
        self.apply_effects();
        self.run_closes(now);
    }

    /// Moves the wall-clock anchor used to place SUBMIT_JOB_EPOCH times.
    pub fn set_wall_anchor(&mut self, now: Instant, unix_secs: i64) {
        self.config.wall_anchor = (now, unix_secs);
    }

    /// Jobs currently held by workers.
    pub fn running_jobs(&self) -> usize {
        self.jobs.running_jobs()
    }

    /// Jobs waiting in queues (including epoch jobs not yet due).
    pub fn queued_jobs(&self) -> usize {
        self.jobs.queued_jobs()
    }

    /// Every job the server holds (queued, waiting, running, or waiting for the store),
    /// counted in constant time, unlike [`Server::queued_jobs`] and [`Server::running_jobs`],
    /// which add up every function's counts.
    pub fn jobs_held(&self) -> usize {
        self.jobs.jobs.len()
    }

    /// Checks the internal invariants; `Err` describes the first violation. A test hook.
    pub fn check_invariants(&self) -> Result<(), String> {
        invariants::check(self)
    }

    /// The dead letters in the order they died (by key).
    pub fn dead_letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.jobs.dead.values()
    }

    /// The schedules, by key.
    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.jobs.schedules.values()
    }

    /// The kept result of the job that had `handle`.
    pub fn kept_result(&self, handle: &[u8]) -> Option<&KeptResult> {
        self.jobs.kept_result(handle)
    }

    /// The latest kept result of a job of `function` submitted with `unique`.
    pub fn kept_result_by_unique(&self, function: &[u8], unique: &[u8]) -> Option<&KeptResult> {
        self.jobs.kept_result_by_unique(function, unique)
    }

    /// Every kept result, oldest first.
    pub fn kept_results(&self) -> impl Iterator<Item = &KeptResult> {
        self.jobs.kept.iter()
    }
}

/// The ERROR code sent before closing a connection whose binary input cannot be framed;
/// `None` for errors of admin text lines, whose peers do not read binary packets.
fn fatal_error_code(e: &DecodeError) -> Option<&'static str> {
    match e {
        DecodeError::TooLarge { .. } => Some("PACKET_TOO_LARGE"),
        DecodeError::AdminLineTooLong { .. } | DecodeError::AdminTooManyTokens => None,
        DecodeError::BadMagic(_)
        | DecodeError::UnknownType(_)
        | DecodeError::MissingArgument { .. }
        | DecodeError::BadNumber { .. }
        | DecodeError::ArgumentTooLarge { .. } => Some("BAD_PACKET"),
    }
}
