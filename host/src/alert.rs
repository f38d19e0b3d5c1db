//! Alert payloads → [`Incident`]: Prometheus Alertmanager's webhook (version "4"), Grafana
//! Alerting's webhook contact point (the same shape plus extras), a single alert, or the generic
//! JSON alert:
//!
//! ```json
//! {"labels": {"alertname": "DiskFull", "instance": "db-1"}, "annotations": {"summary": "…"},
//!  "status": "firing", "startsAt": "2026-11-24T08:00:00Z"}
//! ```
//! (`status` defaults to firing, `startsAt` to now; `labels.alertname` is required.)

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Error;
use crate::model::{Alert, AlertStatus, Incident};

/// Alertmanager's webhook body (version "4"; Grafana's contact point sends the same shape with
/// `orgId` and more, which is read too).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AlertmanagerWebhook)]
pub struct Webhook {
    /// Always "4" today.
    #[schema(pattern = "^4$", example = "4")]
    pub version: String,
    /// Group key: the incident grouping key.
    pub group_key: String,
    /// Alerts dropped because of `max_alerts`.
    #[serde(default, deserialize_with = "count")]
    #[schema(value_type = i64, minimum = 0.0, maximum = 4294967295.0)]
    pub truncated_alerts: u32,
    /// firing/resolved for the group.
    pub status: AlertStatus,
    /// Receiver name.
    pub receiver: String,
    /// Labels the group is grouped by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Alertmanager's claim of the labels all alerts share; the host recomputes them from the
    /// alerts and does not use this.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations all alerts share.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Alertmanager's URL.
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    /// The alerts (at least one).
    #[schema(min_items = 1)]
    pub alerts: Vec<Alert>,
    /// Grafana: organisation id (present when Grafana sent it).
    #[serde(default, deserialize_with = "optional_count")]
    #[schema(value_type = Option<i64>, minimum = 0.0, maximum = 4294967295.0)]
    pub org_id: Option<u32>,
}

/// One alert in the generic form (`status` defaults to firing, `startsAt` to now).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenericAlert {
    #[serde(default)]
    status: Option<AlertStatus>,
    #[schema(value_type = AlertLabels)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
    #[serde(default)]
    fingerprint: String,
}

/// A generic alert's labels as the document describes them: `alertname` and any others.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AlertLabels {
    alertname: String,
    #[serde(flatten)]
    other: BTreeMap<String, String>,
}

/// A count, as JSON Schema reads "integer": `7` or `7.0`, 0 to `u32::MAX`.
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::de::Error as _;
    let n = serde_json::Number::deserialize(d)?;
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    whole
        .and_then(|u| u32::try_from(u).ok())
        .ok_or_else(|| D::Error::custom(format!("expected a whole number from 0 to {}, got {n}", u32::MAX)))
}

/// [`count`], or `null`.
fn optional_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Count(#[serde(deserialize_with = "count")] u32);
    Ok(Option::<Count>::deserialize(d)?.map(|c| c.0))
}

fn parse_as<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        Error::Alert(format!("field `{path}`: {}", e.into_inner()))
    })
}

/// The fingerprint Alertmanager would not have given us: sha256 of the sorted label set, 16 hex.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (k, v) in labels {
        text.push_str(k);
        text.push('\u{ff}');
        text.push_str(v);
        text.push('\u{ff}');
    }
    crate::digest::Digest::of(text.as_bytes()).hex()[..16].to_string()
}

/// The labels every alert carries with the same value.
pub fn common_labels(alerts: &[Alert]) -> BTreeMap<String, String> {
    let mut common = alerts.first().map(|a| a.labels.clone()).unwrap_or_default();
    for a in alerts.iter().skip(1) {
        common.retain(|k, v| a.labels.get(k) == Some(v));
    }
    common
}

/// A parsed alert payload.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Alertmanager's groupKey, when the payload is a webhook body.
    pub group_key: Option<String>,
    /// `alertmanager`, `grafana` or `generic`.
    pub source: String,
    /// The alerts, each with a fingerprint.
    pub alerts: Vec<Alert>,
    /// Labels all alerts share.
    pub common_labels: BTreeMap<String, String>,
}

/// Parse a webhook body, one alert, or a generic alert into an incident with id `id`.
pub fn incident_from_json(body: &[u8], id: &str, now_rfc3339: &str) -> Result<Incident, Error> {
    let p = parse(body, now_rfc3339)?;
    Ok(Incident {
        id: id.into(),
        source: p.source,
        alerts: p.alerts,
        common_labels: p.common_labels,
    })
}

