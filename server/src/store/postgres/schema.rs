//! The tables, the import of gearmand's table, and reading this server's rows on start.
//!
//! gearmand 1.1.20's `-q postgres` creates `queue (unique_key VARCHAR(64), function_name
//! VARCHAR(255), priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key,
//! function_name))` and splices `--libpq-table` into its SQL unquoted (gearmand #390). We
//! accept only a plain identifier for it, fold it to lower case as PostgreSQL folded
//! gearmand's name, and still quote it.

use super::config::PostgresConfig;
use crate::store::seam::error_chain;
use ::postgres::{Client, Row, Transaction};
use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord};
use std::collections::HashSet;

/// Our tables.
const JOBS: &str = "gearmand_rs_jobs";
const OWNERS: &str = "gearmand_rs_owners";
const EXTRAS: &str = "gearmand_rs_extras";

/// No index on `owner` (see [`DROP_OWNER_INDEX`]).
const CREATE: &str = "
CREATE TABLE IF NOT EXISTS gearmand_rs_jobs (
    id BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    server_job BIGINT NOT NULL,
    function BYTEA NOT NULL,
    unique_key BYTEA NOT NULL,
    priority SMALLINT NOT NULL,
    data BYTEA NOT NULL,
    when_to_run BIGINT,
    reducer BYTEA);
