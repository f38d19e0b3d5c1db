//! The objects an incident's alerts name, for debuggers that examine each of them.
//!
//! Alertmanager groups alerts (kube-prometheus groups by `namespace` alone), so one incident often
//! names several pods, several workloads, or alerts of several names. A debugger that read
//! [`Incident::label`] would look at one of them; [`Incident::objects`] gives it every distinct
//! object its alerts name, up to a bound, and [`group`] folds identical causes into one line:
//!
//! ```
//! use recipe_sdk::prelude::*;
//! use recipe_sdk::objects::{group, count};
//!
//! let incident = Incident::from_alerts("inc-1", vec![
//!     Alert::firing(&[("alertname", "KubePodCrashLooping"), ("namespace", "shop"), ("pod", "api-1")]),
//!     Alert::firing(&[("alertname", "KubePodCrashLooping"), ("namespace", "shop"), ("pod", "api-2")]),
//!     Alert::firing(&[("alertname", "KubePodNotReady"), ("namespace", "shop"), ("pod", "api-2")]),
//!     Alert::firing(&[("alertname", "CPUThrottlingHigh"), ("namespace", "shop"), ("pod", "db-0")]),
//! ]);
//! // In a recipe: `incident.objects(..)`, bounded by config `max_objects`.
//! let pods = incident.objects_bounded("pod", &["KubePodCrashLooping", "KubePodNotReady"], 20).unwrap();
//! assert_eq!(pods.items.len(), 2, "api-2 once, db-0 not: its alert is not one of ours");
//! assert_eq!(pods.items[1].alertnames, ["KubePodCrashLooping", "KubePodNotReady"]);
//!
//! let causes = group(pods.items.iter().map(|p| ("OOMKilled at 128Mi", p.name.clone())));
//! assert_eq!(causes, vec![("OOMKilled at 128Mi", vec!["api-1".to_string(), "api-2".to_string()])]);
//! assert_eq!(count(2, "pod", "pods"), "2 pods");
//! ```

use std::collections::BTreeMap;

use crate::{Alert, Finding, Incident, RecipeError};

/// The config key that bounds how many objects a debugger examines (default 20).
pub const MAX_OBJECTS_KEY: &str = "max_objects";
/// The default bound: enough to see the pattern, small enough to stay well inside the limits.
pub const DEFAULT_MAX_OBJECTS: usize = 20;

/// One object an incident's alerts name.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    /// The alert's `namespace` label (or the incident's common one); `None` for cluster-scoped
    /// objects such as nodes and PersistentVolumes.
    pub namespace: Option<String>,
    /// The object's name, from the label asked for.
    pub name: String,
    /// The names of the alerts that name it, in the incident's order, each once.
    pub alertnames: Vec<String>,
    /// The labels of the first alert that names it (`container`, `resource`, `condition`, …).
    pub labels: BTreeMap<String, String>,
}

impl Named {
    /// `namespace/name`, or `name` for a cluster-scoped object.
    pub fn path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Another label of the first alert that names this object.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Was it named by an alert called `alertname`?
    pub fn named_by(&self, alertname: &str) -> bool {
        self.alertnames.iter().any(|a| a == alertname)
    }
}

/// Every distinct object the incident's alerts name through one label, bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    /// The label the objects were named by (`pod`, `deployment`, …).
    pub label: String,
    /// The objects to examine, in the order the alerts name them, at most `bound`.
    pub items: Vec<Named>,
    /// How many more distinct objects the alerts name beyond `bound` (not examined).
    pub omitted: usize,
    /// The bound in force (config `max_objects`, default 20).
    pub bound: usize,
    /// Names of alerts that should name an object but carry no such label.
    pub unlabelled: Vec<String>,
}

impl Objects {
    /// A finding that says the bound was reached, if it was: "examined 20 of 35 pods…".
    pub fn bound_finding(&self, plural: &str) -> Option<Finding> {
        (self.omitted > 0).then(|| {
            Finding::warning(
                "Not every object examined",
                format!(
                    "examined {} of {} {plural} the alerts name (config {MAX_OBJECTS_KEY} = {}); the rest were not read",
                    self.items.len(),
                    self.items.len() + self.omitted,
                    self.bound
                ),
            )
        })
    }

