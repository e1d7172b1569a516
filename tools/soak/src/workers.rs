//! The worker processes (`gearman-soak worker`), their reports read into the ledger, and
//! SIGKILL with respawn.

use crate::ctx::Ctx;
use crate::sys;
use crate::worker::Adapter;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker kill waits for some worker to be in the middle of a job.
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// One worker process as the pool holds it.
struct Live {
    child: Child,
    adapter: Adapter,
    /// The ledger's name for it: unique for the whole soak, unlike the pid, which the
    /// kernel hands out again (pid_max is often 32768, and a soak starts many processes).
    worker: u64,
}

/// The pool.
pub struct Workers {
    exe: PathBuf,
    ctx: Arc<Ctx>,
    live: Mutex<Vec<Live>>,
    probe: Mutex<Option<Child>>,
    next_worker: AtomicU64,
}

impl Workers {
    /// `per_adapter` workers on each adapter plus the probe's worker.
    pub fn start(exe: PathBuf, ctx: Arc<Ctx>, per_adapter: usize) -> std::io::Result<Workers> {
        let workers = Workers {
            exe,
            ctx,
            live: Mutex::new(Vec::new()),
            probe: Mutex::new(None),
            next_worker: AtomicU64::new(1),
        };
        for adapter in Adapter::ALL {
            for _ in 0..per_adapter {
                let live = workers.spawn(adapter, false)?;
                workers.live.lock().unwrap().push(live);
            }
        }
        *workers.probe.lock().unwrap() = Some(workers.spawn(Adapter::Blocking, true)?.child);
        Ok(workers)
    }

    fn spawn(&self, adapter: Adapter, probe: bool) -> std::io::Result<Live> {
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
        // Its own process group: a Ctrl-C at the terminal reaches only the soak.
        cmd.process_group(0);
        // SAFETY: the closure only calls prctl, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(crate::sys::die_with_parent);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        let worker = self.next_worker.fetch_add(1, Ordering::Relaxed);
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
                        ctx.ledger.worker_report(worker, id, kind == "D", at);
                    }
                }
            });
        }
        Ok(Live {
            child,
            adapter,
            worker,
        })
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
                .filter(|&i| self.ctx.ledger.is_busy(live[i].worker))
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
        let mut victim = live.swap_remove(victim);
        let mid_job = self.ctx.ledger.is_busy(victim.worker);
        sys::kill9(victim.child.id());
        let _ = victim.child.wait();
        self.ctx.ledger.worker_killed(victim.worker);
        live.push(self.spawn(victim.adapter, false)?);
        Ok(mid_job)
    }

    /// Workers that exited without being killed by the soak (each is a failure), replaced.
    pub fn reap_unexpected(&self) -> u64 {
        let mut live = self.live.lock().unwrap();
        let mut died = 0;
        for slot in live.iter_mut() {
            if let Ok(Some(status)) = slot.child.try_wait() {
                eprintln!(
                    "FAIL: {} worker {} (pid {}) exited by itself: {status}",
                    slot.adapter.name(),
                    slot.worker,
                    slot.child.id()
                );
                died += 1;
                if let Ok(live) = self.spawn(slot.adapter, false) {
                    *slot = live;
                }
            }
        }
        died
    }

    /// Kills every worker.
    pub fn stop(&self) {
        for mut live in self.live.lock().unwrap().drain(..) {
            let _ = live.child.kill();
            let _ = live.child.wait();
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
