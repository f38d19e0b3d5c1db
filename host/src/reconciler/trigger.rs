//! When a group's alerts are worth an analysis: the routes' trigger policies, parsed once, the
//! cooldown each group is in, and one pure [`Trigger::decide`] over an incident and a clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::bounded::Recent;
use crate::incident::{IncidentRecord, IncidentState};
use crate::matcher::Matchers;
use crate::model::AlertStatus;

/// When to react to a group of alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerPolicy {
    /// Firing alert notifications (after dedup) needed before the debuggers run.
    pub min_occurrences: u32,
    /// Collect alerts arriving together: wait this long after the last new alert (each new alert
    /// resets the window). 0 reacts at once.
    pub wait_for_more_ms: u64,
    /// After an analysis, do not analyse the same group again for this long.
    pub cooldown_ms: u64,
}

impl Default for TriggerPolicy {
    fn default() -> Self {
        TriggerPolicy {
            min_occurrences: 1,
            wait_for_more_ms: 0,
            cooldown_ms: 300_000,
        }
    }
}

/// What to do about an incident that just received firing news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its debuggers are running already; the news waits for their analysis.
    Busy,
    /// Not enough occurrences yet.
    Wait {
        /// Occurrences so far.
        have: u32,
        /// Needed.
        need: u32,
    },
    /// Its group was analysed `ago`, within the `cooldown`.
    Suppressed {
        /// Since the last analysis.
        ago: Duration,
        /// The group's cooldown.
        cooldown: Duration,
    },
    /// Wait this long for more alerts (a newer alert restarts the wait), then analyse.
    Collect(Duration),
    /// Analyse now.
    Analyze,
}

impl Decision {
    /// The event-log line for a decision that does not analyse now.
    pub fn explain(&self) -> Option<(&'static str, String)> {
        match self {
            Decision::Wait { have, need } => Some((
                "waiting",
                format!("{have} of {need} occurrences needed before reacting"),
            )),
            Decision::Suppressed { ago, cooldown } => Some((
                "suppressed",
                format!("analysed {}s ago; cooldown is {}s", ago.as_secs(), cooldown.as_secs()),
            )),
            _ => None,
        }
    }
}

/// The trigger policies (default and per route) and each group's last analysis.
#[derive(Debug)]
pub struct Trigger {
    default: TriggerPolicy,
    routes: Vec<(Matchers, TriggerPolicy)>,
    last_analysis: Recent<String, Instant>,
}

impl Trigger {
    /// Policies from parsed routes (first match wins) over `default`; cooldowns are remembered
    /// for the `memory` groups analysed most recently.
    pub fn new(default: TriggerPolicy, routes: Vec<(Matchers, TriggerPolicy)>, memory: usize) -> Self {
        Trigger {
            default,
            routes,
            last_analysis: Recent::new(memory),
        }
    }

    /// The policy of an incident's group: the first route its alerts' common labels match.
    fn policy_of(&self, rec: &IncidentRecord) -> TriggerPolicy {
        if self.routes.is_empty() {
            return self.default; // no labels to compute
        }
        self.policy_for(&crate::alert::common_labels(&rec.alerts))
    }

    /// The policy of a group with these common labels.
    pub fn policy_for(&self, labels: &BTreeMap<String, String>) -> TriggerPolicy {
        self.routes
            .iter()
            .find(|(m, _)| m.matches(labels))
            .map(|(_, p)| *p)
            .unwrap_or(self.default)
    }

    /// What to do now about `rec`, which just received firing news.
    pub fn decide(&self, rec: &IncidentRecord, now: Instant) -> Decision {
        if rec.state == IncidentState::Analyzing {
            return Decision::Busy;
        }
        let policy = self.policy_of(rec);
        if rec.occurrences < policy.min_occurrences {
            return Decision::Wait {
                have: rec.occurrences,
                need: policy.min_occurrences,
            };
        }
        let cooldown = Duration::from_millis(policy.cooldown_ms);
        if let Some(last) = self.last_analysis.get(&rec.group_key) {
            let ago = now.saturating_duration_since(*last);
            if ago < cooldown {
                return Decision::Suppressed { ago, cooldown };
            }
        }
        if policy.wait_for_more_ms > 0 {
            return Decision::Collect(Duration::from_millis(policy.wait_for_more_ms));
        }
        Decision::Analyze
    }

    /// After a restart: how long to wait before analysing `rec`, when it was collecting and
    /// due once its wait-for-more window passed (the window's timer died with the old host).
    pub fn resume(&self, rec: &IncidentRecord) -> Option<Duration> {
        let policy = self.policy_of(rec);
        (rec.state == IncidentState::Collecting
            && rec.occurrences >= policy.min_occurrences
            && rec.alerts.iter().any(|a| a.status == AlertStatus::Firing))
        .then(|| Duration::from_millis(policy.wait_for_more_ms))
    }

