//! Map/reduce bookkeeping for a worker (libgearman's partition function + aggregator,
//! protocol.md §2.10), without I/O: which reducer jobs a map job's pieces become, and how
//! their results become the aggregator's input. Adapters run the jobs.

use super::{AssignedJob, WorkError};
use crate::client::Job;
use bytes::Bytes;

/// What to do with the pieces a mapper returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapPlan {
    /// Run these foreground jobs (one per piece, on the job's reducer function, in piece
    /// order), then [`collect`] their results.
    Reduce(Vec<Job>),
    /// The job has no reducer: the pieces go straight to the aggregator.
    Aggregate(Vec<Bytes>),
}

/// Plans the reduce step for `job` whose mapper returned `pieces`. An empty reducer counts
/// as none (gearmand sends JOB_ASSIGN_UNIQ, not JOB_ASSIGN_ALL, for a job without one).
pub fn plan(job: &AssignedJob, pieces: Vec<Bytes>) -> MapPlan {
    match job.reducer.as_ref().filter(|r| !r.is_empty()) {
        Some(reducer) => MapPlan::Reduce(
            pieces
                .into_iter()
                .map(|piece| Job::new(reducer.clone(), piece))
                .collect(),
        ),
        None => MapPlan::Aggregate(pieces),
    }
}

/// The aggregator's input from the reducer jobs' results, in piece order; any failure
/// fails the map job (libgearman: a failed reducer task fails the whole job).
pub fn collect<E>(
    results: impl IntoIterator<Item = Result<Bytes, E>>,
) -> Result<Vec<Bytes>, WorkError> {
    results
        .into_iter()
        .map(|r| r.map_err(|_| WorkError::Fail))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::CallError;

    fn job(reducer: Option<&'static [u8]>) -> AssignedJob {
        AssignedJob {
            handle: Bytes::from_static(b"H:1"),
            function: Bytes::from_static(b"map"),
            unique: Bytes::new(),
            reducer: reducer.map(Bytes::from_static),
            data: Bytes::from_static(b"a b"),
        }
    }

    #[test]
    fn pieces_become_reducer_jobs_in_order() {
        let pieces = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let want = MapPlan::Reduce(vec![Job::new("up", "a"), Job::new("up", "b")]);
        assert_eq!(plan(&job(Some(b"up")), pieces.clone()), want);
        assert_eq!(
            plan(&job(None), pieces.clone()),
            MapPlan::Aggregate(pieces.clone())
        );
        assert_eq!(
            plan(&job(Some(b"")), pieces.clone()),
            MapPlan::Aggregate(pieces)
        );
    }

    #[test]
    fn one_failed_piece_fails_the_job() {
        let ok = [Ok(Bytes::from_static(b"A")), Ok(Bytes::from_static(b"B"))];
        assert_eq!(collect(ok.clone()).unwrap(), [&b"A"[..], b"B"]);
        let bad = [ok[0].clone(), Err(CallError::JobFailed)];
        assert_eq!(collect(bad), Err(WorkError::Fail));
    }
}
