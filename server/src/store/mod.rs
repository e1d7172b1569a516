//! Durable background jobs: one trait for a queue store, one group-commit runner for all of
//! them, and the backends.
//!
//! The seam is [`QueueStore`], a synchronous trait so that blocking client crates
//! (rusqlite, `postgres`, `redis`) fit as they are:
//!
//! ```text
//! pub trait QueueStore: Send + 'static {
//!     fn load(&mut self) -> Result<Vec<JobRecord>, BackendError>;
//!     fn commit(&mut self, changes: &[Change]) -> Result<(), BackendError>;
//!     fn max_batch(&self) -> usize { DEFAULT_MAX_BATCH }
//!     fn close(&mut self) {}
//!     fn describe(&self) -> String;
//!     fn check(&mut self) -> Option<Result<(), BackendError>> { None } // idle health check
//!     // Records beyond the queue (retry state, dead letters, schedules): optional.
//!     fn keeps_extras(&self) -> bool { false }
//!     fn load_extras(&mut self) -> Result<Vec<ExtraRecord>, BackendError> { Ok(vec![]) }
//!     fn commit_with_extras(&mut self, changes: &[Change], extras: &[ExtraChange])
//!         -> Result<(), BackendError> { /* commit(changes); extras refused */ }
//!     // Several commits in flight: more connections, or a separate durability step.
//!     fn lanes(&self) -> usize { 1 }
//!     fn fork(&mut self) -> Result<Box<dyn QueueStore>, BackendError> { Err(..) }
//!     fn syncer(&mut self) -> Option<Box<dyn Syncer>> { None }
//! }
//! pub trait Syncer: Send + Sync + 'static { fn sync(&self) -> Result<(), BackendError>; }
//! pub enum Change { Insert(JobRecord), Remove(u64) }
//! pub enum ExtraChange { Put(ExtraRecord), Delete(ExtraKind, u64) }
//! pub type BackendError = Box<dyn std::error::Error + Send + Sync>;
//! ```
//!
//! [`StoreHandle`] runs a store on threads of its own (the group-commit runner): changes
//! queue up while commits run and the next commit takes all of them at once, so many
//! concurrent submitters share one fsync. A store may have several commits in flight
//! ([`QueueStore::lanes`], [`QueueStore::syncer`]), so a group's commit overlaps the next
//! group's gathering and its submitters' round trips. An insert's acknowledgement runs
//! only once the commit holding it is durable: the server sends JOB_CREATED from that
//! acknowledgement, so an acknowledged job survives `kill -9` (and, with a store that
//! syncs, a power loss).
//!
//! Backends: [`sqlite`] (gearmand's `-q libsqlite3`, which also imports gearmand's queue
//! files), [`postgres`] (`-q postgres`, shareable by several servers through leases),
//! [`redis`] (`-q redis`) and [`memory`] (in memory with injected failures, for tests of
//! the runner). A new
//! backend is a module implementing [`QueueStore`] plus its flags, registered in
//! [`registry`], the one place that maps `-q TYPE` to a backend.

pub mod memory;
mod metrics;
pub mod postgres;
mod reconnect;
pub mod redis;
pub mod registry;
mod runner;
mod seam;
mod secret;
pub mod sqlite;

pub use metrics::{CommitHistograms, CommitReport, CommitStats, RunnerProfile, BATCH_BUCKETS};
pub use registry::{Backend, QueueFlags};
pub use runner::StoreHandle;
pub use seam::{
    error_chain, Ack, Adopted, BackendError, Change, ExtraChange, QueueStore, Syncer, Takeovers,
    CHECK_EVERY, DEFAULT_MAX_BATCH,
};
pub use secret::{redact_secrets, Secret};
