//! Named counters: `fault.*` (faults injected), `check.*` (checks passed), `fail.*` (checks
//! failed: any of these makes the soak exit non-zero), `load.*` and `info.*` (what happened).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Every counter of the run.
#[derive(Default)]
pub struct Stats {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    /// Adds `n` to `name`.
    pub fn add(&self, name: &str, n: u64) {
        let mut c = self.counters.lock().unwrap();
        match c.get_mut(name) {
            Some(v) => *v += n,
            None => {
                c.insert(name.to_string(), n);
            }
        }
    }

    /// Adds one to `name`.
    pub fn inc(&self, name: &str) {
        self.add(name, 1);
    }

    /// Raises `name` to `value` if it is larger (for maxima).
    pub fn max(&self, name: &str, value: u64) {
        let mut c = self.counters.lock().unwrap();
        let v = c.entry(name.to_string()).or_insert(0);
        *v = (*v).max(value);
    }

    /// The value of `name` (0 if never counted).
    pub fn get(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Sum of every counter whose name starts with `prefix`.
    pub fn sum(&self, prefix: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Every counter, sorted by name.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.counters
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}