    /// A finding that names the alerts that lacked the label, if any did.
    pub fn unlabelled_finding(&self) -> Option<Finding> {
        (!self.unlabelled.is_empty()).then(|| {
            Finding::warning(
                format!("Alerts without a `{}` label", self.label),
                format!(
                    "{} alert(s) ({}) name no object through `{}` and were not examined",
                    self.unlabelled.len(),
                    self.unlabelled.join(", "),
                    self.label
                ),
            )
        })
    }

    /// Both notes, for folding into an analysis.
    pub fn notes(&self, plural: &str) -> Vec<Finding> {
        self.bound_finding(plural)
            .into_iter()
            .chain(self.unlabelled_finding())
            .collect()
    }
}

/// The bound in force: config `max_objects` (default 20), at least 1. Debuggers that read more
/// objects of their own (the pods of a workload, say) bound those by it too.
pub fn max_objects() -> usize {
    crate::config::parse_or(MAX_OBJECTS_KEY, DEFAULT_MAX_OBJECTS).max(1)
}

impl Incident {
    /// The alerts a debugger examines: the firing ones, or every alert when none fires any more.
    pub fn current(&self) -> Vec<&Alert> {
        let firing: Vec<&Alert> = self.firing().collect();
        if firing.is_empty() {
            self.alerts.iter().collect()
        } else {
            firing
        }
    }

    /// Every distinct object that the incident's current alerts named `alertnames` (all alerts
    /// when empty) name through `label`, with the alert's `namespace`, at most config
    /// `max_objects` (default 20) of them.
    ///
    /// `Err` names the label when alerts of those names exist and none of them carries it: the
    /// recipe cannot know what to examine. No alert of those names at all is `Ok` and empty.
    pub fn objects(&self, label: &str, alertnames: &[&str]) -> Result<Objects, RecipeError> {
        self.objects_bounded(label, alertnames, max_objects())
    }

    /// [`Incident::objects`] with the bound given, not read from config.
    pub fn objects_bounded(&self, label: &str, alertnames: &[&str], bound: usize) -> Result<Objects, RecipeError> {
        let bound = bound.max(1);
        let ours = |a: &&Alert| alertnames.is_empty() || alertnames.iter().any(|n| a.label("alertname") == Some(n));
        let mut all: Vec<Named> = Vec::new();
        let mut unlabelled = Vec::new();
        let mut considered = 0;
        for alert in self.current().into_iter().filter(ours) {
            considered += 1;
            let alertname = alert.label("alertname").unwrap_or("?").to_string();
            let Some(name) = alert.label(label).filter(|n| !n.is_empty()) else {
                unlabelled.push(alertname);
                continue;
            };
            let namespace = alert
                .label("namespace")
                .or_else(|| self.common_labels.get("namespace").map(String::as_str))
                .map(str::to_string);
            match all.iter_mut().find(|o| o.name == name && o.namespace == namespace) {
                Some(o) if !o.alertnames.contains(&alertname) => o.alertnames.push(alertname),
                Some(_) => {}
                None => all.push(Named {
                    namespace,
                    name: name.to_string(),
                    alertnames: vec![alertname],
                    labels: alert.labels.clone(),
                }),
            }
        }
        if considered > 0 && all.is_empty() {
            return Err(RecipeError::new(format!(
                "none of the incident's {considered} {} alert(s) has a `{label}` label; the recipe needs it to know which object to examine",
                dedup(&unlabelled).join("/")
            )));
        }
        let omitted = all.len().saturating_sub(bound);
        all.truncate(bound);
        Ok(Objects {
            label: label.to_string(),
            items: all,
            omitted,
            bound,
            unlabelled: dedup(&unlabelled),
        })
    }
}

