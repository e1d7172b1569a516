//! Command-line flags, spelled as gearmand spells them where they apply.

use crate::store::{Backend, QueueFlags};
pub use crate::transport::tcp::Keepalive;
use crate::StartError;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// gearmand-rs: a Gearman job server, compatible with gearmand's protocol, admin commands
/// and flags.
#[derive(Debug, Parser)]
#[command(name = "gearmand-rs", version, about, long_about = None, max_term_width = 100,
    // The last of a repeated flag wins (wrappers append to a base command line).
    args_override_self = true
)]
pub struct Args {
    /// Port to listen on (default: $GEARMAND_PORT, else 4730).
    #[arg(
        short = 'p',
        long,
        env = "GEARMAND_PORT",
        default_value_t = 4730,
        help_heading = "Network"
    )]
    pub port: u16,

    /// Address to listen on; repeat for several. Default: every IPv4 and IPv6 address.
    /// `unix:/PATH` listens on a Unix domain socket instead (TLS under --ssl, like the
    /// other -L listeners); with only unix: addresses there is no TCP listener.
    #[arg(
        short = 'L',
        long = "listen",
        value_name = "ADDRESS",
        help_heading = "Network"
    )]
    pub listen: Vec<String>,

    /// A plaintext Unix domain socket to listen on as well (beside the TCP listeners);
    /// repeat for several. A stale socket file is replaced; the file is removed on exit.
    /// Its peers have the ACL identity uid:N and may use admin shutdown.
    #[arg(long = "unix-socket", value_name = "PATH", help_heading = "Network")]
    pub unix_socket: Vec<PathBuf>,

    /// Permission bits (octal, e.g. 660) of the Unix socket files; default: the umask's.
    #[arg(
        long = "unix-socket-mode",
        value_name = "OCTAL",
        value_parser = parse_mode,
        help_heading = "Network"
    )]
    pub unix_socket_mode: Option<u32>,

    /// Listen backlog.
    #[arg(
        short = 'b',
        long,
        default_value_t = 1024,
        value_name = "N",
        help_heading = "Network"
    )]
    pub backlog: u32,

    /// Accepted for compatibility and ignored: gearmand-rs serves every connection from one
    /// thread, which measured faster than several.
    #[arg(
        short = 't',
        long,
        default_value_t = 1,
        value_name = "N",
        help_heading = "Network"
    )]
    pub threads: usize,

    /// Retries of a job whose worker vanished or timed out: -1 = unlimited, 0 = none
    /// (fail at the first such failure), N = up to N retries.
    #[arg(short = 'j', long = "job-retries", default_value_t = -1, allow_hyphen_values = true, value_name = "N", help_heading = "Jobs")]
    pub job_retries: i64,

    /// Sleeping workers woken (NOOP) per new job; 0 = all of them.
    #[arg(
        short = 'w',
        long = "worker-wakeup",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Jobs"
    )]
    pub worker_wakeup: u32,

    /// Accepted for compatibility: functions are always served round-robin.
    #[arg(short = 'R', long = "round-robin", help_heading = "Jobs")]
    pub round_robin: bool,

    /// Job handles are PREFIX:N (default H:HOSTNAME).
    #[arg(
        long = "job-handle-prefix",
        value_name = "PREFIX",
        help_heading = "Jobs"
    )]
    pub job_handle_prefix: Option<String>,

    /// Turn the `exceptions` option on for every connection.
    #[arg(long, help_heading = "Jobs")]
    pub exceptions: bool,

    /// Retry FUNCTION's background jobs that fail (WORK_FAIL, WORK_EXCEPTION) up to COUNT
    /// times, BACKOFF (default 1s; 250ms, 2s, 5m, 1h) after the first failure and twice as
    /// long after each next; then they become dead letters (admin `show dead`). Repeat for
    /// several functions.
    #[arg(
        long = "retry",
        value_name = "FUNCTION=COUNT[:BACKOFF]",
        action = clap::ArgAction::Append,
        help_heading = "Jobs"
    )]
    pub retry: Vec<String>,

    /// The zone SUBMIT_JOB_SCHED fields are read in: UTC (the default) or a fixed offset
    /// such as +02:00 (no daylight-saving rules).
    #[arg(
        long = "schedule-zone",
        default_value = "UTC",
        value_name = "ZONE",
        help_heading = "Jobs"
    )]
    pub schedule_zone: String,

    /// Keep the last result (WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION data) of each
    /// background job for DURATION (seconds, or a number with ms, s, m, h or d: 90s, 30m,
    /// 7d), to be read back by handle or unique (admin `show result`). Off by default. With
    /// a store (-q sqlite) they survive a restart and still expire on time.
    #[arg(long = "keep-results", value_name = "DURATION", help_heading = "Jobs")]
    pub keep_results: Option<String>,

    /// The kept results hold at most BYTES in all (data, handle, function and unique of
    /// each); the oldest are forgotten first.
    #[arg(
        long = "keep-results-bytes",
        value_name = "BYTES",
        default_value_t = gearman_core::server::kept::DEFAULT_KEEP_RESULTS_BYTES,
        help_heading = "Jobs"
    )]
    pub keep_results_bytes: usize,

    /// Enable TCP keepalive on client connections.
    #[arg(long, help_heading = "Network")]
    pub keepalive: bool,

    /// Seconds of idle before keepalive probes (-1 = system default).
    #[arg(long = "keepalive-idle", default_value_t = -1, allow_hyphen_values = true, value_name = "SECS", help_heading = "Network")]
    pub keepalive_idle: i64,

    /// Seconds between keepalive probes (-1 = system default).
    #[arg(long = "keepalive-interval", default_value_t = -1, allow_hyphen_values = true, value_name = "SECS", help_heading = "Network")]
    pub keepalive_interval: i64,

    /// Unanswered probes before the connection is dropped (-1 = system default).
    #[arg(long = "keepalive-count", default_value_t = -1, allow_hyphen_values = true, value_name = "N", help_heading = "Network")]
    pub keepalive_count: i64,

    /// Write the process id to this file (removed on exit).
    #[arg(
        short = 'P',
        long = "pid-file",
        value_name = "FILE",
        help_heading = "Process"
    )]
    pub pid_file: Option<PathBuf>,

    /// Log destination: a file (reopened on SIGHUP, for logrotate), `stderr` or `none`.
    #[arg(
        short = 'l',
        long = "log-file",
        default_value = "stderr",
        value_name = "FILE",
        help_heading = "Process"
    )]
    pub log_file: String,

    /// Log level: FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG.
    #[arg(
        long = "verbose",
        default_value = "ERROR",
        value_name = "LEVEL",
        help_heading = "Process"
    )]
    pub verbose: String,

    /// Raise the log level one step per -v.
    #[arg(short = 'v', action = clap::ArgAction::Count, help_heading = "Process")]
    pub more_verbose: u8,

    /// Detach and run in the background; returns once the server listens (errors before
    /// that are printed here).
    #[arg(short = 'd', long, help_heading = "Process")]
    pub daemon: bool,

    /// Switch to this user (and its groups) once the ports are bound.
    #[arg(short = 'u', long, value_name = "USER", help_heading = "Process")]
    pub user: Option<String>,

    /// Also send the log to syslog (facility daemon).
    #[arg(long, help_heading = "Process")]
    pub syslog: bool,

    /// Accepted for compatibility: crash signals keep their default action, so the
    /// system's core dump settings apply.
    #[arg(long, help_heading = "Process")]
    pub coredump: bool,

    /// Refuse connections past N open ones: the peer gets an ERROR packet (an ERR line for
    /// an admin client) saying MAX_CONNECTIONS and is closed; refusals are logged once per
    /// interval. Default: no limit but the open-file limit.
    #[arg(long = "max-connections", value_name = "N", help_heading = "Network")]
    pub max_connections: Option<usize>,

    /// Raise the open-file limit to N (connections are a little fewer).
    #[arg(
        short = 'f',
        long = "file-descriptors",
        value_name = "N",
        help_heading = "Process"
    )]
    pub file_descriptors: Option<u64>,

    /// More flags, as whitespace-separated tokens in FILE (also `@FILE`); flags on the
    /// command line win. /etc/gearmand.conf is read when present.
    #[arg(long = "config-file", value_name = "FILE", help_heading = "Process")]
    pub config_file: Option<PathBuf>,

    /// Check the command line and the configuration file, then exit.
    #[arg(long = "check-args", hide = true)]
    pub check_args: bool,

    /// Accepted for compatibility and ignored: gearmand-rs sizes its tables as jobs come.
    #[arg(
        long = "hashtable-buckets",
        default_value_t = 991,
        value_name = "N",
        help_heading = "Jobs"
    )]
    pub hashtable_buckets: i64,

    /// Protocol module: `http` serves HTTP on --http-port (default 8080), as gearmand's
    /// `-r http`.
    #[arg(
        short = 'r',
        long = "protocol",
        value_name = "NAME",
        help_heading = "HTTP"
    )]
    pub protocol: Option<String>,

    /// Serve HTTP on this port: gearmand's HTTP job protocol (`POST /FUNCTION`), metrics,
    /// health checks and a dashboard. Off unless given (or `-r http`).
    #[arg(long = "http-port", value_name = "PORT", help_heading = "HTTP")]
    pub http_port: Option<u16>,

    /// Address for the HTTP listener; repeat for several. Default: the --listen addresses.
    #[arg(long = "http-listen", value_name = "ADDRESS", help_heading = "HTTP")]
    pub http_listen: Vec<String>,

    /// Seconds an HTTP client has to send a request's headers, counted from its connection
    /// or from the last reply on a kept-alive one (so an idle connection closes after as
    /// long), and then as long again for a job request's body; past either the connection
    /// is closed. A job's wait for its result is not limited by it.
    #[arg(
        long = "http-read-timeout",
        default_value_t = 30,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        help_heading = "HTTP"
    )]
    pub http_read_timeout: u64,

    /// Seconds an HTTP reply may go without a byte taken by the client (one that stopped
    /// reading, its socket buffers full); past it the connection is closed. Not counted
    /// while a job waits for its result, nor while the client reads, however slowly.
    #[arg(
        long = "http-write-timeout",
        default_value_t = 30,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        help_heading = "HTTP"
    )]
    pub http_write_timeout: u64,

    /// HTTP connections open at once (long-polling job requests included); past it the
    /// listener accepts no more until one closes, and new ones wait in the listen backlog.
    #[arg(
        long = "http-max-connections",
        default_value_t = 1024,
        value_name = "N",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000),
        help_heading = "HTTP"
    )]
    pub http_max_connections: usize,

    /// Accepted for compatibility: every stored job stays stored until it ends.
    #[arg(long = "store-queue-on-shutdown", help_heading = "Durable queue")]
    pub store_queue_on_shutdown: bool,

    /// gearmand's libmemcached queue (not supported: -q libmemcached is refused).
    #[arg(long = "libmemcached-servers", value_name = "LIST", hide = true)]
    pub libmemcached_servers: Option<String>,

    /// gearmand's libmemcached key prefix (see --libmemcached-servers).
    #[arg(long = "libmemcached-prefix", value_name = "PREFIX", hide = true)]
    pub libmemcached_prefix: Option<String>,

    /// gearmand 2.0's MySQL queue flags (not supported: -q mysql is refused).
    #[arg(long = "mysql-host", value_name = "HOST", hide = true)]
    pub mysql_host: Option<String>,
    /// See --mysql-host.
    #[arg(long = "mysql-port", value_name = "PORT", hide = true)]
    pub mysql_port: Option<u16>,
    /// See --mysql-host.
    #[arg(long = "mysql-user", value_name = "USER", hide = true)]
    pub mysql_user: Option<String>,
    /// See --mysql-host.
    #[arg(long = "mysql-password", value_name = "PASSWORD", hide = true)]
    pub mysql_password: Option<String>,
    /// See --mysql-host.
    #[arg(long = "mysql-db", value_name = "DB", hide = true)]
    pub mysql_db: Option<String>,
    /// See --mysql-host.
    #[arg(long = "mysql-table", value_name = "TABLE", hide = true)]
    pub mysql_table: Option<String>,

    /// `-q` and the durable queue backends' flags.
    #[command(flatten)]
    pub queue: QueueFlags,

    /// Largest packet body accepted, in bytes; larger packets close the connection.
    #[arg(long = "max-packet-size", default_value_t = gearman_core::Limits::DEFAULT_MAX_BODY, value_name = "BYTES", help_heading = "Network")]
    pub max_packet_size: usize,

    /// Seconds to let running jobs finish after SIGTERM/SIGINT before exiting.
    #[arg(
        long = "shutdown-timeout",
        default_value_t = 30,
        value_name = "SECS",
        help_heading = "Process"
    )]
    pub shutdown_timeout: u64,

    /// TLS listeners and permissions.
    #[command(flatten)]
    pub security: crate::tls::SecurityArgs,
}

