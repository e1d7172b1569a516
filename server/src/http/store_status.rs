//! The durable queue's backend in `/metrics` and `/api/status`: which backend (`-q` name),
//! whether it answers (its last commit or idle health check succeeded), and the jobs taken
//! over from other servers sharing its database. Commit counters and latency are encoded
//! beside the rest of the metrics; `/api/status` repeats them here.

use crate::core_channel::{CoreReport, StoreInfo};
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Backends that reconnect by themselves while their database is away.
const RECONNECTING: [&str; 2] = [
    crate::store::postgres::QUEUE_TYPE,
    crate::store::redis::QUEUE_TYPE,
];

/// `up`, or what the store is doing while it does not answer.
fn health(info: &StoreInfo, up: bool) -> &'static str {
    match up {
        true => "up",
        false if RECONNECTING.contains(&info.backend) => "reconnecting",
        false => "failing",
    }
}

/// `gearman_store_info{backend}`, `gearman_store_up` and `gearman_store_jobs_taken_over`.
pub(super) fn encode(e: &mut DescriptorEncoder, report: &CoreReport) -> std::fmt::Result {
    let Some(info) = &report.store_info else {
        return Ok(());
    };
    let mut m = e.encode_descriptor(
        "gearman_store_info",
        "The durable queue backend (-q), as a label",
        None,
        MetricType::Gauge,
    )?;
    m.encode_family(&[("backend", info.backend)])?
        .encode_gauge(&1u64)?;
    if let Some(commits) = &report.store {
        let mut m = e.encode_descriptor(
            "gearman_store_up",
            "1 when the durable queue's last commit or health check succeeded, 0 while it \
             fails (PostgreSQL and Redis reconnect meanwhile)",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&u64::from(commits.up))?;
    }
    if let Some(taken) = info.jobs_taken_over {
        let mut m = e.encode_descriptor(
            "gearman_store_jobs_taken_over",
            "Jobs this server took over from servers whose lease on the shared database ran \
             out",
            None,
            MetricType::Counter,
        )?;
        m.encode_counter::<NoLabelSet, _, u64>(&taken, None)?;
    }
    Ok(())
}

/// The `store` object of `/api/status` (`null` without a durable queue).
pub(super) fn json(report: &CoreReport) -> serde_json::Value {
    let (Some(info), Some(commits)) = (&report.store_info, &report.store) else {
        return serde_json::Value::Null;
    };
    let latency = &commits.histograms.latency;
    let count = latency.count();
    serde_json::json!({
        "backend": info.backend,
        "health": health(info, commits.up),
        "commits": commits.commits,
        "commit_failures": commits.failures,
        "commit_seconds": {
            "count": count,
            "sum": latency.sum_secs,
            "mean": if count == 0 { 0.0 } else { latency.sum_secs / count as f64 },
        },
        "jobs_taken_over": info.jobs_taken_over,
        "runner": runner_profile(&commits.profile),
    })
}

/// Where durable inserts spend their time in the group-commit runner (sums since start).
fn runner_profile(p: &crate::store::RunnerProfile) -> serde_json::Value {
    serde_json::json!({
        "inserts": p.inserts,
        "queued_seconds": p.queued_secs,
        "groups": p.groups,
        "gather_seconds": p.gather_secs,
        "sync_seconds": p.sync_secs,
        "durable_seconds": p.durable_secs,
    })
}