fn dedup(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

/// Groups equal keys: the biggest group first, equal sizes in the order first seen.
pub fn group<K: PartialEq, V>(items: impl IntoIterator<Item = (K, V)>) -> Vec<(K, Vec<V>)> {
    let mut groups: Vec<(K, Vec<V>)> = Vec::new();
    for (k, v) in items {
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, vs)) => vs.push(v),
            None => groups.push((k, vec![v])),
        }
    }
    // Stable: ties keep their first-seen order.
    groups.sort_by_key(|(_, vs)| std::cmp::Reverse(vs.len()));
    groups
}

/// `1 pod`, `3 pods`.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// Names for a finding: all of them up to `max`, then "and N more".
pub fn list_some(names: &[String], max: usize) -> String {
    if names.len() <= max {
        return names.join(", ");
    }
    format!("{} and {} more", names[..max].join(", "), names.len() - max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;
    use crate::{Alert, AlertStatus, Analysis, Debugger};

    fn crashloop(pod: &str) -> Alert {
        Alert::firing(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", pod),
        ])
    }

    /// Runs `objects` inside the harness, so `config` answers.
    struct Probe;
    impl Debugger for Probe {
        fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
            let o = incident.objects("pod", &["KubePodCrashLooping"])?;
            let names: Vec<String> = o.items.iter().map(Named::path).collect();
            Ok(o.notes("pods").into_iter().fold(
                Analysis::identified(format!("{} | omitted {}", names.join(","), o.omitted)),
                Analysis::finding,
            ))
        }
    }

    #[test]
    fn objects_are_distinct_bounded_and_the_bound_is_said() {
        let alerts: Vec<Alert> = (0..25).map(|i| crashloop(&format!("api-{}", i % 23))).collect();
        let a = Harness::new()
            .debug::<Probe>(Incident::from_alerts("i", alerts.clone()))
            .unwrap();
        assert!(a.summary.ends_with("| omitted 3"), "{}", a.summary);
        assert!(a.summary.starts_with("shop/api-0,shop/api-1,"));
        assert!(
            a.findings[0].detail.contains("examined 20 of 23 pods"),
            "{:?}",
            a.findings
        );
        let a = Harness::new()
            .config("max_objects", "5")
            .debug::<Probe>(Incident::from_alerts("i", alerts))
            .unwrap();
        assert!(a.summary.ends_with("| omitted 18"));
    }

    #[test]
    fn a_missing_label_is_an_error_naming_it_and_other_alerts_are_ignored() {
        let no_pod = Alert::firing(&[("alertname", "KubePodCrashLooping"), ("namespace", "shop")]);
        let err = Harness::new()
            .debug::<Probe>(Incident::from_alerts("i", vec![no_pod.clone()]))
            .unwrap_err();
        assert!(err.message.contains("`pod` label"), "{}", err.message);
        let a = Harness::new()
            .debug::<Probe>(Incident::from_alerts("i", vec![no_pod, crashloop("api-1")]))
            .unwrap();
        assert_eq!(a.findings[0].title, "Alerts without a `pod` label");
        let other = Alert::firing(&[("alertname", "CPUThrottlingHigh"), ("pod", "x")]);
        let a = Harness::new()
            .debug::<Probe>(Incident::from_alerts("i", vec![other]))
            .unwrap();
        assert_eq!(a.summary, " | omitted 0", "not one of its alerts: nothing to examine");
    }

    #[test]
    fn resolved_alerts_count_only_when_nothing_fires() {
        let mut gone = crashloop("old");
        gone.status = AlertStatus::Resolved;
        let i = Incident::from_alerts("i", vec![gone.clone(), crashloop("new")]);
        assert_eq!(i.current().len(), 1);
        let i = Incident::from_alerts("i", vec![gone]);
        assert_eq!(i.current().len(), 1);
    }

    #[test]
    fn groups_biggest_first_and_lists_some() {
        let g = group([("a", 1), ("b", 2), ("b", 3), ("c", 4)]);
        assert_eq!(g, vec![("b", vec![2, 3]), ("a", vec![1]), ("c", vec![4])]);
        let names: Vec<String> = (1..=7).map(|i| format!("p{i}")).collect();
        assert_eq!(list_some(&names, 3), "p1, p2, p3 and 4 more");
        assert_eq!(count(1, "pod", "pods"), "1 pod");
    }
}
