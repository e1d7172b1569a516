//! CPU time a process has used, every thread of it, from `/proc` (Linux): what a server,
//! and this tool itself, spend per job.

use std::io;
use std::path::Path;
use std::time::Duration;

/// CPU time of process `pid` so far: the sum of its threads' run time from
/// `/proc/PID/task/*/schedstat` (nanoseconds), or, where the kernel keeps no schedstat,
/// user + system time from `/proc/PID/stat` (in clock ticks, assumed 100 per second).
/// Threads that have already exited are not counted.
pub(crate) fn process_cpu(pid: u32) -> io::Result<Duration> {
    match threads_run_time(&Path::new("/proc").join(pid.to_string()).join("task")) {
        Ok(t) => Ok(t),
        Err(_) => stat_cpu(pid),
    }
}

/// This process's CPU time.
pub(crate) fn own_cpu() -> io::Result<Duration> {
    process_cpu(std::process::id())
}

fn threads_run_time(tasks: &Path) -> io::Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(tasks)? {
        let schedstat = match std::fs::read_to_string(task?.path().join("schedstat")) {
            Ok(s) => s,
            // The thread exited while we looked.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let ns = schedstat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other("unreadable schedstat"))?;
        total += ns;
    }
    Ok(Duration::from_nanos(total))
}

fn stat_cpu(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unreadable stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok(Duration::from_millis((user + system) * 10)),
        _ => Err(io::Error::other("unreadable stat")),
    }
}

/// CPU used between two readings, in microseconds per job.
pub(crate) fn per_job_us(before: Duration, after: Duration, jobs: u64) -> f64 {
    after.saturating_sub(before).as_secs_f64() * 1e6 / jobs.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_grows_with_work() {
        // Busy until the reading has grown by 20 ms (bounded: a reading that never grows
        // fails after 10 s of wall time, however busy the machine).
        let before = own_cpu().expect("own CPU time");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut now = before;
        while now < before + Duration::from_millis(20) && start.elapsed() < Duration::from_secs(10)
        {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            now = own_cpu().expect("own CPU time");
        }
        std::hint::black_box(x);
        assert!(
            now >= before + Duration::from_millis(20),
            "{before:?} -> {now:?}"
        );
    }

    #[test]
    fn stat_and_schedstat_agree_roughly() {
        let pid = std::process::id();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let fine = process_cpu(pid).expect("schedstat");
        let coarse = stat_cpu(pid).expect("stat");
        let gap = fine.abs_diff(coarse);
        assert!(gap < Duration::from_millis(100), "{fine:?} vs {coarse:?}");
    }
}
