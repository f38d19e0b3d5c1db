//! Prometheus metrics, kept in `prometheus-client` counters, gauges and histograms and encoded in
//! the OpenMetrics text format. Nothing on the webhook's hot path takes more than one uncontended
//! lock (a label family's map, read-locked once the label set exists).
//!
//! The series (names as scraped): `euphrosyne_alerts_received_total`,
//! `euphrosyne_alerts_deduplicated_total`, `euphrosyne_alerts_rejected_total{reason}`,
//! `euphrosyne_incidents{state}`, `euphrosyne_queue_depth`, `euphrosyne_runs_in_flight`,
//! `euphrosyne_runs_total{recipe,status}`, `euphrosyne_run_duration_seconds{recipe}` (histogram),
//! `euphrosyne_actions_total{action,status}`, `euphrosyne_preview_duration_seconds{action}`, and the in-process compile cache's
//! `euphrosyne_compile_cache_{hits,misses,evictions}_total` and `euphrosyne_compile_cache_entries`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::sandbox::CacheStats;

/// Run-duration histogram buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    recipe: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecipeLabel {
    recipe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

type Durations = Family<RecipeLabel, Histogram, fn() -> Histogram>;

/// The host's metrics.
pub struct Metrics {
    registry: Registry,
    alerts_received: Counter,
    alerts_deduplicated: Counter,
    rejected: Family<Reason, Counter>,
    runs: Family<RunLabels, Counter>,
    durations: Durations,
    actions: Family<ActionLabels, Counter>,
    previews: Family<ActionLabel, Histogram, fn() -> Histogram>,
    runs_in_flight: Gauge,
    incidents: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    compile_cache: std::sync::Arc<CacheStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("euphrosyne");
        let m = Metrics {
            alerts_received: Counter::default(),
            alerts_deduplicated: Counter::default(),
            rejected: Family::default(),
            runs: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            actions: Family::default(),
            previews: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            runs_in_flight: Gauge::default(),
            incidents: Family::default(),
            queue_depth: Gauge::default(),
            compile_cache: Default::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "alerts_received",
            "Alerts in accepted webhook bodies",
            m.alerts_received.clone(),
        );
        let dedup = "Alerts dropped as repeats of ones already accepted";
        r.register("alerts_deduplicated", dedup, m.alerts_deduplicated.clone());
        r.register(
            "alerts_rejected",
            "Webhook bodies refused, by reason",
            m.rejected.clone(),
        );
        r.register("incidents", "Incidents by state", m.incidents.clone());
        r.register(
            "queue_depth",
            "Alert batches waiting for the reconciler",
            m.queue_depth.clone(),
        );
        r.register("runs_in_flight", "Recipe runs executing now", m.runs_in_flight.clone());
        r.register("runs", "Recipe runs by recipe and status", m.runs.clone());
        r.register("run_duration_seconds", "Recipe run wall time", m.durations.clone());
        r.register(
            "actions",
            "Approved actions by action and final status",
            m.actions.clone(),
        );
        r.register(
            "preview_duration_seconds",
            "Action previews (dry runs): suggested to diff ready, by action",
            m.previews.clone(),
        );
        let c = &m.compile_cache;
        let cache = "In-process compiled-component cache";
        r.register(
            "compile_cache_hits",
            format!("{cache}: runs that found their component"),
            c.hits.clone(),
        );
        r.register(
            "compile_cache_misses",
            format!("{cache}: runs that compiled or loaded it"),
            c.misses.clone(),
        );
        r.register(
            "compile_cache_evictions",
            format!("{cache}: components dropped (least recently used)"),
            c.evictions.clone(),
        );
        r.register(
            "compile_cache_entries",
            format!("{cache}: components kept"),
            c.entries.clone(),
        );
        Metrics { registry, ..m }
    }
}

