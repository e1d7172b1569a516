//! The job server machine: per-connection sessions beside one single-owner job state.
//!
//! [`Server`] owns every queue, unique map and timer (gearmand's "processing thread"), with
//! no locks, no I/O and no clock: the adapter feeds it bytes and the current time, and takes
//! out bytes per connection, events and the next deadline. Peer faults never surface as
//! `Err`: a bad packet gets an ERROR reply, a fatal one a [`ServerEvent::Close`].
//!
//! Semantics follow gearmand 2.0 where it fixed 1.1.20 (protocol.md §9): priority is global
//! across a worker's functions, functions are served round-robin, epoch jobs fire on a
//! timer, CAN_DO_TIMEOUT is a per-assignment deadline, and `job_retries` counts retries.

mod access;
mod admin;
mod client;
mod conn;
mod core;
pub mod extra;
mod function;
mod invariants;
mod job;
pub mod kept;
mod persist;
mod record;
pub mod retry;
pub mod schedule;
mod session;
pub mod stats;
mod timers;
mod worker;

pub use conn::PeerInfo;
pub use extra::{ExtraKind, ExtraRecord};
pub use kept::{KeptResult, Outcome};
pub use record::JobRecord;
pub use retry::{DeadLetter, Failure, RetryPolicy};
pub use schedule::Schedule;
pub use stats::{ExtrasGauges, FunctionGauges, FunctionStats, Snapshot, Stats, WorkerInfo};

use self::conn::Conn;
use self::function::Function;
use self::job::{Job, UniqueKey};
use self::persist::PendingWrite;
use self::timers::Timers;
use crate::limits::Limits;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

/// Names one connection for as long as the server knows it; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Packet and line size limits.
    pub limits: Limits,
    /// Retries after a worker fails a job by vanishing, CANT_DO or timeout: `None` =
    /// unlimited, `Some(0)` = fail at the first such failure, `Some(n)` = up to n retries.
    pub job_retries: Option<u32>,
    /// NOOPs sent per newly runnable job; 0 wakes every sleeping capable worker.
    pub worker_wakeup: u32,
    /// Job handles are `<prefix>:<n>`.
    pub handle_prefix: String,
    /// Job handles count up from here (`PREFIX:N`, N > this). A server that restarts
    /// (a durable queue, clients holding handles) should start past any handle it gave
    /// before, e.g. at its start time in milliseconds, so an old handle never names a new
    /// job. Default 0.
    pub first_handle: u64,
    /// Whether connections start with the `exceptions` option on (gearmand `--exceptions`).
    pub exceptions_by_default: bool,
    /// The admin `version` reply.
    pub version: String,
    /// The admin `getpid` reply.
    pub pid: u32,
    /// The admin `verbose` reply.
    pub verbose: String,
    /// Pending output per connection beyond which the connection is closed.
    pub max_output_bytes: usize,
    /// Store background jobs: a background submission gets JOB_CREATED only once
    /// [`Server::persisted`] confirms its job is stored (and a new job runs only then).
    pub persist_background: bool,
    /// A monotonic instant and the Unix time in seconds at that instant, to place epochs.
    pub wall_anchor: (Instant, i64),
    /// Retry policies for failed background jobs, by function (see [`retry`]).
    pub retry: HashMap<Bytes, RetryPolicy>,
    /// The store keeps [`ExtraRecord`]s (retry state, dead letters): the server emits
    /// [`ServerEvent::PutExtra`] and [`ServerEvent::DeleteExtra`] only then.
    pub durable_extras: bool,
    /// SUBMIT_JOB_SCHED fields are read in this zone, seconds east of UTC (0 = UTC).
    pub schedule_offset_secs: i32,
    /// Keep the last result of each background job this long (see [`kept`]); `None`
    /// (the default) keeps none.
    pub keep_results: Option<std::time::Duration>,
    /// The kept results hold at most this many bytes in all ([`KeptResult::size`]); the
    /// oldest are forgotten first.
    pub keep_results_bytes: usize,
}