    /// `group` is being analysed now: its cooldown starts.
    pub fn analysed(&mut self, group: &str, now: Instant) {
        self.last_analysis.insert(group.to_string(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Alert;

    fn rec(group: &str, occurrences: u32, labels: &[(&str, &str)]) -> IncidentRecord {
        let mut r = IncidentRecord::new("inc-1".into(), group.into(), "test".into(), "now");
        r.alerts.push(Alert {
            fingerprint: "f1".into(),
            status: AlertStatus::Firing,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: Default::default(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: None,
            generator_url: String::new(),
        });
        r.occurrences = occurrences;
        r
    }

    fn policy(min: u32, wait: u64, cooldown: u64) -> TriggerPolicy {
        TriggerPolicy {
            min_occurrences: min,
            wait_for_more_ms: wait,
            cooldown_ms: cooldown,
        }
    }

    #[test]
    fn first_route_that_matches_wins_else_the_default() {
        let routes = vec![
            (Matchers::parse(&["severity=\"critical\""]).unwrap(), policy(1, 0, 0)),
            (Matchers::parse(&["team=~\"db|web\""]).unwrap(), policy(3, 0, 0)),
            (Matchers::parse(&["severity=\"critical\""]).unwrap(), policy(9, 0, 0)),
        ];
        let t = Trigger::new(policy(2, 0, 0), routes, 10);
        let labels = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(t.policy_for(&labels(&[("severity", "critical")])).min_occurrences, 1);
        assert_eq!(t.policy_for(&labels(&[("team", "db")])).min_occurrences, 3);
        assert_eq!(t.policy_for(&labels(&[("team", "dbx")])).min_occurrences, 2);
    }

    #[test]
    fn occurrences_then_cooldown_then_window() {
        let mut t = Trigger::new(policy(2, 0, 60_000), vec![], 10);
        let now = Instant::now();
        assert_eq!(t.decide(&rec("g", 1, &[]), now), Decision::Wait { have: 1, need: 2 });
        assert_eq!(t.decide(&rec("g", 2, &[]), now), Decision::Analyze);
        t.analysed("g", now);
        let later = now + Duration::from_secs(59);
        assert!(matches!(t.decide(&rec("g", 5, &[]), later), Decision::Suppressed { ago, .. } if ago.as_secs() == 59));
        // The cooldown is over at exactly its length, and it is per group.
        assert_eq!(
            t.decide(&rec("g", 5, &[]), now + Duration::from_secs(60)),
            Decision::Analyze
        );
        assert_eq!(t.decide(&rec("other", 5, &[]), later), Decision::Analyze);
        let w = Trigger::new(policy(1, 250, 0), vec![], 10);
        assert_eq!(
            w.decide(&rec("g", 1, &[]), now),
            Decision::Collect(Duration::from_millis(250))
        );
    }

    #[test]
    fn an_analysing_incident_is_busy_and_a_clock_going_back_is_no_panic() {
        let mut t = Trigger::new(policy(1, 0, 60_000), vec![], 10);
        let now = Instant::now();
        let mut r = rec("g", 1, &[]);
        r.state = IncidentState::Analyzing;
        assert_eq!(t.decide(&r, now), Decision::Busy);
        t.analysed("g", now + Duration::from_secs(5));
        // A decision "before" the analysis was recorded: zero ago, still suppressed.
        assert!(matches!(t.decide(&rec("g", 1, &[]), now), Decision::Suppressed { ago, .. } if ago.is_zero()));
    }

    #[test]
    fn cooldowns_are_remembered_for_a_bounded_number_of_groups() {
        let mut t = Trigger::new(policy(1, 0, 60_000), vec![], 2);
        let now = Instant::now();
        for g in ["a", "b", "c"] {
            t.analysed(g, now);
        }
        assert_eq!(
            t.decide(&rec("a", 1, &[]), now),
            Decision::Analyze,
            "forgotten: oldest out"
        );
        assert!(matches!(t.decide(&rec("c", 1, &[]), now), Decision::Suppressed { .. }));
    }

    #[test]
    fn resume_only_collecting_due_and_firing() {
        let t = Trigger::new(policy(2, 500, 0), vec![], 10);
        assert_eq!(t.resume(&rec("g", 2, &[])), Some(Duration::from_millis(500)));
        assert_eq!(t.resume(&rec("g", 1, &[])), None);
        let mut analysed = rec("g", 2, &[]);
        analysed.state = IncidentState::Analyzed;
        assert_eq!(t.resume(&analysed), None);
    }
}
