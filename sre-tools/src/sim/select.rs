//! Label and field selectors, parsed as the API server parses them and matched against a stored
//! object's index (its labels and the fields the API server lets a type be selected by), never
//! against its decoded JSON.

use std::collections::HashMap;

use super::objects::{Stored, selectable_fields};
use super::store::{Key, ResourceType};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn split_top(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts
}

fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for part in split_top(s) {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("unable to parse requirement: {p:?}: expected a set in parentheses")
                })?;
            Ok(inner
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect())
        };
        let r = if let Some(key) = p.strip_prefix('!') {
            Requirement::NotExists(key.trim().to_owned())
        } else if let Some((k, v)) = p.split_once("!=") {
            Requirement::NotEq(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, v)) = p.split_once("==") {
            Requirement::Eq(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, v)) = p.split_once('=') {
            Requirement::Eq(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            Requirement::NotIn(k.trim().to_owned(), set(rest)?)
        } else if let Some((k, rest)) = p.split_once(" in ") {
            Requirement::In(k.trim().to_owned(), set(rest)?)
        } else if p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            Requirement::Exists(p.to_owned())
        } else {
            return Err(format!("unable to parse requirement: {p:?}"));
        };
        out.push(r);
    }
    Ok(out)
}

/// One requirement of a field selector: field, `=` (true) or `!=` (false), value.
type FieldRequirement = (String, bool, String);

fn parse_field_selector(s: &str) -> Result<Vec<FieldRequirement>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            ));
        };
        out.push((k.trim().to_owned(), eq, v.trim().to_owned()));
    }
    Ok(out)
}

/// The `labelSelector` and `fieldSelector` of a list or watch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selectors {
    labels: Vec<Requirement>,
    fields: Vec<FieldRequirement>,
}

impl Selectors {
    /// The selectors of a request's query for resource type `t`. `Err` is the API server's
    /// message for a 400: a selector it cannot parse, or a field the type cannot be selected by.
    pub(crate) fn from_query(
        t: &ResourceType,
        query: &HashMap<String, String>,
    ) -> Result<Self, String> {
        let labels = query
            .get("labelSelector")
            .map(|s| parse_label_selector(s))
            .transpose()?
            .unwrap_or_default();
        let fields = query
            .get("fieldSelector")
            .map(|s| parse_field_selector(s))
            .transpose()?
            .unwrap_or_default();
        for (field, _, _) in &fields {
            let meta = field == "metadata.name" || (t.namespaced && field == "metadata.namespace");
            if !meta && !selectable_fields(t.plural).contains(&field.as_str()) {
                return Err(format!("field label not supported: {field}"));
            }
        }
        Ok(Self { labels, fields })
    }

    /// True when neither selector is given (a list then reports `remainingItemCount`).
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether the object stored under `key` is selected.
    pub(crate) fn matches(&self, key: &Key, obj: &Stored) -> bool {
        let (plural, ns, name) = key;
        let label = |k: &str| obj.label(plural, k);
        let labels_ok = self.labels.iter().all(|r| match r {
            Requirement::Eq(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(field, eq, want)| {
                let got = match field.as_str() {
                    "metadata.name" => name.as_str(),
                    "metadata.namespace" => ns.as_str(),
                    f => obj.field(plural, f).unwrap_or_default(),
                };
                (got == want) == *eq
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sim::store::resource_type;

    fn query(k: &str, v: &str) -> HashMap<String, String> {
        HashMap::from([(k.to_owned(), v.to_owned())])
    }

    #[test]
    fn label_selectors() {
        let t = resource_type("", "pods").unwrap();
        let obj = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}}});
        let stored = Stored::encode(Some(t), "pods", &obj, 1).unwrap();
        let key = ("pods", "shop".to_owned(), "a".to_owned());
        let m = |s: &str| {
            Selectors::from_query(t, &query("labelSelector", s))
                .unwrap()
                .matches(&key, &stored)
        };
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("tier in (front, back)"));
        assert!(!m("tier notin (front)"));
        assert!(m("!missing"));
        assert!(!m("missing"));
        assert!(Selectors::from_query(t, &query("labelSelector", "app in front")).is_err());
    }

    #[test]
    fn field_selectors_are_the_ones_the_api_server_supports() {
        let t = resource_type("", "pods").unwrap();
        let obj = json!({"metadata": {"name": "a"}, "status": {"phase": "Running"}});
        let stored = Stored::encode(Some(t), "pods", &obj, 1).unwrap();
        let key = ("pods", "shop".to_owned(), "a".to_owned());
        let m = |s: &str| {
            Selectors::from_query(t, &query("fieldSelector", s))
                .unwrap()
                .matches(&key, &stored)
        };
        assert!(m("metadata.name=a,status.phase=Running"));
        assert!(m("metadata.namespace==shop"));
        assert!(m("spec.nodeName="), "a missing field is empty");
        assert!(!m("status.phase!=Running"));
        assert_eq!(
            Selectors::from_query(t, &query("fieldSelector", "nonsense")).unwrap_err(),
            "invalid selector: 'nonsense'; can't understand 'nonsense'"
        );
        assert_eq!(
            Selectors::from_query(t, &query("fieldSelector", "spec.containers=x")).unwrap_err(),
            "field label not supported: spec.containers"
        );

        let t = resource_type("", "events").unwrap();
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"name": "p", "kind": "Pod"},
            "source": {"component": "kubelet"}, "reason": "BackOff"});
        let stored = Stored::encode(Some(t), "events", &ev, 1).unwrap();
        let key = ("events", "shop".to_owned(), "e".to_owned());
        let sel = Selectors::from_query(
            t,
            &query(
                "fieldSelector",
                "involvedObject.name=p,involvedObject.kind=Pod,source=kubelet,reason=BackOff",
            ),
        )
        .unwrap();
        assert!(sel.matches(&key, &stored));
    }
}