/// Log levels in gearmand's order.
pub const LEVELS: [&str; 8] = [
    "FATAL", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG",
];

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// TCP addresses to bind (host strings; empty = all, unless `unix_listen` is set).
    pub listen: Vec<String>,
    /// `-L unix:PATH` sockets (TLS under `--ssl`), absolute.
    pub unix_listen: Vec<PathBuf>,
    /// `--unix-socket` paths (always plaintext), absolute.
    pub unix_sockets: Vec<PathBuf>,
    /// `--unix-socket-mode`.
    pub unix_socket_mode: Option<u32>,
    /// Port.
    pub port: u16,
    /// Backlog.
    pub backlog: u32,
    /// `--threads` as given (logged, otherwise ignored).
    pub threads_requested: usize,
    /// Retry limit (None = unlimited).
    pub job_retries: Option<u32>,
    /// NOOPs per job.
    pub worker_wakeup: u32,
    /// Handle prefix.
    pub handle_prefix: String,
    /// `--exceptions`.
    pub exceptions: bool,
    /// `--retry`: retry policies for failed background jobs, by function.
    pub retry: std::collections::HashMap<bytes::Bytes, gearman_core::server::RetryPolicy>,
    /// `--schedule-zone`, seconds east of UTC.
    pub schedule_offset_secs: i32,
    /// `--keep-results`, if given.
    pub keep_results: Option<Duration>,
    /// `--keep-results-bytes`.
    pub keep_results_bytes: usize,
    /// Keepalive settings, if enabled.
    pub keepalive: Option<Keepalive>,
    /// Pid file.
    pub pid_file: Option<PathBuf>,
    /// Log destination.
    pub log_file: String,
    /// gearmand level name in force (also the admin `verbose` reply).
    pub level: &'static str,
    /// Packet limit.
    pub max_packet_size: usize,
    /// Grace period at shutdown.
    pub shutdown_timeout: Duration,
    /// The durable queue backend, unless `-q builtin`.
    pub store: Option<Backend>,
    /// `-d`: detach once listening.
    pub daemon: bool,
    /// `-u`: the user to switch to after binding.
    pub user: Option<String>,
    /// `--syslog`.
    pub syslog: bool,
    /// `-f`: the open-file limit to set.
    pub file_descriptors: Option<u64>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// The HTTP listener, if on.
    pub http: Option<HttpSettings>,
    /// `-j 0` was given: warn that gearmand 1.1.20 read it as "unlimited".
    pub warn_job_retries_zero: bool,
    /// TLS listeners and permissions.
    pub security: crate::tls::Security,
}

