//! Opening the SQLite file: proving it is healthy and writable, creating or checking our
//! tables, and reading the stored jobs back.

use super::config::{SqliteConfig, SyncMode};
use super::error::SqliteError;
use super::import;
use super::tables::{columns, EXTRAS, EXTRAS_COLUMNS, JOBS, JOBS_COLUMNS, META, SCHEMA_VERSION};
use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, DatabaseName, OpenFlags, Row, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

const CREATE_JOBS: &str = "CREATE TABLE IF NOT EXISTS gearmand_rs_jobs (
    durable_id INTEGER PRIMARY KEY,
    function BLOB NOT NULL,
    unique_key BLOB NOT NULL,
    priority INTEGER NOT NULL,
    data BLOB NOT NULL,
    when_to_run INTEGER,
    reducer BLOB)";
/// Added beside the job table in the same schema version: an older gearmand-rs ignores it.
const CREATE_EXTRAS: &str = "CREATE TABLE IF NOT EXISTS gearmand_rs_extras (
    kind INTEGER NOT NULL,
    key INTEGER NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (kind, key))";
const CREATE_META: &str =
    "CREATE TABLE IF NOT EXISTS gearmand_rs_meta (key TEXT PRIMARY KEY, value INTEGER)";
const META_COLUMNS: [&str; 2] = ["key", "value"];

/// gearmand's busy timeout, so both behave alike when something else holds the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(6);
/// Bound on the write-ahead log file kept after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Opens the file, proves it is a healthy SQLite database that we can write, creates or
/// checks our tables and imports a gearmand queue table, all before any job is accepted.
///
/// On a full disk SQLite cannot size its shared-memory index (the `-shm` file, rebuilt
/// after a crash), so the file is opened again in exclusive locking mode, which keeps that
/// index in memory: the stored jobs are then still restored and served.
pub(super) fn open(cfg: &SqliteConfig) -> Result<Connection, SqliteError> {
    match open_with(cfg, false) {
        Err(SqliteError::Unwritable { .. }) if cfg.path.is_file() => {
            let conn = open_with(cfg, true)?;
            tracing::warn!(
                "queue file {}: no room for its -shm index; opened in exclusive locking \
                 mode (other processes cannot read it while gearmand-rs runs)",
                cfg.path.display()
            );
            Ok(conn)
        }
        other => other,
    }
}

