//! `-d`: detach from the terminal once the ports are bound, and return to the shell only
//! when the server is ready or has failed to start, with its error printed.
//!
//! The process forks after binding (so "address in use" still reaches the terminal from
//! the original process) and before any thread or runtime exists. The child starts a new
//! session and reports its start result through a pipe: `+` when ready, `-` and the
//! message when it failed. The parent waits for that and exits with the matching status.

use crate::StartError;
use nix::unistd::{fork, pipe, setsid, ForkResult};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// The child's side: tells the waiting parent how the start went.
pub(crate) struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// The server listens and runs: let the parent exit 0 and leave the terminal alone.
    pub(crate) fn ready(&mut self) {
        let Some(mut pipe) = self.pipe.take() else {
            return;
        };
        let _ = std::env::set_current_dir("/");
        redirect_stdio_to_null();
        let _ = pipe.write_all(b"+");
    }

    /// The start failed: the parent prints `error`. Returns false when already ready (the
    /// terminal is gone; the caller logs instead).
    pub(crate) fn failed(&mut self, error: &StartError) -> bool {
        let Some(mut pipe) = self.pipe.take() else {
            return false;
        };
        let _ = pipe.write_all(format!("-{error}").as_bytes());
        true
    }
}

fn redirect_stdio_to_null() {
    let Ok(null) = File::options().read(true).write(true).open("/dev/null") else {
        return;
    };
    for target in [0, 1, 2] {
        // SAFETY: dup2 onto the standard descriptors, which stay open for the process's
        // life (nix's dup2 wants an owned target, which they are not).
        unsafe {
            nix::libc::dup2(null.as_raw_fd(), target);
        }
    }
}

/// Forks. In the parent this waits for the child's start result and exits; in the child
/// it returns the handle that reports it.
pub(crate) fn detach() -> Result<Readiness, StartError> {
    let (read_end, write_end): (OwnedFd, OwnedFd) =
        pipe().map_err(|e| StartError(format!("cannot daemonize: pipe: {e}")))?;
    // SAFETY: called before any thread is started (no runtime, no store thread yet), so
    // the child is a faithful single-threaded copy.
    match unsafe { fork() }.map_err(|e| StartError(format!("cannot daemonize: fork: {e}")))? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let mut answer = Vec::new();
            let _ = File::from(read_end).read_to_end(&mut answer);
            match answer.split_first() {
                Some((b'+', _)) => std::process::exit(0),
                Some((b'-', message)) => {
                    eprintln!("gearmand-rs: {}", String::from_utf8_lossy(message));
                    std::process::exit(1)
                }
                _ => {
                    eprintln!("gearmand-rs: the daemon exited before it was ready");
                    std::process::exit(1)
                }
            }
        }
        ForkResult::Child => {
            drop(read_end);
            setsid().map_err(|e| StartError(format!("cannot daemonize: setsid: {e}")))?;
            Ok(Readiness {
                pipe: Some(File::from(write_end)),
            })
        }
    }
}
