//! SUBMIT_JOB_SCHED: recurring background jobs on cron schedules ([`crate::cron`]).
//!
//! A schedule fires at every matching minute, its fields read in UTC or in the fixed zone
//! of [`ServerConfig::schedule_offset_secs`](super::ServerConfig::schedule_offset_secs).
//! Each firing runs one background job with the schedule's function and data (at normal
//! priority, its unique empty so it coalesces with nothing). A firing while the job of the
//! previous one still exists (queued or running) is skipped and counted, not stacked.
//!
//! The schedule's handle is `PREFIX:sKEY`, KEY its durable key, so it stays the same across
//! a restart. A second SUBMIT_JOB_SCHED with the same function and a non-empty unique gets
//! the existing schedule's handle. `show schedules` lists them; `cancel job HANDLE` ends
//! one. With a store that keeps extra records, JOB_CREATED waits until the schedule is
//! stored, and a restart re-arms it from the next matching minute: firings missed while the
//! server was down do not run.

use super::client::Submission;
use super::conn::Outbound;
use super::extra::{Decoder, Encoder, ExtraKind, ExtraRecord};
use super::{ConnId, Server, ServerEvent};
use crate::cron::CronSpec;
use crate::proto::{Priority, Response, SubmitJobSched};
use bytes::Bytes;
use std::time::Instant;

/// One recurring job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Its handle (`PREFIX:sKEY`).
    pub handle: Bytes,
    /// Function of the jobs it runs.
    pub function: Bytes,
    /// Unique id as submitted (names the schedule; the jobs it runs have none).
    pub unique: Bytes,
    /// Workload of the jobs it runs.
    pub data: Bytes,
    /// When it fires.
    pub spec: CronSpec,
    /// The next firing, Unix seconds; `None` when no minute ever matches again.
    pub next_unix: Option<i64>,
    /// Firings that ran a job.
    pub fired: u64,
    /// Firings skipped because the previous job still existed.
    pub skipped: u64,
    /// The job of the last firing (gone once it ended).
    last_job: Option<u64>,
    /// The instant of the next firing, as armed.
    due: Option<Instant>,
}

impl Schedule {
    fn encode(&self) -> Bytes {
        let mut e = Encoder::new()
            .bytes(&self.handle)
            .bytes(&self.function)
            .bytes(&self.unique)
            .bytes(&self.data);
        for field in self.spec.fields() {
            e = e.bytes(field.as_bytes());
        }
        e.int(i64::try_from(self.fired).unwrap_or(i64::MAX))
            .int(i64::try_from(self.skipped).unwrap_or(i64::MAX))
            .finish()
    }

    fn decode(value: &Bytes) -> Option<Schedule> {
        let mut d = Decoder::new(value)?;
        let (handle, function, unique, data) = (d.bytes()?, d.bytes()?, d.bytes()?, d.bytes()?);
        let fields = [d.bytes()?, d.bytes()?, d.bytes()?, d.bytes()?, d.bytes()?];
        let spec = CronSpec::parse(fields).ok()?;
        Some(Schedule {
            handle,
            function,
            unique,
            data,
            spec,
            next_unix: None,
            fired: u64::try_from(d.int()?).ok()?,
            skipped: u64::try_from(d.int()?).ok()?,
            last_job: None,
            due: None,
        })
    }
}

/// A schedule waiting for the store before its JOB_CREATED.
#[derive(Debug)]
pub(super) struct PendingSchedule {
    handle: Bytes,
    waiting: Vec<ConnId>,
}

impl PendingSchedule {
    /// Replies held for `conn` (for invariant checks).
    pub(super) fn waiting_on(&self, conn: ConnId) -> usize {
        self.waiting.iter().filter(|&&c| c == conn).count()
    }
}

