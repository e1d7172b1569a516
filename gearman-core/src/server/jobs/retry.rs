//! Retries with exponential backoff and a dead-letter queue for background jobs whose
//! worker sends WORK_FAIL or WORK_EXCEPTION (`--retry FUNCTION=COUNT[:BACKOFF]`).
//!
//! A failed background job of a function with a policy waits `BACKOFF * 2^(n-1)` (at most
//! [`MAX_BACKOFF`]) after its n-th failure and runs again, up to COUNT times; the failure
//! after that moves it to the dead letters, which the admin lists (`show dead`), re-queues
//! (`retry dead HANDLE|FUNCTION`) or drops (`drop dead HANDLE|FUNCTION`). Foreground
//! clients attached to such a job get the failure as always and are detached. Jobs a
//! worker loses (disconnect, CANT_DO, timeout) follow `job_retries` as before.
//!
//! With a store that keeps extra records, the failure count and retry time of a stored job
//! (an [`ExtraKind::Attempts`] record) and the dead letters survive a restart.

use super::{Effect, JobId, JobState, KeyKind, Submission, Target};
use crate::proto::Priority;
use crate::server::extra::{Decoder, Encoder, ExtraKind, ExtraRecord};
use crate::server::{ServerConfig, ServerEvent};
use bytes::Bytes;
use std::time::Instant;

pub use crate::server::config::{RetryPolicy, MAX_BACKOFF};

/// How a dead job's last attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// WORK_FAIL.
    Fail,
    /// WORK_EXCEPTION (its data is kept).
    Exception,
}

/// A background job out of retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The handle it had.
    pub handle: Bytes,
    /// Function name.
    pub function: Bytes,
    /// Unique id as submitted.
    pub unique: Bytes,
    /// Workload.
    pub data: Bytes,
    /// Priority.
    pub priority: Priority,
    /// Reducer, for a background map/reduce job.
    pub reducer: Option<Bytes>,
    /// Failures, the last one included.
    pub failures: u32,
    /// How the last one ended.
    pub failure: Failure,
    /// WORK_EXCEPTION data of the last failure (empty for WORK_FAIL).
    pub last_error: Bytes,
    /// When it died, Unix seconds.
    pub died_unix: i64,
}

impl DeadLetter {
    fn encode(&self) -> Bytes {
        Encoder::new()
            .bytes(&self.handle)
            .bytes(&self.function)
            .bytes(&self.unique)
            .bytes(&self.data)
            .int(self.priority.index() as i64)
            .opt(self.reducer.as_deref())
            .int(self.failures.into())
            .int(i64::from(self.failure == Failure::Exception))
            .bytes(&self.last_error)
            .int(self.died_unix)
            .finish()
    }

    pub(crate) fn decode(value: &Bytes) -> Option<DeadLetter> {
        let mut d = Decoder::new(value)?;
        Some(DeadLetter {
            handle: d.bytes()?,
            function: d.bytes()?,
            unique: d.bytes()?,
            data: d.bytes()?,
            priority: *Priority::ALL.get(usize::try_from(d.int()?).ok()?)?,
            reducer: d.opt()?,
            failures: u32::try_from(d.int()?).ok()?,
            failure: if d.int()? == 0 {
                Failure::Fail
            } else {
                Failure::Exception
            },
            last_error: d.bytes()?,
            died_unix: d.int()?,
        })
    }
}

