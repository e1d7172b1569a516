//! `-q postgres` (alias `libpq`): durable background jobs in PostgreSQL, shareable by
//! several gearmand-rs.
//!
//! Each group commit is one prepared SQL statement (one round trip, one transaction): it
//! checks this server's lease, deletes finished rows this server owns and inserts new ones
//! with `UNNEST` over arrays, all parameterised. JOB_CREATED follows only once that
//! statement has committed. Up to [`LANES`] commits run at once, each on a connection of
//! its own: PostgreSQL flushes its log for concurrent commits together, so more submitters
//! share each flush, and one group's commit overlaps the next group's round trips.
//!
//! Sharing one database. Every row names its owner (`--libpq-owner`, default
//! `HOSTNAME:PORT`), and every owner holds a lease in `gearmand_rs_owners` that it renews
//! (every quarter of `--libpq-lease`). A commit holds a key-share lock on its owner's row
//! while it writes, so a takeover (which locks that row for update) never interleaves with
//! it, and commits on several connections do not wait for each other. A server whose lease runs out
//! loses its rows: the next server to notice takes them over in one transaction (moves the
//! rows to itself, deletes the dead owner) and runs them; see the `lease` module. A server that
//! cannot renew in time exits rather than keep running jobs that another server may be
//! taking over. Deletes name the owner too, so a server never deletes a row it no longer
//! holds, and a restarted server loads only the rows still in its name.
//!
//! A table written by gearmand's own `-q postgres` (`--libpq-table`, default `queue`) is
//! imported on start and renamed aside (see the `schema` module).

mod config;
mod lease;
mod rows;
mod schema;

pub use config::{PostgresConfig, PostgresFlags, DEFAULT_LEASE_SECS, DEFAULT_TABLE};
pub use lease::EXIT_LEASE_LOST;

use crate::store::reconnect::Backoff;
use crate::store::seam::{error_chain, BackendError, Change, ExtraChange, QueueStore, Takeovers};
use ::postgres::{Client, NoTls, Statement};
use config::{describe, parse_conninfo};
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord};
use rows::RowIds;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `-q` name, as gearmand 1.1.20 spells it.
pub const QUEUE_TYPE: &str = "postgres";
/// `-q` name gearmand's documentation uses (1.1.20 itself refuses it).
pub const ALIAS: &str = "libpq";
/// Longest wait for the idle health check's answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Commits in flight at once, each on a connection of its own. PostgreSQL flushes its log
/// once for every commit waiting on it (measured here: pgbench with 4 clients committing
/// one-row INSERTs ran 848 commits/s against 176 with one client), so a group committed
/// while another is in flight shares a flush instead of queueing behind it.
pub const LANES: usize = 2;

/// The `-q postgres` store. The runner's other lanes are forks of it: the same database,
/// owner, row map and lease, each with a connection of its own.
pub struct PostgresStore {
    cfg: PostgresConfig,
    pg: ::postgres::Config,
    name: String,
    client: Option<Client>,
    /// [`COMMIT`], prepared on `client`.
    commit: Option<Statement>,
    /// This handle has had a connection before (a new one is then a reconnection).
    was_connected: bool,
    backoff: Backoff,
    rows: RowIds,
    loaded: Vec<JobRecord>,
    loaded_extras: Vec<ExtraRecord>,
    /// Only the store that was opened has these (not its forks).
    keeper: Option<lease::Keeper>,
    takeovers: Option<Takeovers>,
}

