//! Results kept for background jobs (`--keep-results`): when a background job ends with
//! WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION (a failure retried under a `--retry` policy
//! is not an end; the one that dead-letters it is), its last data is kept for
//! [`ServerConfig::keep_results`](crate::server::ServerConfig::keep_results), within
//! [`ServerConfig::keep_results_bytes`](crate::server::ServerConfig::keep_results_bytes) in
//! all (the oldest go first), and read back over admin by handle or by function and
//! unique (`show result`). Nothing changes on the binary protocol: GET_STATUS of an ended
//! job is still unknown.
//!
//! With a store that keeps extra records, each kept result is an
//! [`ExtraKind::KeptResult`] record, so it survives a restart and still expires at its
//! time: the record holds when the job ended, in Unix seconds.

use super::restore::Restored;
use super::JobState;
use crate::server::extra::{Decoder, Encoder, ExtraKind, ExtraRecord};
use crate::server::{ServerConfig, ServerEvent};
use bytes::Bytes;
use std::time::{Duration, Instant};

pub use crate::server::config::DEFAULT_KEEP_RESULTS_BYTES;

/// How a kept job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// WORK_COMPLETE (its data is the result).
    Complete,
    /// WORK_FAIL (no data).
    Fail,
    /// WORK_EXCEPTION (its data is the exception).
    Exception,
}

impl Outcome {
    /// `complete`, `fail` or `exception`, as `show result` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Fail => "fail",
            Outcome::Exception => "exception",
        }
    }

    /// The outcome `name` gives.
    pub fn from_name(name: &[u8]) -> Option<Outcome> {
        [Outcome::Complete, Outcome::Fail, Outcome::Exception]
            .into_iter()
            .find(|o| o.name().as_bytes() == name)
    }

    fn code(self) -> i64 {
        match self {
            Outcome::Complete => 0,
            Outcome::Fail => 1,
            Outcome::Exception => 2,
        }
    }

    fn from_code(code: i64) -> Option<Outcome> {
        [Outcome::Complete, Outcome::Fail, Outcome::Exception]
            .into_iter()
            .find(|o| o.code() == code)
    }
}

/// The last result of a background job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptResult {
    /// The job's handle.
    pub handle: Bytes,
    /// Its function.
    pub function: Bytes,
    /// Its unique id as submitted (may be empty).
    pub unique: Bytes,
    /// How it ended.
    pub outcome: Outcome,
    /// The WORK_COMPLETE or WORK_EXCEPTION data (empty for WORK_FAIL).
    pub data: Bytes,
    /// When it ended, Unix seconds.
    pub finished_unix: i64,
}

impl KeptResult {
    /// The bytes it counts against the bound: data, handle, function and unique.
    pub fn size(&self) -> usize {
        self.data.len() + self.handle.len() + self.function.len() + self.unique.len()
    }

    fn encode(&self) -> Bytes {
        Encoder::new()
            .bytes(&self.handle)
            .bytes(&self.function)
            .bytes(&self.unique)
            .int(self.outcome.code())
            .bytes(&self.data)
            .int(self.finished_unix)
            .finish()
    }

    fn decode(value: &Bytes) -> Option<KeptResult> {
        let mut d = Decoder::new(value)?;
        Some(KeptResult {
            handle: d.bytes()?,
            function: d.bytes()?,
            unique: d.bytes()?,
            outcome: Outcome::from_code(d.int()?)?,
            data: d.bytes()?,
            finished_unix: d.int()?,
        })
    }

    /// Whether it can be found by unique: not empty, and not `-` (coalescing on the data).
    fn has_unique(&self) -> bool {
        !matches!(&self.unique[..], b"" | b"-")
    }
}

/// The kept results, their indexes, expiry times and size.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    /// By key, which grows with the time a result was kept: the first is the oldest.
    results: std::collections::BTreeMap<u64, (KeptResult, Instant)>,
    by_handle: std::collections::HashMap<Bytes, u64>,
    /// The latest result per function and unique.
    by_unique: std::collections::HashMap<(Bytes, Bytes), u64>,
    /// Expiry times in order.
    due: std::collections::BTreeSet<(Instant, u64)>,
    bytes: usize,
}

impl Kept {
    fn insert(&mut self, key: u64, result: KeptResult, expires: Instant) {
        self.bytes += result.size();
        self.by_handle.insert(result.handle.clone(), key);
        if result.has_unique() {
            let k = (result.function.clone(), result.unique.clone());
            // A restore may bring an older one after a newer: the index keeps the newer.
            if self.by_unique.get(&k).is_none_or(|&other| other < key) {
                self.by_unique.insert(k, key);
            }
        }
        self.due.insert((expires, key));
        self.results.insert(key, (result, expires));
    }

    fn remove(&mut self, key: u64) -> bool {
        let Some((result, expires)) = self.results.remove(&key) else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(result.size());
        self.due.remove(&(expires, key));
        if self.by_handle.get(&result.handle) == Some(&key) {
            self.by_handle.remove(&result.handle);
        }
        let k = (result.function, result.unique);
        if self.by_unique.get(&k) == Some(&key) {
            self.by_unique.remove(&k);
        }
        true
    }

