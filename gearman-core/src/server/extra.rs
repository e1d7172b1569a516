//! Durable records beyond the job queue: schedules, dead letters, retry state and kept
//! results, as opaque `(kind, key, value)` rows that any store can keep in one key/value
//! table. The core alone encodes and decodes the values, so a backend needs no knowledge
//! of their fields.
//!
//! A value is a version byte, then fields, each a big-endian `u32` length and its bytes.

use bytes::Bytes;

/// What a [`ExtraRecord`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ExtraKind {
    /// A SUBMIT_JOB_SCHED schedule.
    Schedule,
    /// A background job out of retries.
    DeadLetter,
    /// Failures so far and the retry time of a stored background job.
    Attempts,
    /// The last result of a background job (`--keep-results`).
    KeptResult,
}

impl ExtraKind {
    /// Every kind.
    pub const ALL: [ExtraKind; 4] = [
        ExtraKind::Schedule,
        ExtraKind::DeadLetter,
        ExtraKind::Attempts,
        ExtraKind::KeptResult,
    ];

    /// The number a store keeps for the kind.
    pub fn code(self) -> u8 {
        match self {
            ExtraKind::Schedule => 1,
            ExtraKind::DeadLetter => 2,
            ExtraKind::Attempts => 3,
            ExtraKind::KeptResult => 4,
        }
    }

    /// The kind of a stored number; `None` for a number this version does not know.
    pub fn from_code(code: u8) -> Option<ExtraKind> {
        ExtraKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// One durable record beyond the job queue; `(kind, key)` is its identity, and a later
/// put with the same identity replaces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraRecord {
    /// What it holds.
    pub kind: ExtraKind,
    /// Its key within the kind (a durable id).
    pub key: u64,
    /// The encoded fields; only the core reads them.
    pub value: Bytes,
}

const VERSION: u8 = 1;

/// Builds a value field by field.
#[derive(Default)]
pub(crate) struct Encoder(Vec<u8>);

impl Encoder {
    pub(crate) fn new() -> Self {
        Encoder(vec![VERSION])
    }

    pub(crate) fn bytes(mut self, b: &[u8]) -> Self {
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b.get(..len as usize).unwrap_or(b));
        self
    }

    pub(crate) fn int(self, v: i64) -> Self {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn opt(self, b: Option<&[u8]>) -> Self {
        match b {
            None => self.int(0),
            Some(b) => self.int(1).bytes(b),
        }
    }

    pub(crate) fn finish(self) -> Bytes {
        Bytes::from(self.0)
    }
}

/// Reads a value field by field; any malformation is `None`.
pub(crate) struct Decoder(Bytes);

impl Decoder {
    pub(crate) fn new(value: &Bytes) -> Option<Decoder> {
        match value.first() {
            Some(&VERSION) => Some(Decoder(value.slice(1..))),
            _ => None,
        }
    }

    pub(crate) fn bytes(&mut self) -> Option<Bytes> {
        let len: [u8; 4] = self.0.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(len) as usize;
        let end = len.checked_add(4)?;
        let field = self.0.get(4..end).map(|_| self.0.slice(4..end))?;
        self.0 = self.0.slice(end..);
        Some(field)
    }

    pub(crate) fn int(&mut self) -> Option<i64> {
        let b: [u8; 8] = self.bytes()?.as_ref().try_into().ok()?;
        Some(i64::from_be_bytes(b))
    }

    pub(crate) fn opt(&mut self) -> Option<Option<Bytes>> {
        match self.int()? {
            0 => Some(None),
            _ => self.bytes().map(Some),
        }
    }

    /// Whether every field has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_garbage_is_refused() {
        let v = Encoder::new()
            .bytes(b"fn")
            .int(-5)
            .opt(None)
            .opt(Some(b"r"))
            .finish();
        let mut d = Decoder::new(&v).unwrap();
        assert_eq!(d.bytes().unwrap(), "fn");
        assert_eq!(d.int(), Some(-5));
        assert_eq!(d.opt(), Some(None));
        assert_eq!(d.opt(), Some(Some(Bytes::from_static(b"r"))));
        assert_eq!(d.bytes(), None);
        assert!(Decoder::new(&Bytes::from_static(b"\x09")).is_none());
        let mut short = Decoder::new(&Bytes::from_static(b"\x01\0\0\0\x09ab")).unwrap();
        assert_eq!(short.bytes(), None);
        for k in ExtraKind::ALL {
            assert_eq!(ExtraKind::from_code(k.code()), Some(k));
        }
    }
}