impl ServerConfig {
    /// Defaults, with the wall-clock anchor supplied by the caller (the core reads no clock).
    pub fn new(now: Instant, unix_secs: i64) -> Self {
        ServerConfig {
            limits: Limits::default(),
            job_retries: None,
            worker_wakeup: 0,
            handle_prefix: "H:localhost".into(),
            exceptions_by_default: false,
            version: env!("CARGO_PKG_VERSION").into(),
            pid: 0,
            verbose: "ERROR".into(),
            max_output_bytes: 2 * Limits::DEFAULT_MAX_BODY,
            persist_background: false,
            wall_anchor: (now, unix_secs),
            retry: HashMap::new(),
            durable_extras: false,
            schedule_offset_secs: 0,
            first_handle: 0,
            keep_results: None,
            keep_results_bytes: kept::DEFAULT_KEEP_RESULTS_BYTES,
        }
    }
}

/// Something the adapter must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Flush what `poll_transmit` still yields for this connection, close the socket, then
    /// call [`Server::handle_eof`].
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for the log.
        reason: String,
    },
    /// Store this background job durably, then call [`Server::persisted`]. The job may
    /// already be queued or running (a background submission coalesced onto a foreground
    /// job), and an `Unpersist` for it may follow before the answer: apply them in order.
    Persist(JobRecord),
    /// This stored job ended: delete it.
    Unpersist {
        /// Its store key.
        durable_id: u64,
    },
    /// Store (or replace) a record beyond the job queue. With `acknowledge`, call
    /// [`Server::persisted`] with the record's key once it is durable.
    PutExtra {
        /// The record.
        record: ExtraRecord,
        /// Whether the server waits for the store's answer.
        acknowledge: bool,
    },
    /// Delete a record beyond the job queue (deleting a missing one is not an error).
    DeleteExtra {
        /// Its kind.
        kind: ExtraKind,
        /// Its key.
        key: u64,
    },
    /// A local admin connection sent `shutdown` (stop now: flush the `OK`, then exit) or
    /// `shutdown graceful` (stop accepting, let running jobs finish, as on SIGTERM).
    Shutdown {
        /// `shutdown graceful`.
        graceful: bool,
    },
    /// The ACL refused a request (already answered; the connection stays open): log it.
    Refused {
        /// The connection.
        conn: ConnId,
        /// Who asked, as [`crate::acl::Identity`] displays it.
        identity: String,
        /// What was missing.
        permission: crate::acl::Permission,
        /// The function refused (empty for admin commands).
        function: Bytes,
    },
}

/// The whole job server, without I/O.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    /// Sorted so admin listings are stable.
    functions: BTreeMap<Bytes, Function>,
    /// `maxqueue` limits, also for functions not seen yet.
    max_queue: HashMap<Bytes, [u32; 3]>,
    jobs: HashMap<u64, Job>,
    next_job: u64,
    by_handle: HashMap<Bytes, u64>,
    by_unique: HashMap<(Bytes, UniqueKey), u64>,
    handle_counter: u64,
    next_durable: u64,
    /// Store writes not answered yet, by durable id. An entry outlives its job: it holds
    /// JOB_CREATED replies that only the store's answer may resolve.
    persisting: HashMap<u64, PendingWrite>,
    timers: Timers,
    events: VecDeque<ServerEvent>,
    writable: VecDeque<ConnId>,
    /// Connections to close once the current call's work is done (never closed re-entrantly).
    to_close: Vec<(ConnId, String)>,
    /// The permissions in force; `None` allows everything.
    acl: Option<crate::acl::Acl>,
    /// Monitoring counters.
    stats: Stats,
    /// Background jobs out of retries, by key (durable id).
    dead: BTreeMap<u64, DeadLetter>,
    /// Dead letters re-queued, by the new job's durable id, until the store holds it.
    dead_retrying: HashMap<u64, (u64, DeadLetter)>,
    /// SUBMIT_JOB_SCHED schedules, by key (durable id).
    schedules: BTreeMap<u64, Schedule>,
    /// Schedules waiting for the store before their JOB_CREATED, by key.
    schedules_persisting: HashMap<u64, schedule::PendingSchedule>,
    /// Armed schedule firings in time order.
    schedule_due: BTreeSet<(Instant, u64)>,
    /// Results kept for ended background jobs (`keep_results`).
    kept: kept::Kept,
}

