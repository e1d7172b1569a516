//! `-q libsqlite3` flags (gearmand's names) and their checked configuration: the queue file,
//! gearmand's table to import, and how hard each commit is pushed to disk.

use std::path::PathBuf;

/// Where the queue lives and how hard it is pushed to disk.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// SQLite file (created if missing; its directory must exist and be writable).
    pub path: PathBuf,
    /// Name of a gearmand libsqlite3 queue table to import on start (gearmand's
    /// `--libsqlite3-table`, default [`SqliteConfig::GEARMAND_TABLE`]).
    pub gearmand_table: String,
    /// How hard each commit is pushed to disk.
    pub sync: SyncMode,
}

impl SqliteConfig {
    /// gearmand's default queue table name.
    pub const GEARMAND_TABLE: &'static str = "gearman_queue";

    /// A store at `path` with the defaults: gearmand's table name, [`SyncMode::Full`].
    pub fn new(path: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            path: path.into(),
            gearmand_table: Self::GEARMAND_TABLE.into(),
            sync: SyncMode::Full,
        }
    }
}

/// SQLite `synchronous` setting for the write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Every commit is fsynced before its acknowledgements: acknowledged jobs survive a
    /// crash of the process and a power loss (the default).
    #[default]
    Full,
    /// Commits reach the kernel but are fsynced only at checkpoints: acknowledged jobs
    /// survive `kill -9` of the server, not a power loss or kernel crash.
    Normal,
}

/// This backend's command-line flags (gearmand's names).
#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// SQLite file for `-q libsqlite3`: background jobs are committed there before
    /// JOB_CREATED. An existing gearmand libsqlite3 queue file is imported.
    #[arg(
        long = "libsqlite3-db",
        value_name = "FILE",
        help_heading = "Durable queue"
    )]
    pub libsqlite3_db: Option<PathBuf>,

    /// gearmand's queue table name in that file, imported on start.
    #[arg(
        long = "libsqlite3-table",
        default_value = "gearman_queue",
        value_name = "NAME",
        help_heading = "Durable queue"
    )]
    pub libsqlite3_table: String,

    /// Durable queue sync: `full` fsyncs every commit (survives power loss); `normal`
    /// survives a crash of the server process but not of the machine, and is faster.
    #[arg(
        long = "libsqlite3-sync",
        default_value = "full",
        value_name = "MODE",
        help_heading = "Durable queue"
    )]
    pub libsqlite3_sync: String,
}

impl Flags {
    /// Checks the flags and gives the store's configuration (`-q libsqlite3` was chosen).
    pub fn config(&self) -> Result<SqliteConfig, String> {
        let sync = self.sync_mode()?;
        let path = self
            .libsqlite3_db
            .clone()
            .ok_or("-q libsqlite3 needs --libsqlite3-db FILE (the queue file)")?;
        // Absolute, so that --daemon's change of directory does not move the file.
        let path = std::path::absolute(&path).unwrap_or(path);
        Ok(SqliteConfig {
            path,
            gearmand_table: self.libsqlite3_table.clone(),
            sync,
        })
    }

    /// `--libsqlite3-sync`, checked even when another queue type is chosen (a typo there
    /// is still a typo).
    pub fn sync_mode(&self) -> Result<SyncMode, String> {
        match self.libsqlite3_sync.to_ascii_lowercase().as_str() {
            "full" => Ok(SyncMode::Full),
            "normal" => Ok(SyncMode::Normal),
            other => Err(format!(
                "--libsqlite3-sync must be full or normal, got {other:?}"
            )),
        }
    }
}
