//! Opening, validating and migrating the SQLite file, and reading jobs back.

use super::{StoreConfig, StoreError};
use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::JobRecord;
use rusqlite::{Connection, OpenFlags};

pub(super) fn error(cfg: &StoreConfig, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{}: {what}: {e}", cfg.path.display()))
}

const OUR_TABLE: &str = "CREATE TABLE IF NOT EXISTS gearmand_rs_jobs (
    durable_id INTEGER PRIMARY KEY,
    function BLOB NOT NULL,
    unique_key BLOB NOT NULL,
    priority INTEGER NOT NULL,
    data BLOB NOT NULL,
    when_to_run INTEGER,
    reducer BLOB)";

const OUR_COLUMNS: [&str; 7] = [
    "durable_id",
    "function",
    "unique_key",
    "priority",
    "data",
    "when_to_run",
    "reducer",
];

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |row| row.get::<_, String>(0))?
        .collect();
    names
}

/// Opens the file read-write, proves it is a healthy SQLite database we can write, creates
/// our table, and imports a gearmand queue table if present.
pub(super) fn open(cfg: &StoreConfig) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let mut conn =
        Connection::open_with_flags(&cfg.path, flags).map_err(|e| error(cfg, "cannot open", e))?;
    conn.busy_timeout(std::time::Duration::from_secs(6))
        .map_err(|e| error(cfg, "cannot configure", e))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| error(cfg, "not a usable SQLite database", e))?;
    if check != "ok" {
        return Err(error(cfg, "database is corrupt", check));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| {
            error(
                cfg,
                "cannot enable the write-ahead log (is the directory writable?)",
                e,
            )
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(error(cfg, "cannot enable the write-ahead log", mode));
    }
    conn.execute_batch("PRAGMA synchronous=FULL;")
        .map_err(|e| error(cfg, "cannot configure", e))?;
    conn.execute_batch(OUR_TABLE)
        .map_err(|e| error(cfg, "cannot create the job table (read-only?)", e))?;
    let have =
        columns(&conn, "gearmand_rs_jobs").map_err(|e| error(cfg, "cannot read the schema", e))?;
    if have != OUR_COLUMNS {
        return Err(error(
            cfg,
            "table gearmand_rs_jobs has an unexpected schema",
            have.join(", "),
        ));
    }
    import_gearmand(&mut conn, cfg)?;
    Ok(conn)
}

/// Moves the rows of a gearmand libsqlite3 queue table into ours, in one transaction,
/// keeping gearmand's table renamed aside (never deleted) for the operator.
fn import_gearmand(conn: &mut Connection, cfg: &StoreConfig) -> Result<(), StoreError> {
    let table = &cfg.gearmand_table;
    let cols = columns(conn, table).map_err(|e| error(cfg, "cannot read the schema", e))?;
    if cols.is_empty() {
        return Ok(());
    }
    for needed in ["unique_key", "function_name", "priority", "data"] {
        if !cols.iter().any(|c| c == needed) {
            return Err(error(
                cfg,
                &format!("table {table} is not a gearmand queue table"),
                format!("no column {needed}"),
            ));
        }
    }
    let when = if cols.iter().any(|c| c == "when_to_run") {
        "when_to_run"
    } else {
        "0"
    };
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let aside = format!("\"{}_imported_by_gearmand_rs\"", table.replace('"', "\"\""));
    let tx = conn
        .transaction()
        .map_err(|e| error(cfg, "cannot import", e))?;
    let next: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(durable_id), 0) + 1 FROM gearmand_rs_jobs",
            [],
            |r| r.get(0),
        )
        .map_err(|e| error(cfg, "cannot import", e))?;
    let moved = tx
        .execute(
            &format!(
                "INSERT INTO gearmand_rs_jobs (durable_id, function, unique_key, priority, data, when_to_run, reducer)
                 SELECT {next} + ROW_NUMBER() OVER (ORDER BY rowid) - 1,
                        CAST(function_name AS BLOB), CAST(COALESCE(unique_key, '') AS BLOB),
                        MIN(MAX(COALESCE(priority, 1), 0), 2), CAST(COALESCE(data, X'') AS BLOB),
                        NULLIF({when}, 0), NULL
                 FROM {quoted}"
            ),
            [],
        )
        .map_err(|e| error(cfg, &format!("cannot import gearmand table {table}"), e))?;
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {aside}; ALTER TABLE {quoted} RENAME TO {aside};"
    ))
    .map_err(|e| error(cfg, "cannot set the imported gearmand table aside", e))?;
    tx.commit().map_err(|e| error(cfg, "cannot import", e))?;
    tracing::warn!("imported {moved} job(s) from gearmand table {table}; it is kept as {aside}");
    Ok(())
}

/// Every stored job, in priority then arrival order.
pub(super) fn load(conn: &Connection) -> rusqlite::Result<Vec<JobRecord>> {
    let mut stmt = conn.prepare(
        "SELECT durable_id, function, unique_key, priority, data, when_to_run, reducer
         FROM gearmand_rs_jobs ORDER BY priority, durable_id",
    )?;
    let rows = stmt.query_map([], |row| {
        let priority = match row.get::<_, i64>(3)? {
            0 => Priority::High,
            2 => Priority::Low,
            _ => Priority::Normal,
        };
        Ok(JobRecord {
            durable_id: row.get::<_, i64>(0)? as u64,
            function: Bytes::from(row.get::<_, Vec<u8>>(1)?),
            unique: Bytes::from(row.get::<_, Vec<u8>>(2)?),
            priority,
            data: Bytes::from(row.get::<_, Vec<u8>>(4)?),
            when: row.get::<_, Option<i64>>(5)?,
            reducer: row.get::<_, Option<Vec<u8>>>(6)?.map(Bytes::from),
        })
    })?;
    rows.collect()
}
