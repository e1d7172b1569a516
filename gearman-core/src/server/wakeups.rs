//! Who to wake when a function gets work: per function, a list of the workers able to do
//! it, in the order they joined.
//!
//! A queued job takes entries from the front of its function's list and wakes those of
//! sleeping workers, so its cost is the workers it wakes (and the awake ones it passes),
//! not the workers or functions there are. An entry taken off makes its worker rejoin that
//! list at its next PRE_SLEEP; a worker that stays listed costs nothing to put to sleep
//! again, so a worker with thousands of functions, woken for one, rejoins one list. An
//! entry of a worker that went away or dropped the function is stale (its ability's tag
//! no longer matches): skipped when met, and swept out once a list is more than twice as
//! long as its function's registrations.

use super::jobs::FunctionId;
use super::ConnId;
use std::collections::VecDeque;

/// A worker able to do a function: its connection and the tag of its ability.
pub(crate) type Sleeper = (ConnId, u64);

#[derive(Debug, Default)]
pub(crate) struct Sleepers {
    lists: Vec<VecDeque<Sleeper>>,
}

impl Sleepers {
    /// Adds `sleeper` to `function`'s list; returns the list's length.
    pub(crate) fn push(&mut self, function: FunctionId, sleeper: Sleeper) -> usize {
        let i = function.0 as usize;
        if self.lists.len() <= i {
            self.lists.resize_with(i + 1, VecDeque::new);
        }
        match self.lists.get_mut(i) {
            Some(list) => {
                list.push_back(sleeper);
                list.len()
            }
            None => 0,
        }
    }

    /// The next sleeper of `function`, taken off its list.
    pub(crate) fn pop(&mut self, function: FunctionId) -> Option<Sleeper> {
        self.lists.get_mut(function.0 as usize)?.pop_front()
    }

    /// Keeps the entries of `function` that `keep` accepts.
    pub(crate) fn retain(&mut self, function: FunctionId, keep: impl FnMut(&Sleeper) -> bool) {
        if let Some(list) = self.lists.get_mut(function.0 as usize) {
            list.retain(keep);
            if list.capacity() > 2 * list.len() + 64 {
                list.shrink_to_fit();
            }
        }
    }

    /// The entries of `function` (for invariant checks).
    pub(crate) fn of(&self, function: FunctionId) -> impl Iterator<Item = &Sleeper> {
        self.lists.get(function.0 as usize).into_iter().flatten()
    }
}
