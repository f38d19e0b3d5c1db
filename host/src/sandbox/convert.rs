//! Conversions between [`crate::model`] and the WIT types of both contract versions. The
//! records both versions share are converted by one macro; 0.2.0's `action-request.dry-run` and
//! `outcome.changes` are the only differences.

use super::bindings::{self, v1};
use crate::model;

fn pairs(m: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `Incident` into, `Analysis` out of, the `types` module `$t`.
macro_rules! shared {
    ($t:path) => {
        const _: () = {
            use $t as types;

            impl From<&model::Incident> for types::Incident {
                fn from(i: &model::Incident) -> Self {
                    types::Incident {
                        id: i.id.clone(),
                        source: i.source.clone(),
                        alerts: i
                            .alerts
                            .iter()
                            .map(|a| types::Alert {
                                status: match a.status {
                                    model::AlertStatus::Firing => types::AlertStatus::Firing,
                                    model::AlertStatus::Resolved => types::AlertStatus::Resolved,
                                },
                                labels: pairs(&a.labels),
                                annotations: pairs(&a.annotations),
                                starts_at: a.starts_at.clone(),
                                ends_at: a.ends_at.clone(),
                                generator_url: a.generator_url.clone(),
                                fingerprint: a.fingerprint.clone(),
                            })
                            .collect(),
                        common_labels: pairs(&i.common_labels),
                    }
                }
            }

            impl From<types::Analysis> for model::Analysis {
                fn from(a: types::Analysis) -> Self {
                    model::Analysis {
                        verdict: match a.verdict {
                            types::Verdict::Identified => model::Verdict::Identified,
                            types::Verdict::Inconclusive => model::Verdict::Inconclusive,
                        },
                        summary: a.summary,
                        findings: a
                            .findings
                            .into_iter()
                            .map(|f| model::Finding {
                                title: f.title,
                                detail: f.detail,
                                severity: match f.severity {
                                    types::Severity::Info => model::Severity::Info,
                                    types::Severity::Warning => model::Severity::Warning,
                                    types::Severity::Critical => model::Severity::Critical,
                                },
                            })
                            .collect(),
                        actions: a
                            .actions
                            .into_iter()
                            .map(|s| model::SuggestedAction {
                                parameters: serde_json::from_str(&s.parameters)
                                    .unwrap_or(serde_json::Value::String(s.parameters)),
                                action: s.action,
                                reason: s.reason,
                            })
                            .collect(),
                    }
                }
            }
        };
    };
}

shared!(bindings::euphrosyne::recipe::types);
shared!(v1::euphrosyne::recipe::types);

mod current {
    use super::*;
    use crate::sandbox::bindings::euphrosyne::recipe::types;

    impl From<&model::ActionRequest> for types::ActionRequest {
        fn from(r: &model::ActionRequest) -> Self {
            types::ActionRequest {
                incident: (&r.incident).into(),
                action: r.action.clone(),
                parameters: r.parameters.to_string(),
                approved_by: r.approved_by.clone(),
                dry_run: r.dry_run,
            }
        }
    }

    impl From<types::Outcome> for model::Outcome {
        fn from(o: types::Outcome) -> Self {
            model::Outcome {
                success: o.success,
                summary: o.summary,
                details: o.details,
                changes: o
                    .changes
                    .into_iter()
                    .map(|c| model::Change {
                        object: model::ObjectRef {
                            api_version: c.object.api_version,
                            kind: c.object.kind,
                            namespace: c.object.namespace,
                            name: c.object.name,
                        },
                        path: c.path,
                        before: c.before,
                        after: c.after,
                        description: c.description,
                    })
                    .collect(),
            }
        }
    }
}

mod frozen {
    use super::*;
    use crate::sandbox::bindings::v1::euphrosyne::recipe::types;

    impl From<&model::ActionRequest> for types::ActionRequest {
        fn from(r: &model::ActionRequest) -> Self {
            types::ActionRequest {
                incident: (&r.incident).into(),
                action: r.action.clone(),
                parameters: r.parameters.to_string(),
                approved_by: r.approved_by.clone(),
            }
        }
    }

    impl From<types::Outcome> for model::Outcome {
        fn from(o: types::Outcome) -> Self {
            model::Outcome {
                success: o.success,
                summary: o.summary,
                details: o.details,
                changes: vec![],
            }
        }
    }
}