/// Where the HTTP listener binds.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Port.
    pub port: u16,
    /// Host strings (empty = the Gearman listener's addresses, else all).
    pub listen: Vec<String>,
    /// `--http-read-timeout`: the time for a request's headers, and again for its body.
    pub read_timeout: Duration,
    /// `--http-write-timeout`: the longest a reply may make no progress.
    pub write_timeout: Duration,
    /// `--http-max-connections`: connections served at once.
    pub max_connections: usize,
}

/// The warning logged at start for `-j 0` (also in the README's differences).
pub const JOB_RETRIES_ZERO_WARNING: &str = "--job-retries 0 means no retries: a job whose \
    worker dies or times out fails at once (gearmand 2.0's meaning). gearmand 1.1.20 read 0 as \
    unlimited and kept such a job queued; for that, give -j -1 (the default), or -j N for up \
    to N retries";

fn positive_secs(v: i64) -> Option<Duration> {
    u64::try_from(v)
        .ok()
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
}

impl Args {
    /// Checks values that clap cannot, and resolves defaults.
    pub fn validate(self) -> Result<Settings, StartError> {
        if self.hashtable_buckets <= 0 {
            return Err(StartError(
                "--hashtable-buckets has to be greater than 0".into(),
            ));
        }
        let http_port = match self.protocol.as_deref() {
            None => self.http_port,
            Some(p) if p.eq_ignore_ascii_case("http") => Some(self.http_port.unwrap_or(8080)),
            Some(other) => {
                return Err(StartError(format!(
                    "unknown protocol module {other:?} (-r takes http, as gearmand's)"
                )))
            }
        };
        // Absolute, since -d changes to / once running and the files are removed at exit.
        let (unix_listen, listen): (Vec<String>, Vec<String>) = self
            .listen
            .into_iter()
            .partition(|l| l.starts_with("unix:"));
        let unix_listen = unix_listen
            .into_iter()
            .map(|l| absolute(PathBuf::from(&l["unix:".len()..])))
            .collect();
        let http = http_port.map(|port| HttpSettings {
            port,
            listen: if self.http_listen.is_empty() {
                listen.clone()
            } else {
                self.http_listen.clone()
            },
            read_timeout: Duration::from_secs(self.http_read_timeout),
            write_timeout: Duration::from_secs(self.http_write_timeout),
            max_connections: self.http_max_connections,
        });
        let job_retries = match self.job_retries {
            -1 => None,
            n @ 0..=255 => Some(n as u32),
            n => {
                return Err(StartError(format!(
                    "--job-retries must be -1 (unlimited) or 0..255, got {n}"
                )))
            }
        };
        let store = self.queue.backend(self.port).map_err(StartError)?;
        let base = LEVELS
            .iter()
            .position(|l| l.eq_ignore_ascii_case(&self.verbose))
            .ok_or_else(|| {
                StartError(format!(
                    "unknown --verbose level {:?} (one of {})",
                    self.verbose,
                    LEVELS.join(", ")
                ))
            })?;
        let level = LEVELS[(base + usize::from(self.more_verbose)).min(LEVELS.len() - 1)];
        let handle_prefix = match self.job_handle_prefix {
            Some(p) => p,
            None => format!("H:{}", crate::host::hostname()),
        };
        if handle_prefix.len() + 11 > 63 {
            return Err(StartError(format!(
                "--job-handle-prefix {handle_prefix:?} is too long: handles must fit in 63 bytes"
            )));
        }
        // Linux's bounds (TCP_KEEPIDLE/TCP_KEEPINTVL 32767 s, TCP_KEEPCNT 127): past them
        // every accepted socket would fail to take the setting.
        for (flag, value, max) in [
            ("--keepalive-idle", self.keepalive_idle, 32_767),
            ("--keepalive-interval", self.keepalive_interval, 32_767),
            ("--keepalive-count", self.keepalive_count, 127),
        ] {
            if value > max {
                return Err(StartError(format!(
                    "{flag} must be at most {max}, got {value}"
                )));
            }
        }
        let keepalive = self.keepalive.then(|| Keepalive {
            idle: positive_secs(self.keepalive_idle),
            interval: positive_secs(self.keepalive_interval),
            count: u32::try_from(self.keepalive_count).ok().filter(|&c| c > 0),
        });
        let security = self.security.validate()?;
        let retry = crate::job_flags::policies(&self.retry).map_err(StartError)?;
        let schedule_offset_secs =
            crate::job_flags::zone_offset(&self.schedule_zone).map_err(StartError)?;
        let keep_results = self
            .keep_results
            .as_deref()
            .map(crate::job_flags::keep_duration)
            .transpose()
            .map_err(StartError)?;
        Ok(Settings {
            retry,
            schedule_offset_secs,
            keep_results,
            keep_results_bytes: self.keep_results_bytes,
            security,
            listen,
            unix_listen,
            unix_sockets: self.unix_socket.into_iter().map(absolute).collect(),
            unix_socket_mode: self.unix_socket_mode,
            port: self.port,
            backlog: self.backlog,
            threads_requested: self.threads,
            job_retries,
            worker_wakeup: self.worker_wakeup,
            handle_prefix,
            exceptions: self.exceptions,
            keepalive,
            // Absolute, since -d changes to / once running.
            pid_file: self.pid_file.map(absolute),
            log_file: match self.log_file.as_str() {
                "stderr" | "none" => self.log_file,
                path => absolute(PathBuf::from(path)).display().to_string(),
            },
            level,
            max_packet_size: self.max_packet_size,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            store,
            daemon: self.daemon,
            user: self.user,
            syslog: self.syslog,
            file_descriptors: self.file_descriptors,
            max_connections: self.max_connections,
            http,
            warn_job_retries_zero: job_retries == Some(0),
        })
    }
}

