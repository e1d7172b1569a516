//! Model-based test: random operations against the server machine and a deliberately naive
//! reference model (BTreeMaps, linear scans, one virtual millisecond clock).
//!
//! The model predicts, byte for byte, every packet each connection receives (JOB_CREATED,
//! ERROR, WORK_* fan-out with the exceptions downgrade, STATUS_RES, STATUS_RES_UNIQUE and
//! every NOOP wake-up), plus the admin `status`, `prioritystatus` and `show jobs` listings and
//! `cancel job` replies. Grabs are checked for legality (highest priority across the worker's
//! functions, FIFO within a function; which function wins a tie is left to the server). Time
//! drives CAN_DO_TIMEOUT deadlines and epoch jobs; `job_retries` varies per case. After every
//! step the server's own `check_invariants` runs, and the number of live jobs must equal the
//! model's: no accepted job is lost or invented.
//!
//! Persistence is modelled exactly: every Persist and Unpersist event, in order, and every
//! held JOB_CREATED. The rule: a background submission gets JOB_CREATED only once the store
//! holds its job. A new background job waits, not runnable, for its write (and so does any
//! submission coalescing onto it); a background submission coalescing onto a job nothing
//! stores (a foreground one) starts a write for it, and waits, while the job stays queued or
//! running. Only the store's answer resolves a held reply, even after the job has ended
//! (its Unpersist went out at once): JOB_CREATED if stored, QUEUE_ERROR if not. A failed
//! late write leaves the job the foreground job it was.

mod support;

use gearman_core::proto::{
    AssignExtras, GrabMode, Priority, Request, Response, StatusRes, StatusResUnique, SubmitJob,
    SubmitMode, WorkPayload, WorkStatus,
};
use gearman_core::server::{ConnId, JobRecord, ServerEvent};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use support::{b, Net, UNIX_START};

const SLOTS: usize = 5;
const FUNCTIONS: [&str; 2] = ["f0", "f1"];
const UNIQUES: [&str; 4] = ["", "u1", "u2", "-"];
const DATA: [&str; 2] = ["d0", "d1"];
/// The only CAN_DO_TIMEOUT value used, in milliseconds (ticks go up to 3 s).
const TIMEOUT_MS: u64 = 1500;
const HANDLES: usize = 10;

#[derive(Clone, Debug)]
enum Op {
    Submit {
        slot: usize,
        function: usize,
        unique: usize,
        data: usize,
        priority: usize,
        background: bool,
    },
    /// SUBMIT_JOB_EPOCH at `UNIX_START + secs`: due `secs` seconds after the test starts.
    SubmitEpoch {
        slot: usize,
        function: usize,
        unique: usize,
        secs: u64,
    },
    CanDo {
        slot: usize,
        function: usize,
        timeout: bool,
    },
    CantDo {
        slot: usize,
        function: usize,
    },
    Grab {
        slot: usize,
        mode: usize,
    },
    PreSleep {
        slot: usize,
    },
    /// A result for the oldest job the slot holds.
    Report {
        slot: usize,
        kind: usize,
    },
    /// A result for a handle the slot does not hold.
    StrayReport {
        slot: usize,
        job: usize,
    },
    GetStatus {
        slot: usize,
        job: usize,
    },
    GetStatusUnique {
        slot: usize,
        unique: usize,
    },
    Exceptions {
        slot: usize,
    },
    Disconnect {
        slot: usize,
    },
    Cancel {
        job: usize,
    },
    MaxQueue {
        function: usize,
        limit: usize,
    },
    AdminListings,
    /// The store answers for one pending job.
    Persisted {
        pick: usize,
        ok: bool,
    },
    Tick {
        millis: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    let f = 0..FUNCTIONS.len();
    prop_oneof![
        5 => (slot.clone(), f.clone(), 0..UNIQUES.len(), 0..DATA.len(), 0..3usize, any::<bool>())
            .prop_map(|(slot, function, unique, data, priority, background)| Op::Submit {
                slot, function, unique, data, priority, background,
            }),
        1 => (slot.clone(), f.clone(), 0..3usize, 0..8u64)
            .prop_map(|(slot, function, unique, secs)| Op::SubmitEpoch { slot, function, unique, secs }),
        2 => (slot.clone(), f.clone(), any::<bool>())
            .prop_map(|(slot, function, timeout)| Op::CanDo { slot, function, timeout }),
        1 => (slot.clone(), f.clone()).prop_map(|(slot, function)| Op::CantDo { slot, function }),
        3 => (slot.clone(), 0..3usize).prop_map(|(slot, mode)| Op::Grab { slot, mode }),
        1 => slot.clone().prop_map(|slot| Op::PreSleep { slot }),
        3 => (slot.clone(), 0..6usize).prop_map(|(slot, kind)| Op::Report { slot, kind }),
        1 => (slot.clone(), 0..HANDLES).prop_map(|(slot, job)| Op::StrayReport { slot, job }),
        1 => (slot.clone(), 0..HANDLES).prop_map(|(slot, job)| Op::GetStatus { slot, job }),
        1 => (slot.clone(), 0..UNIQUES.len()).prop_map(|(slot, unique)| Op::GetStatusUnique { slot, unique }),
        1 => slot.clone().prop_map(|slot| Op::Exceptions { slot }),
        1 => slot.clone().prop_map(|slot| Op::Disconnect { slot }),
        1 => (0..HANDLES).prop_map(|job| Op::Cancel { job }),
        1 => (f.clone(), 0..4usize).prop_map(|(function, limit)| Op::MaxQueue { function, limit }),
        1 => Just(Op::AdminListings),
        2 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(pick, ok)| Op::Persisted { pick, ok }),
        2 => (0..3000u64).prop_map(|millis| Op::Tick { millis }),
    ]
}