impl PostgresStore {
    /// Connects, creates or checks the tables, imports gearmand's table, takes this
    /// server's lease and reads its rows; then starts the lease keeper.
    pub fn open(cfg: &PostgresConfig) -> Result<PostgresStore, BackendError> {
        let pg = parse_conninfo(&cfg.conninfo)?;
        let name = describe(&pg);
        let started = Instant::now();
        // The sync client runs a runtime of its own, which must not be entered (or dropped)
        // on a thread of the server's runtime: the start work runs on a thread of its own,
        // and the store connects again on its runner thread.
        let stored = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut client = pg
                        .connect(NoTls)
                        .map_err(|e| format!("{name}: cannot connect: {}", error_chain(&e)))?;
                    schema::prepare(&mut client, cfg).map_err(|e| format!("{name}: {e}"))
                })
                .join()
                .unwrap_or_else(|_| Err(format!("{name}: the start thread panicked")))
        })?;
        let lease = Arc::new(lease::LeaseClock::new(started, cfg.lease));
        let rows: RowIds = Arc::default();
        let loaded = {
            let mut map = rows.lock().unwrap_or_else(|p| p.into_inner());
            stored
                .jobs
                .into_iter()
                .map(|(row, record)| {
                    map.insert(record.durable_id, row);
                    record
                })
                .collect()
        };
        let (tx, takeovers) = tokio::sync::mpsc::unbounded_channel();
        let keeper = lease::Keeper::start(lease::KeeperSetup {
            pg: pg.clone(),
            name: name.clone(),
            owner: cfg.owner.clone(),
            period: cfg.lease,
            clock: lease,
            rows: rows.clone(),
            adopted: tx,
        })?;
        tracing::info!(
            "{name}: owner {:?}, lease {} s",
            cfg.owner,
            cfg.lease.as_secs()
        );
        Ok(PostgresStore {
            cfg: cfg.clone(),
            pg,
            name,
            client: None,
            commit: None,
            was_connected: false,
            backoff: Backoff::default(),
            rows,
            loaded,
            loaded_extras: stored.extras,
            keeper: Some(keeper),
            takeovers: Some(takeovers),
        })
    }

    /// The connection and the commit statement prepared on it, reconnecting when the
    /// backoff allows.
    fn commit_statement(&mut self) -> Result<(&mut Client, Statement), BackendError> {
        self.connected()?;
        if self.commit.is_none() {
            let client = self.client.as_mut().expect("connected above");
            let prepared = client
                .batch_execute(&lane_settings())
                .and_then(|()| client.prepare(COMMIT));
            match prepared {
                Ok(statement) => self.commit = Some(statement),
                Err(e) => {
                    self.failed(&e);
                    return Err(e.into());
                }
            }
        }
        let statement = self.commit.clone().expect("prepared above");
        Ok((self.client.as_mut().expect("connected above"), statement))
    }

    /// After an error on the connection: drop it if it is gone, so the next commit
    /// reconnects (after the backoff).
    fn failed(&mut self, e: &::postgres::Error) {
        let closed = self.client.as_ref().is_none_or(Client::is_closed);
        if closed || e.as_db_error().is_none() {
            self.client = None;
            self.commit = None;
            self.backoff.failed();
        }
    }

    /// The connection, reconnecting when the backoff allows.
    fn connected(&mut self) -> Result<&mut Client, BackendError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            self.commit = None;
        }
        if self.client.is_none() {
            if let Err(left) = self.backoff.ready() {
                return Err(format!(
                    "database unavailable, reconnecting in {} ms",
                    left.as_millis()
                )
                .into());
            }
            match self.pg.connect(NoTls) {
                Ok(client) => {
                    if std::mem::replace(&mut self.was_connected, true) {
                        tracing::warn!("{}: reconnected", self.name);
                    } else {
                        tracing::debug!("{}: connected", self.name);
                    }
                    self.backoff.succeeded();
                    self.client = Some(client);
                }
                Err(e) => {
                    self.backoff.failed();
                    return Err(format!("cannot connect: {}", error_chain(&e)).into());
                }
            }
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

/// One group commit, planned against the row map.
#[derive(Default)]
struct Plan<'a> {
    /// New rows, at most one per durable id (the last insert wins).
    inserts: Vec<&'a JobRecord>,
    /// Rows to delete.
    deletes: Vec<i64>,
    /// Durable ids whose rows are deleted (their map entries go once committed).
    forgotten: Vec<u64>,
}

