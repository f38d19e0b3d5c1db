//! The field-by-field difference between two versions of a Kubernetes object.
//!
//! Self-contained (only `serde_json`): the host includes this very file to compute the diff of
//! every write it makes for a recipe, so a recipe's preview and the host's event log agree on
//! what a change is.
//!
//! What the API server keeps for itself is left out — `metadata.resourceVersion`,
//! `metadata.managedFields`, `metadata.generation`, `metadata.creationTimestamp`, `metadata.uid`
//! and `status` — so a dry run's answer diffs to exactly what the write would change. Lists whose
//! items carry a `name` (containers, ports, volumes, env) are matched by name and their paths say
//! it (`spec.template.spec.containers[api].resources.limits.memory`); other lists by position.

use serde_json::Value;

/// At most this many changes are reported for one object; the last entry says how many more.
pub const MAX_CHANGES: usize = 64;

/// One differing field: its path, the value before (`None`: absent) and after (`None`: removed).
pub type FieldChange = (String, Option<Value>, Option<Value>);

/// The fields that differ between `before` and `after`, in path order, at most [`MAX_CHANGES`].
pub fn diff_values(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    if out.len() > MAX_CHANGES {
        let more = out.len() - MAX_CHANGES + 1;
        out.truncate(MAX_CHANGES - 1);
        out.push(("…".into(), None, Some(Value::String(format!("{more} more changes")))));
    }
    out
}

fn ignored(path: &str) -> bool {
    matches!(
        path,
        "status"
            | "metadata.resourceVersion"
            | "metadata.managedFields"
            | "metadata.generation"
            | "metadata.creationTimestamp"
            | "metadata.uid"
            | "metadata.selfLink"
    )
}

fn join(path: &str, key: &str) -> String {
    let simple = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::String(key.to_string())),
    }
}

/// The `name` of every item, when every item has a distinct one.
fn names(items: &[Value]) -> Option<Vec<&str>> {
    let names: Vec<&str> = items
        .iter()
        .map(|i| i.get("name").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() == names.len()).then_some(names)
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    if ignored(path) || before == after || out.len() > MAX_CHANGES {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = join(path, k);
                match (b.get(k), a.get(k)) {
                    (Some(x), Some(y)) => walk(&p, x, y, out),
                    (x, y) if !ignored(&p) => out.push((p, x.cloned(), y.cloned())),
                    _ => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => match (names(b), names(a)) {
            (Some(bn), Some(an)) => {
                let mut all: Vec<&str> = bn.iter().chain(&an).copied().collect();
                all.sort_unstable();
                all.dedup();
                for n in all {
                    let p = format!("{path}[{n}]");
                    let x = bn.iter().position(|m| *m == n).map(|i| &b[i]);
                    let y = an.iter().position(|m| *m == n).map(|i| &a[i]);
                    match (x, y) {
                        (Some(x), Some(y)) => walk(&p, x, y, out),
                        (x, y) => out.push((p, x.cloned(), y.cloned())),
                    }
                }
            }
            _ => {
                for i in 0..b.len().max(a.len()) {
                    let p = format!("{path}[{i}]");
                    match (b.get(i), a.get(i)) {
                        (Some(x), Some(y)) => walk(&p, x, y, out),
                        (x, y) => out.push((p, x.cloned(), y.cloned())),
                    }
                }
            }
        },
        _ => out.push((path.to_string(), Some(before.clone()), Some(after.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_by_name_and_server_fields_left_out() {
        let before = json!({
            "metadata": {"name": "api", "resourceVersion": "1", "generation": 1, "managedFields": [{}]},
            "spec": {"template": {"spec": {"containers": [
                {"name": "api", "resources": {"limits": {"memory": "128Mi"}}},
                {"name": "sidecar", "image": "envoy"}
            ]}}},
            "status": {"replicas": 1}
        });
        let after = json!({
            "metadata": {"name": "api", "resourceVersion": "2", "generation": 2, "managedFields": [{}, {}]},
            "spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy"},
                {"name": "api", "resources": {"limits": {"memory": "256Mi"}}}
            ]}}},
            "status": {"replicas": 2}
        });
        let d = diff_values(&before, &after);
        assert_eq!(
            d,
            vec![(
                "spec.template.spec.containers[api].resources.limits.memory".to_string(),
                Some(json!("128Mi")),
                Some(json!("256Mi"))
            )]
        );
    }

    #[test]
    fn added_removed_odd_keys_and_a_bound() {
        let d = diff_values(
            &json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"args": ["x"]}}),
            &json!({"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}, "spec": {"args": ["x", "y"]}}),
        );
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[0], ("metadata.annotations.a".into(), Some(json!("1")), None));
        assert_eq!(d[1].0, "metadata.annotations[\"kubectl.kubernetes.io/restartedAt\"]");
        assert_eq!(d[2], ("spec.args[1]".into(), None, Some(json!("y"))));
        let wide: serde_json::Map<String, Value> = (0..200).map(|i| (format!("k{i}"), json!(i))).collect();
        let d = diff_values(&json!({}), &Value::Object(wide));
        assert_eq!(d.len(), MAX_CHANGES);
        assert!(
            d[MAX_CHANGES - 1]
                .2
                .as_ref()
                .unwrap()
                .as_str()
                .unwrap()
                .contains("more changes")
        );
    }
}