impl Server {
    /// A server with no connections and no jobs.
    pub fn new(config: ServerConfig, _now: Instant) -> Server {
        let first_handle = config.first_handle;
        Server {
            config,
            conns: HashMap::new(),
            next_conn: 0,
            functions: BTreeMap::new(),
            max_queue: HashMap::new(),
            jobs: HashMap::new(),
            next_job: 0,
            by_handle: HashMap::new(),
            by_unique: HashMap::new(),
            handle_counter: first_handle,
            next_durable: 1,
            persisting: HashMap::new(),
            timers: Timers::default(),
            events: VecDeque::new(),
            writable: VecDeque::new(),
            to_close: Vec::new(),
            acl: None,
            stats: Stats::default(),
            dead: BTreeMap::new(),
            dead_retrying: HashMap::new(),
            schedules: BTreeMap::new(),
            schedules_persisting: HashMap::new(),
            schedule_due: BTreeSet::new(),
            kept: kept::Kept::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Registers a new connection from an anonymous peer (see [`Server::accept_as`]).
    pub fn accept(&mut self, peer: PeerInfo, _now: Instant) -> ConnId {
        self.next_conn += 1;
        let id = ConnId(self.next_conn);
        let mut conn = Conn::new(peer, self.config.limits, self.config.exceptions_by_default);
        conn.access = access::Access::new(crate::acl::Identity::Anonymous, self.acl.as_ref());
        self.conns.insert(id, conn);
        id
    }

    /// Feeds bytes read from `conn`. Unknown or closing connections are ignored.
    pub fn handle_input(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        match self.conns.get_mut(&conn) {
            Some(c) if !c.closing => c.session.push(bytes),
            _ => return,
        }
        loop {
            let next = match self.conns.get_mut(&conn) {
                Some(c) if !c.closing => c.session.next(),
                _ => break,
            };
            match next {
                Ok(Some(inbound)) => self.dispatch(conn, inbound, now),
                Ok(None) => break,
                Err(e) => {
                    self.to_close.push((conn, e.to_string()));
                    break;
                }
            }
            if !self.to_close.is_empty() {
                break;
            }
        }
        self.run_closes(now);
    }

    /// The peer closed (or the adapter gave up on) `conn`: its held jobs are requeued, its
    /// foreground submissions detached, and the connection forgotten.
    pub fn handle_eof(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conns.get(&conn) {
            if !c.closing {
                self.detach(conn, now);
            }
        }
        self.conns.remove(&conn);
        self.run_closes(now);
    }

    /// Appends `conn`'s pending output to `out`; returns the number of bytes appended.
    #[must_use]
    pub fn poll_transmit(&mut self, conn: ConnId, out: &mut Vec<u8>) -> usize {
        self.conns.get_mut(&conn).map_or(0, |c| c.transmit(out))
    }

    /// The next connection with output ready (each reported once until drained).
    #[must_use]
    pub fn poll_writable(&mut self) -> Option<ConnId> {
        while let Some(id) = self.writable.pop_front() {
            if let Some(c) = self.conns.get_mut(&id) {
                c.in_writable = false;
                if c.has_output() {
                    return Some(id);
                }
            }
        }
        None
    }

    /// The next event for the adapter.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`Server::handle_timeout`] next needs to run.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.next_deadline(),
            self.next_schedule_due(),
            self.kept.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs every timer due at `now`: epoch jobs becoming runnable, run-time limits expiring.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((timer, kind)) = self.timers.pop_due(now) {
            self.fire(timer, kind, now);
        }
        self.fire_schedules(now);
        self.expire_kept(now);
        self.run_closes(now);
    }

    /// The store committed (or failed to commit) a job announced by [`ServerEvent::Persist`].
    pub fn persisted(&mut self, durable_id: u64, result: Result<(), String>, now: Instant) {
        if !self.schedule_persisted(durable_id, &result) {
            self.on_persisted(durable_id, result, now);
        }
        self.run_closes(now);
    }

    /// Re-creates stored background jobs on start, in priority then arrival order.
    pub fn restore(&mut self, jobs: Vec<JobRecord>, now: Instant) {
        self.restore_with(jobs, Vec::new(), now);
    }

    /// Re-creates stored background jobs and the records beyond the queue (retry state,
    /// dead letters) on start. A job that is also a dead letter (a crash between the two
    /// writes) stays dead; records that do not decode are deleted.
    pub fn restore_with(
        &mut self,
        mut jobs: Vec<JobRecord>,
        extras: Vec<ExtraRecord>,
        now: Instant,
    ) {
        let mut attempts = HashMap::new();
        for e in extras {
            self.next_durable = self.next_durable.max(e.key.saturating_add(1));
            let kept = match e.kind {
                ExtraKind::DeadLetter => DeadLetter::decode(&e.value)
                    .map(|d| self.dead.insert(e.key, d))
                    .is_some(),
                ExtraKind::Attempts => retry::decode_attempts(&e.value)
                    .map(|a| attempts.insert(e.key, a))
                    .is_some(),
                ExtraKind::Schedule => self.restore_schedule(e.key, &e.value, now),
                ExtraKind::KeptResult => self.restore_kept(e.key, &e.value, now),
            };
            if !kept {
                self.events.push_back(ServerEvent::DeleteExtra {
                    kind: e.kind,
                    key: e.key,
                });
            }
        }
        self.trim_kept(self.config.keep_results_bytes);
        jobs.sort_by_key(|r| (r.priority, r.durable_id));
        for mut record in jobs {
            self.next_durable = self.next_durable.max(record.durable_id + 1);
            if self.dead.contains_key(&record.durable_id) {
                self.events.push_back(ServerEvent::Unpersist {
                    durable_id: record.durable_id,
                });
                continue;
            }
            let tried = attempts.remove(&record.durable_id);
            if let Some((_, due)) = tried {
                record.when = Some(due);
            }
            let durable_id = record.durable_id;
            if let Some(id) = self.restore_one(record, now) {
                if let (Some(job), Some((failures, _))) = (self.jobs.get_mut(&id), tried) {
                    job.failures = failures;
                }
            } else if tried.is_some() {
                self.events.push_back(ServerEvent::DeleteExtra {
                    kind: ExtraKind::Attempts,
                    key: durable_id,
                });
            }
        }
        // Retry state of jobs no longer stored.
        for key in attempts.into_keys() {
            self.events.push_back(ServerEvent::DeleteExtra {
                kind: ExtraKind::Attempts,
                key,
            });
        }
        self.run_closes(now);
    }

    /// Moves the wall-clock anchor used to place SUBMIT_JOB_EPOCH times.
    pub fn set_wall_anchor(&mut self, now: Instant, unix_secs: i64) {
        self.config.wall_anchor = (now, unix_secs);
    }

    /// Jobs currently held by workers.
    pub fn running_jobs(&self) -> usize {
        self.functions.values().map(|f| f.running).sum()
    }

    /// Jobs waiting in queues (including epoch jobs not yet due).
    pub fn queued_jobs(&self) -> usize {
        self.functions
            .values()
            .map(|f| f.queued_total() + f.waiting)
            .sum()
    }

    /// Checks the internal invariants; `Err` describes the first violation. A test hook.
    pub fn check_invariants(&self) -> Result<(), String> {
        invariants::check(self)
    }

    fn run_closes(&mut self, now: Instant) {
        while let Some((conn, reason)) = self.to_close.pop() {
            let fresh = self.conns.get(&conn).is_some_and(|c| !c.closing);
            if fresh {
                self.detach(conn, now);
                self.events.push_back(ServerEvent::Close { conn, reason });
            }
        }
    }
}
