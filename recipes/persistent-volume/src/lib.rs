//! `persistent-volume`: a volume is filling up (space or inodes), or a PersistentVolume failed.
//!
//! For `KubePersistentVolumeFillingUp` and `KubePersistentVolumeInodesFillingUp` (labels
//! `namespace`, `persistentvolumeclaim`) reads each claim, its PersistentVolume and its
//! StorageClass, says whether the class allows expansion and which pods mount the claim, and
//! suggests `expand-pvc` with a concrete size (the capacity doubled; growing a filesystem also
//! grows its inode table on ext4 and xfs). For `KubePersistentVolumeErrors` (label
//! `persistentvolume`, cluster-scoped) reads the volume's phase and message and its claim.

use recipe_sdk::objects::{count, list_some};
use recipe_sdk::pod::double_quantity;
use recipe_sdk::prelude::*;
use recipe_sdk::report::Report;
use serde_json::json;

/// The recipe.
pub struct PersistentVolume;

const FILLING: &[&str] = &["KubePersistentVolumeFillingUp", "KubePersistentVolumeInodesFillingUp"];
const ERRORS: &[&str] = &["KubePersistentVolumeErrors"];

impl Debugger for PersistentVolume {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let claims = incident.objects("persistentvolumeclaim", FILLING)?;
        let volumes = incident.objects("persistentvolume", ERRORS)?;
        if claims.items.is_empty() && volumes.items.is_empty() {
            return Ok(Analysis::inconclusive(
                "no volume alert in this incident names a claim or a volume",
            ));
        }
        let mut r = Report::default();
        for c in &claims.items {
            let ns = c.namespace.as_deref().unwrap_or("default");
            let inodes = c.named_by("KubePersistentVolumeInodesFillingUp");
            filling(ns, &c.name, inodes, &mut r)?;
        }
        for v in &volumes.items {
            failing(&v.name, v.label("phase"), &mut r)?;
        }
        let notes = claims.notes("claims").into_iter().chain(volumes.notes("volumes"));
        Ok(r.into_analysis(notes))
    }
}

recipe_sdk::export_debugger!(PersistentVolume);

