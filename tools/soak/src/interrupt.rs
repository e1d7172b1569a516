//! SIGINT and SIGTERM: the first stops the soak early (the load and the faults stop, the
//! end checks that can still be made are made, the summary is printed, the exit status is
//! 128 + the signal's number); a second exits at once. As gearman-bench does.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// Whether (and by which signal) the soak was interrupted.
#[derive(Clone)]
pub struct Interrupt(Arc<AtomicI32>);

impl Interrupt {
    /// Starts listening for SIGINT and SIGTERM (on a thread of its own: the soak's main
    /// loop is not async).
    pub fn listen() -> Result<Interrupt, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot handle signals: {e}"))?;
        // Registered before returning, so no signal falls between listening and running.
        let (mut int, mut term) = {
            let _entered = runtime.enter();
            let listen = |kind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
            (
                listen(SignalKind::interrupt())?,
                listen(SignalKind::terminate())?,
            )
        };
        let interrupt = Interrupt(Arc::new(AtomicI32::new(0)));
        let signalled = interrupt.0.clone();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                loop {
                    let number = tokio::select! {
                        _ = int.recv() => libc::SIGINT,
                        _ = term.recv() => libc::SIGTERM,
                    };
                    if signalled.swap(number, Ordering::AcqRel) != 0 {
                        eprintln!("gearman-soak: second signal, exiting at once");
                        std::process::exit(128 + number);
                    }
                    eprintln!(
                        "gearman-soak: {}: stopping the load, then the summary (again to exit at once)",
                        name(number)
                    );
                }
            })
        });
        Ok(interrupt)
    }

    /// The signal that interrupted the soak, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            number => Some(number),
        }
    }

    /// Whether the soak was interrupted.
    pub fn happened(&self) -> bool {
        self.signal().is_some()
    }

    /// Sleeps for `pause`, or less if the soak is interrupted meanwhile.
    pub fn sleep(&self, pause: std::time::Duration) {
        let end = std::time::Instant::now() + pause;
        while !self.happened() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
        }
    }
}

/// "SIGINT" or "SIGTERM".
pub fn name(signal: i32) -> &'static str {
    if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}