impl Server {
    /// SUBMIT_JOB_SCHED from `conn`.
    pub(super) fn submit_sched(&mut self, conn: ConnId, s: SubmitJobSched, now: Instant) {
        let limits = self.config.limits;
        if s.unique.len() > limits.max_unique || s.function.len() > limits.max_argument {
            self.send(
                conn,
                Response::error("ARGUMENT_TOO_LARGE", "Function name or unique too large"),
            );
            return;
        }
        let spec = match CronSpec::parse(s.schedule) {
            Ok(spec) => spec,
            Err(e) => {
                let error = Response::Error {
                    code: Bytes::from_static(b"INVALID_SCHEDULE"),
                    text: Bytes::from(e.0),
                };
                self.send(conn, error);
                return;
            }
        };
        if !s.unique.is_empty() {
            let same = self
                .schedules
                .iter()
                .find(|(_, x)| x.function == s.function && x.unique == s.unique)
                .map(|(k, x)| (*k, x.handle.clone()));
            if let Some((key, handle)) = same {
                match self.schedules_persisting.get_mut(&key) {
                    Some(p) => {
                        p.waiting.push(conn);
                        self.queue_out(conn, Outbound::AwaitPersist(key));
                    }
                    None => self.send(conn, Response::JobCreated { handle }),
                }
                return;
            }
        }
        let key = self.next_durable;
        self.next_durable += 1;
        let handle = Bytes::from(format!("{}:s{key}", self.config.handle_prefix));
        let schedule = Schedule {
            handle: handle.clone(),
            function: s.function,
            unique: s.unique,
            data: s.data,
            spec,
            next_unix: None,
            fired: 0,
            skipped: 0,
            last_job: None,
            due: None,
        };
        let durable = self.config.durable_extras && self.config.persist_background;
        if durable {
            self.events.push_back(ServerEvent::PutExtra {
                record: self.schedule_record(key, &schedule),
                acknowledge: true,
            });
            self.schedules_persisting.insert(
                key,
                PendingSchedule {
                    handle,
                    waiting: vec![conn],
                },
            );
            self.queue_out(conn, Outbound::AwaitPersist(key));
        } else {
            self.send(conn, Response::JobCreated { handle });
        }
        self.schedules.insert(key, schedule);
        self.arm_schedule(key, now);
    }

    fn schedule_record(&self, key: u64, schedule: &Schedule) -> ExtraRecord {
        ExtraRecord {
            kind: ExtraKind::Schedule,
            key,
            value: schedule.encode(),
        }
    }

    /// The store answered a schedule's write; false if `key` is no schedule waiting.
    pub(super) fn schedule_persisted(&mut self, key: u64, result: &Result<(), String>) -> bool {
        let Some(pending) = self.schedules_persisting.remove(&key) else {
            return false;
        };
        let reply = match result {
            Ok(()) => Response::JobCreated {
                handle: pending.handle,
            },
            Err(_) => {
                // Nobody was told it exists: it never was.
                self.unarm_schedule(key);
                self.schedules.remove(&key);
                Response::error("QUEUE_ERROR", "QUEUE_ERROR")
            }
        };
        for c in pending.waiting {
            if let Some(conn) = self.conns.get_mut(&c) {
                conn.resolve(key, reply.clone());
            }
            self.mark_writable(c);
        }
        true
    }

    /// Arms the schedule `key` for its next matching minute after `now`.
    fn arm_schedule(&mut self, key: u64, now: Instant) {
        self.unarm_schedule(key);
        let unix_now = self.unix_at(now);
        let offset = self.config.schedule_offset_secs;
        let Some(schedule) = self.schedules.get_mut(&key) else {
            return;
        };
        schedule.next_unix = schedule.spec.next_after(unix_now, offset);
        let Some(next) = schedule.next_unix else {
            return;
        };
        // Placed as epoch jobs are: never before the wall clock shows that minute.
        let at = self.epoch_instant(next, now).unwrap_or(now);
        let Some(schedule) = self.schedules.get_mut(&key) else {
            return;
        };
        schedule.due = Some(at);
        self.schedule_due.insert((at, key));
    }

