//! `--acl-file`: reading the permissions file at start (a bad file is a start error) and
//! on SIGHUP (a bad file keeps the rules in force, and the log says why), and saying in
//! the log what the rules in force grant.

use gearman_core::acl::{Acl, MAX_ACL_BYTES};
use std::io::Read;
use std::path::Path;

/// Reads and parses the file; the error is one line naming it.
pub(crate) fn load(path: &Path) -> Result<Acl, String> {
    let why = |e: &dyn std::fmt::Display| format!("ACL file {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| why(&e))?;
    let mut bytes = Vec::new();
    // One byte past the limit is enough to tell the file is too large.
    file.take(MAX_ACL_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| why(&e))?;
    Acl::parse_bytes(&bytes).map_err(|e| why(&e))
}

/// Logs the rules now in force from `path`, at start or (`reloaded`) on SIGHUP: the count
/// of grants, or a warning when there are none. An empty or comments-only file parses, but
/// then every submission, registration and admin command is refused, which is rarely meant.
pub(crate) fn log_in_force(path: &Path, acl: &Acl, reloaded: bool) {
    let path = path.display();
    match (acl.is_empty(), reloaded) {
        (false, false) => tracing::info!("ACL {path}: {} grant(s)", acl.len()),
        (false, true) => tracing::info!("SIGHUP: ACL {path} reloaded, {} grant(s)", acl.len()),
        (true, false) => tracing::warn!("ACL {path} {GRANTS_NOTHING}"),
        (true, true) => tracing::warn!("SIGHUP: ACL {path} reloaded: it {GRANTS_NOTHING}"),
    }
}

/// The warning for a file without rules.
const GRANTS_NOTHING: &str = "grants nothing (no rules, only blank lines or comments): every \
    job submission, worker registration and admin command will be refused";