fn handle_of(n: usize) -> String {
    format!("H:test:{n}")
}

/// Handles count up from 1, so their number is their age.
fn handle_number(h: &str) -> u64 {
    h.rsplit(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MState {
    /// Waiting for the store (persist_background).
    Persisting,
    Scheduled,
    Queued,
    Running(usize),
}

/// One expected reply: a packet, or a JOB_CREATED held until the store answers for this
/// durable id (everything behind it waits too).
#[derive(Debug, Clone, PartialEq)]
enum Exp {
    Packet(Response),
    Await(u64),
}

/// What a submission coalesces on: the unique, or the data for `-`.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Unique(String),
    Data(String),
}

fn key_of(unique: &str, data: &str) -> Option<Key> {
    match unique {
        "" => None,
        "-" if data.is_empty() => None,
        "-" => Some(Key::Data(data.to_string())),
        u => Some(Key::Unique(u.to_string())),
    }
}

#[derive(Debug, Clone)]
struct MJob {
    function: String,
    unique: String,
    /// `None` once cancelled while running (it coalesces nothing any more).
    key: Option<Key>,
    data: String,
    priority: Priority,
    background: bool,
    listeners: Vec<usize>,
    state: MState,
    status: (u32, u32),
    /// Queue order within a (function, priority).
    seq: u64,
    retries: u32,
    cancelled: bool,
    /// (due in ms since the start, arm order) for an epoch wait or a run-time limit.
    timer: Option<(u64, u64)>,
    /// SUBMIT_JOB_EPOCH time, in ms since the start.
    epoch_ms: Option<u64>,
    /// Store key while the store keeps it.
    durable: Option<u64>,
}

impl MJob {
    fn ignored(&self) -> bool {
        self.cancelled || (!self.background && self.listeners.is_empty())
    }
}

#[derive(Default, Clone)]
struct Worker {
    /// Registrations (duplicates counted) and the timeout of the latest one.
    abilities: BTreeMap<String, (usize, bool)>,
    held: Vec<String>,
    sleeping: bool,
    noop_sent: bool,
    exceptions: bool,
}

/// The naive model.
struct Model {
    retries: Option<u32>,
    now_ms: u64,
    jobs: BTreeMap<String, MJob>,
    next_handle: u64,
    seq: u64,
    timer_seq: u64,
    slots: [Worker; SLOTS],
    seen_functions: BTreeSet<String>,
    max_queue: BTreeMap<String, usize>,
    expected: [VecDeque<Exp>; SLOTS],
    persist: bool,
    next_durable: u64,
    /// Store writes not answered yet, in announcement order: durable id and job handle.
    /// An entry outlives its job: the answer still resolves the replies held for it.
    pending: Vec<(u64, String)>,
    events: VecDeque<ServerEvent>,
}

impl Model {
    fn new(retries: Option<u32>, persist: bool) -> Self {
        Model {
            persist,
            next_durable: 1,
            pending: Vec::new(),
            events: VecDeque::new(),
            retries,
            now_ms: 0,
            jobs: BTreeMap::new(),
            next_handle: 0,
            seq: 0,
            timer_seq: 0,
            slots: Default::default(),
            seen_functions: BTreeSet::new(),
            max_queue: BTreeMap::new(),
            expected: Default::default(),
        }
    }

    fn queued(&self, f: &str, p: Priority) -> Vec<&String> {
        let mut v: Vec<_> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.function == f && j.priority == p && j.state == MState::Queued)
            .collect();
        v.sort_by_key(|(_, j)| j.seq);
        v.into_iter().map(|(h, _)| h).collect()
    }

    fn has_queued(&self, f: &str) -> bool {
        self.jobs
            .values()
            .any(|j| j.function == f && j.state == MState::Queued)
    }

    fn best_priority_for(&self, slot: usize) -> Option<Priority> {
        Priority::ALL.into_iter().find(|&p| {
            self.slots[slot]
                .abilities
                .keys()
                .any(|f| !self.queued(f, p).is_empty())
        })
    }

    fn say(&mut self, slot: usize, packet: Response) {
        self.expected[slot].push_back(Exp::Packet(packet));
    }

    /// Replaces held JOB_CREATED placeholders for `durable` with `reply`.
    fn resolve(&mut self, durable: u64, reply: &Response) {
        for q in &mut self.expected {
            for e in q.iter_mut() {
                if *e == Exp::Await(durable) {
                    *e = Exp::Packet(reply.clone());
                }
            }
        }
    }

    /// A job ends in any way: its store row goes (a write still pending is answered later).
    fn remove_job(&mut self, handle: &str) {
        let Some(j) = self.jobs.remove(handle) else {
            return;
        };
        if let Some(d) = j.durable {
            self.events
                .push_back(ServerEvent::Unpersist { durable_id: d });
        }
    }

    /// Gives a job a durable id and announces its store write.
    fn start_persist(&mut self, handle: &str, when: Option<i64>) -> u64 {
        let d = self.next_durable;
        self.next_durable += 1;
        self.pending.push((d, handle.to_string()));
        let j = self.jobs.get_mut(handle).expect("model job");
        j.durable = Some(d);
        self.events.push_back(ServerEvent::Persist(JobRecord {
            durable_id: d,
            function: b(&j.function),
            unique: b(&j.unique),
            priority: j.priority,
            data: b(&j.data),
            when,
            reducer: None,
        }));
        d
    }

    /// Queues the job, or schedules it if its epoch lies ahead.
    fn make_runnable(&mut self, handle: &str) {
        let due = self.jobs.get(handle).and_then(|j| j.epoch_ms);
        match due.filter(|&d| d > self.now_ms) {
            Some(d) => {
                let timer = self.arm(d);
                if let Some(j) = self.jobs.get_mut(handle) {
                    j.state = MState::Scheduled;
                    j.timer = timer;
                }
            }
            None => self.enqueue(handle),
        }
    }

    /// The store answered for `durable`: the held replies first, whatever became of the job.
    fn persisted(&mut self, durable: u64, ok: bool) {
        let Some(i) = self.pending.iter().position(|(d, _)| *d == durable) else {
            return;
        };
        let (_, h) = self.pending.remove(i);
        let reply = if ok {
            Response::JobCreated { handle: b(&h) }
        } else {
            Response::error("QUEUE_ERROR", "QUEUE_ERROR")
        };
        self.resolve(durable, &reply);
        // Gone, or cancelled while running (its Unpersist is out already): nothing more.
        let Some(j) = self.jobs.get_mut(&h).filter(|j| j.durable == Some(durable)) else {
            return;
        };
        match (j.state, ok) {
            (MState::Persisting, true) => self.make_runnable(&h),
            (MState::Persisting, false) => {
                self.jobs.remove(&h);
            }
            (_, true) => {}
            (state, false) => {
                // Late write failed: a foreground job again, dropped if nobody waits.
                j.durable = None;
                j.background = false;
                if j.listeners.is_empty() && !matches!(state, MState::Running(_)) {
                    self.jobs.remove(&h);
                }
            }
        }
    }

    fn wake(&mut self, slot: usize) {
        let w = &mut self.slots[slot];
        if w.sleeping && !w.noop_sent {
            w.noop_sent = true;
            self.expected[slot].push_back(Exp::Packet(Response::Noop));
        }
    }

    /// Puts a job at the tail of its queue and wakes every sleeping capable worker.
    fn enqueue(&mut self, handle: &str) {
        self.seq += 1;
        let seq = self.seq;
        let Some(j) = self.jobs.get_mut(handle) else {
            return;
        };
        j.state = MState::Queued;
        j.seq = seq;
        j.timer = None;
        let f = j.function.clone();
        for slot in 0..SLOTS {
            if self.slots[slot].abilities.contains_key(&f) {
                self.wake(slot);
            }
        }
    }

    fn arm(&mut self, due_ms: u64) -> Option<(u64, u64)> {
        self.timer_seq += 1;
        Some((due_ms, self.timer_seq))
    }

    fn tell_listeners(&mut self, handle: &str, packet: &Response) {
        let listeners = self
            .jobs
            .get(handle)
            .map(|j| j.listeners.clone())
            .unwrap_or_default();
        for l in listeners {
            self.say(l, packet.clone());
        }
    }

    /// A worker lost its job (vanished, CANT_DO, timeout): retry, fail or drop it.
    fn lose(&mut self, handle: &str) {
        let limit = self.retries;
        let Some(j) = self.jobs.get_mut(handle) else {
            return;
        };
        j.retries += 1;
        j.status = (0, 0);
        j.timer = None;
        if limit.is_some_and(|n| j.retries > n) {
            self.tell_listeners(handle, &Response::WorkFail { handle: b(handle) });
            self.remove_job(handle);
        } else if j.ignored() {
            self.remove_job(handle);
        } else {
            self.enqueue(handle);
        }
    }

    /// Runs every timer due by now, earliest first, ties in arming order.
    fn run_timers(&mut self) {
        loop {
            let due = self
                .jobs
                .iter()
                .filter_map(|(h, j)| j.timer.map(|t| (t, h.clone())))
                .filter(|((at, _), _)| *at <= self.now_ms)
                .min();
            let Some((_, h)) = due else { break };
            let state = self.jobs.get(&h).map(|j| j.state);
            match state {
                Some(MState::Scheduled) => self.enqueue(&h),
                Some(MState::Running(slot)) => {
                    self.slots[slot].held.retain(|x| *x != h);
                    self.lose(&h);
                }
                _ => unreachable!("timer on a queued job"),
            }
        }
    }

    fn total(&self, f: &str) -> usize {
        self.jobs.values().filter(|j| j.function == f).count()
    }

    fn workers(&self, f: &str) -> usize {
        self.slots
            .iter()
            .map(|w| w.abilities.get(f).map_or(0, |a| a.0))
            .sum()
    }

    fn listings(&self) -> String {
        let mut out = String::new();
        for f in &self.seen_functions {
            let running = self
                .jobs
                .values()
                .filter(|j| &j.function == f && matches!(j.state, MState::Running(_)))
                .count();
            out += &format!("{f}\t{}\t{running}\t{}\n", self.total(f), self.workers(f));
        }
        out += ".\n";
        for f in &self.seen_functions {
            let q = Priority::ALL.map(|p| self.queued(f, p).len());
            out += &format!("{f}\t{}\t{}\t{}\t{}\n", q[0], q[1], q[2], self.workers(f));
        }
        out += ".\n";
        let mut jobs: Vec<_> = self.jobs.iter().collect();
        jobs.sort_by_key(|(h, _)| handle_number(h));
        for (h, j) in jobs {
            out += &format!(
                "{h}\t{}\t{}\t{}\n",
                j.retries,
                u8::from(j.ignored()),
                // The builtin queue module holds every background job.
                u8::from(j.durable.is_some() || (!self.persist && j.background && !j.cancelled))
            );
        }
        out + ".\n"
    }
}

