//! This machine's identity as the server names itself: the host name in the default job
//! handle prefix (`H:HOSTNAME`) and in the default PostgreSQL lease owner.

/// This machine's host name (`localhost` if unknown).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
