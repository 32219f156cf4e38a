//! Strategic merge patch, for the fields the simulator serves: maps merge, `null` deletes, and
//! the lists Kubernetes merges by key (containers by `name`, ports by `containerPort`, …) merge
//! element-wise; other lists are replaced. `$patch: replace` / `$patch: delete` are honoured.

use serde_json::Value;

/// The merge key of a list field, as in the Kubernetes API's `patchMergeKey`.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "hostAliases"
        | "readinessGates" => Some("name"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Applies a strategic merge patch to `target`.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = p.clone();
            replaced.remove("$patch");
            *t = replaced;
            return;
        }
        Some("delete") => {
            t.clear();
            return;
        }
        _ => {}
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Value::Object(_)), Value::Object(_)) => {
                if let Some(existing) = t.get_mut(k) {
                    strategic_merge(existing, v);
                }
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                if let Some(key) = merge_key(k) {
                    merge_list(existing, items, key);
                } else {
                    existing.clone_from(items);
                }
            }
            _ => {
                let mut fresh = v.clone();
                strip_directives(&mut fresh);
                t.insert(k.clone(), fresh);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            for x in m.values_mut() {
                strip_directives(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let Some(id) = item.get(key) else {
            existing.push(item.clone());
            continue;
        };
        let pos = existing.iter().position(|e| e.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut existing[i], item),
            (None, true) => {}
            (None, false) => {
                let mut fresh = item.clone();
                strip_directives(&mut fresh);
                existing.push(fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name() {
        let mut dep = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "envoy:1"}
        ]}}}});
        strategic_merge(
            &mut dep,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}}),
        );
        let cs = &dep["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "nginx:1.26");
        assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
        assert_eq!(cs[1]["image"], "envoy:1");
    }

    #[test]
    fn null_deletes_and_unknown_lists_replace_and_directives_apply() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "args": ["x", "y"], "env": [{"name": "A", "value": "1"}]});
        strategic_merge(
            &mut v,
            &json!({"a": {"b": null}, "args": ["z"], "env": [{"name": "A", "$patch": "delete"}, {"name": "B", "value": "2"}]}),
        );
        assert_eq!(
            v,
            json!({"a": {"c": 2}, "args": ["z"], "env": [{"name": "B", "value": "2"}]})
        );
        strategic_merge(&mut v, &json!({"a": {"$patch": "replace", "d": 4}}));
        assert_eq!(v["a"], json!({"d": 4}));
    }
}
