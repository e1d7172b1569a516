//! The job server machine: per-connection sessions beside one single-owner job state.

mod record;

pub use record::JobRecord;
