//! How the simulator keeps an object: once, as the JSON bytes a list returns for it (keys sorted,
//! without `kind` and `apiVersion`, which the API server sets from the resource type), beside the
//! few fields lists and watches filter on — owner, labels, the field selectors the API server
//! supports for the type — and its resourceVersion. A LIST concatenates the bytes; a GET or a
//! watch event puts `kind` and `apiVersion` in front; a write decodes the one object, changes it
//! and encodes it back.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use super::store::ResourceType;

/// The field selectors the API server supports for a resource type, besides `metadata.name`
/// and `metadata.namespace` (which every type has): the `ToSelectableFields` of its registry.
pub(crate) fn selectable_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "namespaces" => &["status.phase"],
        "replicasets" => &["status.replicas"],
        _ => &[],
    }
}

/// The value of a selectable field as the API server compares it: strings as they are, booleans
/// and numbers spelled out, a missing field as the type's zero value.
fn field_value(obj: &Value, field: &str) -> String {
    let pointer = match field {
        // The event's reporting source is its component.
        "source" => "/source/component".to_owned(),
        f => format!("/{}", f.replace('.', "/")),
    };
    match (field, obj.pointer(&pointer)) {
        (_, Some(Value::String(s))) => s.clone(),
        (_, Some(Value::Bool(b))) => b.to_string(),
        (_, Some(Value::Number(n))) => n.to_string(),
        ("spec.hostNetwork", _) => "false".into(),
        ("status.replicas", _) => "0".into(),
        _ => String::new(),
    }
}

/// A list item as the API server sends it: without `kind` and `apiVersion`.
struct Item<'a>(&'a Value);

impl Serialize for Item<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(m) = self.0 else {
            return self.0.serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        for (k, v) in m {
            if k != "kind" && k != "apiVersion" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// One stored object.
pub(crate) struct Stored {
    /// The list item: the object's JSON without `kind` and `apiVersion` (kept when the type is
    /// not one the simulator serves).
    item: Box<[u8]>,
    /// `metadata.resourceVersion`.
    pub(crate) rv: u64,
    /// Every indexed string back to back: the first owner's name, the type's selectable fields
    /// in [`selectable_fields`] order, then each label's key and value, sorted by key.
    text: Box<str>,
    /// Where each indexed string ends in `text`.
    ends: Box<[u32]>,
    /// For pods: every container reports ready (and there is at least one).
    pub(crate) ready: bool,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("rv", &self.rv)
            .field("bytes", &self.item.len())
            .finish_non_exhaustive()
    }
}

impl Stored {
    /// Encodes `obj` (whose `metadata.resourceVersion` is `rv`) for a resource type, or for an
    /// object of a kind the simulator does not serve when `t` is `None`.
    pub(crate) fn encode(
        t: Option<&ResourceType>,
        plural: &str,
        obj: &Value,
        rv: u64,
    ) -> Result<Self, serde_json::Error> {
        let item = if t.is_some() {
            serde_json::to_vec(&Item(obj))?
        } else {
            serde_json::to_vec(obj)?
        };
        let mut text = String::new();
        let mut ends = Vec::new();
        let mut push = |s: &str| {
            text.push_str(s);
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        };
        push(
            obj.pointer("/metadata/ownerReferences/0/name")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        for field in selectable_fields(plural) {
            push(&field_value(obj, field));
        }
        if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
            for (k, v) in labels {
                if let Some(v) = v.as_str() {
                    push(k);
                    push(v);
                }
            }
        }
        let ready = obj
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                !cs.is_empty()
                    && cs
                        .iter()
                        .all(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
            });
        Ok(Self {
            item: item.into_boxed_slice(),
            rv,
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            ready,
        })
    }

