//! SUBMIT_JOB_SCHED: recurring background jobs on cron schedules ([`crate::cron`]).
//!
//! A schedule fires at every matching minute, its fields read in UTC or in the fixed zone
//! of [`ServerConfig::schedule_offset_secs`](crate::server::ServerConfig::schedule_offset_secs).
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

use super::persist::WriteAnswer;
use super::restore::Restored;
use super::{JobId, JobState, Submission, Target};
use crate::cron::CronSpec;
use crate::proto::{Priority, Response, SubmitJobSched};
use crate::server::extra::{Decoder, Encoder, ExtraKind, ExtraRecord};
use crate::server::{ConnId, ServerConfig, ServerEvent};
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
    last_job: Option<JobId>,
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
pub(crate) struct PendingSchedule {
    handle: Bytes,
    waiting: Vec<ConnId>,
}

impl PendingSchedule {
    /// Replies held for `conn` (for invariant checks).
    pub(crate) fn waiting_on(&self, conn: ConnId) -> usize {
        self.waiting.iter().filter(|&&c| c == conn).count()
    }
}

/// How a SUBMIT_JOB_SCHED is answered.
#[derive(Debug)]
pub(crate) enum ScheduleReply {
    /// An ERROR with this code and text.
    Refused(&'static str, Bytes),
    /// JOB_CREATED with this handle, now.
    Created(Bytes),
    /// JOB_CREATED once the store holds schedule `key` (a placeholder is owed).
    AwaitStore(u64),
}

impl JobState {
    /// SUBMIT_JOB_SCHED from `conn`.
    pub(crate) fn add_schedule(
        &mut self,
        config: &ServerConfig,
        conn: ConnId,
        s: SubmitJobSched,
        now: Instant,
    ) -> ScheduleReply {
        let limits = config.limits;
        if s.unique.len() > limits.max_unique || s.function.len() > limits.max_argument {
            let text = Bytes::from_static(b"Function name or unique too large");
            return ScheduleReply::Refused("ARGUMENT_TOO_LARGE", text);
        }
        let spec = match CronSpec::parse(s.schedule) {
            Ok(spec) => spec,
            Err(e) => return ScheduleReply::Refused("INVALID_SCHEDULE", Bytes::from(e.0)),
        };
        if !s.unique.is_empty() {
            let same = self
                .schedules
                .iter()
                .find(|(_, x)| x.function == s.function && x.unique == s.unique)
                .map(|(k, x)| (*k, x.handle.clone()));
            if let Some((key, handle)) = same {
                return match self.schedules_persisting.get_mut(&key) {
                    Some(p) => {
                        p.waiting.push(conn);
                        ScheduleReply::AwaitStore(key)
                    }
                    None => ScheduleReply::Created(handle),
                };
            }
        }
        let key = self.next_key();
        let handle = Bytes::from(format!("{}:s{key}", config.handle_prefix));
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
        let reply = if durable(config) {
            self.events.push_back(ServerEvent::PutExtra {
                record: schedule_record(key, &schedule),
                acknowledge: true,
            });
            self.schedules_persisting.insert(
                key,
                PendingSchedule {
                    handle,
                    waiting: vec![conn],
                },
            );
            ScheduleReply::AwaitStore(key)
        } else {
            ScheduleReply::Created(handle)
        };
        self.schedules.insert(key, schedule);
        self.arm_schedule(config, key, now);
        reply
    }

    /// The store answered a schedule's write; `None` if `key` is no schedule waiting.
    pub(crate) fn schedule_persisted(
        &mut self,
        key: u64,
        result: &Result<(), String>,
    ) -> Option<WriteAnswer> {
        let pending = self.schedules_persisting.remove(&key)?;
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
        Some(WriteAnswer {
            reply,
            waiting: pending.waiting,
        })
    }

