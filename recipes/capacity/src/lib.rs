//! `capacity`: autoscalers at their maximum or unable to scale, CPU throttling, quotas filling up.
//!
//! - `KubeHpaMaxedOut`, `KubeHpaReplicasMismatch` (label `horizontalpodautoscaler`): the
//!   autoscaler's replicas against its bounds and its own conditions (`ScalingActive`,
//!   `AbleToScale`, `ScalingLimited`), and its target's pods: at the maximum with room to grow →
//!   `raise-hpa-max` with a concrete maximum; unable to scale (missing requests, no metrics) or
//!   blocked (quota, unschedulable) → the reason, since raising the maximum would not help.
//! - `CPUThrottlingHigh` (labels `pod`, `container`): the container's CPU limit against its
//!   request; pods of one workload are one line → `raise-cpu-limit` (the limit doubled).
//! - `KubeQuotaAlmostFull`, `KubeQuotaFullyUsed`, `KubeQuotaExceeded` (labels `resourcequota`,
//!   `resource`): used against hard, and which workloads use the quota most.

mod hpa;
mod quota;
mod throttling;

use recipe_sdk::prelude::*;
pub(crate) use recipe_sdk::report::Report;
use serde_json::Value;

/// The recipe.
pub struct Capacity;

impl Debugger for Capacity {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let hpas = incident.objects("horizontalpodautoscaler", hpa::ALERTS)?;
        let pods = incident.objects("pod", throttling::ALERTS)?;
        let quotas = incident.objects("resourcequota", quota::ALERTS)?;
        let mut r = Report::default();
        for h in &hpas.items {
            hpa::examine(h.namespace.as_deref().unwrap_or("default"), &h.name, &mut r)?;
        }
        throttling::examine(&pods.items, &mut r)?;
        for q in &quotas.items {
            quota::examine(q, &mut r)?;
        }
        if r.lines.is_empty() {
            return Ok(Analysis::inconclusive(
                "no autoscaler, throttling or quota alert in this incident names its object",
            ));
        }
        let notes = [hpas.notes("autoscalers"), pods.notes("pods"), quotas.notes("quotas")].concat();
        Ok(r.into_analysis(notes))
    }
}

recipe_sdk::export_debugger!(Capacity);

pub(crate) fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

#[cfg(test)]
mod tests;
