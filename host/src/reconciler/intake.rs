//! The front door: the readiness gates, parsing a webhook body into one group's batch, and the
//! bounded memory of notifications already accepted (Alertmanager retries until it gets a 2xx).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::alert::Payload;
use crate::bounded::Recent;
use crate::model::{Alert, AlertStatus};

/// A batch of new alert notifications for one group.
#[derive(Debug, Clone)]
pub struct AlertBatch {
    /// The group (Alertmanager's groupKey, or built from `group_by` labels).
    pub group_key: String,
    /// Where they came from.
    pub source: String,
    /// The notifications not seen before.
    pub alerts: Vec<Alert>,
}

/// What `/webhook` answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Alerts queued.
    pub accepted: usize,
    /// Alerts dropped as retries of ones already accepted.
    pub duplicates: usize,
}

/// Why an alert body was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Bad payload (400).
    #[error(transparent)]
    Invalid(#[from] crate::Error),
    /// The queue is full (503 with Retry-After).
    #[error("the alert queue is full ({0} batches); retry later")]
    QueueFull(usize),
    /// Shutting down (503).
    #[error("the host is shutting down; retry against another replica")]
    ShuttingDown,
    /// Redis is unreachable, so nothing could be stored (503).
    #[error("the incident store (Redis) is unreachable; retry later")]
    StoreUnavailable,
}

/// One notification: the alert, when it started, and whether it fires (a resolve is news too).
type Key = (String, String, bool);

/// Notifications admitted but not yet remembered.
#[derive(Debug, Default)]
pub struct Seen(Vec<Key>);

fn key(a: &Alert) -> Key {
    (
        a.fingerprint.clone(),
        a.starts_at.clone(),
        a.status == AlertStatus::Firing,
    )
}

/// A parsed body: the batch to queue (`None` when everything was a repeat) and the counts.
#[derive(Debug)]
pub struct Admitted {
    /// What to queue.
    pub batch: Option<AlertBatch>,
    /// The batch's notifications, to [`Intake::remember`] once it is queued.
    pub seen: Seen,
    /// What to answer.
    pub accepted: Accepted,
    /// Alerts in the body.
    pub total: usize,
}

/// Gates, grouping and the dedup memory.
#[derive(Debug)]
pub struct Intake {
    group_by: Vec<String>,
    seen: Mutex<Recent<Key>>,
    shutting_down: AtomicBool,
    store_down: AtomicBool,
}

impl Intake {
    /// Group generic alerts by `group_by`; remember the last `capacity` notifications.
    pub fn new(group_by: Vec<String>, capacity: usize) -> Self {
        Intake {
            group_by,
            seen: Mutex::new(Recent::new(capacity)),
            shutting_down: AtomicBool::new(false),
            store_down: AtomicBool::new(false),
        }
    }

