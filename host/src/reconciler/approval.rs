//! Who may approve what: an approval request, its caller, the pure resolution of a request
//! against the incident's suggestions and the caller's role, and the circuit breaker that stops
//! the same action on the same target from running again and again. Chat integrations reach the
//! reconciler through the narrow [`Approvals`] trait declared here.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::access::Role;
use crate::incident::{ActionRun, ActionSuggestion};

/// A caller of the approval API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name.
    pub token: String,
    /// Role.
    pub role: Role,
    /// Channel (`api`, `web`, `webex`, `slack`).
    pub channel: String,
}

/// An approval request (the native body of `POST /api/actions`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Incident id.
    pub incident: String,
    /// Action name, or a suggestion id (`act-…`).
    #[schema(
        pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        max_length = 63,
        example = "open-ticket"
    )]
    pub action: String,
    /// Parameters (a JSON object); omit to take the suggestion's.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    /// Who approves (a person).
    #[schema(pattern = "\\S", example = "oncall@example.com")]
    pub approver: String,
    /// Only preview: run the actor as a dry run and answer what it would change; nothing is
    /// approved, nothing changes.
    #[serde(default)]
    pub dry_run: bool,
}

/// Why an approval was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// 404.
    #[error("unknown incident `{0}`")]
    UnknownIncident(String),
    /// 422: ambiguous, or not an action name.
    #[error("{0}")]
    Unprocessable(String),
    /// 422: not suggested, and the caller is no operator (recorded in the event log).
    #[error("{0}")]
    NotSuggested(String),
    /// 429.
    #[error("{0}")]
    Breaker(String),
    /// 409: no installed actor implements the action; nothing was queued.
    #[error("{0}")]
    NoActor(String),
}

/// What chat integrations need of the reconciler: approve, and record what a person did.
pub trait Approvals: Send + Sync {
    /// Approve an action: the run, and whether it is new (`false`: approved before, nothing
    /// runs again).
    fn approve(&self, req: Approval, caller: &Caller) -> Result<(ActionRun, bool), ApproveError>;
    /// Append an event to an incident's log (a refusal, a rejection).
    fn note(&self, incident: &str, kind: &str, detail: &str, by: Option<String>, channel: &str);
}

/// An approval resolved against the incident's suggestions.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The action name.
    pub action: String,
    /// Its parameters.
    pub params: serde_json::Value,
    /// Was exactly this suggested?
    pub suggested: bool,
}

/// Resolve `req` against `suggestions`: by suggestion id, by name and parameters, or by name
/// alone when it was suggested once. An action that was not suggested needs an operator; the
/// `Err` says why (and is what the event log records).
pub fn resolve(suggestions: &[ActionSuggestion], req: &Approval, role: Role) -> Result<Resolved, ApproveError> {
    let by_id = suggestions.iter().find(|s| s.id == req.action);
    let (action, params, suggested) = match (by_id, &req.params) {
        (Some(s), _) => (s.action.clone(), s.parameters.clone(), true),
        (None, Some(p)) => {
            let hit = suggestions.iter().any(|s| s.action == req.action && &s.parameters == p);
            (req.action.clone(), p.clone(), hit)
        }
        (None, None) => {
            let same: Vec<_> = suggestions.iter().filter(|s| s.action == req.action).collect();
            match same.as_slice() {
                [one] => (one.action.clone(), one.parameters.clone(), true),
                [] => (req.action.clone(), serde_json::json!({}), false),
                many => {
                    let ids: Vec<&str> = many.iter().map(|s| s.id.as_str()).collect();
                    return Err(ApproveError::Unprocessable(format!(
                        "`{}` was suggested {} times with different parameters; approve one by id ({}) or give `params`",
                        req.action,
                        many.len(),
                        ids.join(", ")
                    )));
                }
            }
        }
    };
    if !crate::manifest::is_dns_label(&action) {
        return Err(ApproveError::Unprocessable(format!("`{action}` is not an action name")));
    }
    if !suggested && role < Role::Operator {
        return Err(ApproveError::NotSuggested(format!(
            "`{action}` with {params} was not suggested for this incident; only an operator token may run an unsuggested action"
        )));
    }
    Ok(Resolved {
        action,
        params,
        suggested,
    })
}

