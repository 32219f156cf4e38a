//! Tolerant reading of the tool calls a model sends, shared by the wire modules: a call the agent
//! can answer with a tool error is better than a run aborted on a malformed response.
//!
//! - Arguments that are a JSON object are taken as they are (Ollama and some other
//!   OpenAI-compatible servers send an object instead of the string the wire format specifies).
//! - A string is parsed as JSON; one that does not parse stays a string, and any other value
//!   (number, array, boolean) stays as it is, so the agent's schema check turns it into a tool
//!   error the model sees and can correct. Missing, `null` or blank arguments are `{}`.
//! - A missing, empty or repeated id gets a generated, process-unique one (`call_<index>_<n>`), so
//!   the tool result can still be paired with its call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// Counter behind generated ids, so they never repeat within a process.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The arguments of a call from what the model sent (see the module docs).
pub(crate) fn arguments(raw: Option<Value>) -> Value {
    match raw {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Some(other) => other,
    }
}

/// Ids for the calls of one response: each unique, none empty.
#[derive(Debug, Default)]
pub(crate) struct CallIds {
    seen: HashSet<String>,
}

impl CallIds {
    /// The id for call `index`: the model's own when it is a non-empty string not used yet in
    /// this response, otherwise a generated `call_<index>_<n>`.
    pub(crate) fn id(&mut self, index: usize, given: Option<&Value>) -> String {
        let given = given
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty());
        let id = match given {
            Some(s) if !self.seen.contains(s) => s.to_owned(),
            _ => loop {
                let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                let id = format!("call_{index}_{n}");
                if !self.seen.contains(&id) {
                    break id;
                }
            },
        };
        self.seen.insert(id.clone());
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_of_every_shape() {
        assert_eq!(arguments(None), json!({}));
        assert_eq!(arguments(Some(Value::Null)), json!({}));
        assert_eq!(arguments(Some(json!("  "))), json!({}));
        assert_eq!(arguments(Some(json!("{\"a\": 1}"))), json!({"a": 1}));
        assert_eq!(arguments(Some(json!({"a": 1}))), json!({"a": 1}));
        assert_eq!(arguments(Some(json!("{\"a\": "))), json!("{\"a\": "));
        assert_eq!(arguments(Some(json!(42))), json!(42));
        assert_eq!(arguments(Some(json!([1, 2]))), json!([1, 2]));
    }

    #[test]
    fn missing_empty_and_repeated_ids_are_generated_and_unique() {
        let mut ids = CallIds::default();
        assert_eq!(ids.id(0, Some(&json!("a"))), "a");
        let repeated = ids.id(1, Some(&json!("a")));
        let missing = ids.id(2, None);
        let empty = ids.id(3, Some(&json!("")));
        let number = ids.id(4, Some(&json!(7)));
        assert!(repeated.starts_with("call_1_"), "{repeated}");
        assert!(missing.starts_with("call_2_"), "{missing}");
        assert!(empty.starts_with("call_3_"), "{empty}");
        assert!(number.starts_with("call_4_"), "{number}");
        let all: HashSet<_> = [&repeated, &missing, &empty, &number].into_iter().collect();
        assert_eq!(all.len(), 4);
        assert_ne!(
            CallIds::default().id(2, None),
            missing,
            "unique across responses"
        );
    }
}
