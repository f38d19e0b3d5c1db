//! `open-ticket` (action): open a Jira issue for the incident (`POST /rest/api/2/issue`, basic
//! auth) and return its key.
//!
//! Secrets (granted in the manifest): `jira-url` (e.g. `https://jira.example.com`), `jira-user`,
//! `jira-token`. Config: `project` (default `OPS`), `issue_type` (default `Incident`).
//! Parameters (all optional): `{"summary": "...", "description": "..."}`; defaults are built from
//! the incident's alerts. A preview (`dry_run`) sends nothing — the host refuses a preview's
//! POST anyway — and says which issue it would open.

use recipe_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// The recipe.
pub struct OpenTicket;

#[derive(Deserialize, Default)]
struct Params {
    summary: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    key: String,
}

impl Actor for OpenTicket {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let p: Params = request.params()?;
        let base = secrets::get("jira-url")?;
        let user = secrets::get("jira-user")?;
        let token = secrets::get("jira-token")?;
        let incident = &request.incident;
        let alertname = incident.label("alertname").unwrap_or("alert");
        let summary = p
            .summary
            .unwrap_or_else(|| format!("[Euphrosyne] {alertname} ({})", incident.id));
        let mut description = p.description.unwrap_or_default();
        description.push_str(&format!(
            "\n\nIncident {} — approved by {}.\n",
            incident.id, request.approved_by
        ));
        for a in &incident.alerts {
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            description.push_str(&format!("* {:?} {}\n", a.status, labels.join(", ")));
        }
        let body = json!({ "fields": {
            "project": { "key": config::get_or("project", "OPS") },
            "summary": summary,
            "description": description,
            "issuetype": { "name": config::get_or("issue_type", "Incident") },
        }});
        let url = format!("{}/rest/api/2/issue", base.trim_end_matches('/'));
        if request.dry_run {
            let project = config::get_or("project", "OPS");
            let change = Change {
                object: ObjectRef::new("jira/v2", "Issue", Some(&project), "(new)"),
                path: "fields.summary".into(),
                before: None,
                after: Some(json!(summary).to_string()),
                description: format!(
                    "a new {} issue in Jira project {project}",
                    config::get_or("issue_type", "Incident")
                ),
            };
            return Ok(
                Outcome::success(format!("would open a Jira issue in {project}: {summary}"))
                    .details(format!("POST {url}"))
                    .changes([change]),
            );
        }
        let resp = http::Request::post(&url).basic_auth(&user, &token).json(&body).send()?;
        if resp.status != 201 && resp.status != 200 {
            let text: String = resp.text().chars().take(300).collect();
            return Ok(Outcome::failure(format!("Jira answered {}", resp.status)).details(text));
        }
        let created: Created = resp.json()?;
        let link = format!("{}/browse/{}", base.trim_end_matches('/'), created.key);
        Ok(Outcome::success(format!("opened {}", created.key)).details(link))
    }
}

recipe_sdk::export_actor!(OpenTicket);

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn harness() -> Harness {
        Harness::new()
            .secret("jira-url", "https://jira.example.com/")
            .secret("jira-user", "bot")
            .secret("jira-token", "s3cret")
            .config("project", "SRE")
    }

    #[test]
    fn a_preview_sends_nothing() {
        let h = harness();
        let req = ActionRequest::new("open-ticket", json!({"summary": "db down"}), "alice").preview();
        let out = h.act::<OpenTicket>(req).unwrap();
        assert!(
            out.success && out.summary == "would open a Jira issue in SRE: db down",
            "{}",
            out.summary
        );
        assert!(h.http_requests().is_empty());
    }

    #[test]
    fn creates_an_issue_and_returns_its_key() {
        let h = harness().http_response(
            "https://jira.example.com/rest/api/2/issue",
            http::Response::new(
                201,
                r#"{"id":"10000","key":"SRE-42","self":"https://jira.example.com/rest/api/2/issue/10000"}"#,
            ),
        );
        let out = h
            .act::<OpenTicket>(ActionRequest::new(
                "open-ticket",
                json!({"summary": "web down"}),
                "carol",
            ))
            .unwrap();
        assert!(out.success);
        assert_eq!(out.summary, "opened SRE-42");
        assert_eq!(out.details, "https://jira.example.com/browse/SRE-42");
        let req = &h.http_requests()[0];
        assert_eq!(req.method, "POST");
        assert!(
            req.headers
                .contains(&("authorization".into(), "Basic Ym90OnMzY3JldA==".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["fields"]["project"]["key"], "SRE");
        assert_eq!(body["fields"]["summary"], "web down");
        assert_eq!(body["fields"]["issuetype"]["name"], "Incident");
    }

    #[test]
    fn jira_error_is_a_failed_outcome() {
        let h = harness().http_response(
            "https://jira.example.com/",
            http::Response::new(400, r#"{"errors":{"project":"project is required"}}"#),
        );
        let out = h
            .act::<OpenTicket>(ActionRequest::new("open-ticket", json!({}), "carol"))
            .unwrap();
        assert!(!out.success);
        assert!(out.details.contains("project is required"));
    }

    #[test]
    fn missing_secret_is_an_error() {
        let err = Harness::new()
            .act::<OpenTicket>(ActionRequest::new("open-ticket", json!({}), "carol"))
            .unwrap_err();
        assert!(err.message.contains("jira-url"));
    }
}
