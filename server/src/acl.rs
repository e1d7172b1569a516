//! `--acl-file`: reading the permissions file at start (a bad file is a start error) and
//! on SIGHUP (a bad file keeps the rules in force, and the log says why).

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
