//! `euphrosyne recipe run`: one recipe, one alert file, this process's own sandbox.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use euphrosyne::capability::secrets::SecretStore;
use euphrosyne::digest::Digest;
use euphrosyne::manifest::{Kind, Manifest};
use euphrosyne::model::ActionRequest;
use euphrosyne::sandbox::{RunInput, RunJob, RunResult, RunStatus, Sandbox, SandboxConfig};

use super::{RunArgs, read_manifest};

/// The manifest and bytes for `recipe run`: a packed ConfigMap, or a component and its manifest.
fn load_for_run(a: &RunArgs) -> anyhow::Result<(Manifest, Vec<u8>)> {
    let text_like = matches!(
        a.file.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    );
    if text_like {
        let text = std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
        return Ok(euphrosyne::pack::unpack(&text, &a.file.display().to_string())?);
    }
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let manifest_path = a
        .manifest
        .clone()
        .unwrap_or_else(|| a.file.parent().unwrap_or(Path::new(".")).join("recipe.toml"));
    let manifest =
        read_manifest(&manifest_path).with_context(|| "a component needs its manifest: pass --manifest recipe.toml")?;
    Ok((manifest, bytes))
}

/// `recipe run`: the recipe in this process's own sandbox, on the alert file, with the grants
/// the flags add; prints the result (or JSON) and exits non-zero unless it is `ok`.
pub(super) async fn run_local(a: RunArgs) -> anyhow::Result<ExitCode> {
    let (mut manifest, bytes) = load_for_run(&a)?;
    for h in &a.allow_http {
        euphrosyne::capability::http::HostPattern::parse(h).map_err(|e| anyhow::anyhow!("--allow-http {e}"))?;
        manifest.capabilities.http.push(h.clone());
    }
    let input = input(&a, &manifest)?;
    // Pin what the manifest says; an unbuilt manifest pins the file as it is (and says so).
    let digest = match manifest.digest {
        Some(d) => d,
        None => {
            eprintln!("note: the manifest pins no digest; pinning the file as it is");
            Digest::of(&bytes)
        }
    };
    let sandbox = sandbox(&a, &manifest).await?;
    let job = RunJob {
        run_id: "local".into(),
        recipe: manifest.name.clone(),
        digest,
        bytes: Arc::from(bytes),
        capabilities: manifest.capabilities.clone(),
        limits: manifest.limits,
        config: manifest.config.clone(),
        input,
    };
    let result = sandbox.run(&job).await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_human(&result);
    }
    Ok(if result.status == RunStatus::Ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The run's input: the alert file as an incident, and for an actor the action request.
fn input(a: &RunArgs, manifest: &Manifest) -> anyhow::Result<RunInput> {
    let body = std::fs::read(&a.alert).with_context(|| format!("reading {}", a.alert.display()))?;
    let incident = euphrosyne::alert::incident_from_json(&body, "local", &euphrosyne::model::now_rfc3339())?;
    Ok(match manifest.kind {
        Kind::Debug => RunInput::Debug(incident),
        Kind::Action => {
            let action = a
                .action
                .clone()
                .or_else(|| manifest.actions.first().cloned())
                .unwrap_or_default();
            let parameters: serde_json::Value =
                serde_json::from_str(&a.params).context("--params must be a JSON object")?;
            RunInput::Action(ActionRequest {
                incident,
                action,
                parameters,
                approved_by: a.approver.clone(),
                dry_run: a.dry_run,
                preconditions: vec![],
            })
        }
    })
}

/// A sandbox with the secrets and the kubeconfig the flags give. Your own recipe with your own
/// kubeconfig: cluster scope is allowed; sensitive grants (Secrets, RBAC, arbitrary pods, Jobs)
/// only when you say so, as a host would.
async fn sandbox(a: &RunArgs, manifest: &Manifest) -> anyhow::Result<Sandbox> {
    let mut extra = BTreeMap::new();
    for s in &a.secrets {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--secret `{s}`: expected NAME=VALUE"))?;
        extra.insert(k.to_string(), v.to_string());
    }
    let secrets = SecretStore::load(a.secrets_dir.as_deref())?.with_values(extra);
    let kube = match &a.kubeconfig {
        Some(path) => {
            let config = euphrosyne::capability::kube::config_from_kubeconfig(path)
                .await
                .map_err(anyhow::Error::msg)?;
            Some(euphrosyne::capability::kube::KubeClients::own(config).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let kube_policy = euphrosyne::manifest::KubePolicy {
        cluster_scope: vec![manifest.name.clone()],
        allow_sensitive: a.allow_sensitive.clone(),
    };
    Ok(Sandbox::new(SandboxConfig {
        kube,
        kube_policy,
        secrets,
        pool_slots: 4,
        ..Default::default()
    })?)
}

fn print_human(r: &RunResult) {
    let t = &r.timings;
    println!(
        "{} [{}] {}  (verify {} µs, compile {} µs, instantiate {} µs, run {} µs, memory {} KiB)",
        r.recipe,
        r.status,
        r.digest.short(),
        t.verify_us,
        t.compile_us,
        t.instantiate_us,
        t.run_us,
        r.memory_peak_bytes / 1024
    );
    if !r.message.is_empty() {
        println!("  {}", r.message);
    }
    if let Some(a) = &r.analysis {
        println!("  verdict: {:?}", a.verdict);
        println!("  summary: {}", a.summary);
        for f in &a.findings {
            println!(
                "  - [{:?}] {}: {}",
                f.severity,
                f.title,
                f.detail.replace('\n', "\n      ")
            );
        }
        for s in &a.actions {
            println!("  → suggest {} {} — {}", s.action, s.parameters, s.reason);
        }
    }
    if let Some(o) = &r.outcome {
        println!("  {}: {}", if o.success { "success" } else { "failed" }, o.summary);
        for c in &o.changes {
            println!("  change: {c}");
        }
        if !o.details.is_empty() {
            println!("  {}", o.details);
        }
    }
    for d in &r.denials {
        println!("  denied: {d}");
    }
    for line in euphrosyne::incident::write_lines(&r.writes) {
        println!("  write: {line}");
    }
    for l in &r.logs {
        println!("  log {}: {}", l.level, l.message);
    }
    if !r.stderr.is_empty() {
        println!("  stderr: {}", r.stderr.trim_end().replace('\n', "\n          "));
    }
}
