//! `-q redis`: durable background jobs in Redis, with gearmand's flags.
//!
//! A group commit is one pipelined `MULTI`/`EXEC`: Redis applies it all or nothing, and
//! JOB_CREATED is sent only once `EXEC` has answered. One commit is in flight at a time:
//! with `appendfsync always` Redis fsyncs its append-only file in its one thread, once per
//! turn of its event loop, and a transaction that arrives during that fsync waits for the
//! next turn and an fsync of its own. A second connection (or a second `EXEC` pipelined
//! before the first is answered) therefore splits the waiting submitters into two groups
//! and two fsyncs instead of sharing one: measured here, 4 redis-benchmark clients made 2.2
//! times the HSETs per second of 1 client, not 4, and gearmand-rs with two connections
//! made fewer submits per second than with one in all four runs of 4 and 16 submitters
//! (785 and 753 against 956 and 941 per second at 4; 2,437 against 3,424 and 3,164 at 16). Each job is a string at
//! `PREFIX:rs:ID`, keyed by the server's durable id (so two jobs without a unique never
//! overwrite each other), its value the core's encoding of the record
//! ([`JobRecord::encode`]): one `SET` per job, which Redis applies in about two thirds of
//! the time of the hash of one field per column that earlier versions wrote (measured
//! here: 130-job `MULTI`/`EXEC` groups, 469-600 us against 712-856 us). Those hashes
//! are still read on start.
//!
//! gearmand 1.1.20 writes `PREFIX-FUNCTION-UNIQUE` hashes with fields `data` and `priority`
//! (1.1.15 and older: a plain string, the data, at normal priority), and cannot store epoch
//! jobs. Those keys are imported on start, in one transaction that writes ours and deletes
//! theirs; a key is split as gearmand itself splits it on replay: the function runs to the
//! first `-` after the prefix, the unique is the rest.
//!
//! Records beyond the job queue (retry state, dead letters, schedules, kept results) are
//! strings at `PREFIX:rsx:KIND:KEY` (the kind's number and the record's key, the value the
//! core's encoding), written in the same `MULTI`/`EXEC` as the job changes of their group.
//!
//! What an acknowledgement means depends on Redis's append-only file (see the server
//! README): with `appendonly yes` the transaction is in the file's page cache before
//! Redis answers, so it survives a crash of Redis or of gearmand-rs; it survives a power
//! loss only with `appendfsync always`. A Redis without `appendonly` loses everything
//! since its last snapshot when it restarts: we warn at start.

use crate::store::reconnect::Backoff;
use crate::store::seam::{BackendError, Change, ExtraChange, QueueStore};
use crate::store::secret::Secret;
use ::redis::{
    Commands, Connection, ConnectionAddr, ConnectionInfo, ConnectionLike, FromRedisValue,
    RedisConnectionInfo,
};
use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord};
use std::collections::HashMap;
use std::time::Duration;

/// `-q` name, as gearmand spells it.
pub const QUEUE_TYPE: &str = "redis";
/// gearmand's default `--redis-prefix`.
pub const DEFAULT_PREFIX: &str = "_gear_";
/// Socket timeouts: a Redis that stops answering fails commits instead of stalling them.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys read per round trip on start.
const LOAD_CHUNK: usize = 1000;
/// Keys SCAN looks at per round trip.
const SCAN_COUNT: usize = 1000;

/// `-q redis` flags, as gearmand 1.1.20 names them.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisFlags {
    /// Redis host for `-q redis`.
    #[arg(
        long = "redis-server",
        default_value = "127.0.0.1",
        value_name = "HOST",
        help_heading = "Durable queue"
    )]
    pub redis_server: String,

    /// Redis port.
    #[arg(
        long = "redis-port",
        default_value_t = 6379,
        value_name = "PORT",
        help_heading = "Durable queue"
    )]
    pub redis_port: u16,

    /// Redis password (AUTH); never logged.
    #[arg(
        long = "redis-password",
        default_value = "",
        hide_default_value = true,
        value_name = "PASSWORD",
        help_heading = "Durable queue"
    )]
    pub redis_password: Secret,

    /// Prefix of the Redis keys.
    #[arg(
        long = "redis-prefix",
        default_value = DEFAULT_PREFIX,
        value_name = "PREFIX",
        help_heading = "Durable queue"
    )]
    pub redis_prefix: String,
}

/// A validated `-q redis` configuration.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Host.
    pub server: String,
    /// Port.
    pub port: u16,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Key prefix.
    pub prefix: String,
}

