//! Commit failures in the log: at most one line per [`ERROR_LOG_INTERVAL`], with a count,
//! so a full disk does not write a log line per refused submission.

use std::time::{Duration, Instant};

/// How often a failing store may log its failures (the rest are counted into that line).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Logs commit failures at most once per [`ERROR_LOG_INTERVAL`], with a count, so a full
/// disk does not write a log line per refused submission.
#[derive(Default)]
pub(super) struct FailureLog {
    last_logged: Option<Instant>,
    unlogged: u64,
    failing: bool,
}

impl FailureLog {
    pub(super) fn failed(&mut self, error: &str, changes: usize) {
        self.failing = true;
        let due = self
            .last_logged
            .is_none_or(|at| at.elapsed() >= ERROR_LOG_INTERVAL);
        if !due {
            self.unlogged += 1;
            return;
        }
        if self.unlogged > 0 {
            tracing::error!(
                "store commit of {changes} change(s) failed: {error} ({} more failed commit(s) \
                 since the last report)",
                self.unlogged
            );
        } else {
            tracing::error!("store commit of {changes} change(s) failed: {error}");
        }
        self.unlogged = 0;
        self.last_logged = Some(Instant::now());
    }

    pub(super) fn recovered(&mut self, name: &str) {
        if std::mem::take(&mut self.failing) {
            let also = std::mem::take(&mut self.unlogged);
            tracing::warn!("{name}: commits succeed again ({also} failed commit(s) not logged)");
            self.last_logged = None;
        }
    }
}
