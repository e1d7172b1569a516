//! The one place that maps `-q TYPE` and the backends' flags to a store. Adding a backend:
//! flatten its flags into [`QueueFlags`], add a [`Backend`] variant, and one arm in each
//! `match` below.

use super::postgres::{self, PostgresConfig, PostgresStore};
use super::redis::{self, RedisConfig, RedisStore};
use super::seam::{BackendError, QueueStore};
use super::sqlite::{self, SqliteConfig, SqliteStore};

/// `-q` for no durable queue (jobs in memory only, as gearmand's builtin queue).
pub const BUILTIN: &str = "builtin";

/// Every `-q` name, for `--help` and errors.
pub const QUEUE_TYPES: &[&str] = &[
    BUILTIN,
    sqlite::QUEUE_TYPE,
    postgres::QUEUE_TYPE,
    postgres::ALIAS,
    redis::QUEUE_TYPE,
];

/// `-q` and every backend's flags, flattened into the server's command line.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueFlags {
    /// Queue type: `builtin` (in memory), or durable background jobs in `libsqlite3`,
    /// `postgres` (alias `libpq`) or `redis`.
    #[arg(
        short = 'q',
        long = "queue-type",
        default_value = BUILTIN,
        value_name = "TYPE",
        help_heading = "Durable queue"
    )]
    pub queue_type: String,

    /// `-q libsqlite3`.
    #[command(flatten)]
    pub sqlite: sqlite::Flags,

    /// `-q postgres`.
    #[command(flatten)]
    pub postgres: postgres::PostgresFlags,

    /// `-q redis`.
    #[command(flatten)]
    pub redis: redis::RedisFlags,
}

/// A chosen, configured durable queue backend.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `-q libsqlite3`.
    Sqlite(SqliteConfig),
    /// `-q postgres` (or `libpq`).
    Postgres(PostgresConfig),
    /// `-q redis`.
    Redis(RedisConfig),
}

impl QueueFlags {
    /// The backend `-q` names, configured from its flags; `None` for `builtin`. `port` is
    /// the server's Gearman port (it names this server's rows in a shared database).
    pub fn backend(&self, port: u16) -> Result<Option<Backend>, String> {
        // Checked whatever the queue type, as gearmand-rs always did.
        self.sqlite.sync_mode()?;
        let kind = self.queue_type.to_ascii_lowercase();
        match kind.as_str() {
            BUILTIN => Ok(None),
            sqlite::QUEUE_TYPE => Ok(Some(Backend::Sqlite(self.sqlite.config()?))),
            postgres::QUEUE_TYPE | postgres::ALIAS => {
                Ok(Some(Backend::Postgres(self.postgres.config(port)?)))
            }
            redis::QUEUE_TYPE => Ok(Some(Backend::Redis(self.redis.config()?))),
            other @ ("mysql" | "libmemcached" | "libtokyocabinet" | "libdrizzle") => Err(format!(
                "--queue-type {other} is not supported by gearmand-rs (supported: {}); move the \
                 queue with gearmand's libsqlite3 module, whose file gearmand-rs imports",
                QUEUE_TYPES.join(", ")
            )),
            other => Err(format!(
                "unknown --queue-type {other:?} (supported: {})",
                QUEUE_TYPES.join(", ")
            )),
        }
    }
}

impl Backend {
    /// Opens and validates the store (it is loaded and run by
    /// [`StoreHandle::start`](super::StoreHandle::start)).
    pub fn open(&self) -> Result<Box<dyn QueueStore>, BackendError> {
        match self {
            Backend::Sqlite(cfg) => Ok(Box::new(SqliteStore::open(cfg)?)),
            Backend::Postgres(cfg) => Ok(Box::new(PostgresStore::open(cfg)?)),
            Backend::Redis(cfg) => Ok(Box::new(RedisStore::open(cfg)?)),
        }
    }

    /// Names the store for log lines, before it is opened.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(cfg) => format!("durable queue {}", cfg.path.display()),
            Backend::Postgres(cfg) => format!("durable queue PostgreSQL (owner {})", cfg.owner),
            Backend::Redis(cfg) => format!(
                "durable queue Redis {}:{} prefix {:?}",
                cfg.server, cfg.port, cfg.prefix
            ),
        }
    }

    /// The `-q` name of the backend, for `status` and `/metrics`.
    pub fn queue_type(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => sqlite::QUEUE_TYPE,
            Backend::Postgres(_) => postgres::QUEUE_TYPE,
            Backend::Redis(_) => redis::QUEUE_TYPE,
        }
    }
}
