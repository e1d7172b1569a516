//! Gives the memory of a drained backlog back to the system.
//!
//! glibc's malloc keeps freed memory for reuse and returns only the top of its heap on its
//! own: after a million queued 64-byte jobs were drained, the server kept 124 MB of its
//! 233 MB peak, 91 MB of it free (gearmand issue #284 is the same complaint). `malloc_trim`
//! releases the free pages inside the heap too, but it walks every free chunk (tens of
//! milliseconds with a million of them, on the event loop), so it runs only when the jobs
//! held fell to an eighth of their peak since the last trim, and only after large peaks:
//! at most a few times per drained backlog.

use std::time::{Duration, Instant};

/// Peaks below this many jobs are left to malloc's own reuse.
const MIN_PEAK_JOBS: usize = 100_000;
/// A trim runs once the jobs held are at most the peak divided by this.
const FALL: usize = 8;

/// Watches the number of jobs held and trims the heap after a large fall.
#[derive(Debug, Default)]
pub(crate) struct HeapTrim {
    peak: usize,
}

impl HeapTrim {
    /// Notes the jobs held now; trims the heap after a large fall, and says how long that
    /// took.
    pub(crate) fn observe(&mut self, jobs: usize) -> Option<Duration> {
        self.peak = self.peak.max(jobs);
        if self.peak < MIN_PEAK_JOBS || jobs > self.peak / FALL {
            return None;
        }
        self.peak = jobs;
        let start = Instant::now();
        release_free_memory();
        Some(start.elapsed())
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers; it only changes which free pages the
    // allocator keeps mapped.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Other allocators (musl's, other systems') decide on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_large_fall() {
        let mut trim = HeapTrim::default();
        assert!(trim.observe(1_000_000).is_none());
        assert!(trim.observe(125_001).is_none(), "not an eighth yet");
        assert!(trim.observe(125_000).is_some());
        assert!(
            trim.observe(125_000).is_none(),
            "not again at the same level"
        );
        assert!(trim.observe(15_000).is_some(), "an eighth of the new peak");
        assert!(trim.observe(0).is_none(), "peaks this small are left alone");
    }

    #[test]
    fn small_backlogs_never_trim() {
        let mut trim = HeapTrim::default();
        assert!(trim.observe(MIN_PEAK_JOBS - 1).is_none());
        assert!(trim.observe(0).is_none());
    }
}
