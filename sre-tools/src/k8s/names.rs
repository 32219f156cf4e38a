//! Kubernetes names, validated by the API's own rules before they reach a request.
//!
//! Every name a tool puts into a URL — namespace, deployment, pod, container — is one of these
//! types, so an argument such as `"frontend#"` or `"../../secrets/x"` is rejected while the
//! arguments are parsed, long before any request is built (the JSON Schema carries the same
//! pattern, so a model sees the rule). kube-rs joins names into request paths as they are: a `#`
//! would cut the query string (and with it `dryRun=All`) off the request.
//!
//! ```
//! use sre_tools::k8s::names::{Label, Subdomain};
//! assert!(Subdomain::new("web-7d9f8b6c5").is_ok());
//! assert!(Subdomain::new("frontend#").is_err());
//! assert!(Label::new("kube-system").is_ok());
//! assert!(Label::new("a.b").is_err());
//! ```

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The pattern of a DNS-1123 label (namespaces, container names).
pub const LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// The pattern of a DNS-1123 subdomain (deployments, pods, most object names).
pub const SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|c| is_alnum(*c) || *c == b'-')
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn subdomain_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label_ok)
}

fn reject(value: &str, what: &str, rule: &str) -> String {
    format!(
        "{:?} is not a valid {what}: {rule}",
        sre_core::text::escape_untrusted(value)
    )
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $check:ident, $max:expr, $pattern:expr, $what:expr, $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates `value`.
            ///
            /// # Errors
            /// A message naming the value (escaped) and the rule it breaks.
            pub fn new(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                if $check(&value) {
                    Ok(Self(value))
                } else {
                    Err(reject(&value, $what, $rule))
                }
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                Self::new(value)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }

        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": $max,
                    "pattern": $pattern,
                })
            }
        }
    };
}

name_type!(
    /// A DNS-1123 label: a namespace or a container name (1–63 of `a-z`, `0-9`, `-`, starting and
    /// ending with a letter or digit).
    Label,
    label_ok,
    63,
    LABEL_PATTERN,
    "Kubernetes name (namespace or container)",
    "use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
);

name_type!(
    /// A DNS-1123 subdomain: a deployment, pod or ReplicaSet name (labels joined by `.`, at most
    /// 253 characters).
    Subdomain,
    subdomain_ok,
    253,
    SUBDOMAIN_PATTERN,
    "Kubernetes object name",
    "use at most 253 lower-case letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit"
);

/// A namespace.
pub type Namespace = Label;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_api_rules() {
        for ok in ["web", "web-1", "a", "web.v2", "0abc", &"a".repeat(63)] {
            assert!(Subdomain::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "frontend#",
            "web?dryRun=None",
            "../secrets",
            "a/b",
            "Web",
            "-web",
            "web-",
            "web ",
            "web%23",
            "we\u{1b}b",
            "a..b",
            &"a".repeat(254),
        ] {
            assert!(Subdomain::new(bad).is_err(), "{bad:?}");
        }
        assert!(Label::new("web.v2").is_err());
        assert!(Label::new("a".repeat(64)).is_err());
        let e = Subdomain::new("we\u{1b}[2Kb").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn the_schema_carries_the_same_rule() {
        let v = serde_json::to_value(schemars::schema_for!(Subdomain)).unwrap();
        assert_eq!(v["pattern"], SUBDOMAIN_PATTERN);
        let re = regex::Regex::new(SUBDOMAIN_PATTERN).unwrap();
        for s in ["web", "web.v2", "frontend#", "Web", "a..b"] {
            assert_eq!(re.is_match(s), subdomain_ok(s), "{s}");
        }
        let re = regex::Regex::new(LABEL_PATTERN).unwrap();
        for s in ["web", "web.v2", "frontend#", "-a", "a-b"] {
            assert_eq!(re.is_match(s), label_ok(s), "{s}");
        }
    }

    #[test]
    fn deserializing_rejects_bad_names() {
        let r: Result<Subdomain, _> = serde_json::from_value(serde_json::json!("frontend#"));
        assert!(r.is_err());
        let ok: Label = serde_json::from_value(serde_json::json!("shop")).unwrap();
        assert_eq!(ok.as_str(), "shop");
    }
}
