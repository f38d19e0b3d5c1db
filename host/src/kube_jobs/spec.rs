//! The hardened Job for one run: the host's image running `euphrosyne sandbox --run ID`,
//! non-root, read-only root, no capabilities, seccomp, limits from the manifest, the recipe's
//! ConfigMap and granted Secrets mounted read-only, owned by the ConfigMap.

use k8s_openapi::api::batch::v1::Job;
use serde_json::json;

use super::config::{KubeConfig, RECIPE_MOUNT, RUN_LABEL, SECRETS_MOUNT};
use crate::sandbox::{RunInput, RunJob};

/// The Job for a run (see the module docs for what it holds).
pub fn job_spec(
    config: &KubeConfig,
    prefix: &str,
    job: &RunJob,
    configmap: &str,
    uid: &str,
) -> Result<Job, serde_json::Error> {
    let incident = match &job.input {
        RunInput::Debug(i) => i.id.clone(),
        RunInput::Action(a) => a.incident.id.clone(),
    };
    let labels = json!({
        "app.kubernetes.io/managed-by": "euphrosyne",
        "app.kubernetes.io/component": "sandbox",
        RUN_LABEL: job.run_id,
        "euphrosyne.io/recipe": job.recipe,
        "euphrosyne.io/incident": incident,
    });
    let grants = &job.capabilities.kubernetes;
    let service_account = (!grants.is_empty()).then(|| config.recipe_accounts().names.for_grants(grants).clone());
    let (env, mounts, volumes) = wiring(config, job, configmap);
    let memory = job.limits.memory_mib + config.process_overhead_mib;
    let deadline = job.limits.timeout_ms.div_ceil(1000) as i64 + config.start_slack_seconds;
    let mut pod = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": service_account.is_some(),
        "enableServiceLinks": false,
        "securityContext": {
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "sandbox",
            "image": config.image,
            "imagePullPolicy": config.image_pull_policy.as_str(),
            // A sandbox that fails says why on stderr: the kubelet keeps its last lines as the
            // container's termination message.
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "command": ["euphrosyne", "sandbox", "--run", job.run_id, "--prefix", prefix, "--recipe", RECIPE_MOUNT],
            "env": env,
            "resources": {
                "limits": {"memory": format!("{memory}Mi"), "cpu": format!("{}m", config.cpu_limit_millicores)},
                "requests": {"memory": format!("{memory}Mi"), "cpu": format!("{}m", config.cpu_request_millicores)},
            },
            "securityContext": {
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
                "privileged": false, "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    });
    if let Some(sa) = service_account {
        pod["serviceAccountName"] = json!(sa);
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": format!("euphrosyne-{}", job.run_id),
            "namespace": config.namespace,
            "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": configmap, "uid": uid}],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": config.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }))
}

/// The container's environment, its mounts and the pod's volumes: the Redis URL from its
/// Secret, the host's Kubernetes policy, the recipe's ConfigMap, a small `/tmp`, and only the
/// Secrets the recipe is granted.
fn wiring(
    config: &KubeConfig,
    job: &RunJob,
    configmap: &str,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let mut env = vec![
        json!({"name": "EUPHROSYNE_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": config.redis_secret, "key": "url"}}}),
        // The key precompiled code is sealed with (host/src/artifacts.rs), if the Secret has one.
        json!({"name": crate::sandbox::ArtifactKey::ENV,
            "valueFrom": {"secretKeyRef": {"name": config.redis_secret, "key": "artifact-key", "optional": true}}}),
        // The sandbox enforces the host's policy over Kubernetes grants too.
        json!({"name": "EUPHROSYNE_KUBE_POLICY",
            "value": serde_json::to_string(&config.policy()).unwrap_or_default()}),
    ];
    let mut mounts = vec![
        json!({"name": "recipe", "mountPath": RECIPE_MOUNT, "readOnly": true}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let mut volumes = vec![
        json!({"name": "recipe", "configMap": {"name": configmap}}),
        json!({"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}),
    ];
    if !job.capabilities.secrets.is_empty() {
        // One Kubernetes Secret per recipe secret, same name, key `value`; only the granted ones.
        let sources: Vec<_> = job
            .capabilities
            .secrets
            .iter()
            .map(|s| json!({"secret": {"name": s, "items": [{"key": "value", "path": s}]}}))
            .collect();
        volumes.push(json!({"name": "secrets", "projected": {"sources": sources, "defaultMode": 0o400}}));
        mounts.push(json!({"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": true}));
        env.push(json!({"name": "EUPHROSYNE_SECRETS_DIR", "value": SECRETS_MOUNT}));
    }
    (env, mounts, volumes)
}