    /// Arms the schedule `key` for its next matching minute after `now`.
    fn arm_schedule(&mut self, config: &ServerConfig, key: u64, now: Instant) {
        self.unarm_schedule(key);
        let unix_now = JobState::unix_at(config, now);
        let Some(schedule) = self.schedules.get_mut(&key) else {
            return;
        };
        schedule.next_unix = schedule
            .spec
            .next_after(unix_now, config.schedule_offset_secs);
        let Some(next) = schedule.next_unix else {
            return;
        };
        // Placed as epoch jobs are: never before the wall clock shows that minute.
        let at = JobState::epoch_instant(config, next, now).unwrap_or(now);
        schedule.due = Some(at);
        self.schedule_due.insert((at, key));
    }

    fn unarm_schedule(&mut self, key: u64) {
        if let Some(due) = self.schedules.get_mut(&key).and_then(|s| s.due.take()) {
            self.schedule_due.remove(&(due, key));
        }
    }

    /// The next schedule firing.
    pub(crate) fn next_schedule_due(&self) -> Option<Instant> {
        self.schedule_due.first().map(|(at, _)| *at)
    }

    /// Fires every schedule due at `now`.
    pub(crate) fn fire_schedules(&mut self, config: &ServerConfig, now: Instant) {
        while let Some(&(at, key)) = self.schedule_due.first() {
            if at > now {
                return;
            }
            self.schedule_due.pop_first();
            if let Some(s) = self.schedules.get_mut(&key) {
                s.due = None;
            }
            self.fire_schedule(config, key, now);
            self.arm_schedule(config, key, now);
        }
    }

    fn fire_schedule(&mut self, config: &ServerConfig, key: u64, now: Instant) {
        let Some(s) = self.schedules.get(&key) else {
            return;
        };
        if s.last_job.is_some_and(|id| self.jobs.contains(id)) {
            let function = s.function.clone();
            self.stats.function(&function).schedule_skipped += 1;
            if let Some(s) = self.schedules.get_mut(&key) {
                s.skipped += 1;
            }
            self.save_schedule(config, key);
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
        let id = self.create(sub, None, None, now);
        let target = if config.persist_background {
            Target::Persisting
        } else {
            Target::Runnable
        };
        self.transition(config, id, target, now);
        if let Some(s) = self.schedules.get_mut(&key) {
            s.fired += 1;
            s.last_job = Some(id);
        }
        self.save_schedule(config, key);
    }

    /// Writes a schedule's counters again (best effort: a lost count is harmless).
    fn save_schedule(&mut self, config: &ServerConfig, key: u64) {
        if !durable(config) {
            return;
        }
        if let Some(s) = self.schedules.get(&key) {
            let record = schedule_record(key, s);
            self.events.push_back(ServerEvent::PutExtra {
                record,
                acknowledge: false,
            });
        }
    }

    /// `cancel job HANDLE` for a schedule: true if `handle` named one.
    pub(crate) fn cancel_schedule(&mut self, config: &ServerConfig, handle: &[u8]) -> bool {
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
        if durable(config) {
            self.events.push_back(ServerEvent::DeleteExtra {
                kind: ExtraKind::Schedule,
                key,
            });
        }
        true
    }

    /// A stored schedule, on start.
    pub(crate) fn restore_schedule(
        &mut self,
        config: &ServerConfig,
        key: u64,
        value: &Bytes,
        now: Instant,
    ) -> Restored {
        let Some(s) = Schedule::decode(value) else {
            return Restored::Unreadable;
        };
        self.schedules.insert(key, s);
        self.arm_schedule(config, key, now);
        Restored::Kept
    }
}

/// Schedules are stored only with a store that keeps extra records.
fn durable(config: &ServerConfig) -> bool {
    config.durable_extras && config.persist_background
}

fn schedule_record(key: u64, schedule: &Schedule) -> ExtraRecord {
    ExtraRecord {
        kind: ExtraKind::Schedule,
        key,
        value: schedule.encode(),
    }
}

/// One `show schedules` line: handle, function, unique, the five fields (space-separated),
/// next firing (Unix seconds, `-` for never), firings run, firings skipped; tab-separated.
pub(crate) fn render_schedule(out: &mut Vec<u8>, s: &Schedule) {
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