struct Harness {
    net: Net,
    conns: [ConnId; SLOTS],
    admin: ConnId,
    model: Model,
}

impl Harness {
    fn new(seed: u64, retries: Option<u32>, persist: bool) -> Self {
        let mut net = Net::with_config(seed, |c| {
            c.job_retries = retries;
            c.persist_background = persist;
        });
        let conns = std::array::from_fn(|_| net.connect());
        let admin = net.connect();
        Harness {
            net,
            conns,
            admin,
            model: Model::new(retries, persist),
        }
    }

    /// Shared by SUBMIT_JOB* and SUBMIT_JOB_EPOCH: coalesce, refuse or create.
    fn submit(&mut self, slot: usize, sub: SubmitJob) {
        let m = &mut self.model;
        let f = String::from_utf8_lossy(&sub.function).into_owned();
        let u = String::from_utf8_lossy(&sub.unique).into_owned();
        let data = String::from_utf8_lossy(&sub.data).into_owned();
        let background = sub.mode.is_background();
        m.seen_functions.insert(f.clone());
        let key = key_of(&u, &data);
        let existing = key.as_ref().and_then(|k| {
            m.jobs
                .iter()
                .find(|(_, j)| j.function == f && j.key.as_ref() == Some(k))
                .map(|(h, _)| h.clone())
        });
        let limit = m.max_queue.get(&f).copied().unwrap_or(0);
        match existing {
            Some(h) => {
                let unstored = m.jobs.get(&h).is_some_and(|j| j.durable.is_none());
                if background && m.persist && unstored {
                    // Only foreground jobs are unstored; they have no epoch.
                    m.start_persist(&h, None);
                }
                let j = m.jobs.get_mut(&h).expect("model job");
                j.background |= background;
                if !background {
                    j.listeners.push(slot);
                }
                let pending = j.durable.filter(|d| m.pending.iter().any(|(p, _)| p == d));
                match pending {
                    Some(d) if background || j.state == MState::Persisting => {
                        m.expected[slot].push_back(Exp::Await(d))
                    }
                    _ => m.say(slot, Response::JobCreated { handle: b(&h) }),
                }
            }
            None if limit > 0 && m.total(&f) >= limit => {
                m.say(slot, Response::error("QUEUE_ERROR", "Job queue is full"));
            }
            None => {
                m.next_handle += 1;
                let h = format!("H:test:{}", m.next_handle);
                let persist = m.persist && background;
                let epoch = match sub.mode {
                    SubmitMode::Epoch(t) => Some(t),
                    _ => None,
                };
                m.jobs.insert(
                    h.clone(),
                    MJob {
                        function: f,
                        unique: u,
                        key,
                        data,
                        priority: sub.mode.priority(),
                        background,
                        listeners: if background { vec![] } else { vec![slot] },
                        state: MState::Scheduled,
                        status: (0, 0),
                        seq: 0,
                        retries: 0,
                        cancelled: false,
                        timer: None,
                        epoch_ms: epoch.map(|t| (t - UNIX_START).max(0) as u64 * 1000),
                        durable: None,
                    },
                );
                if persist {
                    let d = m.start_persist(&h, epoch);
                    m.jobs.get_mut(&h).expect("model job").state = MState::Persisting;
                    m.expected[slot].push_back(Exp::Await(d));
                } else {
                    m.say(slot, Response::JobCreated { handle: b(&h) });
                    m.make_runnable(&h);
                }
            }
        }
        self.net.send(self.conns[slot], Request::Submit(sub));
    }