impl<'a> Plan<'a> {
    fn of(changes: &'a [Change], rows: &HashMap<u64, i64>) -> Plan<'a> {
        let mut plan = Plan::default();
        // Inserts in order; a slot empties when its job finishes within the group.
        let mut slots: Vec<Option<&'a JobRecord>> = Vec::new();
        let mut pending: HashMap<u64, usize> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut stale = |plan: &mut Plan<'a>, id: u64| {
            if let Some(&row) = rows.get(&id) {
                if seen.insert(id) {
                    plan.deletes.push(row);
                    plan.forgotten.push(id);
                }
            }
        };
        for change in changes {
            match change {
                Change::Insert(record) => {
                    // An insert replaces the job's committed row, if it has one.
                    stale(&mut plan, record.durable_id);
                    match pending.get(&record.durable_id) {
                        Some(&i) => slots[i] = Some(record),
                        None => {
                            pending.insert(record.durable_id, slots.len());
                            slots.push(Some(record));
                        }
                    }
                }
                Change::Remove(id) => {
                    // Inserted and finished within one group: neither is written.
                    if let Some(i) = pending.remove(id) {
                        slots[i] = None;
                    }
                    stale(&mut plan, *id);
                }
            }
        }
        plan.inserts = slots.into_iter().flatten().collect();
        plan
    }
}

/// Session settings of a commit connection. One plan for every commit: the plan cache
/// kept re-planning the statement for each group's parameters (4 lockstep submitters: a
/// 4-job commit took 722-747 us that way, 377-593 us with one plan; gearmand's one-row
/// commit ~270). And that plan reaches rows only through the primary keys: planned while
/// the jobs table was small, it scanned the whole table in every commit's delete (400k
/// queued: 18-27k submits/s instead of 115k). Each part of a commit names its rows by key,
/// so an index path always exists and these settings only rule out the scans.
///
/// `lock_timeout`: a lock held on the tables by someone else (`LOCK TABLE`, `VACUUM FULL`,
/// `ALTER TABLE`) fails the commit after [`LOCK_TIMEOUT`] instead of stalling every
/// submitter behind it while the lease keeps renewing; the failure shows in `/readyz`,
/// the metrics and the log, and the runner retries.
fn lane_settings() -> String {
    format!(
        "SET plan_cache_mode = force_generic_plan;
SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off;
SET lock_timeout = {};",
        LOCK_TIMEOUT.as_millis()
    )
}

/// How long a commit waits for a table lock held by someone else.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// The group commit: delete, insert, and put or delete extra records, while holding a
/// key-share lock on this server's owner row; nothing happens unless the lease is still
/// ours. The lock keeps a takeover (`FOR UPDATE` on that row) from interleaving with the
/// commit, without making concurrent commits or the lease renewal (a non-key update) wait.
/// Returns the lease count and the rows inserted. The extra records' puts and deletes name
/// disjoint keys ([`ExtraPlan`]), so their order within the statement does not matter.
const COMMIT: &str = "
WITH lease AS (
  SELECT 1 FROM gearmand_rs_owners WHERE owner = $1 AND lease_until > now()
  FOR KEY SHARE),
gone AS (
  DELETE FROM gearmand_rs_jobs
  WHERE id = ANY($2::int8[]) AND owner = $1 AND EXISTS (SELECT 1 FROM lease)),
added AS (
  INSERT INTO gearmand_rs_jobs
    (owner, server_job, function, unique_key, priority, data, when_to_run, reducer)
  SELECT $1, j.* FROM UNNEST($3::int8[], $4::bytea[], $5::bytea[], $6::int2[], $7::bytea[],
                             $8::int8[], $9::bytea[]) AS j
  WHERE EXISTS (SELECT 1 FROM lease)
  RETURNING id, server_job),
extras_gone AS (
  DELETE FROM gearmand_rs_extras x
  USING UNNEST($10::int2[], $11::int8[]) AS d(kind, key)
  WHERE x.owner = $1 AND x.kind = d.kind AND x.key = d.key
    AND EXISTS (SELECT 1 FROM lease)),
extras_put AS (
  INSERT INTO gearmand_rs_extras (owner, kind, key, value)
  SELECT $1, p.* FROM UNNEST($12::int2[], $13::int8[], $14::bytea[]) AS p
  WHERE EXISTS (SELECT 1 FROM lease)
  ON CONFLICT (owner, kind, key) DO UPDATE SET value = EXCLUDED.value)
SELECT (SELECT count(*) FROM lease),
       COALESCE((SELECT array_agg(server_job) FROM added), '{}'::int8[]),
       COALESCE((SELECT array_agg(id) FROM added), '{}'::int8[])";

