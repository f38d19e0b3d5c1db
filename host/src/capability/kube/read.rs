//! Reads: `get`, `list`, `pod-logs`, `events` — each checked against the grants first.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use super::access::{KubeAccess, KubeError, api_resource, checked_name, lift, to_json};
use crate::capability::kube_grants::KubeVerb;

impl KubeAccess {
    /// `get`.
    pub async fn get(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Result<String, KubeError> {
        let target = format!("{kind} {}{name}", ns.map(|n| format!("{n}/")).unwrap_or_default());
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::Get, ns, &target)?;
        let obj = self
            .api(client, &ar, ns)?
            .get(checked_name("name", name)?)
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&obj)
    }

    /// `list`.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<String, KubeError> {
        let target = format!("{kind} list");
        let ar = api_resource(api_version, kind)?;
        let client = self.allow(&ar, KubeVerb::List, ns, &target)?;
        let mut lp = ListParams::default().limit(500);
        if let Some(l) = labels {
            lp = lp.labels(l);
        }
        if let Some(f) = fields {
            lp = lp.fields(f);
        }
        let list = self
            .api(client, &ar, ns)?
            .list(&lp)
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&serde_json::json!({ "kind": format!("{kind}List"), "items": list.items }))
    }

    /// `pod-logs`, capped at the run's output limit.
    pub async fn pod_logs(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        tail: Option<u32>,
        previous: bool,
    ) -> Result<String, KubeError> {
        let target = format!("logs of pod {ns}/{pod}");
        let ar = api_resource("v1", "Pod")?;
        let client = self.allow(&ar, KubeVerb::Logs, Some(ns), &target)?;
        let api: Api<Pod> = Api::namespaced(client, checked_name("namespace", ns)?);
        let lp = LogParams {
            container: container.map(str::to_string),
            tail_lines: tail.map(i64::from),
            previous,
            limit_bytes: Some(self.max_log_bytes),
            ..Default::default()
        };
        api.logs(checked_name("pod", pod)?, &lp)
            .await
            .map_err(|e| lift(e, &target))
    }

    /// `events` about one object. Kind and name are validated, never spliced raw into the selector.
    pub async fn events(&self, ns: Option<&str>, kind: &str, name: &str) -> Result<String, KubeError> {
        let target = format!("events of {kind} {name}");
        let ar = api_resource("v1", "Event")?;
        let client = self.allow(&ar, KubeVerb::List, ns, &target)?;
        let fields = format!(
            "involvedObject.kind={},involvedObject.name={}",
            checked_name("kind", kind)?,
            checked_name("name", name)?
        );
        let list = self
            .api(client, &ar, ns)?
            .list(&ListParams::default().fields(&fields).limit(200))
            .await
            .map_err(|e| lift(e, &target))?;
        to_json(&serde_json::json!({ "kind": "EventList", "items": list.items }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::Denials;
    use crate::capability::kube::{PatchType, WriteOptions};
    use crate::capability::kube_grants::{KubeGrants, Scope};

    #[tokio::test]
    async fn ungranted_verbs_are_denied_before_any_request() {
        let d = Denials::default();
        let grants = KubeGrants::of(
            Scope::Namespace,
            &[("pods", &[KubeVerb::Get]), ("deployments", &[KubeVerb::Get])],
        );
        let k = KubeAccess::new(None, &grants, vec!["shop".into()], d.clone(), 1024);
        let denied = [
            k.patch(
                "apps/v1",
                "Deployment",
                Some("shop"),
                "web",
                PatchType::Merge,
                "{}",
                WriteOptions::default(),
            )
            .await,
            k.get("v1", "Secret", Some("shop"), "db").await,
            k.get("v1", "Pod", Some("kube-system"), "etcd").await,
            k.get("v1", "Node", None, "n1").await,
            k.list("v1", "Pod", None, None, None).await,
            k.get("example.com/v1", "Deployment", Some("shop"), "web").await,
        ];
        for (i, err) in denied.into_iter().enumerate() {
            assert!(matches!(err, Err(KubeError::Denied(_))), "{i}: {err:?}");
        }
        let kept = d.list();
        assert!(
            kept[0].contains("patch on Deployment shop/web is not granted"),
            "{kept:?}"
        );
        assert!(kept[1].contains("Secret shop/db is not granted"), "{kept:?}");
        assert!(
            kept[2].contains("namespace `kube-system` is not the incident's (shop)"),
            "{kept:?}"
        );
        assert!(kept[3].contains("not granted"), "{kept:?}");
        assert!(kept[4].contains("not granted"), "{kept:?}");
        assert!(kept[5].contains("not a resource recipes can be granted"), "{kept:?}");
        assert_eq!(d.list().len(), 6);
        // Granted but no cluster: a clear API error, not a denial.
        let err = k.get("v1", "Pod", Some("shop"), "web").await.unwrap_err();
        assert!(
            matches!(err, KubeError::Api(ref m) if m.contains("no Kubernetes cluster")),
            "{err:?}"
        );
        assert_eq!(d.list().len(), 6);
    }

    #[test]
    fn selector_values_are_validated() {
        assert!(checked_name("name", "web-1").is_ok());
        assert!(checked_name("name", "web,involvedObject.kind=Secret").is_err());
        assert!(api_resource("apps/v1", "Deployment").is_ok());
        assert!(api_resource("apps/v1", "Deploy ment").is_err());
    }
}