    fn apply(&mut self, op: &Op) {
        match op.clone() {
            Op::Submit {
                slot,
                function,
                unique,
                data,
                priority,
                background,
            } => {
                let p = Priority::ALL[priority];
                let mode = if background {
                    SubmitMode::Background(p)
                } else {
                    SubmitMode::Foreground(p)
                };
                let sub = SubmitJob {
                    function: b(FUNCTIONS[function]),
                    unique: b(UNIQUES[unique]),
                    mode,
                    data: b(DATA[data]),
                };
                self.submit(slot, sub);
            }
            Op::SubmitEpoch {
                slot,
                function,
                unique,
                secs,
            } => {
                let sub = SubmitJob {
                    function: b(FUNCTIONS[function]),
                    unique: b(UNIQUES[unique]),
                    mode: SubmitMode::Epoch(UNIX_START + secs as i64),
                    data: b("epoch"),
                };
                self.submit(slot, sub);
            }
            Op::CanDo {
                slot,
                function,
                timeout,
            } => {
                let f = FUNCTIONS[function].to_string();
                let m = &mut self.model;
                let a = m.slots[slot].abilities.entry(f.clone()).or_default();
                a.0 += 1;
                a.1 = timeout;
                m.seen_functions.insert(f.clone());
                if m.has_queued(&f) {
                    m.wake(slot);
                }
                let req = if timeout {
                    Request::CanDoTimeout {
                        function: b(&f),
                        timeout_ms: TIMEOUT_MS as u32,
                    }
                } else {
                    Request::CanDo { function: b(&f) }
                };
                self.net.send(self.conns[slot], req);
            }
            Op::CantDo { slot, function } => {
                let f = FUNCTIONS[function];
                let m = &mut self.model;
                if m.slots[slot].abilities.remove(f).is_some() {
                    let mut lost: Vec<String> = m.slots[slot]
                        .held
                        .iter()
                        .filter(|h| m.jobs.get(*h).is_some_and(|j| j.function == f))
                        .cloned()
                        .collect();
                    lost.sort_by_key(|h| handle_number(h));
                    m.slots[slot].held.retain(|h| !lost.contains(h));
                    for h in lost {
                        m.lose(&h);
                    }
                }
                self.net
                    .send(self.conns[slot], Request::CantDo { function: b(f) });
            }
            Op::Grab { slot, mode } => self.grab(slot, mode),
            Op::PreSleep { slot } => {
                let m = &mut self.model;
                m.slots[slot].sleeping = true;
                m.slots[slot].noop_sent = false;
                let runnable = m.slots[slot].abilities.keys().any(|f| m.has_queued(f));
                if runnable {
                    m.wake(slot);
                }
                self.net.send(self.conns[slot], Request::PreSleep);
            }
            Op::Report { slot, kind } => self.report(slot, kind),
            Op::StrayReport { slot, job } => {
                let h = handle_of(job + 1);
                let m = &mut self.model;
                if m.slots[slot].held.contains(&h) {
                    return;
                }
                m.say(
                    slot,
                    Response::error("JOB_NOT_FOUND", "Job given in work result not found"),
                );
                let req = Request::WorkComplete(WorkPayload {
                    handle: b(&h),
                    data: b("stray"),
                });
                self.net.send(self.conns[slot], req);
            }
            Op::GetStatus { slot, job } => {
                let h = handle_of(job + 1);
                let m = &mut self.model;
                let j = m.jobs.get(&h);
                m.say(
                    slot,
                    Response::StatusRes(StatusRes {
                        handle: b(&h),
                        known: j.is_some(),
                        running: j.is_some_and(|j| matches!(j.state, MState::Running(_))),
                        numerator: j.map_or(0, |j| j.status.0),
                        denominator: j.map_or(0, |j| j.status.1),
                    }),
                );
                self.net
                    .send(self.conns[slot], Request::GetStatus { handle: b(&h) });
            }
            Op::GetStatusUnique { slot, unique } => {
                let u = UNIQUES[unique];
                let m = &mut self.model;
                // Not scoped by function: the first function by name with that unique.
                let want = Some(Key::Unique(u.to_string()));
                let j = FUNCTIONS
                    .iter()
                    .find_map(|f| m.jobs.values().find(|j| j.function == *f && j.key == want));
                m.say(
                    slot,
                    Response::StatusResUnique(StatusResUnique {
                        unique: b(u),
                        known: j.is_some(),
                        running: j.is_some_and(|j| matches!(j.state, MState::Running(_))),
                        numerator: j.map_or(0, |j| j.status.0),
                        denominator: j.map_or(0, |j| j.status.1),
                        client_count: j.map_or(0, |j| j.listeners.len() as u32),
                    }),
                );
                self.net
                    .send(self.conns[slot], Request::GetStatusUnique { unique: b(u) });
            }
            Op::Exceptions { slot } => {
                let m = &mut self.model;
                m.slots[slot].exceptions = true;
                m.say(
                    slot,
                    Response::OptionRes {
                        name: b("exceptions"),
                    },
                );
                self.net.send(
                    self.conns[slot],
                    Request::Option {
                        name: b("exceptions"),
                    },
                );
            }
            Op::Disconnect { slot } => {
                let m = &mut self.model;
                let old = std::mem::take(&mut m.slots[slot]);
                m.expected[slot].clear();
                // Listeners first: a foreground job nobody waits for any more is dropped
                // if it is not running.
                let mut abandoned = vec![];
                for (h, j) in m.jobs.iter_mut() {
                    j.listeners.retain(|&l| l != slot);
                    let waiting = matches!(j.state, MState::Queued | MState::Scheduled);
                    if j.listeners.is_empty() && !j.background && waiting {
                        abandoned.push(h.clone());
                    }
                }
                for h in abandoned {
                    m.remove_job(&h);
                }
                // Then the jobs it held, oldest first.
                let mut held = old.held;
                held.sort_by_key(|h| handle_number(h));
                for h in held {
                    m.lose(&h);
                }
                self.net.eof(self.conns[slot]);
                self.conns[slot] = self.net.connect();
            }
            Op::Cancel { job } => {
                let h = handle_of(job + 1);
                let m = &mut self.model;
                let reply = match m.jobs.get(&h).map(|j| j.state) {
                    None => "ERR UNKNOWN_JOB\r\n",
                    Some(state) => {
                        m.tell_listeners(&h, &Response::WorkFail { handle: b(&h) });
                        if matches!(state, MState::Running(_)) {
                            let j = m.jobs.get_mut(&h).expect("model job");
                            j.cancelled = true;
                            j.listeners.clear();
                            j.key = None;
                            if let Some(d) = j.durable.take() {
                                m.events.push_back(ServerEvent::Unpersist { durable_id: d });
                            }
                        } else {
                            m.remove_job(&h);
                        }
                        "OK\r\n"
                    }
                };
                let line = format!("cancel job {h}\r\n");
                assert_eq!(self.net.admin(self.admin, &line), reply, "{line}");
            }
            Op::MaxQueue { function, limit } => {
                let f = FUNCTIONS[function];
                self.model.max_queue.insert(f.to_string(), limit);
                let line = format!("maxqueue {f} {limit}\r\n");
                assert_eq!(self.net.admin(self.admin, &line), "OK\r\n");
            }
            Op::AdminListings => {
                let got = self.net.admin(self.admin, "status\r\n")
                    + &self.net.admin(self.admin, "prioritystatus\r\n")
                    + &self.net.admin(self.admin, "show jobs\r\n");
                assert_eq!(got, self.model.listings());
            }
            Op::Persisted { pick, ok } => {
                let m = &mut self.model;
                if m.pending.is_empty() {
                    return;
                }
                let d = m.pending[pick % m.pending.len()].0;
                m.persisted(d, ok);
                let result = if ok {
                    Ok(())
                } else {
                    Err("store failed".into())
                };
                self.net.server.persisted(d, result, self.net.now);
                self.net.collect_events();
            }
            Op::Tick { millis } => {
                self.model.now_ms += millis;
                self.model.run_timers();
                self.net.advance(Duration::from_millis(millis));
            }
        }
        self.check();
    }

