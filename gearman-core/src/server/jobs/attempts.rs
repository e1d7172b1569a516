//! The retry state of a stored background job as an [`ExtraKind::Attempts`] record: its
//! failures so far and when it runs again, keyed by its durable id. The lifecycle writes
//! it when a failed job starts backing off and deletes it when the job ends; restore reads
//! it back. Apart from [`retry`](super::retry), which drives those transitions, so that the
//! lifecycle does not depend on the retry policy.

use crate::server::extra::{Decoder, Encoder, ExtraKind, ExtraRecord};
use bytes::Bytes;

/// Failures so far and the retry time of a stored job, keyed by its durable id.
pub(crate) fn attempts_record(durable_id: u64, failures: u32, due_unix: i64) -> ExtraRecord {
    ExtraRecord {
        kind: ExtraKind::Attempts,
        key: durable_id,
        value: Encoder::new().int(failures.into()).int(due_unix).finish(),
    }
}

/// The failures and retry time (Unix seconds) an [`attempts_record`] holds.
pub(crate) fn decode_attempts(value: &Bytes) -> Option<(u32, i64)> {
    let mut d = Decoder::new(value)?;
    Some((u32::try_from(d.int()?).ok()?, d.int()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_round_trip() {
        assert_eq!(
            decode_attempts(&attempts_record(3, 2, 99).value),
            Some((2, 99))
        );
    }
}