CREATE TABLE IF NOT EXISTS gearmand_rs_owners (
    owner TEXT PRIMARY KEY,
    lease_until TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS gearmand_rs_extras (
    owner TEXT NOT NULL,
    kind SMALLINT NOT NULL,
    key BIGINT NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (owner, kind, key));";

/// Earlier versions indexed `owner`. Every row of a server's queue has the same owner, so
/// the planner ANDed a scan of that index (the whole queue) into each commit's delete by
/// id: a commit's cost grew with the queue. Only rare statements read by owner (a server's
/// start, a takeover), and a table scan serves them. Dropped in a transaction of its own,
/// so the drop's exclusive lock does not last through the start's reading of every row
/// (other servers on the database would wait for it).
const DROP_OWNER_INDEX: &str = "DROP INDEX IF EXISTS gearmand_rs_jobs_owner";

const JOBS_LAYOUT: [&str; 9] = [
    "id",
    "owner",
    "server_job",
    "function",
    "unique_key",
    "priority",
    "data",
    "when_to_run",
    "reducer",
];
const OWNERS_LAYOUT: [&str; 2] = ["owner", "lease_until"];
const EXTRAS_LAYOUT: [&str; 4] = ["owner", "kind", "key", "value"];

/// The columns [`job_of`] reads, in its order.
pub(super) const JOB_COLUMNS: &str =
    "id, function, unique_key, priority, data, when_to_run, reducer";

/// Serialises schema changes and imports between servers starting at once.
const SCHEMA_LOCK: i64 = 0x6765_6172_6d61_6e64; // "gearmand"

/// Quotes an identifier (already validated; quoting keeps it from ever being SQL).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What a server finds in the database on start.
pub(super) struct Stored {
    /// Its rows: row id and job (with its durable id), in priority then arrival order.
    pub(super) jobs: Vec<(i64, JobRecord)>,
    /// Its records beyond the job queue, of the kinds this version knows, in kind then key
    /// order.
    pub(super) extras: Vec<ExtraRecord>,
}

/// In one transaction: create or check our tables, import gearmand's table, adopt rows
/// whose owner has no lease row at all, take this server's lease, and read its rows and
/// extra records.
///
/// A job keeps the durable id it was stored under (`server_job`), so the extra records
/// keyed by it (retry state, a dead letter that replaces it) still name it after a
/// restart. A row without one of its own (imported, adopted, or a duplicate) gets a new id
/// past every stored one, written back in the same transaction.
pub(super) fn prepare(client: &mut Client, cfg: &PostgresConfig) -> Result<Stored, String> {
    let fail =
        |what: &'static str| move |e: ::postgres::Error| format!("{what}: {}", error_chain(&e));
    client
        .batch_execute(DROP_OWNER_INDEX)
        .map_err(fail("cannot drop the index on owner"))?;
    let mut tx = client
        .transaction()
        .map_err(fail("cannot start a transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(fail("cannot lock the schema"))?;
    tx.batch_execute(CREATE)
        .map_err(fail("cannot create the tables"))?;
    expect_columns(&mut tx, JOBS, &JOBS_LAYOUT)?;
    expect_columns(&mut tx, OWNERS, &OWNERS_LAYOUT)?;
    expect_columns(&mut tx, EXTRAS, &EXTRAS_LAYOUT)?;
    import(&mut tx, cfg)?;
    // Rows whose owner row is gone (deleted by hand) would otherwise never run.
    let orphans = tx
        .execute(
            "UPDATE gearmand_rs_jobs j SET owner = $1, server_job = 0 WHERE NOT EXISTS
               (SELECT 1 FROM gearmand_rs_owners o WHERE o.owner = j.owner)",
            &[&cfg.owner],
        )
        .map_err(fail("cannot adopt rows without an owner"))?;
    if orphans > 0 {
        tracing::warn!("adopted {orphans} stored job(s) that had no owner");
    }
    tx.execute(
        "INSERT INTO gearmand_rs_owners (owner, lease_until)
         VALUES ($1, now() + $2::int8 * interval '1 millisecond')
         ON CONFLICT (owner) DO UPDATE SET lease_until = EXCLUDED.lease_until",
        &[&cfg.owner, &(cfg.lease.as_millis() as i64)],
    )
    .map_err(fail("cannot take the lease"))?;
    let rows = tx
        .query(
            &format!(
                "SELECT {JOB_COLUMNS}, server_job FROM gearmand_rs_jobs WHERE owner = $1
                 ORDER BY priority, id"
            ),
            &[&cfg.owner],
        )
        .map_err(fail("cannot read the stored jobs"))?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        let (id, record) = job_of(row).map_err(fail("cannot read the stored jobs"))?;
        let server_job: i64 = row
            .try_get(7)
            .map_err(fail("cannot read the stored jobs"))?;
        jobs.push((id, server_job, record));
    }
    let extras = read_extras(&mut tx, &cfg.owner)?;
    let jobs = number(&mut tx, jobs, &extras)?;
    tx.commit().map_err(fail("cannot commit"))?;
    let extras = extras
        .into_iter()
        .filter_map(|(code, key, value)| {
            Some(ExtraRecord {
                kind: ExtraKind::from_code(u8::try_from(code).ok()?)?,
                key,
                value: Bytes::from(value),
            })
        })
        .collect();
    Ok(Stored { jobs, extras })
}

/// This owner's extra records, every kind, as stored: `(kind code, key, value)`.
fn read_extras(tx: &mut Transaction<'_>, owner: &str) -> Result<Vec<(i16, u64, Vec<u8>)>, String> {
    let rows = tx
        .query(
            "SELECT kind, key, value FROM gearmand_rs_extras WHERE owner = $1
             ORDER BY kind, key",
            &[&owner],
        )
        .map_err(|e| {
            format!(
                "cannot read the stored records beyond the queue: {}",
                error_chain(&e)
            )
        })?;
    rows.iter()
        .map(|r| {
            let key: i64 = r.get(1);
            Ok((r.get(0), u64::try_from(key).unwrap_or(0), r.get(2)))
        })
        .collect()
}

/// Gives each job its durable id: the stored one when it has one of its own, else a new one
/// past every stored id and extra key, written back to its row.
fn number(
    tx: &mut Transaction<'_>,
    jobs: Vec<(i64, i64, JobRecord)>,
    extras: &[(i16, u64, Vec<u8>)],
) -> Result<Vec<(i64, JobRecord)>, String> {
    let mut next = jobs
        .iter()
        .map(|(_, server_job, _)| u64::try_from(*server_job).unwrap_or(0))
        .chain(extras.iter().map(|(_, key, _)| *key))
        .max()
        .unwrap_or(0)
        + 1;
    let mut taken = HashSet::new();
    let (mut rows, mut ids) = (Vec::new(), Vec::new());
    let numbered = jobs
        .into_iter()
        .map(|(row, server_job, mut record)| {
            record.durable_id = match u64::try_from(server_job) {
                Ok(id) if id > 0 && taken.insert(id) => id,
                _ => {
                    let id = next;
                    next += 1;
                    rows.push(row);
                    ids.push(id as i64);
                    id
                }
            };
            (row, record)
        })
        .collect();
    if !rows.is_empty() {
        tx.execute(
            "UPDATE gearmand_rs_jobs j SET server_job = n.id
             FROM UNNEST($1::int8[], $2::int8[]) AS n(row_id, id) WHERE j.id = n.row_id",
            &[&rows, &ids],
        )
        .map_err(|e| format!("cannot number the stored jobs: {}", error_chain(&e)))?;
    }
    Ok(numbered)
}

fn expect_columns(tx: &mut Transaction<'_>, table: &str, want: &[&str]) -> Result<(), String> {
    let have =
        columns(tx, table).map_err(|e| format!("cannot read the schema: {}", error_chain(&e)))?;
    if have.iter().map(String::as_str).eq(want.iter().copied()) {
        return Ok(());
    }
    Err(format!(
        "table {table} has columns ({}), expected ({})",
        have.join(", "),
        want.join(", ")
    ))
}

/// Column names of `table` in the current schema, in order; empty if there is none.
fn columns(tx: &mut Transaction<'_>, table: &str) -> Result<Vec<String>, ::postgres::Error> {
    Ok(tx
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1
             ORDER BY ordinal_position",
            &[&table],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Moves gearmand's rows into ours (owned by this server) and renames its table aside.
fn import(tx: &mut Transaction<'_>, cfg: &PostgresConfig) -> Result<(), String> {
    let table = cfg.gearmand_table.as_str();
    let fail =
        |what: &'static str| move |e: ::postgres::Error| format!("{what}: {}", error_chain(&e));
    let cols = columns(tx, table).map_err(fail("cannot read the schema"))?;
    if cols.is_empty() {
        return Ok(());
    }
    for needed in ["unique_key", "function_name", "priority", "data"] {
        if !cols.iter().any(|c| c == needed) {
            return Err(format!(
                "table {table} is not a gearmand queue table: no column {needed}"
            ));
        }
    }
    let when = if cols.iter().any(|c| c == "when_to_run") {
        "NULLIF(when_to_run, 0)::int8"
    } else {
        "NULL::int8"
    };
    // gearmand sent its bytes as text in the database encoding; convert_to gives them back.
    // Priorities outside 0..=2 cannot come from gearmand and are clamped.
    let moved = tx
        .execute(
            &format!(
                "INSERT INTO gearmand_rs_jobs
                   (owner, server_job, function, unique_key, priority, data, when_to_run,
                    reducer)
                 SELECT $1, 0,
                        convert_to(COALESCE(function_name::text, ''), getdatabaseencoding()),
                        convert_to(COALESCE(unique_key::text, ''), getdatabaseencoding()),
                        LEAST(GREATEST(COALESCE(priority, 1), 0), 2),
                        COALESCE(data, ''::bytea), {when}, NULL
                 FROM {} ORDER BY ctid",
                quoted(table)
            ),
            &[&cfg.owner],
        )
        .map_err(fail("cannot import gearmand's queue table"))?;
    let mut aside = format!("{table}_imported_by_gearmand_rs");
    let mut n = 1;
    while !columns(tx, &aside)
        .map_err(fail("cannot read the schema"))?
        .is_empty()
    {
        n += 1;
        aside = format!("{table}_imported_by_gearmand_rs_{n}");
    }
    tx.batch_execute(&format!(
        "ALTER TABLE {} RENAME TO {}",
        quoted(table),
        quoted(&aside)
    ))
    .map_err(fail("cannot set gearmand's queue table aside"))?;
    tracing::warn!(
        "imported {moved} job(s) from gearmand table {table}; that table is kept, unused, \
         as {aside}"
    );
    Ok(())
}

/// A row read with [`JOB_COLUMNS`]: its id and the job (durable id not assigned yet).
pub(super) fn job_of(row: &Row) -> Result<(i64, JobRecord), ::postgres::Error> {
    let priority = match row.try_get::<_, i16>(3)? {
        0 => Priority::High,
        2 => Priority::Low,
        _ => Priority::Normal,
    };
    let bytes = |i: usize| -> Result<Bytes, ::postgres::Error> {
        Ok(Bytes::from(row.try_get::<_, Vec<u8>>(i)?))
    };
    Ok((
        row.try_get(0)?,
        JobRecord {
            durable_id: 0,
            function: bytes(1)?,
            unique: bytes(2)?,
            priority,
            data: bytes(4)?,
            when: row.try_get(5)?,
            reducer: row.try_get::<_, Option<Vec<u8>>>(6)?.map(Bytes::from),
        },
    ))
}