    fn grab(&mut self, slot: usize, mode: usize) {
        let mode = [GrabMode::Plain, GrabMode::Uniq, GrabMode::All][mode];
        let m = &mut self.model;
        if m.expected[slot].iter().any(|e| matches!(e, Exp::Await(_))) {
            // The reply would wait behind a JOB_CREATED the store holds back, and which job
            // it names can only be checked when it arrives: skip this grab.
            return;
        }
        m.slots[slot].sleeping = false;
        m.slots[slot].noop_sent = false;
        let best = m.best_priority_for(slot);
        self.net.send(self.conns[slot], Request::GrabJob(mode));
        let replies = self.net.recv(self.conns[slot]);
        let m = &mut self.model;
        match (best, replies.as_slice()) {
            (None, [Response::NoJob]) => {}
            (Some(p), [Response::JobAssign(a)]) => {
                let h = String::from_utf8_lossy(&a.handle).into_owned();
                let f = String::from_utf8_lossy(&a.function).into_owned();
                let oldest = m.queued(&f, p).first().map(|h| (*h).clone());
                assert_eq!(
                    oldest.as_deref(),
                    Some(h.as_str()),
                    "assigned job must be the oldest of the best priority"
                );
                let timeout = m.slots[slot].abilities.get(&f).map(|a| a.1);
                assert!(timeout.is_some(), "assigned a function it cannot do");
                let timer = if timeout == Some(true) {
                    m.arm(m.now_ms + TIMEOUT_MS)
                } else {
                    None
                };
                let j = m.jobs.get_mut(&h).expect("model job");
                let extras = match mode {
                    GrabMode::Plain => AssignExtras::Plain,
                    _ => AssignExtras::Unique(b(&j.unique)),
                };
                assert_eq!(a.extras, extras, "assignment kind for {mode:?}");
                assert_eq!(a.data, b(&j.data));
                j.state = MState::Running(slot);
                j.timer = timer;
                m.slots[slot].held.push(h);
            }
            (best, other) => {
                panic!("grab: model expected priority {best:?}, server sent {other:?}")
            }
        }
    }