/// The pods of `ns` that mount claim `name`.
fn mounted_by(ns: &str, name: &str) -> Result<Vec<String>, RecipeError> {
    let pods = kube::list("v1", "Pod", Some(ns), None, None)?;
    Ok(pods
        .iter()
        .filter(|p| {
            p["spec"]["volumes"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v["persistentVolumeClaim"]["claimName"] == name))
        })
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

fn filling(ns: &str, name: &str, inodes: bool, r: &mut Report) -> Result<(), RecipeError> {
    let subject = format!("PersistentVolumeClaim {ns}/{name}");
    let Some(claim) = kube::get_opt("v1", "PersistentVolumeClaim", Some(ns), name)? else {
        r.lines.push(format!("{subject} no longer exists"));
        return Ok(());
    };
    let capacity = claim["status"]["capacity"]["storage"]
        .as_str()
        .or(claim["spec"]["resources"]["requests"]["storage"].as_str())
        .unwrap_or("?")
        .to_string();
    let volume = claim["spec"]["volumeName"].as_str().unwrap_or("(not bound)");
    let class_name = claim["spec"]["storageClassName"].as_str().unwrap_or("");
    let class = if class_name.is_empty() {
        None
    } else {
        kube::get_opt("storage.k8s.io/v1", "StorageClass", None, class_name)?
    };
    let expandable = class.as_ref().is_some_and(|c| c["allowVolumeExpansion"] == true);
    let pods = mounted_by(ns, name)?;
    let what = if inodes { "inodes" } else { "space" };
    r.findings.push(Finding::info(
        subject.clone(),
        format!(
            "capacity {capacity}, volume {volume}, StorageClass {} ({}), mounted by {}",
            if class_name.is_empty() { "none" } else { class_name },
            match (&class, expandable) {
                (None, _) => "not found",
                (Some(_), true) => "allows expansion",
                (Some(_), false) => "does not allow expansion",
            },
            if pods.is_empty() {
                "no pod".to_string()
            } else {
                format!("{} ({})", count(pods.len(), "pod", "pods"), list_some(&pods, 5))
            }
        ),
    ));
    r.identified = true;
    let line = format!("{subject} ({capacity}) is running out of {what}");
    match (expandable, double_quantity(&capacity)) {
        (true, Some(size)) => {
            r.lines
                .push(format!("{line}; StorageClass {class_name} allows expansion to {size}"));
            let why = if inodes {
                format!("growing the volume to {size} also grows the filesystem's inode table (ext4, xfs)")
            } else {
                format!("double the claim to {size}; StorageClass {class_name} allows expansion")
            };
            r.suggest(
                "expand-pvc",
                json!({ "namespace": ns, "name": name, "size": size }),
                why,
            );
        }
        _ => {
            let why = if class_name.is_empty() {
                "the claim has no StorageClass, so it cannot be expanded".to_string()
            } else {
                format!("StorageClass {class_name} does not allow expansion (allowVolumeExpansion)")
            };
            r.lines.push(format!("{line}; {why}"));
            r.findings.push(Finding::info(
                "No automatic remedy",
                format!("{subject}: {why}; free space in the volume, or migrate the data to a larger claim"),
            ));
            r.suggest(
                "open-ticket",
                json!({ "summary": format!("{subject} is running out of {what}"), "description": why }),
                "the volume cannot grow; a human must free space or migrate it",
            );
        }
    }
    Ok(())
}

fn failing(name: &str, phase_label: Option<&str>, r: &mut Report) -> Result<(), RecipeError> {
    let subject = format!("PersistentVolume {name}");
    let Some(pv) = kube::get_opt("v1", "PersistentVolume", None, name)? else {
        r.lines.push(format!("{subject} no longer exists"));
        return Ok(());
    };
    let phase = pv["status"]["phase"].as_str().or(phase_label).unwrap_or("Unknown");
    let message = pv["status"]["message"].as_str().unwrap_or("no message");
    let claim = &pv["spec"]["claimRef"];
    let claim = match (claim["namespace"].as_str(), claim["name"].as_str()) {
        (Some(ns), Some(n)) => format!("claim {ns}/{n}"),
        _ => "no claim".to_string(),
    };
    let reclaim = pv["spec"]["persistentVolumeReclaimPolicy"].as_str().unwrap_or("?");
    if !matches!(phase, "Failed" | "Pending") {
        r.lines
            .push(format!("{subject} is {phase} now ({claim}); the alert may clear"));
        return Ok(());
    }
    r.identified = true;
    let line = format!("{subject} is {phase}: {message} ({claim}, reclaim policy {reclaim})");
    r.findings.push(Finding::critical("Volume failed", line.clone()));
    r.lines.push(line.clone());
    r.suggest(
        "open-ticket",
        json!({ "summary": format!("{subject} is {phase}"), "description": line }),
        "a failed volume needs its storage provider's attention; no bundled action repairs one",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recipe_sdk::testing::Harness;

    fn incident(alert: &str) -> Incident {
        Incident::from_labels(
            "inc-1",
            &[
                ("alertname", alert),
                ("namespace", "shop"),
                ("persistentvolumeclaim", "data-db-0"),
            ],
        )
    }

    fn world(expandable: bool) -> Harness {
        Harness::new()
            .kube_object("v1", "PersistentVolumeClaim", Some("shop"), "data-db-0", json!({
                "spec": {"volumeName": "pv-123", "storageClassName": "fast", "resources": {"requests": {"storage": "10Gi"}}},
                "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}}))
            .kube_object("storage.k8s.io/v1", "StorageClass", None, "fast", json!({"allowVolumeExpansion": expandable}))
            .kube_object("v1", "Pod", Some("shop"), "db-0", json!({"spec": {"volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]}}))
    }

    #[test]
    fn an_expandable_claim_gets_a_concrete_size() {
        let a = world(true)
            .debug::<PersistentVolume>(incident("KubePersistentVolumeFillingUp"))
            .unwrap();
        assert_eq!(a.verdict, Verdict::Identified);
        assert_eq!(
            a.summary,
            "PersistentVolumeClaim shop/data-db-0 (10Gi) is running out of space; StorageClass fast allows expansion to 20Gi"
        );
        assert_eq!(a.actions[0].action, "expand-pvc");
        assert_eq!(
            a.actions[0].parameters,
            json!({"namespace": "shop", "name": "data-db-0", "size": "20Gi"})
        );
        assert!(
            a.findings[0].detail.contains("mounted by 1 pod (db-0)"),
            "{}",
            a.findings[0].detail
        );
        let a = world(true)
            .debug::<PersistentVolume>(incident("KubePersistentVolumeInodesFillingUp"))
            .unwrap();
        assert!(a.actions[0].reason.contains("inode"));
    }

    #[test]
    fn a_class_without_expansion_says_so() {
        let a = world(false)
            .debug::<PersistentVolume>(incident("KubePersistentVolumeFillingUp"))
            .unwrap();
        assert!(
            a.summary.contains("StorageClass fast does not allow expansion"),
            "{}",
            a.summary
        );
        assert_eq!(a.actions[0].action, "open-ticket");
    }

    #[test]
    fn a_failed_volume_names_its_message_and_claim() {
        let h = Harness::new().kube_object("v1", "PersistentVolume", None, "pv-9", json!({
            "spec": {"claimRef": {"namespace": "shop", "name": "data-db-1"}, "persistentVolumeReclaimPolicy": "Delete"},
            "status": {"phase": "Failed", "message": "error getting deleter volume plugin: no deletable volume plugin matched"}}));
        let i = Incident::from_labels(
            "i",
            &[
                ("alertname", "KubePersistentVolumeErrors"),
                ("persistentvolume", "pv-9"),
                ("phase", "Failed"),
            ],
        );
        let a = h.debug::<PersistentVolume>(i).unwrap();
        assert!(
            a.summary
                .starts_with("PersistentVolume pv-9 is Failed: error getting deleter"),
            "{}",
            a.summary
        );
        assert!(a.summary.contains("claim shop/data-db-1"));
    }

    #[test]
    fn gone_claims_and_missing_labels() {
        let a = Harness::new()
            .debug::<PersistentVolume>(incident("KubePersistentVolumeFillingUp"))
            .unwrap();
        assert_eq!(a.verdict, Verdict::Inconclusive);
        let err = Harness::new()
            .debug::<PersistentVolume>(Incident::from_labels(
                "i",
                &[("alertname", "KubePersistentVolumeFillingUp")],
            ))
            .unwrap_err();
        assert!(err.message.contains("`persistentvolumeclaim`"), "{}", err.message);
    }
}