/// `--unix-socket-mode`: octal permission bits, at most 0o777 (`0660`, `660`, `0o660`).
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|&m| m <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode (e.g. 660)"))
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<Settings, StartError> {
        let argv = std::iter::once("gearmand-rs").chain(args.iter().copied());
        Args::try_parse_from(argv)
            .map_err(|e| StartError(e.to_string()))?
            .validate()
    }

    #[test]
    fn job_retries_follow_gearmand_2_semantics() {
        assert_eq!(settings(&[]).unwrap().job_retries, None);
        assert_eq!(settings(&["-j", "-1"]).unwrap().job_retries, None);
        assert_eq!(settings(&["-j", "0"]).unwrap().job_retries, Some(0));
        assert_eq!(
            settings(&["--job-retries", "3"]).unwrap().job_retries,
            Some(3)
        );
        assert!(settings(&["-j", "-2"]).is_err());
    }

    #[test]
    fn verbose_level_and_v_count() {
        assert_eq!(settings(&[]).unwrap().level, "ERROR");
        assert_eq!(settings(&["-v"]).unwrap().level, "WARNING");
        assert_eq!(
            settings(&["-vv", "--verbose", "info"]).unwrap().level,
            "DEBUG"
        );
        assert_eq!(settings(&["-vvvvvvvvvv"]).unwrap().level, "DEBUG");
        assert!(settings(&["--verbose", "LOUD"]).is_err());
    }

    #[test]
    fn keepalive_values_past_the_kernels_bounds_are_refused() {
        for (flag, value) in [
            ("--keepalive-idle", "32768"),
            ("--keepalive-interval", "40000"),
            ("--keepalive-count", "128"),
        ] {
            let e = settings(&["--keepalive", flag, value]).unwrap_err();
            assert!(e.0.contains(flag), "{}", e.0);
        }
        assert!(settings(&["--keepalive", "--keepalive-idle", "32767"]).is_ok());
    }

    #[test]
    fn keepalive_values_apply_only_when_enabled() {
        assert!(settings(&["--keepalive-idle", "5"])
            .unwrap()
            .keepalive
            .is_none());
        let k = settings(&[
            "--keepalive",
            "--keepalive-idle",
            "5",
            "--keepalive-count",
            "-1",
        ])
        .unwrap()
        .keepalive
        .unwrap();
        assert_eq!(k.idle, Some(Duration::from_secs(5)));
        assert_eq!(k.interval, None);
        assert_eq!(k.count, None);
    }

    #[test]
    fn queue_types() {
        assert!(settings(&["-q", "builtin"]).unwrap().store.is_none());
        let s = settings(&["-q", "libsqlite3", "--libsqlite3-db", "/tmp/q.db"]).unwrap();
        let Some(Backend::Sqlite(store)) = s.store else {
            panic!("-q libsqlite3 chose {:?}", s.store)
        };
        assert_eq!(store.path, PathBuf::from("/tmp/q.db"));
        assert_eq!(store.gearmand_table, "gearman_queue");
        assert!(settings(&["-q", "libsqlite3"]).is_err());
        assert!(settings(&["-q", "mysql"]).is_err());
        let s = settings(&["-q", "redis", "--redis-port", "6380"]).unwrap();
        let Some(Backend::Redis(redis)) = s.store else {
            panic!("-q redis chose {:?}", s.store)
        };
        assert_eq!((redis.server.as_str(), redis.port), ("127.0.0.1", 6380));
        assert_eq!(redis.prefix, "_gear_");
        // gearmand's flags; `libpq` is the spelling of gearmand's documentation.
        assert!(
            settings(&["-q", "postgres"]).is_err(),
            "needs --libpq-conninfo"
        );
        for kind in ["postgres", "libpq", "POSTGRES"] {
            let s = settings(&["-q", kind, "--libpq-conninfo", "host=db", "-p", "4731"]).unwrap();
            let Some(Backend::Postgres(pg)) = s.store else {
                panic!("-q {kind} chose {:?}", s.store)
            };
            assert_eq!(pg.gearmand_table, "queue");
            assert_eq!(pg.lease, Duration::from_secs(30));
            assert!(pg.owner.ends_with(":4731"), "{}", pg.owner);
        }
    }

    #[test]
    fn handle_prefix_default_and_length() {
        assert!(settings(&[]).unwrap().handle_prefix.starts_with("H:"));
        assert_eq!(
            settings(&["--job-handle-prefix", "P"])
                .unwrap()
                .handle_prefix,
            "P"
        );
        let long = "x".repeat(60);
        assert!(settings(&["--job-handle-prefix", &long]).is_err());
    }

    #[test]
    fn compatibility_flags_are_accepted() {
        let s = settings(&[
            "-t",
            "8",
            "-R",
            "-L",
            "127.0.0.1",
            "-L",
            "::1",
            "-p",
            "4731",
        ])
        .unwrap();
        assert_eq!(s.listen, ["127.0.0.1", "::1"]);
        assert_eq!(s.port, 4731);
        let s = settings(&[
            "-d",
            "--coredump",
            "--syslog",
            "-u",
            "nobody",
            "--hashtable-buckets",
            "5",
            "--store-queue-on-shutdown",
            "-f",
            "2048",
            "--mysql-host",
            "db",
        ])
        .unwrap();
        assert!(s.daemon && s.syslog);
        assert_eq!(s.user.as_deref(), Some("nobody"));
        assert_eq!(s.file_descriptors, Some(2048));
        assert!(settings(&["--hashtable-buckets", "0"]).is_err());
        let e = settings(&["-q", "mysql"]).unwrap_err();
        assert!(e.0.contains("not supported"), "{e}");
    }

    #[test]
    fn http_port_and_protocol_module() {
        assert!(settings(&[]).unwrap().http.is_none());
        assert_eq!(settings(&["-r", "http"]).unwrap().http.unwrap().port, 8080);
        let h = settings(&["-r", "HTTP", "--http-port", "81", "-L", "::1"])
            .unwrap()
            .http
            .unwrap();
        assert_eq!((h.port, h.listen), (81, vec!["::1".to_string()]));
        let h = settings(&["--http-port", "82", "--http-listen", "127.0.0.1"])
            .unwrap()
            .http
            .unwrap();
        assert_eq!(h.listen, ["127.0.0.1"]);
        assert_eq!(h.read_timeout, Duration::from_secs(30));
        assert_eq!(h.write_timeout, Duration::from_secs(30));
        assert_eq!(h.max_connections, 1024);
        let h = settings(&[
            "-r",
            "http",
            "--http-read-timeout",
            "2",
            "--http-write-timeout",
            "3",
            "--http-max-connections",
            "8",
        ])
        .unwrap()
        .http
        .unwrap();
        assert_eq!(
            (h.read_timeout, h.write_timeout, h.max_connections),
            (Duration::from_secs(2), Duration::from_secs(3), 8)
        );
        assert!(settings(&["--http-read-timeout", "0"]).is_err());
        assert!(settings(&["--http-write-timeout", "0"]).is_err());
        assert!(settings(&["--http-max-connections", "0"]).is_err());
        assert!(settings(&["-r", "gopher"]).is_err());
    }

    #[test]
    fn zero_job_retries_warns() {
        assert!(
            settings(&["--job-retries=0"])
                .unwrap()
                .warn_job_retries_zero
        );
        assert!(!settings(&["-j", "1"]).unwrap().warn_job_retries_zero);
    }
}