    fn report(&mut self, slot: usize, kind: usize) {
        let m = &mut self.model;
        let Some(h) = m.slots[slot].held.first().cloned() else {
            return;
        };
        let handle = b(&h);
        let payload = || WorkPayload {
            handle: handle.clone(),
            data: b("r"),
        };
        let fail = Response::WorkFail {
            handle: handle.clone(),
        };
        let listeners = m
            .jobs
            .get(&h)
            .map(|j| j.listeners.clone())
            .unwrap_or_default();
        let (req, terminal) = match kind {
            0 => (Request::WorkData(payload()), false),
            1 => (Request::WorkWarning(payload()), false),
            2 => {
                let s = WorkStatus {
                    handle: handle.clone(),
                    numerator: 1,
                    denominator: 2,
                };
                m.jobs.get_mut(&h).expect("model job").status = (1, 2);
                (Request::WorkStatus(s), false)
            }
            3 => (Request::WorkComplete(payload()), true),
            4 => (
                Request::WorkFail {
                    handle: handle.clone(),
                },
                true,
            ),
            _ => (Request::WorkException(payload()), true),
        };
        for l in listeners {
            let packet = match &req {
                Request::WorkData(p) => Response::WorkData(p.clone()),
                Request::WorkWarning(p) => Response::WorkWarning(p.clone()),
                Request::WorkStatus(s) => Response::WorkStatus(s.clone()),
                Request::WorkComplete(p) => Response::WorkComplete(p.clone()),
                Request::WorkException(p) if m.slots[l].exceptions => {
                    Response::WorkException(p.clone())
                }
                _ => fail.clone(),
            };
            m.say(l, packet);
        }
        if terminal {
            m.remove_job(&h);
            m.slots[slot].held.retain(|x| *x != h);
        }
        self.net.send(self.conns[slot], req);
    }