/// A group's extra record changes as their end state: one put or delete per (kind, key),
/// the last change winning, so one statement can apply them.
#[derive(Default)]
struct ExtraPlan<'a> {
    delete_kinds: Vec<i16>,
    delete_keys: Vec<i64>,
    put_kinds: Vec<i16>,
    put_keys: Vec<i64>,
    put_values: Vec<&'a [u8]>,
}

impl<'a> ExtraPlan<'a> {
    fn of(extras: &'a [ExtraChange]) -> Result<ExtraPlan<'a>, BackendError> {
        let mut last: HashMap<(ExtraKind, u64), Option<&'a [u8]>> = HashMap::new();
        let mut order = Vec::new();
        for change in extras {
            let (id, value) = match change {
                ExtraChange::Put(r) => ((r.kind, r.key), Some(&r.value[..])),
                ExtraChange::Delete(kind, key) => ((*kind, *key), None),
            };
            if last.insert(id, value).is_none() {
                order.push(id);
            }
        }
        let mut plan = ExtraPlan::default();
        for id in order {
            let kind = i16::from(id.0.code());
            let key =
                i64::try_from(id.1).map_err(|_| format!("extra record key {} too large", id.1))?;
            match last[&id] {
                Some(value) => {
                    plan.put_kinds.push(kind);
                    plan.put_keys.push(key);
                    plan.put_values.push(value);
                }
                None => {
                    plan.delete_kinds.push(kind);
                    plan.delete_keys.push(key);
                }
            }
        }
        Ok(plan)
    }

    fn is_empty(&self) -> bool {
        self.put_keys.is_empty() && self.delete_keys.is_empty()
    }
}

impl QueueStore for PostgresStore {
    fn load(&mut self) -> Result<Vec<JobRecord>, BackendError> {
        Ok(std::mem::take(&mut self.loaded))
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), BackendError> {
        self.commit_with_extras(changes, &[])
    }

    fn keeps_extras(&self) -> bool {
        true
    }

    fn load_extras(&mut self) -> Result<Vec<ExtraRecord>, BackendError> {
        Ok(std::mem::take(&mut self.loaded_extras))
    }

    fn commit_with_extras(
        &mut self,
        changes: &[Change],
        extras: &[ExtraChange],
    ) -> Result<(), BackendError> {
        let plan = {
            let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
            Plan::of(changes, &rows)
        };
        let extra = ExtraPlan::of(extras)?;
        if plan.inserts.is_empty() && plan.deletes.is_empty() && extra.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = plan.inserts.iter().map(|r| r.durable_id as i64).collect();
        let functions: Vec<&[u8]> = plan.inserts.iter().map(|r| &r.function[..]).collect();
        let uniques: Vec<&[u8]> = plan.inserts.iter().map(|r| &r.unique[..]).collect();
        let priorities: Vec<i16> = plan
            .inserts
            .iter()
            .map(|r| r.priority.index() as i16)
            .collect();
        let data: Vec<&[u8]> = plan.inserts.iter().map(|r| &r.data[..]).collect();
        let whens: Vec<Option<i64>> = plan.inserts.iter().map(|r| r.when).collect();
        let reducers: Vec<Option<&[u8]>> =
            plan.inserts.iter().map(|r| r.reducer.as_deref()).collect();
        let owner = self.cfg.owner.clone();
        let (client, statement) = self.commit_statement()?;
        let result = client.query_one(
            &statement,
            &[
                &owner,
                &plan.deletes,
                &ids,
                &functions,
                &uniques,
                &priorities,
                &data,
                &whens,
                &reducers,
                &extra.delete_kinds,
                &extra.delete_keys,
                &extra.put_kinds,
                &extra.put_keys,
                &extra.put_values,
            ],
        );
        let row = match result {
            Ok(row) => row,
            Err(e) => {
                self.failed(&e);
                return Err(e.into());
            }
        };
        let leased: i64 = row.try_get(0)?;
        if leased == 0 {
            lease::lost(&self.name, &self.cfg.owner);
        }
        let jobs: Vec<i64> = row.try_get(1)?;
        let new_rows: Vec<i64> = row.try_get(2)?;
        let mut map = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        for id in plan.forgotten {
            map.remove(&id);
        }
        for (job, row) in jobs.into_iter().zip(new_rows) {
            map.insert(job as u64, row);
        }
        Ok(())
    }

