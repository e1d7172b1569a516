//! Checks shared by gearman-bench's test files.

use serde_json::Value;

/// The report's latency percentiles are present and in order (p50 at least 1 us).
pub fn assert_percentiles_in_order(report: &Value) {
    let latency = &report["latency_us"];
    let p = |k: &str| latency[k].as_u64().unwrap();
    assert!(
        p("p50") >= 1 && p("p50") <= p("p90") && p("p90") <= p("p99"),
        "{report}"
    );
    assert!(p("p99") <= p("p999") && p("p999") <= p("max"), "{report}");
}