    fn check(&mut self) {
        self.net.check();
        for slot in 0..SLOTS {
            let got = self.net.recv(self.conns[slot]);
            let q = &mut self.model.expected[slot];
            let ready = q.iter().take_while(|e| matches!(e, Exp::Packet(_))).count();
            let want: Vec<Response> = q
                .drain(..ready)
                .filter_map(|e| match e {
                    Exp::Packet(r) => Some(r),
                    Exp::Await(_) => None,
                })
                .collect();
            assert_eq!(got, want, "replies to slot {slot}");
        }
        assert_eq!(self.net.raw(self.admin), b"", "stray admin output");
        let events: Vec<ServerEvent> = self.net.events.drain(..).collect();
        let want: Vec<ServerEvent> = self.model.events.drain(..).collect();
        assert_eq!(events, want, "store events");
        let live = self.net.server.queued_jobs() + self.net.server.running_jobs();
        assert_eq!(
            live,
            self.model.jobs.len(),
            "accepted jobs lost or invented"
        );
    }
}

fn retries() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), Just(Some(0)), Just(Some(1)), Just(Some(2))]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn server_agrees_with_the_model(
        seed in any::<u64>(),
        retries in retries(),
        persist in any::<bool>(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let mut h = Harness::new(seed, retries, persist);
        for op in &ops {
            h.apply(op);
        }
    }
}
