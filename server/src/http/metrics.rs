//! `GET /metrics`: Prometheus text exposition, with bakins/gearman-exporter's names for
//! what `status` shows (so existing dashboards keep working) and more.
//!
//! Label cardinality is bounded: the [`MAX_LABELED_FUNCTIONS`] busiest functions get a
//! `function` label of their own, the rest are summed under `function="_other"`.

use super::HttpState;
use crate::core_channel::CoreReport;
use crate::store::BATCH_BUCKETS;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gearman_core::server::stats::{Histogram, DURATION_BUCKETS};
use gearman_core::server::{FunctionGauges, FunctionStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashSet};

/// Functions labelled by name; the rest are summed under [`OTHER`].
pub(crate) const MAX_LABELED_FUNCTIONS: usize = 100;
/// The label value of the functions past the cap.
pub(crate) const OTHER: &str = "_other";

const PRIORITIES: [&str; 3] = ["high", "normal", "low"];

/// Per-function data under its (possibly summed) label.
#[derive(Debug, Default, Clone)]
struct Labeled {
    gauges: [u64; 4], // total, running, workers, waiting
    queued: [u64; 3],
    stats: FunctionStats,
}

#[derive(Debug)]
struct ReportCollector {
    report: CoreReport,
    functions: BTreeMap<String, Labeled>,
    /// Dead letters and schedules under each function's label.
    extras: BTreeMap<String, ExtrasLabeled>,
}

/// What a function (or `_other`) holds beyond gearmand's jobs.
#[derive(Debug, Default, Clone, Copy)]
struct ExtrasLabeled {
    dead_letters: u64,
    schedules: u64,
}

impl ReportCollector {
    fn new(report: CoreReport) -> Self {
        let mut activity: Vec<(u64, &Bytes)> = report
            .snapshot
            .functions
            .iter()
            .map(|f| (f.total, &f.name))
            .collect();
        for (name, s) in report.stats.functions() {
            activity.push((s.submitted, name));
        }
        // A function known only by its dead letters or schedules (after a restart) is named.
        for (name, n) in report
            .extras
            .dead_letters
            .iter()
            .chain(&report.extras.schedules)
        {
            activity.push((*n, name));
        }
        activity.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let mut named: HashSet<&Bytes> = HashSet::new();
        for (_, name) in activity {
            if named.len() >= MAX_LABELED_FUNCTIONS {
                break;
            }
            named.insert(name);
        }
        let label = |name: &Bytes| {
            if named.contains(name) {
                String::from_utf8_lossy(name).into_owned()
            } else {
                OTHER.to_string()
            }
        };
        let mut functions: BTreeMap<String, Labeled> = BTreeMap::new();
        for f in &report.snapshot.functions {
            let FunctionGauges {
                total,
                running,
                workers,
                queued,
                ..
            } = *f;
            let l = functions.entry(label(&f.name)).or_default();
            for (a, b) in l
                .gauges
                .iter_mut()
                .zip([total, running, workers, total - running])
            {
                *a += b;
            }
            for (a, b) in l.queued.iter_mut().zip(queued) {
                *a += b;
            }
        }
        for (name, s) in report.stats.functions() {
            functions.entry(label(name)).or_default().stats.add(s);
        }
        if report.stats.other.submitted > 0 {
            functions
                .entry(OTHER.to_string())
                .or_default()
                .stats
                .add(&report.stats.other);
        }
        let mut extras: BTreeMap<String, ExtrasLabeled> = BTreeMap::new();
        for (name, n) in &report.extras.dead_letters {
            extras.entry(label(name)).or_default().dead_letters += n;
        }
        for (name, n) in &report.extras.schedules {
            extras.entry(label(name)).or_default().schedules += n;
        }
        ReportCollector {
            report,
            functions,
            extras,
        }
    }

