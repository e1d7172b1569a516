//! The numbers that name jobs and functions inside the job state. They sit apart from
//! [`job`](super::job), [`function`](super::function) and [`timers`](super::timers) so that
//! each of those can name the others' entries (a job its function and timer, a queue its
//! jobs, a timer its job) without depending on the others' modules.

/// Names a job while the server holds it: its number, which grows by one per job (so
/// sorting ids sorts by age), is never reused, and gives its handle (`PREFIX:N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct JobId(pub(crate) u64);

/// A function's index; stable while the function exists (a dropped function's index is
/// reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FunctionId(pub(crate) u32);