/// Counts one run in flight until dropped (also when its task is aborted).
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// The compile cache's counters, to hand to the sandbox (`SandboxConfig::cache_stats`).
    pub fn compile_cache(&self) -> std::sync::Arc<CacheStats> {
        self.compile_cache.clone()
    }

    /// A webhook body with `total` alerts, `duplicates` of them dropped as retries.
    pub fn alerts(&self, total: u64, duplicates: u64) {
        self.alerts_received.inc_by(total);
        self.alerts_deduplicated.inc_by(duplicates);
    }

    /// A run starts; it counts as in flight until the guard is dropped.
    pub fn run_started(&self) -> InFlight<'_> {
        self.runs_in_flight.inc();
        InFlight(&self.runs_in_flight)
    }

    /// Runs executing now.
    pub fn runs_in_flight(&self) -> u64 {
        self.runs_in_flight.get().max(0) as u64
    }

    /// A webhook body rejected for `reason` (`malformed`, `unauthorized`, `unavailable`).
    pub fn rejected(&self, reason: &str) {
        self.rejected.get_or_create(&Reason { reason: reason.into() }).inc();
    }

    /// A run finished.
    pub fn run_finished(&self, recipe: &str, status: &str, seconds: f64) {
        let run = RunLabels {
            recipe: recipe.into(),
            status: status.into(),
        };
        self.runs.get_or_create(&run).inc();
        let recipe = RecipeLabel { recipe: recipe.into() };
        self.durations.get_or_create(&recipe).observe(seconds);
    }

    /// An action ended with `status`.
    pub fn action_finished(&self, action: &str, status: &str) {
        let labels = ActionLabels {
            action: action.into(),
            status: status.into(),
        };
        self.actions.get_or_create(&labels).inc();
    }

    /// A preview (dry run) of `action` took `seconds`.
    pub fn preview_finished(&self, action: &str, seconds: f64) {
        let label = ActionLabel { action: action.into() };
        self.previews.get_or_create(&label).observe(seconds);
    }

    /// Render, with the gauges the caller computes at scrape time: OpenMetrics when the scraper
    /// asks for it (Prometheus does), else the Prometheus text format (curl, `promtool check
    /// metrics`). Returns the content type and the text.
    pub fn render(
        &self,
        incidents_by_state: &[(&str, usize)],
        queue_depth: usize,
        openmetrics: bool,
    ) -> (&'static str, String) {
        for (state, n) in incidents_by_state {
            let state = StateLabel {
                state: state.to_string(),
            };
            self.incidents.get_or_create(&state).set(*n as i64);
        }
        self.queue_depth.set(queue_depth as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        if openmetrics {
            (OPENMETRICS, out)
        } else {
            (PROMETHEUS_TEXT, to_prometheus_text(&out))
        }
    }
}

/// OpenMetrics 1.0 text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as the Prometheus text format: a counter family is named with its `_total`
/// suffix in `# HELP` and `# TYPE` (as its samples are), a bucket's `le` label comes last, and
/// there is no `# EOF`. (`prometheus-client` encodes OpenMetrics only; the two formats differ in
/// nothing else we emit.)
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines().filter(|l| *l != "# EOF") {
        let line = counter_meta(line, &counters)
            .or_else(|| le_last(line))
            .unwrap_or_else(|| line.to_string());
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `# HELP name …` / `# TYPE name counter` of a counter family, named as its samples are.
fn counter_meta(line: &str, counters: &std::collections::HashSet<&str>) -> Option<String> {
    let (prefix, rest) = ["# HELP ", "# TYPE "]
        .into_iter()
        .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)))?;
    let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
}

/// A histogram bucket `x_bucket{le="v",labels} n` as `x_bucket{labels,le="v"} n`.
fn le_last(line: &str) -> Option<String> {
    let (family, rest) = line.split_once("_bucket{le=\"")?;
    let (le, after) = rest.split_once("\",")?;
    let (labels, value) = after.split_once('}')?;
    Some(format!("{family}_bucket{{{labels},le=\"{le}\"}}{value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_keep_their_names() {
        let m = Metrics::default();
        m.alerts(3, 1);
        m.rejected("malformed");
        m.run_finished("http-probe", "ok", 0.002);
        m.action_finished("open-ticket", "succeeded");
        m.compile_cache().hits.inc();
        {
            let _running = m.run_started();
            assert_eq!(m.runs_in_flight(), 1);
        }
        let (kind, om) = m.render(&[("analyzed", 2)], 5, true);
        assert_eq!(kind, OPENMETRICS);
        assert!(om.lines().any(|l| l == "# TYPE euphrosyne_alerts_received counter"));
        assert!(om.ends_with("# EOF\n"));
        let (kind, text) = m.render(&[("analyzed", 2)], 5, false);
        assert_eq!(kind, PROMETHEUS_TEXT);
        for line in [
            "# TYPE euphrosyne_alerts_received_total counter",
            "# HELP euphrosyne_runs_total Recipe runs by recipe and status.",
            "euphrosyne_alerts_received_total 3",
            "euphrosyne_alerts_deduplicated_total 1",
            "euphrosyne_alerts_rejected_total{reason=\"malformed\"} 1",
            "euphrosyne_runs_total{recipe=\"http-probe\",status=\"ok\"} 1",
            "euphrosyne_run_duration_seconds_bucket{recipe=\"http-probe\",le=\"0.0025\"} 1",
            "euphrosyne_run_duration_seconds_bucket{recipe=\"http-probe\",le=\"+Inf\"} 1",
            "euphrosyne_actions_total{action=\"open-ticket\",status=\"succeeded\"} 1",
            "euphrosyne_incidents{state=\"analyzed\"} 2",
            "euphrosyne_queue_depth 5",
            "euphrosyne_runs_in_flight 0",
            "euphrosyne_compile_cache_hits_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }
}