/// Parse a webhook body, one alert, or a generic alert.
pub fn parse(body: &[u8], now_rfc3339: &str) -> Result<Payload, Error> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| Error::Alert(format!("not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| Error::Alert("expected a JSON object".into()))?;
    if obj.contains_key("alerts") {
        let hook: Webhook = parse_as(&value)?;
        if hook.version != "4" {
            return Err(Error::Alert(format!(
                "field `version`: unsupported webhook version `{}`; Euphrosyne speaks version \"4\"",
                hook.version
            )));
        }
        if hook.alerts.is_empty() {
            return Err(Error::Alert("field `alerts`: empty; nothing to do".into()));
        }
        let source = if hook.org_id.is_some() {
            "grafana"
        } else {
            "alertmanager"
        };
        let mut alerts = hook.alerts;
        for (i, a) in alerts.iter_mut().enumerate() {
            if a.labels.is_empty() {
                return Err(Error::Alert(format!("field `alerts[{i}].labels`: empty")));
            }
            if a.fingerprint.is_empty() {
                a.fingerprint = fingerprint(&a.labels);
            }
        }
        // The body's `commonLabels` is a claim; what the alerts share is computed from them (a
        // label no alert carries must not widen, say, the incident's namespaces). Found by the
        // `webhook` fuzz target.
        let common = common_labels(&alerts);
        let group_key = Some(hook.group_key).filter(|k| !k.is_empty());
        return Ok(Payload {
            group_key,
            source: source.into(),
            alerts,
            common_labels: common,
        });
    }
    let g: GenericAlert = parse_as(&value)?;
    if !g.labels.contains_key("alertname") {
        return Err(Error::Alert("field `labels.alertname`: required".into()));
    }
    let fp = if g.fingerprint.is_empty() {
        fingerprint(&g.labels)
    } else {
        g.fingerprint
    };
    let alert = Alert {
        status: g.status.unwrap_or(AlertStatus::Firing),
        starts_at: g.starts_at.unwrap_or_else(|| now_rfc3339.to_string()),
        ends_at: g.ends_at,
        generator_url: g.generator_url,
        fingerprint: fp,
        labels: g.labels,
        annotations: g.annotations,
    };
    let common = alert.labels.clone();
    Ok(Payload {
        group_key: None,
        source: "generic".into(),
        alerts: vec![alert],
        common_labels: common,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_labels_are_what_the_alerts_share_not_what_the_body_claims() {
        // The `webhook` fuzz target's first find: `commonLabels` naming a label no alert has.
        let body = br#"{"version":"4","groupKey":"g","status":"firing","receiver":"r","groupLabels":{},
          "commonLabels":{"alertname":"X","namespace":"kube-system"},"commonAnnotations":{},"externalURL":"",
          "alerts":[{"status":"firing","labels":{"alertname":"X","namespace":"shop","pod":"a"},"annotations":{},
                     "startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"f1"},
                    {"status":"firing","labels":{"alertname":"X","namespace":"shop","pod":"b"},"annotations":{},
                     "startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"f2"}]}"#;
        let p = parse(body, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(p.common_labels.get("namespace").map(String::as_str), Some("shop"));
        assert!(!p.common_labels.contains_key("pod"));
    }

    const HOOK: &str = r#"{"version":"4","groupKey":"{}:{alertname=\"KubePodCrashLooping\"}","truncatedAlerts":0,
      "status":"firing","receiver":"euphrosyne","groupLabels":{"alertname":"KubePodCrashLooping"},
      "commonLabels":{"alertname":"KubePodCrashLooping","namespace":"shop"},"commonAnnotations":{},
      "externalURL":"http://am:9093","alerts":[{"status":"firing","labels":{"alertname":"KubePodCrashLooping",
      "namespace":"shop","pod":"web-1"},"annotations":{"summary":"crashloop"},"startsAt":"2026-11-24T08:00:00Z",
      "endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/graph","fingerprint":"abc123"}]}"#;

    #[test]
    fn parses_alertmanager_webhooks() {
        let i = incident_from_json(HOOK.as_bytes(), "inc-1", "now").unwrap();
        assert_eq!(i.source, "alertmanager");
        assert_eq!(i.alerts[0].labels["pod"], "web-1");
        assert_eq!(i.alerts[0].fingerprint, "abc123");
        assert_eq!(i.common_labels["namespace"], "shop");
    }

    #[test]
    fn parses_generic_alerts() {
        let i = incident_from_json(
            br#"{"labels":{"alertname":"DiskFull","instance":"db-1"}}"#,
            "i",
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(i.source, "generic");
        assert_eq!(i.alerts[0].status, AlertStatus::Firing);
        assert_eq!(i.alerts[0].starts_at, "2026-01-01T00:00:00Z");
        assert_eq!(i.alerts[0].fingerprint.len(), 16);
    }

    #[test]
    fn names_the_bad_field() {
        let bad = HOOK.replace(r#""status":"firing","labels""#, r#""status":"burning","labels""#);
        let err = incident_from_json(bad.as_bytes(), "i", "now").unwrap_err().to_string();
        assert!(err.contains("alerts[0].status"), "{err}");
        let err = incident_from_json(br#"{"labels":{"x":"y"}}"#, "i", "now")
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels.alertname"), "{err}");
        let err = incident_from_json(
            HOOK.replace(r#""version":"4""#, r#""version":"3""#).as_bytes(),
            "i",
            "now",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("version"), "{err}");
        assert!(incident_from_json(b"[1]", "i", "now").is_err());
        assert!(incident_from_json(b"{", "i", "now").is_err());
    }
}
