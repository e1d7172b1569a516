//! `-u USER`: switch to an unprivileged user once the ports are bound, and `-f N`: the
//! open-file limit.

use crate::StartError;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{chown, initgroups, setgid, setuid, Uid, User};
use std::ffi::CString;
use std::path::Path;

/// Becomes `name` (its uid, primary group and supplementary groups). The pid file, written
/// as root, is handed to the user so it can still remove it at exit.
pub(crate) fn switch_user(name: &str, pid_file: Option<&Path>) -> Result<(), StartError> {
    let user = User::from_name(name)
        .map_err(|e| StartError(format!("cannot look up user {name:?}: {e}")))?
        .ok_or_else(|| StartError(format!("could not find user {name:?}")))?;
    if user.uid == Uid::current() {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        return Err(StartError(format!(
            "must be root to switch to user {name:?} (-u)"
        )));
    }
    if let Some(path) = pid_file {
        let _ = chown(path, Some(user.uid), Some(user.gid));
    }
    let cname = CString::new(name).map_err(|_| StartError(format!("bad user name {name:?}")))?;
    let fail = |what: &str, e: nix::Error| {
        StartError(format!("cannot switch to user {name:?}: {what}: {e}"))
    };
    initgroups(&cname, user.gid).map_err(|e| fail("initgroups", e))?;
    setgid(user.gid).map_err(|e| fail("setgid", e))?;
    setuid(user.uid).map_err(|e| fail("setuid", e))?;
    tracing::info!("running as user {name} (uid {})", user.uid);
    Ok(())
}

/// Raises (or lowers) the soft and hard open-file limits to `n`.
pub(crate) fn set_file_limit(n: u64) -> Result<(), StartError> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| StartError(format!("cannot read the open-file limit: {e}")))?;
    let hard = if Uid::effective().is_root() {
        hard.max(n)
    } else {
        hard
    };
    setrlimit(Resource::RLIMIT_NOFILE, n.min(hard), hard)
        .map_err(|e| StartError(format!("cannot set the open-file limit to {n} (-f): {e}")))
}
