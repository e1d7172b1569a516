//! Taking over a gearmand libsqlite3 queue: its rows become our jobs, and its table is kept,
//! renamed, for the operator.
//!
//! gearmand's table (`gearman_queue` unless `--libsqlite3-table`) has the columns
//! `unique_key, function_name, priority, data, when_to_run` (older files lack
//! `when_to_run`) and is replayed by gearmand in table order; we keep that order within each
//! priority by numbering the rows by rowid.

use super::config::SqliteConfig;
use super::error::SqliteError;
use super::tables::{columns, JOBS, META};
use rusqlite::Connection;

/// Quotes an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Imports the gearmand table named in `cfg`, if the file has one, inside the caller's
/// transaction.
pub(super) fn gearmand_table(conn: &Connection, cfg: &SqliteConfig) -> Result<(), SqliteError> {
    let path = cfg.path.as_path();
    let fail = |what: &'static str| move |e| SqliteError::from_sqlite(path, what, e);
    let table = cfg.gearmand_table.as_str();
    if table.eq_ignore_ascii_case(JOBS) || table.eq_ignore_ascii_case(META) {
        return Err(SqliteError::SchemaMismatch {
            path: path.to_path_buf(),
            table: table.into(),
            detail: "this is gearmand-rs's own table, not a gearmand queue table name".into(),
        });
    }
    let cols = columns(conn, table).map_err(fail("cannot read the schema"))?;
    if cols.is_empty() {
        return Ok(());
    }
    for needed in ["unique_key", "function_name", "priority", "data"] {
        if !cols.iter().any(|c| c.eq_ignore_ascii_case(needed)) {
            return Err(SqliteError::SchemaMismatch {
                path: path.to_path_buf(),
                table: table.into(),
                detail: format!("not a gearmand queue table: no column {needed}"),
            });
        }
    }
    let when = if cols.iter().any(|c| c.eq_ignore_ascii_case("when_to_run")) {
        "NULLIF(when_to_run, 0)"
    } else {
        "NULL"
    };
    // Past every key in use: a dead letter or retry state is keyed by its job's old
    // durable id, and an imported job given that number would be taken for it at restore.
    let next: i64 = conn
        .query_row(
            "SELECT MAX((SELECT COALESCE(MAX(durable_id), 0) FROM gearmand_rs_jobs),
                        (SELECT COALESCE(MAX(key), 0) FROM gearmand_rs_extras)) + 1",
            [],
            |r| r.get(0),
        )
        .map_err(fail("cannot import the gearmand queue"))?;
    // Priorities outside 0..=2 cannot come from gearmand; they are clamped rather than
    // refused so one odd row does not hold the whole queue hostage.
    let moved = conn
        .execute(
            &format!(
                "INSERT INTO gearmand_rs_jobs
                   (durable_id, function, unique_key, priority, data, when_to_run, reducer)
                 SELECT ?1 + ROW_NUMBER() OVER (ORDER BY rowid) - 1,
                        CAST(COALESCE(function_name, '') AS BLOB),
                        CAST(COALESCE(unique_key, '') AS BLOB),
                        MIN(MAX(COALESCE(priority, 1), 0), 2),
                        CAST(COALESCE(data, X'') AS BLOB),
                        {when}, NULL
                 FROM {}",
                quoted(table)
            ),
            [next],
        )
        .map_err(fail("cannot import the gearmand queue"))?;
    let aside = free_name(conn, &format!("{table}_imported_by_gearmand_rs"))
        .map_err(fail("cannot read the schema"))?;
    conn.execute_batch(&format!(
        "ALTER TABLE {} RENAME TO {}",
        quoted(table),
        quoted(&aside)
    ))
    .map_err(fail("cannot set the imported gearmand table aside"))?;
    tracing::warn!(
        "imported {moved} job(s) from gearmand table {table} of {}; that table is kept, \
         unused, as {aside}",
        path.display()
    );
    Ok(())
}

/// `base`, or `base_2`, `base_3`... whichever names no table yet, so an earlier import's
/// copy is never overwritten.
fn free_name(conn: &Connection, base: &str) -> rusqlite::Result<String> {
    let mut name = base.to_string();
    let mut n = 1u32;
    while !columns(conn, &name)?.is_empty() {
        n += 1;
        name = format!("{base}_{n}");
    }
    Ok(name)
}
