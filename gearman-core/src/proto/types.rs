//! Payload types shared by requests and responses.

use bytes::Bytes;

/// Job priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Priority {
    /// Served before everything else.
    High = 0,
    /// The default.
    #[default]
    Normal = 1,
    /// Served last.
    Low = 2,
}

impl Priority {
    /// All priorities, highest first (the order queues are scanned in).
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// 0 for high, 1 for normal, 2 for low (gearmand's numbering, also in its sqlite store).
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// How a submitted job runs: foreground (the client waits for results), background, or
/// background at a wall-clock time (SUBMIT_JOB_EPOCH, always normal priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum SubmitMode {
    /// The submitter stays attached and receives WORK_* packets.
    Foreground(Priority),
    /// Fire and forget; the submitter gets only JOB_CREATED.
    Background(Priority),
    /// Background, runnable at or after this Unix time in seconds.
    Epoch(i64),
}

impl SubmitMode {
    /// The priority the job is queued with.
    pub fn priority(self) -> Priority {
        match self {
            SubmitMode::Foreground(p) | SubmitMode::Background(p) => p,
            SubmitMode::Epoch(_) => Priority::Normal,
        }
    }

    /// True unless foreground.
    pub fn is_background(self) -> bool {
        !matches!(self, SubmitMode::Foreground(_))
    }
}

/// SUBMIT_JOB, _HIGH, _LOW, their _BG forms and SUBMIT_JOB_EPOCH, folded into one value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SubmitJob {
    /// Function name.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub function: Bytes,
    /// Unique id (empty: never coalesced; `-`: coalesce on the workload).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub unique: Bytes,
    /// Foreground, background or epoch.
    pub mode: SubmitMode,
    /// The workload.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
    pub data: Bytes,
}

/// SUBMIT_REDUCE_JOB and SUBMIT_REDUCE_JOB_BACKGROUND (the four-argument layout libgearman
/// and gearmand use; the aggregator slot is sent empty and ignored by gearmand).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SubmitReduceJob {
    /// Function (the mapper).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub function: Bytes,
    /// Unique id.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub unique: Bytes,
    /// The reducer function the mapper's pieces go to.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub reducer: Bytes,
    /// The aggregator slot.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub aggregator: Bytes,
    /// Background form.
    pub background: bool,
    /// The workload.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
    pub data: Bytes,
}

/// SUBMIT_JOB_SCHED: parsed so it can be answered; gearmand implements it nowhere.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SubmitJobSched {
    /// Function name.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub function: Bytes,
    /// Unique id.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub unique: Bytes,
    /// minute, hour, day of month, month, day of week, as sent.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::args5))]
    pub schedule: [Bytes; 5],
    /// The workload.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
    pub data: Bytes,
}

/// WORK_STATUS, in either direction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct WorkStatus {
    /// Job handle.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub handle: Bytes,
    /// Progress so far.
    pub numerator: u32,
    /// Progress total.
    pub denominator: u32,
}

/// WORK_DATA, WORK_WARNING, WORK_COMPLETE and WORK_EXCEPTION, in either direction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct WorkPayload {
    /// Job handle.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub handle: Bytes,
    /// The payload.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
    pub data: Bytes,
}

/// STATUS_RES.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct StatusRes {
    /// The handle asked about.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub handle: Bytes,
    /// Whether the server knows the job.
    pub known: bool,
    /// Whether a worker holds it.
    pub running: bool,
    /// Last reported numerator.
    pub numerator: u32,
    /// Last reported denominator.
    pub denominator: u32,
}

/// STATUS_RES_UNIQUE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct StatusResUnique {
    /// The unique id asked about.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub unique: Bytes,
    /// Whether the server knows the job.
    pub known: bool,
    /// Whether a worker holds it.
    pub running: bool,
    /// Last reported numerator.
    pub numerator: u32,
    /// Last reported denominator.
    pub denominator: u32,
    /// Foreground clients attached.
    pub client_count: u32,
}

/// Which grab packet a worker sends, and so which assignment packet it gets back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum GrabMode {
    /// GRAB_JOB -> JOB_ASSIGN (no unique id).
    Plain,
    /// GRAB_JOB_UNIQ -> JOB_ASSIGN_UNIQ.
    Uniq,
    /// GRAB_JOB_ALL -> JOB_ASSIGN_ALL for reduce jobs, JOB_ASSIGN_UNIQ otherwise
    /// (libgearman's and PECL's default).
    #[default]
    All,
}

/// What an assignment packet carries beyond handle, function and data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum AssignExtras {
    /// JOB_ASSIGN.
    Plain,
    /// JOB_ASSIGN_UNIQ: the unique id.
    Unique(#[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))] Bytes),
    /// JOB_ASSIGN_ALL: the unique id and the reducer function.
    Reduce {
        /// Unique id.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
        unique: Bytes,
        /// Reducer function name.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
        reducer: Bytes,
    },
}

/// JOB_ASSIGN, JOB_ASSIGN_UNIQ and JOB_ASSIGN_ALL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct JobAssign {
    /// Job handle.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub handle: Bytes,
    /// Function name.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::arg))]
    pub function: Bytes,
    /// Unique id and reducer, as the packet type carries them.
    pub extras: AssignExtras,
    /// The workload.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzz_args::data))]
    pub data: Bytes,
}

impl JobAssign {
    /// The unique id, empty for a plain JOB_ASSIGN.
    pub fn unique(&self) -> &[u8] {
        match &self.extras {
            AssignExtras::Plain => b"",
            AssignExtras::Unique(u) | AssignExtras::Reduce { unique: u, .. } => u,
        }
    }

    /// The reducer, for JOB_ASSIGN_ALL.
    pub fn reducer(&self) -> Option<&Bytes> {
        match &self.extras {
            AssignExtras::Reduce { reducer, .. } => Some(reducer),
            _ => None,
        }
    }
}