    /// Parse `body` (received `now`, RFC 3339) and drop the notifications accepted before and
    /// the repeats within it. Nothing is remembered yet: see [`Intake::remember`].
    pub fn admit(&self, body: &[u8], now: &str) -> Result<Admitted, IntakeError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(IntakeError::ShuttingDown);
        }
        if self.store_down.load(Ordering::SeqCst) {
            return Err(IntakeError::StoreUnavailable);
        }
        let Payload {
            group_key,
            source,
            alerts,
            common_labels,
        } = crate::alert::parse(body, now)?;
        let total = alerts.len();
        let group_key = group_key.unwrap_or_else(|| {
            let parts: Vec<String> = self
                .group_by
                .iter()
                .map(|l| format!("{l}={:?}", common_labels.get(l).map(String::as_str).unwrap_or("")))
                .collect();
            format!("{source}:{{{}}}", parts.join(","))
        });
        let fresh: Vec<Alert> = {
            let seen = self.seen.lock();
            let mut in_body = HashSet::new();
            alerts
                .into_iter()
                .filter(|a| {
                    let k = key(a);
                    !seen.contains(&k) && in_body.insert(k)
                })
                .collect()
        };
        let accepted = Accepted {
            accepted: fresh.len(),
            duplicates: total - fresh.len(),
        };
        let seen = Seen(fresh.iter().map(key).collect());
        let batch = (!fresh.is_empty()).then_some(AlertBatch {
            group_key,
            source,
            alerts: fresh,
        });
        Ok(Admitted {
            batch,
            seen,
            accepted,
            total,
        })
    }

    /// An admitted batch was queued: its retries are duplicates from now on. (Only what was
    /// queued counts as seen: a refused batch is retried, and accepted then.)
    pub fn remember(&self, admitted: Seen) {
        let mut seen = self.seen.lock();
        for k in admitted.0 {
            seen.insert(k, ());
        }
    }

    /// Alerts a previous host accepted: their retries are duplicates here too.
    pub fn remember_alerts<'a>(&self, alerts: impl IntoIterator<Item = &'a Alert>) {
        self.remember(Seen(alerts.into_iter().map(key).collect()));
    }

    /// Is the host accepting alerts? (Not while shutting down, nor while Redis is away.)
    pub fn ready(&self) -> bool {
        !self.shutting_down.load(Ordering::SeqCst) && !self.store_down.load(Ordering::SeqCst)
    }

    /// Refuse alerts from now on.
    pub fn shut(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Record whether the store answers; `true` when that changed.
    pub fn set_store_up(&self, up: bool) -> bool {
        self.store_down.swap(!up, Ordering::SeqCst) == up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(alerts: &[(&str, &str)]) -> Vec<u8> {
        let alerts: Vec<_> = alerts
            .iter()
            .map(|(fp, status)| {
                serde_json::json!({"status": status, "labels": {"alertname": "A", "fp": fp},
                    "startsAt": "2026-01-01T00:00:00Z", "fingerprint": fp})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({"version": "4", "groupKey": "{}:{alertname=\"A\"}",
            "status": "firing", "receiver": "r", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "", "alerts": alerts}))
        .unwrap()
    }

    #[test]
    fn repeats_in_a_body_and_across_bodies_are_dropped_once_remembered() {
        let i = Intake::new(vec!["alertname".into()], 100);
        let a = i
            .admit(&body(&[("f1", "firing"), ("f1", "firing"), ("f2", "firing")]), "now")
            .unwrap();
        assert_eq!(
            a.accepted,
            Accepted {
                accepted: 2,
                duplicates: 1
            }
        );
        // Not remembered until queued: the same body again is accepted again.
        let again = i.admit(&body(&[("f1", "firing")]), "now").unwrap();
        assert_eq!(again.accepted.accepted, 1);
        i.remember(a.seen);
        let retry = i.admit(&body(&[("f1", "firing"), ("f2", "firing")]), "now").unwrap();
        assert!(retry.batch.is_none());
        assert_eq!(
            retry.accepted,
            Accepted {
                accepted: 0,
                duplicates: 2
            }
        );
        // A resolve of the same alert is news.
        let resolved = i.admit(&body(&[("f1", "resolved")]), "now").unwrap();
        assert_eq!(resolved.accepted.accepted, 1);
    }

    #[test]
    fn the_dedup_memory_is_bounded() {
        let i = Intake::new(vec![], 2);
        for fp in ["a", "b", "c"] {
            let a = i.admit(&body(&[(fp, "firing")]), "now").unwrap();
            i.remember(a.seen);
        }
        assert_eq!(i.seen.lock().len(), 2);
        assert_eq!(
            i.admit(&body(&[("a", "firing")]), "now").unwrap().accepted.accepted,
            1,
            "oldest forgotten"
        );
        assert_eq!(i.admit(&body(&[("c", "firing")]), "now").unwrap().accepted.accepted, 0);
    }

    #[test]
    fn gates_refuse_before_parsing() {
        let i = Intake::new(vec![], 10);
        assert!(i.ready());
        assert!(i.set_store_up(false), "a change");
        assert!(!i.set_store_up(false), "no change");
        assert!(matches!(
            i.admit(b"not json", "now"),
            Err(IntakeError::StoreUnavailable)
        ));
        i.set_store_up(true);
        assert!(matches!(i.admit(b"not json", "now"), Err(IntakeError::Invalid(_))));
        i.shut();
        assert!(!i.ready());
        assert!(matches!(
            i.admit(&body(&[("a", "firing")]), "now"),
            Err(IntakeError::ShuttingDown)
        ));
    }
}