impl JobState {
    /// A worker failed background job `id` (its clients were told): retry it later or
    /// dead-letter it. Returns false when no policy applies (the caller ends it).
    pub(crate) fn fail_with_policy(
        &mut self,
        config: &ServerConfig,
        id: JobId,
        failure: Failure,
        error: Bytes,
        now: Instant,
    ) -> bool {
        let Some(job) = self.jobs.get(id) else {
            return false;
        };
        let name = self.functions.name(job.function);
        let Some(policy) = config.retry.get(&name).copied() else {
            return false;
        };
        if !job.background || job.cancelled {
            return false;
        }
        let handle = self.handle(id);
        let Some(job) = self.jobs.get_mut(id) else {
            return false;
        };
        let failures = job.failures().saturating_add(1);
        job.set_failures(failures);
        // Foreground clients that coalesced onto it had their final packet.
        for conn in std::mem::take(&mut job.listeners).into_conns() {
            self.effects.push(Effect::Unwatched { conn, job: id });
        }
        if failures <= policy.count {
            let at = JobState::after(now, policy.delay(failures));
            self.transition(config, id, Target::Scheduled(at), now);
            return true;
        }
        let dead = DeadLetter {
            handle,
            function: name,
            unique: job.unique_bytes(),
            data: job.data_bytes(),
            priority: job.priority,
            reducer: job.reducer().cloned(),
            failures,
            failure,
            last_error: error,
            died_unix: JobState::unix_at(config, now),
        };
        let key = match job.durable_id() {
            Some(d) => d,
            None => self.next_key(),
        };
        self.stats.function(&dead.function).dead_lettered += 1;
        if config.durable_extras && config.persist_background {
            // Written before the job's row goes, so a crash in between keeps both and the
            // restore prefers the dead letter.
            self.events.push_back(ServerEvent::PutExtra {
                record: ExtraRecord {
                    kind: ExtraKind::DeadLetter,
                    key,
                    value: dead.encode(),
                },
                acknowledge: false,
            });
        }
        self.dead.insert(key, dead);
        self.transition(config, id, Target::Ended, now);
        true
    }

    /// Dead letters whose handle or function is `which`, by key.
    fn dead_matching(&self, which: &[u8]) -> Vec<u64> {
        self.dead
            .iter()
            .filter(|(_, d)| d.handle == which || d.function == which)
            .map(|(k, _)| *k)
            .collect()
    }

    /// `retry dead HANDLE|FUNCTION`: each match runs again as a new background job with
    /// its failures reset; returns how many. With a store, the dead letter is deleted once
    /// the new job is stored (and comes back if that write fails).
    pub(crate) fn retry_dead(
        &mut self,
        config: &ServerConfig,
        which: &[u8],
        now: Instant,
    ) -> usize {
        let keys = self.dead_matching(which);
        for key in &keys {
            let Some(dead) = self.dead.remove(key) else {
                continue;
            };
            if self
                .find_unique(&dead.function, &dead.unique, &dead.data)
                .is_some()
            {
                // The same job is queued or running already: that one covers it.
                self.delete_dead_record(config, *key);
                continue;
            }
            let sub = Submission {
                function: dead.function.clone(),
                unique: dead.unique.clone(),
                data: dead.data.clone(),
                priority: dead.priority,
                background: true,
                epoch: None,
                reducer: dead.reducer.clone(),
            };
            let coalesce = KeyKind::of(&sub.unique, &sub.data);
            let id = self.create(sub, coalesce, None, now);
            if config.persist_background {
                self.transition(config, id, Target::Persisting, now);
                if let Some(d) = self.job(id).and_then(|j| j.durable_id()) {
                    self.dead_retrying.insert(d, (*key, dead));
                }
            } else {
                self.transition(config, id, Target::Runnable, now);
            }
        }
        keys.len()
    }

    /// The store answered the write of a job re-queued from the dead letters.
    pub(crate) fn dead_retry_persisted(
        &mut self,
        config: &ServerConfig,
        durable_id: u64,
        ok: bool,
    ) {
        if let Some((key, dead)) = self.dead_retrying.remove(&durable_id) {
            if ok {
                self.delete_dead_record(config, key);
            } else {
                self.dead.insert(key, dead);
            }
        }
    }

    /// `drop dead HANDLE|FUNCTION`: forgets each match; returns how many.
    pub(crate) fn drop_dead(&mut self, config: &ServerConfig, which: &[u8]) -> usize {
        let keys = self.dead_matching(which);
        for key in &keys {
            self.dead.remove(key);
            self.delete_dead_record(config, *key);
        }
        keys.len()
    }

    fn delete_dead_record(&mut self, config: &ServerConfig, key: u64) {
        if config.durable_extras && config.persist_background {
            self.events.push_back(ServerEvent::DeleteExtra {
                kind: ExtraKind::DeadLetter,
                key,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_round_trip() {
        let d = DeadLetter {
            handle: "H:x:1".into(),
            function: "f".into(),
            unique: "u".into(),
            data: "d\0ata".into(),
            priority: Priority::Low,
            reducer: Some("r".into()),
            failures: 4,
            failure: Failure::Exception,
            last_error: "boom".into(),
            died_unix: 1_700_000_000,
        };
        assert_eq!(DeadLetter::decode(&d.encode()), Some(d));
    }
}