    /// Retries with backoff, dead letters and schedules (`--retry`, SUBMIT_JOB_SCHED):
    /// counters and gauges per function.
    fn encode_extras(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [(&str, &str, Getter); 4] = [
            (
                "gearman_jobs_backoff_retries",
                "Failed background jobs queued again after their --retry backoff",
                |l| l.stats.backoff_retries,
            ),
            (
                "gearman_jobs_dead_lettered",
                "Background jobs out of --retry retries, moved to the dead letters",
                |l| l.stats.dead_lettered,
            ),
            (
                "gearman_schedule_firings",
                "Schedule firings that ran a job (SUBMIT_JOB_SCHED)",
                |l| l.stats.schedule_fired,
            ),
            (
                "gearman_schedule_firings_skipped",
                "Schedule firings skipped because the previous firing's job still existed",
                |l| l.stats.schedule_skipped,
            ),
        ];
        for (name, help, get) in counters {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (function, l) in &self.functions {
                m.encode_family(&[("function", function.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&get(l), None)?;
            }
        }
        type ExtrasGetter = fn(&ExtrasLabeled) -> u64;
        let gauges: [(&str, &str, ExtrasGetter); 2] = [
            (
                "gearman_dead_letters",
                "Dead letters held, per function (show dead)",
                |x| x.dead_letters,
            ),
            (
                "gearman_schedules",
                "Schedules held, per function (show schedules)",
                |x| x.schedules,
            ),
        ];
        for (name, help, get) in gauges {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (function, x) in &self.extras {
                m.encode_family(&[("function", function.as_str())])?
                    .encode_gauge(&get(x))?;
            }
        }
        Ok(())
    }
}

fn histogram(
    m: &mut MetricEncoder<'_>,
    h: &Histogram,
    bounds: &[f64],
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(h.counts.iter().copied())
        .collect();
    m.encode_histogram::<NoLabelSet>(h.sum_secs, h.count(), &buckets, None)
}

type Getter = fn(&Labeled) -> u64;
type HistogramGetter = fn(&Labeled) -> &Histogram;

impl Collector for ReportCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = e.encode_descriptor(
            "gearman_up",
            "Whether the job server answers",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&1u64)?;
        let mut m = e.encode_descriptor(
            "gearman_version_info",
            "The server's version, as a label",
            None,
            MetricType::Gauge,
        )?;
        m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?
            .encode_gauge(&1u64)?;

        let gauges: [(&str, &str, Getter); 4] = [
            (
                "gearman_jobs",
                "Jobs queued, running or waiting, per function (status TOTAL)",
                |l| l.gauges[0],
            ),
            (
                "gearman_jobs_running",
                "Jobs held by workers, per function",
                |l| l.gauges[1],
            ),
            (
                "gearman_workers",
                "Workers registered for the function (status WORKERS)",
                |l| l.gauges[2],
            ),
            (
                "gearman_jobs_waiting",
                "Jobs not yet running, per function (total - running)",
                |l| l.gauges[3],
            ),
        ];
        for (name, help, get) in gauges {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (function, l) in &self.functions {
                m.encode_family(&[("function", function.as_str())])?
                    .encode_gauge(&get(l))?;
            }
        }
        let mut m = e.encode_descriptor(
            "gearman_jobs_queued",
            "Jobs in the queue, per function and priority",
            None,
            MetricType::Gauge,
        )?;
        for (function, l) in &self.functions {
            for (p, n) in PRIORITIES.iter().zip(l.queued) {
                m.encode_family(&[("function", function.as_str()), ("priority", p)])?
                    .encode_gauge(&n)?;
            }
        }

        let counters: [(&str, &str, Getter); 6] = [
            (
                "gearman_jobs_submitted",
                "Jobs created, per function",
                |l| l.stats.submitted,
            ),
            (
                "gearman_jobs_completed",
                "Jobs that ended with WORK_COMPLETE",
                |l| l.stats.completed,
            ),
            (
                "gearman_jobs_failed",
                "Jobs that ended with WORK_FAIL or ran out of retries",
                |l| l.stats.failed,
            ),
            (
                "gearman_jobs_exceptions",
                "Jobs that ended with WORK_EXCEPTION",
                |l| l.stats.exceptions,
            ),
            (
                "gearman_jobs_retried",
                "Jobs queued again after their worker lost them",
                |l| l.stats.retried,
            ),
            (
                "gearman_jobs_cancelled",
                "Jobs cancelled by the admin cancel job",
                |l| l.stats.cancelled,
            ),
        ];
        for (name, help, get) in counters {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (function, l) in &self.functions {
                m.encode_family(&[("function", function.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&get(l), None)?;
            }
        }
        let histograms: [(&str, &str, HistogramGetter); 2] = [
            (
                "gearman_job_queue_wait_seconds",
                "Time from entering the queue to a worker, per function",
                |l| &l.stats.queue_wait,
            ),
            (
                "gearman_job_run_seconds",
                "Time from assignment to the worker's final report",
                |l| &l.stats.run_time,
            ),
        ];
        for (name, help, get) in histograms {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (function, l) in &self.functions {
                let labels = [("function", function.as_str())];
                let mut f = m.encode_family(&labels)?;
                histogram(&mut f, get(l), &DURATION_BUCKETS)?;
            }
        }
        self.encode_extras(&mut e)?;

        let snapshot = &self.report.snapshot;
        let mut m = e.encode_descriptor(
            "gearman_connections",
            "Open connections",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&snapshot.connections)?;
        let mut m = e.encode_descriptor(
            "gearman_worker_connections",
            "Connections that registered at least one function",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&(snapshot.workers.len() as u64))?;
        let mut m = e.encode_descriptor(
            "gearman_server_jobs",
            "Jobs held by the server",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&snapshot.jobs)?;
        let mut m = e.encode_descriptor(
            "gearman_accepting",
            "1 while accepting connections, 0 while shutting down",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&u64::from(self.report.accepting))?;

        if let Some(store) = &self.report.store {
            let mut m = e.encode_descriptor(
                "gearman_store_commits",
                "Durable-queue transactions committed",
                None,
                MetricType::Counter,
            )?;
            m.encode_counter::<NoLabelSet, _, u64>(&store.commits, None)?;
            let mut m = e.encode_descriptor(
                "gearman_store_commit_failures",
                "Durable-queue transactions that failed",
                None,
                MetricType::Counter,
            )?;
            m.encode_counter::<NoLabelSet, _, u64>(&store.failures, None)?;
            let mut m = e.encode_descriptor(
                "gearman_store_commit_seconds",
                "Durable-queue commit latency (group commit, fsync included)",
                None,
                MetricType::Histogram,
            )?;
            histogram(&mut m, &store.histograms.latency, &DURATION_BUCKETS)?;
            let mut m = e.encode_descriptor(
                "gearman_store_commit_batch_size",
                "Changes per durable-queue transaction",
                None,
                MetricType::Histogram,
            )?;
            let buckets: Vec<(f64, u64)> = BATCH_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(store.histograms.batch_counts.iter().copied())
                .collect();
            let count = store.histograms.batch_counts.iter().sum();
            m.encode_histogram::<NoLabelSet>(
                store.histograms.batch_sum as f64,
                count,
                &buckets,
                None,
            )?;
        }
        super::store_status::encode(&mut e, &self.report)?;
        Ok(())
    }
}

/// Renders a report in the Prometheus text format.
pub(crate) fn render(report: CoreReport) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ReportCollector::new(report)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!("cannot render metrics: {e}");
    }
    out
}

