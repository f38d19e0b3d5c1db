//! Prometheus metrics in the text exposition format, kept in atomics and small maps: nothing on
//! the webhook's hot path takes more than one uncontended lock.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Run-duration histogram buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The host's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Alerts in accepted webhook bodies.
    pub alerts_received: AtomicU64,
    /// Alerts dropped as duplicates (retries).
    pub alerts_deduplicated: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    runs: Mutex<BTreeMap<(String, String), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
    actions: Mutex<BTreeMap<(String, String), u64>>,
    /// Runs executing now.
    pub runs_in_flight: AtomicU64,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    *m.lock().unwrap_or_else(|e| e.into_inner()).entry(k).or_insert(0) += 1;
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Counts one run in flight until dropped (also when its task is aborted).
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A webhook body with `total` alerts, `duplicates` of them dropped as retries.
    pub fn alerts(&self, total: u64, duplicates: u64) {
        self.alerts_received.fetch_add(total, Ordering::Relaxed);
        self.alerts_deduplicated.fetch_add(duplicates, Ordering::Relaxed);
    }

    /// A run starts; it counts as in flight until the guard is dropped.
    pub fn run_started(&self) -> InFlight<'_> {
        self.runs_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.runs_in_flight)
    }

    /// Runs executing now.
    pub fn runs_in_flight(&self) -> u64 {
        self.runs_in_flight.load(Ordering::Relaxed)
    }

    /// A webhook body rejected for `reason` (`malformed`, `unauthorized`, `too-large`, `queue-full`).
    pub fn rejected(&self, reason: &str) {
        bump(&self.rejected, reason.to_string());
    }

    /// A run finished.
    pub fn run_finished(&self, recipe: &str, status: &str, seconds: f64) {
        bump(&self.runs, (recipe.to_string(), status.to_string()));
        let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let h = d.entry(recipe.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// An action ended with `status`.
    pub fn action_finished(&self, action: &str, status: &str) {
        bump(&self.actions, (action.to_string(), status.to_string()));
    }

    /// Render, with the gauges the caller computes at scrape time.
    pub fn render(&self, incidents_by_state: &[(&str, usize)], queue_depth: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP euphrosyne_alerts_received_total Alerts in accepted webhook bodies.\n# TYPE euphrosyne_alerts_received_total counter"
        );
        let _ = writeln!(
            out,
            "euphrosyne_alerts_received_total {}",
            self.alerts_received.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP euphrosyne_alerts_deduplicated_total Alerts dropped as repeats of ones already accepted.\n# TYPE euphrosyne_alerts_deduplicated_total counter"
        );
        let _ = writeln!(
            out,
            "euphrosyne_alerts_deduplicated_total {}",
            self.alerts_deduplicated.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP euphrosyne_alerts_rejected_total Webhook bodies refused, by reason.\n# TYPE euphrosyne_alerts_rejected_total counter"
        );
        for (reason, n) in self.rejected.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "euphrosyne_alerts_rejected_total{{reason=\"{}\"}} {n}",
                esc(reason)
            );
        }
        let _ = writeln!(
            out,
            "# HELP euphrosyne_incidents Incidents by state.\n# TYPE euphrosyne_incidents gauge"
        );
        for (state, n) in incidents_by_state {
            let _ = writeln!(out, "euphrosyne_incidents{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP euphrosyne_queue_depth Alert batches waiting for the reconciler.\n# TYPE euphrosyne_queue_depth gauge\neuphrosyne_queue_depth {queue_depth}"
        );
        let _ = writeln!(
            out,
            "# HELP euphrosyne_runs_in_flight Recipe runs executing now.\n# TYPE euphrosyne_runs_in_flight gauge\neuphrosyne_runs_in_flight {}",
            self.runs_in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP euphrosyne_runs_total Recipe runs by recipe and status.\n# TYPE euphrosyne_runs_total counter"
        );
        for ((recipe, status), n) in self.runs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "euphrosyne_runs_total{{recipe=\"{}\",status=\"{}\"}} {n}",
                esc(recipe),
                esc(status)
            );
        }
        let _ = writeln!(
            out,
            "# HELP euphrosyne_run_duration_seconds Recipe run wall time.\n# TYPE euphrosyne_run_duration_seconds histogram"
        );
        for (recipe, h) in self.durations.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let r = esc(recipe);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "euphrosyne_run_duration_seconds_bucket{{recipe=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "euphrosyne_run_duration_seconds_bucket{{recipe=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "euphrosyne_run_duration_seconds_sum{{recipe=\"{r}\"}} {}", h.sum);
            let _ = writeln!(
                out,
                "euphrosyne_run_duration_seconds_count{{recipe=\"{r}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP euphrosyne_actions_total Approved actions by action and final status.\n# TYPE euphrosyne_actions_total counter"
        );
        for ((action, status), n) in self.actions.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "euphrosyne_actions_total{{action=\"{}\",status=\"{}\"}} {n}",
                esc(action),
                esc(status)
            );
        }
        out
    }
}