    /// The `i`th indexed string.
    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize;
        self.text.get(start..end).unwrap_or_default()
    }

    /// The list item's bytes.
    pub(crate) fn item(&self) -> &[u8] {
        &self.item
    }

    /// How many bytes the object takes as a list item.
    pub(crate) fn len(&self) -> usize {
        self.item.len()
    }

    /// The name of the object's first owner ("" when it has none).
    pub(crate) fn owner(&self) -> &str {
        self.part(0)
    }

    /// The value of a selectable field of `plural` (see [`selectable_fields`]); `None` for a
    /// field the API server does not support for the type.
    pub(crate) fn field(&self, plural: &str, field: &str) -> Option<&str> {
        selectable_fields(plural)
            .iter()
            .position(|f| *f == field)
            .map(|i| self.part(1 + i))
    }

    /// The value of the label `key`.
    pub(crate) fn label(&self, plural: &str, key: &str) -> Option<&str> {
        let first = 1 + selectable_fields(plural).len();
        (first..self.ends.len())
            .step_by(2)
            .find(|&i| self.part(i) == key)
            .map(|i| self.part(i + 1))
    }

    /// Appends the whole object — `kind` and `apiVersion` of `t` first, as the API server
    /// writes them, then the stored fields — to `out`.
    pub(crate) fn write_object(&self, t: Option<&ResourceType>, out: &mut Vec<u8>) {
        let Some(t) = t else {
            out.extend_from_slice(&self.item);
            return;
        };
        out.extend_from_slice(b"{\"kind\":\"");
        out.extend_from_slice(t.kind.as_bytes());
        out.extend_from_slice(b"\",\"apiVersion\":\"");
        if !t.group.is_empty() {
            out.extend_from_slice(t.group.as_bytes());
            out.push(b'/');
        }
        out.extend_from_slice(t.version.as_bytes());
        out.push(b'"');
        // The stored item is a JSON object: `{}` or `{"…`.
        match self.item.get(1..) {
            Some(b"}") | None => out.push(b'}'),
            Some(rest) => {
                out.push(b',');
                out.extend_from_slice(rest);
            }
        }
    }

    /// The whole object's bytes (see [`Stored::write_object`]).
    pub(crate) fn object_bytes(&self, t: Option<&ResourceType>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.item.len() + 64);
        self.write_object(t, &mut out);
        out
    }

    /// The whole object, decoded.
    pub(crate) fn decode(&self, t: Option<&ResourceType>) -> Value {
        // The bytes were written by serde_json from a `Value`, so they decode.
        serde_json::from_slice(&self.object_bytes(t)).unwrap_or(Value::Null)
    }
}

/// What happened to an object, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed (the object as it was, at the resourceVersion of its removal).
    Deleted,
}

impl ChangeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, kept for watches: the object after it (shared with the store while it is the
/// current version) and before it (to tell a watcher with a selector that an object stopped or
/// started matching).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) kind: ChangeKind,
    pub(crate) plural: &'static str,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) object: Arc<Stored>,
    pub(crate) previous: Option<Arc<Stored>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_type() -> &'static ResourceType {
        super::super::store::resource_type("", "pods").unwrap()
    }

    #[test]
    fn an_object_is_stored_once_as_its_list_item_and_read_back_whole() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web", "tier": "front"},
                "ownerReferences": [{"name": "web-abc", "uid": "u"}]},
            "spec": {"nodeName": "n1", "hostNetwork": true},
            "status": {"phase": "Running", "containerStatuses": [{"name": "web", "ready": true}]}});
        let s = Stored::encode(Some(pod_type()), "pods", &pod, 7).unwrap();
        let item: Value = serde_json::from_slice(s.item()).unwrap();
        assert!(item.get("kind").is_none() && item.get("apiVersion").is_none());
        assert_eq!(item["metadata"], pod["metadata"]);
        assert!(
            s.object_bytes(Some(pod_type()))
                .starts_with(br#"{"kind":"Pod","apiVersion":"v1","metadata":"#)
        );
        assert_eq!(s.decode(Some(pod_type())), pod);
        assert_eq!(s.owner(), "web-abc");
        assert_eq!(s.label("pods", "app"), Some("web"));
        assert_eq!(s.label("pods", "tier"), Some("front"));
        assert_eq!(s.label("pods", "web"), None, "values are not keys");
        assert_eq!(s.field("pods", "status.phase"), Some("Running"));
        assert_eq!(s.field("pods", "spec.hostNetwork"), Some("true"));
        assert_eq!(s.field("pods", "spec.restartPolicy"), Some(""));
        assert_eq!(s.field("pods", "metadata.labels"), None);
        assert!(s.ready);
        assert_eq!(s.rv, 7);
    }

    #[test]
    fn an_empty_object_and_an_unserved_kind_keep_valid_json() {
        let t = pod_type();
        let s = Stored::encode(Some(t), "pods", &json!({"kind": "Pod"}), 1).unwrap();
        assert_eq!(s.item(), b"{}");
        assert_eq!(
            s.object_bytes(Some(t)),
            br#"{"kind":"Pod","apiVersion":"v1"}"#
        );
        assert!(!s.ready);
        let odd = json!({"apiVersion": "x/v1", "kind": "Odd", "metadata": {"name": "o"}});
        let s = Stored::encode(None, "unknown", &odd, 1).unwrap();
        assert_eq!(s.decode(None), odd);
    }
}
