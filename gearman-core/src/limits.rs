//! Size limits, as configuration. Defaults follow gearmand where it has a limit and pick a
//! sane bound where it has none.

/// Bounds on what a connection will accept. Checked on the header, before buffering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet body accepted (gearmand: unbounded u32; we default to 64 MiB).
    pub max_body: usize,
    /// Longest admin text line, newline included (gearmand: its 8 KiB receive buffer).
    pub max_admin_line: usize,
    /// Longest non-data argument: function name, client id, option (gearmand: 8 KiB buffer).
    pub max_argument: usize,
    /// Longest unique id accepted in a submission (`GEARMAN_MAX_UNIQUE_SIZE` = 64; gearmand
    /// stores at most 63 bytes).
    pub max_unique: usize,
    /// Longest job handle (`GEARMAN_JOB_HANDLE_SIZE` = 64 including the NUL).
    pub max_handle: usize,
}

impl Limits {
    /// 64 MiB: gearman-rs's default, far above real workloads, far below a 4 GiB header.
    pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: Self::DEFAULT_MAX_BODY,
            max_admin_line: 8192,
            max_argument: 8192,
            max_unique: 64,
            max_handle: 63,
        }
    }
}
