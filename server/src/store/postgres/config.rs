//! `-q postgres` flags and their checked configuration: the connection string (a secret),
//! gearmand's table name, the lease period and this server's owner name.

use crate::store::secret::Secret;
use std::str::FromStr;
use std::time::Duration;

/// gearmand's default `--libpq-table`.
pub const DEFAULT_TABLE: &str = "queue";
/// Default `--libpq-lease`, in seconds.
pub const DEFAULT_LEASE_SECS: u64 = 30;

/// `-q postgres` flags, gearmand's plus the lease settings.
#[derive(Debug, Clone, clap::Args)]
pub struct PostgresFlags {
    /// PostgreSQL connection string for `-q postgres`, libpq `key=value` or a
    /// `postgresql://` URL (never logged: it may hold a password).
    #[arg(
        long = "libpq-conninfo",
        value_name = "CONNINFO",
        default_value = "",
        hide_default_value = true,
        help_heading = "Durable queue"
    )]
    pub libpq_conninfo: Secret,

    /// gearmand's `-q postgres` table, imported on start and then renamed aside.
    #[arg(
        long = "libpq-table",
        default_value = DEFAULT_TABLE,
        value_name = "NAME",
        help_heading = "Durable queue"
    )]
    pub libpq_table: String,

    /// Seconds a server's hold on its stored jobs lasts without renewal: after that, another
    /// gearmand-rs on the same database takes them over, and a server that could not renew
    /// exits.
    #[arg(
        long = "libpq-lease",
        default_value_t = DEFAULT_LEASE_SECS,
        value_name = "SECS",
        help_heading = "Durable queue"
    )]
    pub libpq_lease: u64,

    /// This server's name as owner of its rows (default HOSTNAME:PORT); every server sharing
    /// the database needs its own, kept across restarts.
    #[arg(
        long = "libpq-owner",
        value_name = "NAME",
        help_heading = "Durable queue"
    )]
    pub libpq_owner: Option<String>,
}

/// A validated `-q postgres` configuration.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The connection string.
    pub conninfo: Secret,
    /// gearmand's table to import (validated, folded to lower case as PostgreSQL folds
    /// gearmand's unquoted name).
    pub gearmand_table: String,
    /// Lease period.
    pub lease: Duration,
    /// Owner name of this server's rows.
    pub owner: String,
}

impl PostgresFlags {
    /// Checks the flags; `port` names the default owner.
    pub fn config(&self, port: u16) -> Result<PostgresConfig, String> {
        if self.libpq_conninfo.expose().trim().is_empty() {
            return Err(
                "-q postgres needs --libpq-conninfo (e.g. \"host=db user=gearman \
                        dbname=gearman\")"
                    .into(),
            );
        }
        parse_conninfo(&self.libpq_conninfo)?;
        let gearmand_table = valid_table_name(&self.libpq_table)?;
        if !(1..=86_400).contains(&self.libpq_lease) {
            return Err(format!(
                "--libpq-lease must be 1..86400 seconds, got {}",
                self.libpq_lease
            ));
        }
        let owner = match &self.libpq_owner {
            Some(o) if o.is_empty() || o.len() > 200 => {
                return Err("--libpq-owner must be 1..200 bytes".into())
            }
            Some(o) => o.clone(),
            None => format!("{}:{port}", crate::host::hostname()),
        };
        Ok(PostgresConfig {
            conninfo: self.libpq_conninfo.clone(),
            gearmand_table,
            lease: Duration::from_secs(self.libpq_lease),
            owner,
        })
    }
}

/// Parses the connection string; the error never repeats it.
pub(super) fn parse_conninfo(conninfo: &Secret) -> Result<::postgres::Config, String> {
    let mut config = ::postgres::Config::from_str(conninfo.expose())
        .map_err(|e| format!("--libpq-conninfo is not a valid connection string: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    // A database that stops answering (a partition, not a refused connection) fails the
    // commit waiting on it instead of stalling every submitter behind it.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(10));
    }
    config.application_name("gearmand-rs");
    Ok(config)
}

/// Where the database is, for log lines: host, port and database, never the password.
pub(super) fn describe(config: &::postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(::postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(::postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("PostgreSQL {host}:{port}/{db}")
}

/// `--libpq-table`: a plain identifier, folded to lower case.
pub(super) fn valid_table_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!(
            "--libpq-table {name:?} is not a plain table name (letters, digits and _, \
             at most 63, not starting with a digit)"
        ));
    }
    let folded = name.to_ascii_lowercase();
    if folded.starts_with("gearmand_rs_") {
        return Err(format!(
            "--libpq-table {name:?} names gearmand-rs's own tables, not gearmand's"
        ));
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert_eq!(valid_table_name("queue").unwrap(), "queue");
        assert_eq!(valid_table_name("My_Queue2").unwrap(), "my_queue2");
        for bad in [
            "",
            "1queue",
            "queue; DROP TABLE x",
            "q\"x",
            "a.b",
            "gearmand_rs_jobs",
            &"x".repeat(64),
        ] {
            assert!(valid_table_name(bad).is_err(), "{bad:?}");
        }
    }
}