/// At most `max` runs of one action on one target per `window`.
#[derive(Debug)]
pub struct Breaker {
    max: usize,
    window: Duration,
    history: HashMap<String, VecDeque<Instant>>,
}

/// Targets whose history is kept before the idle ones are swept out.
const BREAKER_TARGETS: usize = 10_000;

impl Breaker {
    /// A breaker allowing `max` runs per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Breaker {
            max: max as usize,
            window,
            history: HashMap::new(),
        }
    }

    /// Count a run of `target` at `now`, or refuse it (the message says why).
    pub fn admit(&mut self, target: &str, now: Instant) -> Result<(), String> {
        let window = self.window;
        let history = self.history.entry(target.to_string()).or_default();
        while history
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            history.pop_front();
        }
        if history.len() >= self.max {
            return Err(format!(
                "circuit breaker: `{target}` already ran {} times in the last {} s; refusing",
                history.len(),
                window.as_secs()
            ));
        }
        history.push_back(now);
        if self.history.len() > BREAKER_TARGETS {
            self.history
                .retain(|_, h| h.back().is_some_and(|t| now.saturating_duration_since(*t) < window));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn suggestion(id: &str, action: &str, params: serde_json::Value) -> ActionSuggestion {
        ActionSuggestion {
            id: id.into(),
            action: action.into(),
            parameters: params,
            reasons: vec![],
            recipes: vec![],
            actor: None,
            preview: None,
        }
    }

    fn req(action: &str, params: Option<serde_json::Value>) -> Approval {
        Approval {
            incident: "inc-1".into(),
            action: action.into(),
            params,
            approver: "alice".into(),
            dry_run: false,
        }
    }

    #[test]
    fn by_id_by_name_and_by_name_with_params() {
        let s = vec![suggestion("act-1", "restart", json!({"pod": "a"}))];
        let by_id = resolve(&s, &req("act-1", None), Role::Approver).unwrap();
        assert_eq!((by_id.action.as_str(), by_id.suggested), ("restart", true));
        assert_eq!(
            resolve(&s, &req("restart", None), Role::Approver).unwrap().params,
            json!({"pod": "a"})
        );
        assert!(
            resolve(&s, &req("restart", Some(json!({"pod": "a"}))), Role::Approver)
                .unwrap()
                .suggested
        );
    }

    #[test]
    fn unsuggested_needs_an_operator() {
        let s = vec![suggestion("act-1", "restart", json!({"pod": "a"}))];
        let other = req("restart", Some(json!({"pod": "b"})));
        let e = resolve(&s, &other, Role::Approver).unwrap_err();
        assert!(e.to_string().contains("only an operator"), "{e}");
        let r = resolve(&s, &other, Role::Operator).unwrap();
        assert!(!r.suggested);
        assert!(resolve(&[], &req("cordon-node", None), Role::Viewer).is_err());
        assert!(resolve(&[], &req("cordon-node", None), Role::Operator).is_ok());
    }

    #[test]
    fn ambiguous_and_malformed_names_are_refused() {
        let s = vec![
            suggestion("act-1", "restart", json!({"pod": "a"})),
            suggestion("act-2", "restart", json!({"pod": "b"})),
        ];
        let e = resolve(&s, &req("restart", None), Role::Operator).unwrap_err();
        assert!(e.to_string().contains("act-1, act-2"), "{e}");
        let e = resolve(&[], &req("Not An Action", None), Role::Operator).unwrap_err();
        assert!(e.to_string().contains("not an action name"), "{e}");
    }

    #[test]
    fn the_breaker_opens_at_max_and_closes_after_the_window() {
        let mut b = Breaker::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(b.admit("restart {}", t0).is_ok());
        assert!(b.admit("restart {}", t0 + Duration::from_secs(1)).is_ok());
        let e = b.admit("restart {}", t0 + Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("already ran 2 times in the last 60 s"), "{e}");
        assert!(b.admit("other {}", t0).is_ok(), "per target");
        // The first run leaves the window at exactly its length.
        assert!(b.admit("restart {}", t0 + Duration::from_secs(60)).is_ok());
        assert!(b.admit("restart {}", t0 + Duration::from_secs(60)).is_err());
    }
}