impl RedisFlags {
    /// Checks the flags.
    pub fn config(&self) -> Result<RedisConfig, String> {
        if self.redis_server.is_empty() {
            return Err("--redis-server must name a host".into());
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.len() > 200 {
            return Err("--redis-prefix must be 1..200 bytes".into());
        }
        Ok(RedisConfig {
            server: self.redis_server.clone(),
            port: self.redis_port,
            password: (!self.redis_password.expose().is_empty())
                .then(|| self.redis_password.clone()),
            prefix: self.redis_prefix.clone(),
        })
    }
}

/// The `-q redis` store.
pub struct RedisStore {
    cfg: RedisConfig,
    client: ::redis::Client,
    name: String,
    conn: Option<Connection>,
    backoff: Backoff,
}

impl RedisStore {
    /// Connects (and authenticates), and warns when Redis does not keep an append-only
    /// file.
    pub fn open(cfg: &RedisConfig) -> Result<RedisStore, BackendError> {
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(cfg.server.clone(), cfg.port),
            redis: RedisConnectionInfo {
                password: cfg.password.as_ref().map(|p| p.expose().to_string()),
                ..RedisConnectionInfo::default()
            },
        };
        let client = ::redis::Client::open(info)?;
        let name = format!("Redis {}:{} prefix {:?}", cfg.server, cfg.port, cfg.prefix);
        let mut store = RedisStore {
            cfg: cfg.clone(),
            client,
            name: name.clone(),
            conn: None,
            backoff: Backoff::default(),
        };
        let conn = store
            .connected()
            .map_err(|e| format!("{name}: cannot connect: {e}"))?;
        let aof: Result<HashMap<String, String>, _> = ::redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query(conn);
        match aof {
            Ok(v) if v.get("appendonly").is_some_and(|v| v == "yes") => {}
            Ok(_) => tracing::warn!(
                "{name}: appendonly is off: jobs acknowledged since Redis's last snapshot are \
                 lost if Redis restarts (set appendonly yes)"
            ),
            Err(e) => tracing::info!("{name}: cannot check appendonly ({e})"),
        }
        Ok(store)
    }

