//! The few system calls the soak needs that std does not offer: resource limits of the
//! server (set before exec, changed while it runs), signals, SO_LINGER 0, and reading
//! the server's memory and descriptor count from /proc.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// "No limit".
pub const UNLIMITED: u64 = libc::RLIM_INFINITY;

/// Sets the soft limit of `resource` (RLIMIT_FSIZE, RLIMIT_NOFILE) of process `pid`, keeping
/// its hard limit; returns the previous soft limit.
pub fn set_soft_limit(pid: u32, resource: libc::__rlimit_resource_t, soft: u64) -> io::Result<u64> {
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reading into a valid rlimit64.
    if unsafe { libc::prlimit64(pid as libc::pid_t, resource, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let new = libc::rlimit64 {
        rlim_cur: soft.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: new is a valid rlimit64; old is not written.
    if unsafe { libc::prlimit64(pid as libc::pid_t, resource, &new, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old.rlim_cur)
}

/// For `pre_exec`: ignore SIGXFSZ (so a file-size limit fails writes with EFBIG instead of
/// killing the server) and set the soft file-size limit. Async-signal-safe.
pub fn prepare_server_child(fsize: u64) -> io::Result<()> {
    die_with_parent()?;
    // SAFETY: signal and setrlimit are async-signal-safe; arguments are valid.
    unsafe {
        if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        let mut lim = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit64(libc::RLIMIT_FSIZE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = fsize.min(lim.rlim_max);
        if libc::setrlimit64(libc::RLIMIT_FSIZE, &lim) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// For `pre_exec` of every child: SIGKILL it when the soak dies, so an interrupted soak
/// leaves no server or worker behind. Async-signal-safe.
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SIGKILL.
pub fn kill9(pid: u32) {
    // SAFETY: plain kill(2).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// Sets SO_LINGER to 0 so the coming close sends RST.
pub fn linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd and option struct of the right size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Resident set size of `pid` in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Open descriptors of `pid`.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}