fn open_with(cfg: &SqliteConfig, exclusive: bool) -> Result<Connection, SqliteError> {
    let path = cfg.path.as_path();
    let fail = |what: &'static str| move |e| SqliteError::from_sqlite(path, what, e);
    if path.is_dir() {
        return Err(SqliteError::Unwritable {
            path: path.to_path_buf(),
            detail: "it is a directory".into(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(fail("cannot open"))?;
    // SQLite quietly opens a write-protected file read-only; we would only find out at the
    // first submission.
    if conn
        .is_readonly(DatabaseName::Main)
        .map_err(fail("cannot open"))?
    {
        return Err(SqliteError::Unwritable {
            path: path.to_path_buf(),
            detail: "the file is write-protected".into(),
        });
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(fail("cannot configure"))?;
    if exclusive {
        // Before the first access, so that the WAL index never goes to shared memory.
        conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE")
            .map_err(fail("cannot configure"))?;
    }
    // Reading the schema reads the header: a file that is not SQLite fails here.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(fail("cannot read"))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(fail("cannot check"))?;
    if check != "ok" {
        return Err(SqliteError::Corrupt {
            path: path.to_path_buf(),
            detail: check,
        });
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(fail("cannot enable the write-ahead log"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::Unwritable {
            path: path.to_path_buf(),
            detail: format!("cannot enable the write-ahead log (journal mode stays {mode})"),
        });
    }
    let synchronous = match cfg.sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={synchronous}; PRAGMA journal_size_limit={WAL_SIZE_LIMIT};"
    ))
    .map_err(fail("cannot configure"))?;
    migrate(&mut conn, cfg)?;
    Ok(conn)
}

/// Creates or checks our tables and imports gearmand's in one write transaction: it also
/// proves, before the first client, that the file and its directory are writable.
fn migrate(conn: &mut Connection, cfg: &SqliteConfig) -> Result<(), SqliteError> {
    let path = cfg.path.as_path();
    let fail = |what: &'static str| move |e| SqliteError::from_sqlite(path, what, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("cannot start a write transaction"))?;
    let meta = columns(&tx, META).map_err(fail("cannot read the schema"))?;
    let mut current = false;
    if !meta.is_empty() {
        expect_columns(path, META, &meta, &META_COLUMNS)?;
        let version: Option<i64> = tx
            .query_row(
                "SELECT value FROM gearmand_rs_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(fail("cannot read the schema version"))?;
        current = version == Some(SCHEMA_VERSION);
        if let Some(v) = version.filter(|&v| v != SCHEMA_VERSION) {
            return Err(SqliteError::SchemaMismatch {
                path: path.to_path_buf(),
                table: META.into(),
                detail: format!(
                    "schema version {v}, this gearmand-rs reads version {SCHEMA_VERSION}"
                ),
            });
        }
    }
    tx.execute_batch(&format!("{CREATE_JOBS}; {CREATE_EXTRAS}; {CREATE_META};"))
        .map_err(fail("cannot create the job table"))?;
    let jobs = columns(&tx, JOBS).map_err(fail("cannot read the schema"))?;
    expect_columns(path, JOBS, &jobs, &JOBS_COLUMNS)?;
    let extras = columns(&tx, EXTRAS).map_err(fail("cannot read the schema"))?;
    expect_columns(path, EXTRAS, &extras, &EXTRAS_COLUMNS)?;
    import::gearmand_table(&tx, cfg)?;
    // This write proves the file writable before the first client. On a full disk a file
    // already at this schema is still served: its stored jobs are restored and drain, and
    // commits (new background jobs, deletes) fail until writes succeed again.
    let written = tx.execute(
        "INSERT OR REPLACE INTO gearmand_rs_meta (key, value) VALUES ('schema_version', ?1)",
        [SCHEMA_VERSION],
    );
    let written = written.and_then(|_| tx.commit());
    match written {
        Ok(()) => Ok(()),
        Err(e) if current && out_of_space(&e) => {
            tracing::warn!(
                "queue file {} cannot be written ({e}): serving its stored jobs; new \
                 background jobs are refused until writes succeed again",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(fail("cannot write the schema version")(e)),
    }
}

/// A write failed for want of space (SQLITE_FULL) or with an I/O error (a file-size
/// limit, EFBIG, and some full file systems report as SQLITE_IOERR).
fn out_of_space(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
    )
}

fn expect_columns(
    path: &Path,
    table: &str,
    have: &[String],
    want: &[&str],
) -> Result<(), SqliteError> {
    if have.iter().map(String::as_str).eq(want.iter().copied()) {
        return Ok(());
    }
    Err(SqliteError::SchemaMismatch {
        path: path.to_path_buf(),
        table: table.into(),
        detail: format!(
            "columns ({}), expected ({})",
            have.join(", "),
            want.join(", ")
        ),
    })
}

/// Every stored job, in priority then arrival (durable id) order.
pub(super) fn load(conn: &Connection, path: &Path) -> Result<Vec<JobRecord>, SqliteError> {
    let fail = |e| SqliteError::from_sqlite(path, "cannot read the stored jobs", e);
    let mut stmt = conn
        .prepare(
            "SELECT durable_id, function, unique_key, priority, data, when_to_run, reducer
             FROM gearmand_rs_jobs ORDER BY priority, durable_id",
        )
        .map_err(fail)?;
    let rows = stmt.query_map([], record).map_err(fail)?;
    rows.collect::<rusqlite::Result<_>>().map_err(fail)
}

/// Every stored record beyond the job queue of a kind this version knows, in kind then key
/// order.
pub(super) fn load_extras(conn: &Connection, path: &Path) -> Result<Vec<ExtraRecord>, SqliteError> {
    let fail = |e| SqliteError::from_sqlite(path, "cannot read the stored records", e);
    let mut stmt = conn
        .prepare("SELECT kind, key, value FROM gearmand_rs_extras ORDER BY kind, key")
        .map_err(fail)?;
    let rows = stmt.query_map([], extra_record).map_err(fail)?;
    let rows: Vec<Option<ExtraRecord>> = rows.collect::<rusqlite::Result<_>>().map_err(fail)?;
    Ok(rows.into_iter().flatten().collect())
}

/// A row of [`EXTRAS`]; `None` for a kind a newer version wrote (kept in the file).
fn extra_record(row: &Row<'_>) -> rusqlite::Result<Option<ExtraRecord>> {
    let kind: i64 = row.get(0)?;
    let key: i64 = row.get(1)?;
    let Some(kind) = u8::try_from(kind).ok().and_then(ExtraKind::from_code) else {
        return Ok(None);
    };
    let key = u64::try_from(key).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(1, key))?;
    let value = match row.get_ref(2)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => Bytes::copy_from_slice(b),
        other => {
            return Err(rusqlite::Error::InvalidColumnType(
                2,
                EXTRAS_COLUMNS[2].into(),
                other.data_type(),
            ))
        }
    };
    Ok(Some(ExtraRecord { kind, key, value }))
}

fn record(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let id: i64 = row.get(0)?;
    let priority = match row.get::<_, i64>(3)? {
        0 => Priority::High,
        1 => Priority::Normal,
        2 => Priority::Low,
        other => return Err(rusqlite::Error::IntegralValueOutOfRange(3, other)),
    };
    Ok(JobRecord {
        durable_id: u64::try_from(id)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, id))?,
        function: bytes_at(row, 1)?.unwrap_or_default(),
        unique: bytes_at(row, 2)?.unwrap_or_default(),
        priority,
        data: bytes_at(row, 4)?.unwrap_or_default(),
        when: row.get::<_, Option<i64>>(5)?,
        reducer: bytes_at(row, 6)?,
    })
}

/// A BLOB or TEXT column as bytes (rows edited by hand with the sqlite3 shell are TEXT).
fn bytes_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Bytes>> {
    match row.get_ref(index)? {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Some(Bytes::copy_from_slice(b))),
        other => Err(rusqlite::Error::InvalidColumnType(
            index,
            JOBS_COLUMNS.get(index).copied().unwrap_or("?").into(),
            other.data_type(),
        )),
    }
}
