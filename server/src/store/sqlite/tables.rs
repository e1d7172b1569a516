//! Names and layout of our tables, and reading a table's columns: shared by opening the
//! file (`schema`) and importing gearmand's table (`import`).

use rusqlite::Connection;

/// Our job table: one row per durable background job, keyed by the server's durable id
/// (so jobs with an empty unique never overwrite each other, unlike gearmand's
/// `(unique_key, function_name)` key). The id also gives the arrival order.
pub(super) const JOBS: &str = "gearmand_rs_jobs";
/// Records beyond the job queue (retry state, dead letters, schedules), keyed by kind and
/// key; the values are the core's encoding.
pub(super) const EXTRAS: &str = "gearmand_rs_extras";
/// Small key/value table: schema version, so a newer layout is refused, not misread.
pub(super) const META: &str = "gearmand_rs_meta";
/// Layout version written to [`META`].
pub(super) const SCHEMA_VERSION: i64 = 1;

/// Our job table's columns, in order.
pub(super) const JOBS_COLUMNS: [&str; 7] = [
    "durable_id",
    "function",
    "unique_key",
    "priority",
    "data",
    "when_to_run",
    "reducer",
];

/// [`EXTRAS`]'s columns, in order.
pub(super) const EXTRAS_COLUMNS: [&str; 3] = ["kind", "key", "value"];

/// Column names of `table` in declaration order; empty if there is no such table.
pub(super) fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |row| row.get::<_, String>(0))?
        .collect();
    names
}
