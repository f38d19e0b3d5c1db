//! `http-probe`: is the endpoint the alert names reachable from here, and how fast?
//!
//! Takes the URL from the alert annotation named by config `annotation` (default `probe_url`),
//! sends a GET through the host's allow-listed HTTP egress and reports the status code and the
//! latency. A non-2xx answer, a timeout or a refused connection is `identified`; a healthy answer
//! is `inconclusive` (the endpoint works from here; look elsewhere).

use recipe_sdk::prelude::*;
use std::time::Instant;

/// The recipe.
pub struct HttpProbe;

impl Debugger for HttpProbe {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let annotation = config::get_or("annotation", "probe_url");
        let url = incident
            .alerts
            .iter()
            .find_map(|a| a.annotation(&annotation))
            .ok_or_else(|| {
                RecipeError::new(format!(
                    "no alert carries the `{annotation}` annotation with a URL to probe"
                ))
            })?
            .to_string();
        let timeout = config::parse_or("timeout_ms", 3_000u64);
        let slow_ms = config::parse_or("slow_ms", 1_000u128);
        let started = Instant::now();
        let result = http::Request::get(&url).timeout_ms(timeout).send();
        let ms = started.elapsed().as_millis();
        Ok(match result {
            Ok(r) if r.is_success() && ms <= slow_ms => {
                Analysis::inconclusive(format!("{url} answers {} in {ms} ms from Euphrosyne", r.status))
                    .finding(Finding::info("HTTP status", format!("{} in {ms} ms", r.status)))
            }
            Ok(r) if r.is_success() => Analysis::identified(format!(
                "{url} is slow: {} in {ms} ms (threshold {slow_ms} ms)",
                r.status
            ))
            .finding(Finding::warning("Slow response", format!("{ms} ms"))),
            Ok(r) => {
                let body: String = r.text().chars().take(500).collect();
                let summary = format!("{url} answers {} in {ms} ms", r.status);
                Analysis::identified(summary.clone())
                    .finding(Finding::critical("HTTP status", format!("{} in {ms} ms", r.status)))
                    .finding(Finding::info("Response body (first 500 chars)", body))
                    .suggest(
                        "open-ticket",
                        ticket(&incident, &summary),
                        "the endpoint is failing; hand it to its owners",
                    )
            }
            Err(e) => {
                let summary = format!("{url} is unreachable: {}", e.message);
                Analysis::identified(summary.clone())
                    .finding(Finding::critical("Unreachable", format!("{} after {ms} ms", e.message)))
                    .suggest(
                        "open-ticket",
                        ticket(&incident, &summary),
                        "the endpoint is down; hand it to its owners",
                    )
            }
        })
    }
}

recipe_sdk::export_debugger!(HttpProbe);

/// `open-ticket` parameters for a failing endpoint.
fn ticket(incident: &Incident, summary: &str) -> serde_json::Value {
    let alertname = incident.label("alertname").unwrap_or("EndpointDown");
    serde_json::json!({ "summary": format!("{alertname}: {summary}"), "description": summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn incident() -> Incident {
        let alert =
            Alert::firing(&[("alertname", "EndpointDown")]).with_annotation("probe_url", "http://shop.example/health");
        Incident::from_alerts("inc", vec![alert])
    }

    #[test]
    fn server_error_is_identified() {
        let h = Harness::new().http_response("http://shop.example/", http::Response::new(503, "upstream down"));
        let a = h.debug::<HttpProbe>(incident()).unwrap();
        assert_eq!(a.verdict, Verdict::Identified);
        assert!(a.summary.contains("503"));
        assert_eq!(a.actions[0].action, "open-ticket");
        assert!(
            a.actions[0].parameters["summary"]
                .as_str()
                .unwrap()
                .starts_with("EndpointDown: http://shop.example/health answers 503")
        );
        assert_eq!(h.http_requests()[0].url, "http://shop.example/health");
    }

    #[test]
    fn healthy_endpoint_is_inconclusive() {
        let h = Harness::new().http_response("http://shop.example/", http::Response::new(200, "ok"));
        let a = h.debug::<HttpProbe>(incident()).unwrap();
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert!(a.actions.is_empty());
    }

    #[test]
    fn unreachable_is_identified_and_missing_annotation_is_an_error() {
        let a = Harness::new().debug::<HttpProbe>(incident()).unwrap();
        assert!(a.summary.contains("unreachable"));
        let err = Harness::new()
            .debug::<HttpProbe>(Incident::from_labels("i", &[("alertname", "X")]))
            .unwrap_err();
        assert!(err.message.contains("probe_url"));
    }
}
