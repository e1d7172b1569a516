//! The summary of a run: text for people, JSON for scripts, and the side-by-side table of
//! a comparison.

use crate::load::{Mode, Outcome, Plan};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
    pub(crate) mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The background drain phase.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Drain {
    /// Jobs the workers finished.
    pub(crate) drained: u64,
    /// Seconds from starting the workers to the last job done.
    pub(crate) secs: f64,
    /// Jobs per second.
    pub(crate) rate: f64,
}

/// One run, as printed.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    /// Which server (the label given, or its address).
    pub(crate) server: String,
    pub(crate) mode: Mode,
    pub(crate) clients: usize,
    pub(crate) workers: usize,
    pub(crate) window: usize,
    pub(crate) grabs: usize,
    pub(crate) batch: usize,
    pub(crate) sizes: Vec<usize>,
    /// Jobs submitted in all.
    pub(crate) jobs: u64,
    /// Jobs answered successfully (bg: accepted).
    pub(crate) completed: u64,
    /// Jobs that failed, came back wrong or were never answered.
    pub(crate) failures: u64,
    /// Of the failures, jobs never answered (the run stopped early, a connection was lost).
    pub(crate) unanswered: u64,
    /// Seconds of the client phase.
    pub(crate) secs: f64,
    /// Jobs per second of the client phase (bg: submit rate).
    pub(crate) rate: f64,
    /// Microseconds per job (bg: submit to JOB_CREATED).
    pub(crate) latency_us: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) drain: Option<Drain>,
    /// The server's CPU time (every thread) over the whole run, in microseconds per job,
    /// when its process id is known (--compare, --server-pid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server_cpu_us: Option<f64>,
    /// This tool's own CPU time over the run, in microseconds per job: where it nears the
    /// run's length, the clients are the limit, not the server.
    pub(crate) tool_cpu_us: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl Report {
    /// Builds the report of `outcome`.
    pub(crate) fn new(server: &str, plan: &Plan, outcome: &Outcome) -> Report {
        let secs = outcome.elapsed.as_secs_f64();
        Report {
            server: server.to_owned(),
            mode: plan.mode,
            clients: plan.clients,
            // Connect starts none.
            workers: if plan.mode == Mode::Connect {
                0
            } else {
                plan.workers
            },
            window: plan.window,
            grabs: plan.grabs,
            batch: plan.batch,
            sizes: plan.sizes.clone(),
            jobs: plan.total(),
            completed: outcome.completed,
            failures: outcome.failures,
            unanswered: outcome.unanswered,
            secs,
            rate: per_second(outcome.completed, secs),
            latency_us: Latency::of(&outcome.latency),
            drain: outcome.drain.map(|(drained, d)| Drain {
                drained,
                secs: d.as_secs_f64(),
                rate: per_second(drained, d.as_secs_f64()),
            }),
            server_cpu_us: None,
            tool_cpu_us: 0.0,
            error: outcome.error.clone(),
        }
    }

    /// Whether every job was answered right (and, for bg, drained).
    pub(crate) fn ok(&self) -> bool {
        self.error.is_none()
            && self.failures == 0
            && self.completed == self.jobs
            && self.drain.as_ref().is_none_or(|d| d.drained >= self.jobs)
    }

    /// The human summary, several lines.
    pub(crate) fn text(&self) -> String {
        let shape = match self.mode {
            Mode::Batch => format!("batches of {}", self.batch),
            _ => format!("window {}", self.window),
        };
        let sizes: Vec<String> = self.sizes.iter().map(|s| format!("{s} B")).collect();
        // The mode as --mode spells it; the rest as it is (a host name, "B" for bytes).
        let mode = format!("{:?}", self.mode).to_lowercase();
        let per_client = self.jobs / self.clients.max(1) as u64;
        let mut out = match self.mode {
            // No jobs, workers nor payloads: connections, each with one ECHO.
            Mode::Connect => format!(
                "{}: connect load, {} clients x {per_client} connections (one ECHO each)\n",
                self.server, self.clients,
            ),
            _ => format!(
                "{}: {mode} load, {} clients x {per_client} jobs ({shape}), {} workers ({} grabs), payload {}\n",
                self.server,
                self.clients,
                self.workers,
                self.grabs,
                sizes.join("/"),
            ),
        };
        let what = if self.mode == Mode::Bg {
            "submitted"
        } else {
            "done"
        };
        let unit = if self.mode == Mode::Connect {
            "connections"
        } else {
            "jobs"
        };
        let unanswered = match self.unanswered {
            0 => String::new(),
            n => format!(" ({n} never answered)"),
        };
        out += &format!(
            "  {} of {} {unit} {what} in {:.3} s: {:.0} {unit}/s, {} failures{unanswered}\n",
            self.completed, self.jobs, self.secs, self.rate, self.failures
        );
        let l = &self.latency_us;
        out += &format!(
            "  latency us: p50 {} p90 {} p99 {} p999 {} max {} mean {:.0}\n",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if let Some(d) = &self.drain {
            out += &format!(
                "  drained {} in {:.3} s: {:.0} jobs/s\n",
                d.drained, d.secs, d.rate
            );
        }
        match self.server_cpu_us {
            Some(server) => {
                out += &format!(
                    "  cpu us per job: server {server:.2}, this tool {:.2}\n",
                    self.tool_cpu_us
                )
            }
            None => out += &format!("  cpu us per job: this tool {:.2}\n", self.tool_cpu_us),
        }
        if let Some(e) = &self.error {
            out += &format!("  error: {e}\n");
        }
        out
    }

    /// The figures compared between servers: name, value, and whether higher is better.
    pub(crate) fn figures(&self) -> Vec<(&'static str, f64)> {
        let l = &self.latency_us;
        let mut f = vec![("rate", self.rate)];
        if self.mode == Mode::Bg {
            f.push(("drain_rate", self.drain.as_ref().map_or(0.0, |d| d.rate)));
        }
        f.extend([
            ("p50_us", l.p50 as f64),
            ("p90_us", l.p90 as f64),
            ("p99_us", l.p99 as f64),
            ("p999_us", l.p999 as f64),
            ("failures", self.failures as f64),
        ]);
        if let Some(cpu) = self.server_cpu_us {
            f.push(("server_cpu_us", cpu));
        }
        f.push(("tool_cpu_us", self.tool_cpu_us));
        f
    }
}

fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// The figures both reports have, by name: (name, reference's, ours).
fn paired(reference: &Report, ours: &Report) -> Vec<(&'static str, f64, f64)> {
    let theirs = ours.figures();
    reference
        .figures()
        .into_iter()
        .filter_map(|(name, a)| {
            let (_, b) = theirs.iter().find(|(n, _)| *n == name)?;
            Some((name, a, *b))
        })
        .collect()
}

/// Two runs of the same load side by side.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
    pub(crate) reference: Report,
    pub(crate) ours: Report,
    /// ours / reference for each figure (rates: above 1 is faster; latencies: below 1 is
    /// lower).
    pub(crate) ratio: serde_json::Map<String, serde_json::Value>,
}

