//! The grab/sleep cycle of a worker connection. All transitions live in this file; the
//! table below is the source of truth.
//!
//! `can_grab` = the worker has at least one ability, holds fewer than `max_in_flight` jobs
//! and has not been told to stop grabbing.
//!
//! | state | input | can_grab | next state | send |
//! |---|---|---|---|---|
//! | Idle | Kick (ability added, job finished, resumed) | yes | Grabbing | GRAB |
//! | Idle | Kick | no | Idle | — |
//! | Idle | NOOP | any | Idle | — (stale wake-up) |
//! | Grabbing | JOB_ASSIGN* | yes | Grabbing | GRAB (fill the next slot) |
//! | Grabbing | JOB_ASSIGN* | no | Idle | — |
//! | Grabbing | NO_JOB | yes | Sleeping | PRE_SLEEP |
//! | Grabbing | NO_JOB | no | Idle | — |
//! | Grabbing | NOOP, Kick | any | Grabbing | — (a reply is on its way) |
//! | Sleeping | NOOP | yes | Grabbing | GRAB |
//! | Sleeping | NOOP | no | Idle | — |
//! | Sleeping | AbilityAdded | yes | Grabbing | GRAB (gearmand does not wake us for jobs queued before the CAN_DO) |
//! | Sleeping | Kick | any | Sleeping | — |
//! | Idle or Sleeping | JOB_ASSIGN*, NO_JOB | any | — | protocol violation |
//!
//! libgearman ignores NOOPs outside sleep the same way, and grabs again right after a job
//! without PRE_SLEEP; with `max_in_flight > 1` we grab again right after an assignment.

/// Where the worker is in the cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrabState {
    /// Not asking for work (no ability, at capacity, or stopped).
    Idle,
    /// A grab request is outstanding.
    Grabbing,
    /// PRE_SLEEP sent; waiting for a NOOP.
    Sleeping,
}

/// What drives a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrabInput {
    /// JOB_ASSIGN, JOB_ASSIGN_UNIQ or JOB_ASSIGN_ALL arrived (already counted in flight).
    Assigned,
    /// NO_JOB arrived.
    NoJob,
    /// NOOP arrived.
    Noop,
    /// An ability was added.
    AbilityAdded,
    /// Something local changed: a job finished, grabbing resumed.
    Kick,
}

/// What to send after a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrabAction {
    /// Nothing.
    None,
    /// The grab packet for the configured mode.
    Grab,
    /// PRE_SLEEP.
    PreSleep,
}

/// The transition function: `Err(())` when the input is a protocol violation in `state`.
#[allow(clippy::result_unit_err)]
pub fn transition(
    state: GrabState,
    input: GrabInput,
    can_grab: bool,
) -> Result<(GrabState, GrabAction), ()> {
    use GrabAction as A;
    use GrabInput as I;
    use GrabState as S;
    let grab_or_idle = if can_grab {
        (S::Grabbing, A::Grab)
    } else {
        (S::Idle, A::None)
    };
    Ok(match (state, input) {
        (S::Idle, I::Kick | I::AbilityAdded) => grab_or_idle,
        (S::Idle, I::Noop) => (S::Idle, A::None),
        (S::Grabbing, I::Assigned) => grab_or_idle,
        (S::Grabbing, I::NoJob) if can_grab => (S::Sleeping, A::PreSleep),
        (S::Grabbing, I::NoJob) => (S::Idle, A::None),
        (S::Grabbing, I::Noop | I::Kick | I::AbilityAdded) => (S::Grabbing, A::None),
        (S::Sleeping, I::Noop | I::AbilityAdded) => grab_or_idle,
        (S::Sleeping, I::Kick) => (S::Sleeping, A::None),
        (S::Idle | S::Sleeping, I::Assigned | I::NoJob) => return Err(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use GrabAction as A;
    use GrabInput as I;
    use GrabState as S;

    type Row = (S, I, bool, Option<(S, A)>);

    #[test]
    fn every_entry_of_the_table() {
        let table: &[Row] = &[
            (S::Idle, I::Kick, true, Some((S::Grabbing, A::Grab))),
            (S::Idle, I::Kick, false, Some((S::Idle, A::None))),
            (S::Idle, I::AbilityAdded, true, Some((S::Grabbing, A::Grab))),
            (S::Idle, I::Noop, true, Some((S::Idle, A::None))),
            (S::Idle, I::Assigned, true, None),
            (S::Idle, I::NoJob, true, None),
            (S::Grabbing, I::Assigned, true, Some((S::Grabbing, A::Grab))),
            (S::Grabbing, I::Assigned, false, Some((S::Idle, A::None))),
            (
                S::Grabbing,
                I::NoJob,
                true,
                Some((S::Sleeping, A::PreSleep)),
            ),
            (S::Grabbing, I::NoJob, false, Some((S::Idle, A::None))),
            (S::Grabbing, I::Noop, true, Some((S::Grabbing, A::None))),
            (S::Grabbing, I::Kick, true, Some((S::Grabbing, A::None))),
            (
                S::Grabbing,
                I::AbilityAdded,
                true,
                Some((S::Grabbing, A::None)),
            ),
            (S::Sleeping, I::Noop, true, Some((S::Grabbing, A::Grab))),
            (S::Sleeping, I::Noop, false, Some((S::Idle, A::None))),
            (
                S::Sleeping,
                I::AbilityAdded,
                true,
                Some((S::Grabbing, A::Grab)),
            ),
            (S::Sleeping, I::Kick, true, Some((S::Sleeping, A::None))),
            (S::Sleeping, I::Assigned, true, None),
            (S::Sleeping, I::NoJob, true, None),
        ];
        for &(s, i, g, want) in table {
            assert_eq!(transition(s, i, g).ok(), want, "{s:?} {i:?} {g}");
        }
    }
}
