//! What a persistent store keeps of a background job.

use crate::proto::Priority;
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