impl Comparison {
    /// Pairs the two reports and computes the ratios.
    pub(crate) fn new(reference: Report, ours: Report) -> Comparison {
        let mut ratio = serde_json::Map::new();
        for (name, a, b) in paired(&reference, &ours) {
            if name != "failures" && a > 0.0 {
                ratio.insert(
                    name.to_owned(),
                    serde_json::json!((b / a * 100.0).round() / 100.0),
                );
            }
        }
        Comparison {
            reference,
            ours,
            ratio,
        }
    }

    /// Both summaries, then a table of figures with the ratio ours/reference.
    pub(crate) fn text(&self) -> String {
        let mut out = self.reference.text();
        out += &self.ours.text();
        out += &format!(
            "{:<13} {:>14} {:>14} {:>8}\n",
            "figure", self.reference.server, self.ours.server, "ratio"
        );
        for (name, a, b) in paired(&self.reference, &self.ours) {
            let r = self
                .ratio
                .get(name)
                .and_then(|v| v.as_f64())
                .map_or("-".to_owned(), |r| format!("{r:.2}"));
            // Rates and latencies are whole numbers; CPU per job needs its decimals.
            let places = if name.ends_with("cpu_us") { 2 } else { 0 };
            out += &format!("{name:<13} {a:>14.places$} {b:>14.places$} {r:>8}\n");
        }
        out
    }
}

/// The median over `runs` of each figure's ratio ours/reference.
pub(crate) fn median_ratios(runs: &[Comparison]) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let Some(first) = runs.first() else {
        return out;
    };
    for name in first.ratio.keys() {
        let mut values: Vec<f64> = runs
            .iter()
            .filter_map(|c| c.ratio.get(name).and_then(|v| v.as_f64()))
            .collect();
        if let Some(median) = median(&mut values) {
            out.insert(name.clone(), serde_json::json!(median));
        }
    }
    out
}

/// The median: the middle value, or the mean of the two middle ones of an even count
/// (the upper one alone would favour the larger half).
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

/// The median ratios as a table, with every run's ratio beside.
pub(crate) fn median_text(runs: &[Comparison]) -> String {
    let medians = median_ratios(runs);
    let mut out = format!("median ratio ours/gearmand over {} runs:\n", runs.len());
    for (name, median) in &medians {
        let each: Vec<String> = runs
            .iter()
            .filter_map(|c| c.ratio.get(name).and_then(|v| v.as_f64()))
            .map(|r| format!("{r:.2}"))
            .collect();
        out += &format!(
            "{name:<13} {:>8.2}   ({})\n",
            median.as_f64().unwrap_or(f64::NAN),
            each.join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(server: &str, sizes: Vec<usize>) -> Report {
        let plan = Plan {
            addr: server.to_owned(),
            mode: Mode::Pipe,
            clients: 2,
            workers: 1,
            jobs: 10,
            window: 4,
            grabs: 4,
            batch: 1,
            sizes,
            function: "f".to_owned(),
            timeout: Duration::from_secs(1),
            tls: None,
        };
        let mut latency = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        latency.record(100).unwrap();
        let outcome = Outcome {
            completed: 20,
            failures: 0,
            unanswered: 0,
            elapsed: Duration::from_secs(1),
            latency,
            drain: None,
            error: None,
        };
        Report::new(server, &plan, &outcome)
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 10.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0]), Some(2.5));
        assert_eq!(median(&mut [8.0, 1.0, 2.0, 4.0]), Some(3.0));
    }

    #[test]
    fn the_header_keeps_the_units_and_the_host_as_given() {
        let text = report("Bench-Host:4730", vec![64, 4096]).text();
        let header = text.lines().next().unwrap();
        assert_eq!(
            header,
            "Bench-Host:4730: pipe load, 2 clients x 10 jobs (window 4), 1 workers (4 grabs), \
             payload 64 B/4096 B"
        );
    }
}
