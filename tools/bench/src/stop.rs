//! Ending a run early: its deadline, an interrupt (SIGINT, SIGTERM) or a worker that lost
//! its connection. Every wait of a run races its stop, so a stopped run ends at once and
//! reports what it measured until then.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// Why a run stopped, once it has; cloned into every task of the run.
#[derive(Clone, Debug)]
pub(crate) struct Stop(Arc<watch::Sender<Option<String>>>);

impl Stop {
    /// A run not stopped yet.
    pub(crate) fn new() -> Stop {
        Stop(Arc::new(watch::channel(None).0))
    }

    /// Stops the run with `reason`, unless it has stopped already (the first reason stays).
    pub(crate) fn stop(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.0.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(reason);
            }
            first
        });
    }

    /// Why the run stopped, if it has.
    pub(crate) fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// A handle for one task to race its waits against the stop.
    pub(crate) fn watch(&self) -> StopWatch {
        StopWatch(self.0.subscribe())
    }
}

/// One task's view of a [`Stop`].
pub(crate) struct StopWatch(watch::Receiver<Option<String>>);

impl StopWatch {
    /// Runs `work` until the run stops: its output, or `Err(reason)` if the stop came
    /// first (`work` is dropped).
    pub(crate) async fn unless<F: Future>(&mut self, work: F) -> Result<F::Output, String> {
        tokio::select! {
            biased;
            stopped = self.0.wait_for(Option::is_some) => Err(match stopped {
                Ok(reason) => reason.clone().unwrap_or_default(),
                // Every Stop is gone: the run is over.
                Err(_) => "the run ended".to_owned(),
            }),
            out = work => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_ends_the_wait_with_the_first_reason() {
        let stop = Stop::new();
        let mut watch = stop.watch();
        assert_eq!(watch.unless(async { 7 }).await, Ok(7));
        let stopper = stop.clone();
        tokio::spawn(async move {
            stopper.stop("first");
            stopper.stop("second");
        });
        let never = tokio::time::sleep(Duration::from_secs(3600));
        assert_eq!(watch.unless(never).await, Err("first".to_owned()));
        // Already stopped: the next wait ends at once.
        assert_eq!(
            stop.watch().unless(std::future::pending::<()>()).await,
            Err("first".to_owned())
        );
        assert_eq!(stop.reason().as_deref(), Some("first"));
    }
}