    fn connected(&mut self) -> Result<&mut Connection, BackendError> {
        if self.conn.as_ref().is_some_and(|c| !c.is_open()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if let Err(left) = self.backoff.ready() {
                return Err(
                    format!("Redis unavailable, reconnecting in {} ms", left.as_millis()).into(),
                );
            }
            let connect = || -> ::redis::RedisResult<Connection> {
                let conn = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
                conn.set_read_timeout(Some(IO_TIMEOUT))?;
                conn.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(conn)
            };
            match connect() {
                Ok(conn) => {
                    self.backoff.succeeded();
                    self.conn = Some(conn);
                }
                Err(e) => {
                    self.backoff.failed();
                    return Err(format!("cannot connect: {e}").into());
                }
            }
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Our key of a job.
    fn key(&self, durable_id: u64) -> String {
        format!("{}:rs:{durable_id}", self.cfg.prefix)
    }

    /// Our key of an extra record.
    fn extra_key(&self, kind: ExtraKind, key: u64) -> String {
        format!("{}:rsx:{}:{key}", self.cfg.prefix, kind.code())
    }

    /// Every stored extra record, of every kind (known or not), as `(kind code, key,
    /// value)` in kind then key order.
    fn read_extras(&mut self) -> Result<Vec<(u8, u64, Vec<u8>)>, BackendError> {
        let pattern = format!("{}:rsx:*", glob_escape(&self.cfg.prefix));
        let ours = format!("{}:rsx:", self.cfg.prefix);
        let conn = self.connected()?;
        let keys = scan(conn, &pattern)?;
        let mut records = Vec::with_capacity(keys.len());
        for key in keys {
            let parsed = key
                .strip_prefix(ours.as_bytes())
                .and_then(|rest| std::str::from_utf8(rest).ok())
                .and_then(|rest| rest.split_once(':'))
                .and_then(|(code, id)| Some((code.parse::<u8>().ok()?, id.parse::<u64>().ok()?)));
            let Some((code, id)) = parsed else {
                continue;
            };
            let value: Option<Vec<u8>> = conn.get(&key)?;
            if let Some(value) = value {
                records.push((code, id, value));
            }
        }
        records.sort_by_key(|(code, id, _)| (*code, *id));
        Ok(records)
    }

    /// Our jobs, by durable id.
    fn read_ours(&mut self) -> Result<Vec<JobRecord>, BackendError> {
        let pattern = format!("{}:rs:*", glob_escape(&self.cfg.prefix));
        let ours = format!("{}:rs:", self.cfg.prefix);
        let conn = self.connected()?;
        let keys: Vec<(Vec<u8>, u64)> = scan(conn, &pattern)?
            .into_iter()
            .filter_map(|key| {
                let id = key
                    .strip_prefix(ours.as_bytes())
                    .and_then(|id| std::str::from_utf8(id).ok())
                    .and_then(|id| id.parse::<u64>().ok())?;
                Some((key, id))
            })
            .collect();
        let mut jobs = Vec::with_capacity(keys.len());
        // Two round trips per thousand keys, not one per key.
        for chunk in keys.chunks(LOAD_CHUNK) {
            let mut types = ::redis::pipe();
            for (key, _) in chunk {
                types.cmd("TYPE").arg(key);
            }
            let types: Vec<String> = types.query(conn)?;
            let mut reads = ::redis::pipe();
            let mut read = Vec::with_capacity(chunk.len());
            for ((key, id), kind) in chunk.iter().zip(&types) {
                match kind.as_str() {
                    "string" => reads.get(key),
                    // what earlier versions wrote: a field per column
                    "hash" => reads.hgetall(key),
                    // deleted since the scan
                    "none" => continue,
                    _ => return Err(not_a_job(key, kind)),
                };
                read.push((key, *id, kind));
            }
            let values: Vec<::redis::Value> = reads.query(conn)?;
            for ((key, id, kind), value) in read.into_iter().zip(values) {
                let record = if kind == "string" {
                    Vec::<u8>::from_redis_value(&value)
                        .ok()
                        .and_then(|v| JobRecord::decode(id, &Bytes::from(v)))
                } else {
                    HashMap::<String, Vec<u8>>::from_redis_value(&value)
                        .ok()
                        .and_then(|fields| record_of(id, &fields))
                };
                jobs.push(record.ok_or_else(|| not_a_job(key, kind))?);
            }
        }
        Ok(jobs)
    }

    /// gearmand's keys: `(key, job)`, the job's durable id not assigned yet.
    fn read_gearmand(&mut self) -> Result<Vec<(Vec<u8>, JobRecord)>, BackendError> {
        let pattern = format!("{}-*", glob_escape(&self.cfg.prefix));
        let theirs = format!("{}-", self.cfg.prefix);
        let name = self.name.clone();
        let conn = self.connected()?;
        let mut keys = scan(conn, &pattern)?;
        keys.sort();
        let mut jobs = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(rest) = key.strip_prefix(theirs.as_bytes()) else {
                continue;
            };
            let (function, unique) = match rest.iter().position(|&b| b == b'-') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            let kind: String = ::redis::cmd("TYPE").arg(&key).query(conn)?;
            let (data, priority) = match kind.as_str() {
                "hash" => {
                    let fields: HashMap<String, Vec<u8>> = conn.hgetall(&key)?;
                    let priority = fields
                        .get("priority")
                        .and_then(|p| std::str::from_utf8(p).ok())
                        .and_then(|p| p.trim().parse::<u8>().ok())
                        .map_or(Priority::Normal, priority_of);
                    (fields.get("data").cloned().unwrap_or_default(), priority)
                }
                "string" => (conn.get::<_, Vec<u8>>(&key)?, Priority::Normal),
                other => {
                    tracing::warn!(
                        "{name}: key {} is a {other}, not a gearmand job; left alone",
                        String::from_utf8_lossy(&key)
                    );
                    continue;
                }
            };
            jobs.push((
                key.clone(),
                JobRecord {
                    durable_id: 0,
                    function: Bytes::copy_from_slice(function),
                    unique: Bytes::copy_from_slice(unique),
                    priority,
                    data: Bytes::from(data),
                    when: None,
                    reducer: None,
                },
            ));
        }
        Ok(jobs)
    }
}

fn priority_of(p: u8) -> Priority {
    match p {
        0 => Priority::High,
        2 => Priority::Low,
        _ => Priority::Normal,
    }
}

fn record_of(durable_id: u64, fields: &HashMap<String, Vec<u8>>) -> Option<JobRecord> {
    let text = |name: &str| -> Option<String> {
        fields
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let bytes = |name: &str| fields.get(name).map(|v| Bytes::copy_from_slice(v));
    Some(JobRecord {
        durable_id,
        function: bytes("function")?,
        unique: bytes("unique").unwrap_or_default(),
        priority: priority_of(text("priority")?.parse().ok()?),
        data: bytes("data").unwrap_or_default(),
        when: match text("when") {
            Some(w) => Some(w.parse().ok()?),
            None => None,
        },
        reducer: bytes("reducer"),
    })
}

/// Escapes the glob characters of a SCAN pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every key matching `pattern`. SCAN looks at `SCAN_COUNT` keys per round trip: at
/// Redis's default of 10, each of the three scans on start took ~9 s over a million keys.
fn scan(conn: &mut Connection, pattern: &str) -> ::redis::RedisResult<Vec<Vec<u8>>> {
    let mut cmd = ::redis::cmd("SCAN");
    cmd.cursor_arg(0)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    Ok(cmd.iter::<Vec<u8>>(conn)?.collect())
}

/// The error for a key of ours that holds no job this version can read.
fn not_a_job(key: &[u8], kind: &str) -> BackendError {
    format!(
        "key {} ({kind}) is not a gearmand-rs job",
        String::from_utf8_lossy(key)
    )
    .into()
}

/// Adds the write of one job to a pipeline: one string, the core's encoding of the record.
/// `SET` replaces whatever the key held (a hash written by an earlier version included),
/// so a rewritten record keeps no field of the old one.
fn write_job(pipe: &mut ::redis::Pipeline, key: &str, r: &JobRecord) {
    pipe.set(key, &r.encode()[..]).ignore();
}

impl QueueStore for RedisStore {
    fn load(&mut self) -> Result<Vec<JobRecord>, BackendError> {
        let mut jobs = self.read_ours()?;
        let imported = self.read_gearmand()?;
        if !imported.is_empty() {
            // Past every job and every extra record's key: a dead letter replaces the stored
            // job with its key, so an imported job must not take one.
            let extras = self.read_extras()?;
            let first = jobs
                .iter()
                .map(|j| j.durable_id)
                .chain(extras.iter().map(|(_, key, _)| *key))
                .max()
                .unwrap_or(0)
                + 1;
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            let count = imported.len();
            for (id, (theirs, mut record)) in (first..).zip(imported) {
                record.durable_id = id;
                write_job(&mut pipe, &self.key(record.durable_id), &record);
                pipe.del(theirs).ignore();
                jobs.push(record);
            }
            let conn = self.connected()?;
            pipe.query::<()>(conn)?;
            tracing::warn!(
                "{}: imported {count} job(s) that gearmand left under {}-*",
                self.name,
                self.cfg.prefix
            );
        }
        jobs.sort_by_key(|j| (j.priority, j.durable_id));
        Ok(jobs)
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), BackendError> {
        self.commit_with_extras(changes, &[])
    }

    fn keeps_extras(&self) -> bool {
        true
    }

    fn load_extras(&mut self) -> Result<Vec<ExtraRecord>, BackendError> {
        Ok(self
            .read_extras()?
            .into_iter()
            .filter_map(|(code, key, value)| {
                Some(ExtraRecord {
                    kind: ExtraKind::from_code(code)?,
                    key,
                    value: Bytes::from(value),
                })
            })
            .collect())
    }

    fn commit_with_extras(
        &mut self,
        changes: &[Change],
        extras: &[ExtraChange],
    ) -> Result<(), BackendError> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for change in changes {
            match change {
                Change::Insert(r) => write_job(&mut pipe, &self.key(r.durable_id), r),
                Change::Remove(id) => {
                    pipe.del(self.key(*id)).ignore();
                }
            }
        }
        // MULTI/EXEC applies these in order, so a put after a delete of the same record wins.
        for change in extras {
            match change {
                ExtraChange::Put(r) => {
                    pipe.set(self.extra_key(r.kind, r.key), &r.value[..])
                        .ignore();
                }
                ExtraChange::Delete(kind, key) => {
                    pipe.del(self.extra_key(*kind, *key)).ignore();
                }
            }
        }
        let conn = self.connected()?;
        match pipe.query::<()>(conn) {
            Ok(()) => Ok(()),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.conn = None;
                    self.backoff.failed();
                }
                Err(e.into())
            }
        }
    }

    fn max_batch(&self) -> usize {
        10_000
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn check(&mut self) -> Option<Result<(), BackendError>> {
        let conn = match self.connected() {
            Ok(conn) => conn,
            Err(e) => return Some(Err(e)),
        };
        Some(match ::redis::cmd("PING").query::<String>(conn) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.conn = None;
                self.backoff.failed();
                Err(e.into())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("_gear_"), "_gear_");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn records_round_trip_through_fields() {
        let fields: HashMap<String, Vec<u8>> = [
            ("function", &b"f"[..]),
            ("unique", b"u"),
            ("priority", b"2"),
            ("data", b"\0\xff"),
            ("when", b"1700000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect();
        let r = record_of(5, &fields).unwrap();
        assert_eq!(r.priority, Priority::Low);
        assert_eq!(&r.data[..], b"\0\xff");
        assert_eq!(r.when, Some(1_700_000_000));
        assert!(record_of(5, &HashMap::new()).is_none());
    }

    #[test]
    fn password_does_not_print() {
        let flags = RedisFlags {
            redis_server: "h".into(),
            redis_port: 1,
            redis_password: "hunter2".parse().unwrap(),
            redis_prefix: "_gear_".into(),
        };
        assert!(!format!("{:?} {:?}", flags, flags.config().unwrap()).contains("hunter2"));
    }
}