pub(crate) async fn metrics(State(state): State<HttpState>) -> Response {
    let Some(report) = state.report().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "gearman_up 0\n").into_response();
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(report),
    )
        .into_response()
}

#[cfg(test)]
mod extras_tests {
    use super::*;
    use gearman_core::server::{ExtrasGauges, Snapshot, Stats};

    #[test]
    fn dead_letters_and_schedules_of_an_idle_function_are_labelled_by_name() {
        // After a restart, or a schedule that never fired: no job, worker or counter.
        let mut extras = ExtrasGauges::default();
        extras.dead_letters.insert(Bytes::from_static(b"flaky"), 2);
        extras.schedules.insert(Bytes::from_static(b"nightly"), 1);
        let mut stats = Stats::default();
        stats.function(b"nightly").schedule_skipped = 3;
        let report = CoreReport {
            snapshot: Snapshot {
                functions: Vec::new(),
                connections: 0,
                workers: Vec::new(),
                jobs: 0,
            },
            stats,
            accepting: true,
            store: None,
            extras,
            store_info: None,
        };
        let text = render(report);
        for line in [
            "gearman_dead_letters{function=\"flaky\"} 2",
            "gearman_schedules{function=\"nightly\"} 1",
            "gearman_schedule_firings_skipped_total{function=\"nightly\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
