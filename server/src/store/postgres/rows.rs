//! Which database row holds each of this server's jobs: durable ids are the server's own,
//! rows are shared, so a job taken over from another server gets a new durable id here and
//! its row is remembered under it.

use crate::store::seam::Adopted;
use gearman_core::server::JobRecord;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which row holds each job of this server: the server's durable ids are its own, rows are
/// shared, so a row taken over gets a new durable id here.
pub(super) type RowIds = Arc<Mutex<HashMap<u64, i64>>>;

/// Jobs adopted from rows: each gets the next durable id of this server and its row is
/// remembered under it.
pub(super) fn adopted(jobs: Vec<(i64, JobRecord)>, rows: RowIds) -> Adopted {
    Adopted::new(
        jobs.iter().map(|(_, r)| r.clone()).collect(),
        Box::new(move |ids: &[u64]| {
            let mut map = rows.lock().unwrap_or_else(|p| p.into_inner());
            for ((row, _), id) in jobs.iter().zip(ids) {
                map.insert(*id, *row);
            }
        }),
    )
}