    fn max_batch(&self) -> usize {
        10_000
    }

    fn close(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.stop();
        }
        // Handing over: our rows go to whichever server looks next (or to us after a
        // restart), without waiting for the lease to run out.
        let owner = self.cfg.owner.clone();
        let name = self.name.clone();
        if let Ok(client) = self.connected() {
            let released = client.execute(
                "UPDATE gearmand_rs_owners SET lease_until = '-infinity' WHERE owner = $1",
                &[&owner],
            );
            if let Err(e) = released {
                tracing::warn!("{name}: cannot release the lease: {}", error_chain(&e));
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} (owner {})", self.name, self.cfg.owner)
    }

    fn check(&mut self) -> Option<Result<(), BackendError>> {
        let client = match self.connected() {
            Ok(client) => client,
            Err(e) => return Some(Err(e)),
        };
        Some(match client.is_valid(CHECK_TIMEOUT) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.client = None;
                self.commit = None;
                self.backoff.failed();
                Err(e.into())
            }
        })
    }

    fn takeovers(&mut self) -> Option<Takeovers> {
        self.takeovers.take()
    }

    fn lanes(&self) -> usize {
        LANES
    }

    fn fork(&mut self) -> Result<Box<dyn QueueStore>, BackendError> {
        Ok(Box::new(PostgresStore {
            cfg: self.cfg.clone(),
            pg: self.pg.clone(),
            name: self.name.clone(),
            client: None,
            commit: None,
            was_connected: false,
            backoff: Backoff::default(),
            rows: self.rows.clone(),
            loaded: Vec::new(),
            loaded_extras: Vec::new(),
            keeper: None,
            takeovers: None,
        }))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::secret::Secret;
    use bytes::Bytes;
    use gearman_core::proto::Priority;

    fn job(id: u64) -> JobRecord {
        JobRecord {
            durable_id: id,
            function: Bytes::from_static(b"f"),
            unique: Bytes::new(),
            priority: Priority::Normal,
            data: Bytes::from(id.to_string()),
            when: None,
            reducer: None,
        }
    }

    fn config(pg: &gearman_tests::Postgres) -> PostgresConfig {
        PostgresFlags {
            libpq_conninfo: pg.conninfo().parse().unwrap(),
            libpq_table: "queue".into(),
            libpq_lease: 30,
            libpq_owner: Some("a".into()),
        }
        .config(4730)
        .unwrap()
    }

    #[test]
    fn plan_cancels_insert_then_remove_and_replaces_committed_rows() {
        let rows = HashMap::from([(7, 70), (8, 80)]);
        let changes = [
            Change::Insert(job(1)),
            Change::Insert(job(2)),
            Change::Remove(1),
            Change::Remove(8),
            Change::Insert(job(7)),
            Change::Remove(9),
        ];
        let plan = Plan::of(&changes, &rows);
        let inserted: Vec<u64> = plan.inserts.iter().map(|r| r.durable_id).collect();
        assert_eq!(inserted, [2, 7]);
        assert_eq!(plan.deletes, [80, 70]);
        assert_eq!(plan.forgotten, [8, 7]);
    }

    /// A lock on the jobs table held by someone else (here `LOCK TABLE`, as `VACUUM FULL` or
    /// `ALTER TABLE` take) fails the commit after the lock timeout; the next one, after
    /// the lock is gone, succeeds on the same connection.
    #[test]
    fn a_commit_behind_a_table_lock_fails_after_the_lock_timeout() {
        let pg = gearman_tests::Postgres::start();
        let mut store = PostgresStore::open(&config(&pg)).unwrap();
        store.load().unwrap();
        store.commit(&[Change::Insert(job(1))]).unwrap();
        let mut locker = ::postgres::Client::connect(&pg.conninfo(), NoTls).unwrap();
        let mut lock = locker.transaction().unwrap();
        lock.batch_execute("LOCK TABLE gearmand_rs_jobs IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        // The commit runs on a thread: without the timeout it would wait for the lock
        // for ever, and the test must fail, not hang.
        let (tx, rx) = std::sync::mpsc::channel();
        let committer = std::thread::spawn(move || {
            let started = Instant::now();
            let result = store.commit(&[Change::Insert(job(2))]);
            let _ = tx.send((result.map_err(|e| error_chain(&*e)), started.elapsed()));
            store
        });
        let outcome = rx.recv_timeout(LOCK_TIMEOUT * 4);
        lock.rollback().unwrap();
        let (result, waited) = outcome.expect("the commit still waits for the table lock");
        let error = result.expect_err("a commit behind the lock succeeded");
        assert!(error.contains("lock timeout"), "{error}");
        assert!(
            waited >= LOCK_TIMEOUT - Duration::from_millis(100),
            "{waited:?}"
        );
        let mut store = committer.join().unwrap();
        store.commit(&[Change::Insert(job(3))]).unwrap();
        store.close();
    }

    /// Re-planning the commit for each group cost most of a small group's commit: every
    /// commit must run the one generic plan.
    #[test]
    fn commits_reuse_one_generic_plan() {
        let pg = gearman_tests::Postgres::start();
        let mut store = PostgresStore::open(&config(&pg)).unwrap();
        store.load().unwrap();
        for group in 1..=8u64 {
            let changes: Vec<Change> = (group * 100..group * 100 + group)
                .map(|id| Change::Insert(job(id)))
                .chain((group > 1).then_some(Change::Remove((group - 1) * 100)))
                .collect();
            store.commit(&changes).unwrap();
        }
        let client = store.client.as_mut().expect("connected by the commits");
        let plans = client
            .query_one(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements
                 WHERE statement = $1",
                &[&COMMIT],
            )
            .unwrap();
        let (generic, custom): (i64, i64) = (plans.get(0), plans.get(1));
        assert_eq!((generic, custom), (8, 0));
        store.close();
    }

    /// Planned while the jobs table was small, the commit scanned the whole table in each
    /// delete. Its plan must reach rows through keys, whatever the table's statistics say.
    #[test]
    fn the_commit_plan_scans_no_table() {
        let pg = gearman_tests::Postgres::start();
        let mut store = PostgresStore::open(&config(&pg)).unwrap();
        store.load().unwrap();
        store
            .commit(&[Change::Insert(job(1)), Change::Insert(job(2))])
            .unwrap();
        pg.psql("ANALYZE");
        let client = store.client.as_mut().expect("connected by the commit");
        client
            .batch_execute(&format!(
                "PREPARE probe(text, int8[], int8[], bytea[], bytea[], int2[], bytea[], int8[],
                               bytea[], int2[], int8[], int2[], int8[], bytea[]) AS {COMMIT}"
            ))
            .unwrap();
        let plan: Vec<String> = client
            .simple_query(
                "EXPLAIN EXECUTE probe('a', '{1}', '{7}', '{f}', '{u}', '{1}', '{d}', '{NULL}',
                                       '{NULL}', '{1}', '{1}', '{1}', '{2}', '{v}')",
            )
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                ::postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .collect();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan"), "{plan}");
        assert!(!plan.contains("Hash Join"), "{plan}");
        store.close();
    }

    #[test]
    fn secrets_do_not_print() {
        let s: Secret = "password=hunter2".parse().unwrap();
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        let flags = PostgresFlags {
            libpq_conninfo: s,
            libpq_table: "queue".into(),
            libpq_lease: 30,
            libpq_owner: None,
        };
        assert!(!format!("{flags:?}").contains("hunter2"));
        assert!(!format!("{:?}", flags.config(4730).unwrap()).contains("hunter2"));
    }

    #[test]
    fn flags_are_checked() {
        let flags = |conninfo: &str, table: &str, lease: u64| PostgresFlags {
            libpq_conninfo: conninfo.parse().unwrap(),
            libpq_table: table.into(),
            libpq_lease: lease,
            libpq_owner: None,
        };
        assert!(flags("", "queue", 30).config(1).is_err());
        assert!(flags("host=x", "queue; DROP TABLE x", 30)
            .config(1)
            .is_err());
        assert!(flags("host=x", "queue", 0).config(1).is_err());
        let err = flags("host=x password=hunter2 bogus", "queue", 30)
            .config(1)
            .unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let cfg = flags("host=x", "Gearman_Queue", 30).config(4731).unwrap();
        assert_eq!(cfg.gearmand_table, "gearman_queue");
        assert!(cfg.owner.ends_with(":4731"));
    }
}