    /// The total size of the kept results (see [`KeptResult::size`]).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Checks that the indexes, expiry times and size agree with the results.
    pub(crate) fn check(&self) -> Result<(), String> {
        let size: usize = self.iter().map(KeptResult::size).sum();
        if size != self.bytes {
            return Err(format!(
                "kept results hold {size} bytes, counted {}",
                self.bytes
            ));
        }
        if self.due.len() != self.results.len() || self.by_handle.len() != self.results.len() {
            return Err("kept results and their expiry times or handles differ".into());
        }
        let indexed = self.by_handle.values().chain(self.by_unique.values());
        if let Some(k) = indexed.into_iter().find(|k| !self.results.contains_key(k)) {
            return Err(format!("kept result {k} indexed but gone"));
        }
        Ok(())
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &KeptResult> {
        self.results.values().map(|(r, _)| r)
    }
}

impl JobState {
    /// A background job ended at `now` (`result.finished_unix`): keep its result, if
    /// results are kept.
    pub(crate) fn keep_result(&mut self, config: &ServerConfig, result: KeptResult, now: Instant) {
        let Some(keep) = config.keep_results else {
            return;
        };
        let bound = config.keep_results_bytes;
        if result.size() > bound {
            // Larger than the bound alone: evicting everything would not make room.
            return;
        }
        // A handle ends once, but a restored result may share it with a new job from a
        // server without a store's handle offset: the newer one wins.
        if let Some(&old) = self.kept.by_handle.get(&result.handle) {
            self.drop_kept(config, old);
        }
        self.trim_kept(config, bound - result.size());
        let key = self.next_key();
        if keeps_durably(config) {
            self.events.push_back(ServerEvent::PutExtra {
                record: ExtraRecord {
                    kind: ExtraKind::KeptResult,
                    key,
                    value: result.encode(),
                },
                acknowledge: false,
            });
        }
        let expires = JobState::after(now, keep);
        self.kept.insert(key, result, expires);
    }

    fn drop_kept(&mut self, config: &ServerConfig, key: u64) {
        if self.kept.remove(key) && keeps_durably(config) {
            self.events.push_back(ServerEvent::DeleteExtra {
                kind: ExtraKind::KeptResult,
                key,
            });
        }
    }

    /// Forgets the oldest kept results until they hold at most `bound` bytes.
    pub(crate) fn trim_kept(&mut self, config: &ServerConfig, bound: usize) {
        while self.kept.bytes() > bound {
            let Some(&oldest) = self.kept.results.keys().next() else {
                break;
            };
            self.drop_kept(config, oldest);
        }
    }

    /// Forgets every kept result whose time is up at `now`.
    pub(crate) fn expire_kept(&mut self, config: &ServerConfig, now: Instant) {
        while let Some(&(at, key)) = self.kept.due.first() {
            if at > now {
                return;
            }
            self.drop_kept(config, key);
        }
    }

    /// A stored kept result on start: kept again until its time (from when the job ended,
    /// in Unix seconds), or refused (and so deleted) when that is past or results are no
    /// longer kept. The caller trims to the bound once all are back.
    pub(crate) fn restore_kept(
        &mut self,
        config: &ServerConfig,
        key: u64,
        value: &Bytes,
        now: Instant,
    ) -> Restored {
        let Some(result) = KeptResult::decode(value) else {
            return Restored::Unreadable;
        };
        let Some(keep) = config.keep_results else {
            return Restored::Obsolete;
        };
        let keep_secs = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        let left = result
            .finished_unix
            .saturating_add(keep_secs)
            .saturating_sub(JobState::unix_at(config, now));
        if left <= 0 {
            return Restored::Obsolete;
        }
        let left = Duration::from_secs(u64::try_from(left).unwrap_or(0)).min(keep);
        let expires = JobState::after(now, left);
        self.kept.insert(key, result, expires);
        Restored::Kept
    }

    /// The kept result of the job that had `handle`.
    pub(crate) fn kept_result(&self, handle: &[u8]) -> Option<&KeptResult> {
        let key = self.kept.by_handle.get(handle)?;
        self.kept.results.get(key).map(|(r, _)| r)
    }

    /// The latest kept result of a job of `function` submitted with `unique`.
    pub(crate) fn kept_result_by_unique(
        &self,
        function: &[u8],
        unique: &[u8],
    ) -> Option<&KeptResult> {
        let k = (
            Bytes::copy_from_slice(function),
            Bytes::copy_from_slice(unique),
        );
        let key = self.kept.by_unique.get(&k)?;
        self.kept.results.get(key).map(|(r, _)| r)
    }
}

/// Kept results are stored only with a store that keeps extra records.
fn keeps_durably(config: &ServerConfig) -> bool {
    config.durable_extras && config.persist_background
}

/// The `show result` reply: `OK OUTCOME FINISHED_UNIX HANDLE DATA\n`, space-separated, the
/// data in standard base64 with padding, `-` when empty.
pub(crate) fn render_result(out: &mut Vec<u8>, r: &KeptResult) {
    use base64::Engine as _;
    out.extend_from_slice(format!("OK {} {} ", r.outcome.name(), r.finished_unix).as_bytes());
    out.extend_from_slice(&r.handle);
    out.push(b' ');
    if r.data.is_empty() {
        out.push(b'-');
    } else {
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(&r.data)
                .as_bytes(),
        );
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_results_round_trip() {
        let r = KeptResult {
            handle: "H:x:1".into(),
            function: "f".into(),
            unique: "u".into(),
            outcome: Outcome::Exception,
            data: "d\0ata".into(),
            finished_unix: 1_700_000_000,
        };
        assert_eq!(KeptResult::decode(&r.encode()), Some(r));
        assert_eq!(KeptResult::decode(&Bytes::from_static(b"\x01")), None);
    }
}
