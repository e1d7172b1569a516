//! The worker processes (`gearman-soak worker`), their reports read into the ledger, and
//! SIGKILL with respawn.

use crate::ctx::Ctx;
use crate::sys;
use crate::worker::Adapter;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker kill waits for some worker to be in the middle of a job.
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// The pool.
pub struct Workers {
    exe: PathBuf,
    ctx: Arc<Ctx>,
    live: Mutex<Vec<(Child, Adapter)>>,
    probe: Mutex<Option<Child>>,
}

impl Workers {
    /// `per_adapter` workers on each adapter plus the probe's worker.
    pub fn start(exe: PathBuf, ctx: Arc<Ctx>, per_adapter: usize) -> std::io::Result<Workers> {
        let workers = Workers {
            exe,
            ctx,
            live: Mutex::new(Vec::new()),
            probe: Mutex::new(None),
        };
        for adapter in Adapter::ALL {
            for _ in 0..per_adapter {
                let child = workers.spawn(adapter, false)?;
                workers.live.lock().unwrap().push((child, adapter));
            }
        }
        *workers.probe.lock().unwrap() = Some(workers.spawn(Adapter::Blocking, true)?);
        Ok(workers)
    }

    fn spawn(&self, adapter: Adapter, probe: bool) -> std::io::Result<Child> {
        let mut cmd = Command::new(&self.exe);
        cmd.args([
            "worker",
            "--server",
            &self.ctx.addr.to_string(),
            "--adapter",
            adapter.name(),
        ]);
        if probe {
            cmd.arg("--probe");
        }
        // SAFETY: the closure only calls prctl, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(crate::sys::die_with_parent);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            let ctx = self.ctx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let mut parts = line.split(' ');
                    let (Some(kind), Some(id), Some(at)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    if let (Ok(id), Ok(at)) = (id.parse(), at.parse()) {
                        ctx.ledger.worker_report(pid, id, kind == "D", at);
                    }
                }
            });
        }
        Ok(child)
    }

    /// Worker processes serving soak_fg and soak_bg.
    pub fn count(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// SIGKILLs a worker (one in the middle of a background job when one gets busy
    /// within [`BUSY_WAIT`], else any) and starts a new one on the same adapter; returns
    /// whether the killed one was mid-job.
    pub fn kill_one(&self, rng: &mut fastrand::Rng) -> std::io::Result<bool> {
        let mut live = self.live.lock().unwrap();
        if live.is_empty() {
            return Ok(false);
        }
        // Most runs take no time: waiting a little for a busy worker makes the kill land
        // mid-job nearly every time, which is the fault the soak is after.
        let deadline = Instant::now() + BUSY_WAIT;
        let busy = loop {
            let busy: Vec<usize> = (0..live.len())
                .filter(|&i| self.ctx.ledger.is_busy(live[i].0.id()))
                .collect();
            if !busy.is_empty() || Instant::now() >= deadline {
                break busy;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let victim = if busy.is_empty() {
            rng.usize(..live.len())
        } else {
            busy[rng.usize(..busy.len())]
        };
        let (mut child, adapter) = live.swap_remove(victim);
        let pid = child.id();
        let mid_job = self.ctx.ledger.is_busy(pid);
        sys::kill9(pid);
        let _ = child.wait();
        self.ctx.ledger.worker_killed(pid);
        live.push((self.spawn(adapter, false)?, adapter));
        Ok(mid_job)
    }

    /// Workers that exited without being killed by the soak (each is a failure), replaced.
    pub fn reap_unexpected(&self) -> u64 {
        let mut live = self.live.lock().unwrap();
        let mut died = 0;
        for slot in live.iter_mut() {
            if let Ok(Some(status)) = slot.0.try_wait() {
                eprintln!(
                    "FAIL: {} worker {} exited by itself: {status}",
                    slot.1.name(),
                    slot.0.id()
                );
                died += 1;
                if let Ok(child) = self.spawn(slot.1, false) {
                    slot.0 = child;
                }
            }
        }
        died
    }

    /// Kills every worker.
    pub fn stop(&self) {
        for (mut child, _) in self.live.lock().unwrap().drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut child) = self.probe.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}
