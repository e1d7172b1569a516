//! What a persistent store keeps of a background job.

use crate::proto::Priority;
use crate::server::extra::{Decoder, Encoder};
use bytes::Bytes;

/// A background job as a durable store keeps it, and as the server restores it on start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// Store key, assigned by the server; unique among live records, increasing in arrival order.
    pub durable_id: u64,
    /// Function name.
    pub function: Bytes,
    /// Unique id as submitted (may be empty).
    pub unique: Bytes,
    /// Priority.
    pub priority: Priority,
    /// Workload.
    pub data: Bytes,
    /// SUBMIT_JOB_EPOCH time (Unix seconds), if any.
    pub when: Option<i64>,
    /// Reducer for SUBMIT_REDUCE_JOB_BACKGROUND (gearmand drops it; we keep it).
    pub reducer: Option<Bytes>,
}

impl JobRecord {
    /// The record as one value (a version byte, then length-prefixed fields, as the
    /// [extra records](crate::server::ExtraRecord)' values), for a store that keeps a job
    /// as one opaque value. The durable id is not in it: it is the store's key.
    pub fn encode(&self) -> Bytes {
        Encoder::new()
            .bytes(&self.function)
            .bytes(&self.unique)
            .bytes(&self.data)
            .int(self.priority.index() as i64)
            .opt(self.when.map(i64::to_be_bytes).as_ref().map(|w| &w[..]))
            .opt(self.reducer.as_deref())
            .finish()
    }

    /// The record [`encode`](JobRecord::encode) made, under `durable_id`; `None` for a
    /// value it did not make (another version's, or garbage).
    pub fn decode(durable_id: u64, value: &Bytes) -> Option<JobRecord> {
        let mut d = Decoder::new(value)?;
        let record = JobRecord {
            durable_id,
            function: d.bytes()?,
            unique: d.bytes()?,
            data: d.bytes()?,
            priority: *Priority::ALL.get(usize::try_from(d.int()?).ok()?)?,
            when: match d.opt()? {
                None => None,
                Some(w) => Some(i64::from_be_bytes(w.as_ref().try_into().ok()?)),
            },
            reducer: d.opt()?,
        };
        d.is_empty().then_some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_other_values_are_refused() {
        let full = JobRecord {
            durable_id: 9,
            function: Bytes::from_static(b"f"),
            unique: Bytes::from_static(b"u\0"),
            priority: Priority::Low,
            data: Bytes::from_static(b"\0\xffdata"),
            when: Some(-1_700_000_000),
            reducer: Some(Bytes::new()),
        };
        let bare = JobRecord {
            durable_id: 10,
            unique: Bytes::new(),
            priority: Priority::High,
            when: None,
            reducer: None,
            ..full.clone()
        };
        for r in [&full, &bare] {
            assert_eq!(
                JobRecord::decode(r.durable_id, &r.encode()).as_ref(),
                Some(r)
            );
        }
        let value = full.encode();
        for cut in 0..value.len() {
            assert_eq!(
                JobRecord::decode(9, &value.slice(..cut)),
                None,
                "cut at {cut}"
            );
        }
        let mut longer = value.to_vec();
        longer.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(JobRecord::decode(9, &Bytes::from(longer)), None);
        assert_eq!(JobRecord::decode(9, &Bytes::from_static(b"data")), None);
    }
}