    fn unarm_schedule(&mut self, key: u64) {
        if let Some(due) = self.schedules.get_mut(&key).and_then(|s| s.due.take()) {
            self.schedule_due.remove(&(due, key));
        }
    }

    /// The next schedule firing.
    pub(super) fn next_schedule_due(&self) -> Option<Instant> {
        self.schedule_due.first().map(|(at, _)| *at)
    }

    /// Fires every schedule due at `now`.
    pub(super) fn fire_schedules(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.schedule_due.first() {
            if at > now {
                return;
            }
            self.schedule_due.pop_first();
            if let Some(s) = self.schedules.get_mut(&key) {
                s.due = None;
            }
            self.fire_schedule(key, now);
            self.arm_schedule(key, now);
        }
    }

    fn fire_schedule(&mut self, key: u64, now: Instant) {
        let Some(s) = self.schedules.get(&key) else {
            return;
        };
        if s.last_job.is_some_and(|id| self.jobs.contains_key(&id)) {
            let function = s.function.clone();
            self.stats.function(&function).schedule_skipped += 1;
            if let Some(s) = self.schedules.get_mut(&key) {
                s.skipped += 1;
            }
            self.save_schedule(key);
            return;
        }
        let sub = Submission {
            function: s.function.clone(),
            unique: Bytes::new(),
            data: s.data.clone(),
            priority: Priority::Normal,
            background: true,
            epoch: None,
            reducer: None,
        };
        self.stats.function(&sub.function).schedule_fired += 1;
        let persist = self.config.persist_background;
        let id = self.create_job(sub, None, None, persist);
        if persist {
            self.start_persist(id);
        } else {
            self.make_runnable(id, now);
        }
        if let Some(s) = self.schedules.get_mut(&key) {
            s.fired += 1;
            s.last_job = Some(id);
        }
        self.save_schedule(key);
    }

    /// Writes a schedule's counters again (best effort: a lost count is harmless).
    fn save_schedule(&mut self, key: u64) {
        if !(self.config.durable_extras && self.config.persist_background) {
            return;
        }
        if let Some(s) = self.schedules.get(&key) {
            let record = self.schedule_record(key, s);
            self.events.push_back(ServerEvent::PutExtra {
                record,
                acknowledge: false,
            });
        }
    }

    /// `cancel job HANDLE` for a schedule: true if `handle` named one.
    pub(super) fn cancel_schedule(&mut self, handle: &[u8]) -> bool {
        let Some(key) = self
            .schedules
            .iter()
            .find(|(_, s)| s.handle == handle)
            .map(|(k, _)| *k)
        else {
            return false;
        };
        self.unarm_schedule(key);
        self.schedules.remove(&key);
        if self.config.durable_extras && self.config.persist_background {
            self.events.push_back(ServerEvent::DeleteExtra {
                kind: ExtraKind::Schedule,
                key,
            });
        }
        true
    }

    /// A stored schedule, on start; false if it does not decode.
    pub(super) fn restore_schedule(&mut self, key: u64, value: &Bytes, now: Instant) -> bool {
        let Some(s) = Schedule::decode(value) else {
            return false;
        };
        self.schedules.insert(key, s);
        self.arm_schedule(key, now);
        true
    }

    /// The schedules, by key.
    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }
}

/// One `show schedules` line: handle, function, unique, the five fields (space-separated),
/// next firing (Unix seconds, `-` for never), firings run, firings skipped; tab-separated.
pub(super) fn render_schedule(out: &mut Vec<u8>, s: &Schedule) {
    out.extend_from_slice(&s.handle);
    out.push(b'\t');
    out.extend_from_slice(&s.function);
    out.push(b'\t');
    out.extend_from_slice(&s.unique);
    let next = s.next_unix.map_or("-".to_string(), |t| t.to_string());
    out.extend_from_slice(
        format!(
            "\t{}\t{next}\t{}\t{}\n",
            s.spec.fields().join(" "),
            s.fired,
            s.skipped
        )
        .as_bytes(),
    );
}
