//! The [`Tool`] contract, typed arguments, and the [`ToolSet`] that validates every call
//! against the tool's JSON Schema before it runs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::approval::Grant;
use crate::message::ToolSpec;
pub use crate::plan::{ImageChange, Preview, Risk, Target, Verification};

/// Whether a tool only reads or also changes the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// No side effects: runs without approval, concurrently with other reads.
    Read,
    /// Changes something: preview → approval → apply, one at a time.
    Write,
}

/// What a tool returns: compact text for the model and, optionally, typed data for code (the
/// offline brain, reports, exit codes, Python). Providers never send the data to a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Plain text or compact JSON, for the model.
    pub content: String,
    /// The same result as typed data (a serialized struct of the tool's crate), for code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ToolOutput {
    /// A text result.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            data: None,
        }
    }

    /// A text result with typed data beside it.
    ///
    /// # Errors
    /// When `data` cannot be serialized.
    pub fn with_data<T: Serialize + ?Sized>(
        content: impl Into<String>,
        data: &T,
    ) -> Result<Self, ToolError> {
        Ok(Self {
            content: content.into(),
            data: Some(
                serde_json::to_value(data).map_err(|e| {
                    ToolError::Failed(format!("could not serialize the result: {e}"))
                })?,
            ),
        })
    }

    /// A compact JSON result.
    ///
    /// # Errors
    /// When `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, ToolError> {
        serde_json::to_string(value)
            .map(Self::text)
            .map_err(|e| ToolError::Failed(format!("could not serialize the result: {e}")))
    }
}

/// Why a tool call did not produce a result. The message goes back to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// No such tool.
    #[error("unknown tool {name:?}; available tools: {available}")]
    UnknownTool {
        /// The name the model used.
        name: String,
        /// Comma-separated names of the tools that exist.
        available: String,
    },
    /// The arguments do not match the schema or cannot be parsed.
    #[error("invalid arguments for tool {tool}: {message}")]
    InvalidArguments {
        /// Tool name.
        tool: String,
        /// Every violation, with its JSON pointer.
        message: String,
    },
    /// The tool refuses the call by itself (e.g. a namespace outside its scope).
    #[error("refused: {0}")]
    Refused(String),
    /// The target changed since it was approved, or a precondition failed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The target does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller lacks permission.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The approval policy denied the write.
    #[error("denied: {0}")]
    Denied(String),
    /// The call took too long.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Any other failure.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// A short, stable name of the kind, for reports and the Python exception mapping.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownTool { .. } => "unknown_tool",
            Self::InvalidArguments { .. } => "invalid_arguments",
            Self::Refused(_) => "refused",
            Self::Conflict(_) => "conflict",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Denied(_) => "denied",
            Self::Timeout(_) => "timeout",
            Self::Failed(_) => "failed",
        }
    }
}

/// What a tool knows about the call it serves.
#[derive(Debug, Default)]
pub struct ToolContext {
    /// The agent run, for logs and audit.
    pub run_id: String,
    /// The model's id for this call.
    pub call_id: String,
    /// For an approved write: the grant, whose fingerprint the tool must use as its precondition.
    pub grant: Option<Grant>,
}

impl ToolContext {
    /// The approved plan for `tool` called with `arguments`, or a [`ToolError::Denied`] when the
    /// call carries no grant, or a grant for another tool or other arguments.
    ///
    /// Write tools apply exactly this plan's payload: nothing is re-planned between approval and
    /// apply.
    ///
    /// # Errors
    /// When there is no grant, or it was issued for another action.
    pub fn approved_plan(&self, tool: &str, arguments: &Value) -> Result<&Preview, ToolError> {
        let Some(g) = &self.grant else {
            return Err(ToolError::Denied("this write was not approved".into()));
        };
        if g.tool != tool || g.plan.action_fingerprint(tool, arguments) != g.action {
            return Err(ToolError::Denied(format!(
                "the approval is for another action ({} {}), not this {tool} call; nothing was applied",
                g.tool, g.action
            )));
        }
        Ok(&g.plan)
    }

    /// The approved fingerprint, or a [`ToolError::Denied`] when the call carries no grant.
    ///
    /// Write tools call this in [`Tool::call`] so that they cannot be run unapproved, even when
    /// used outside the [`Agent`](crate::Agent).
    ///
    /// # Errors
    /// When there is no grant.
    pub fn approved_fingerprint(&self) -> Result<&str, ToolError> {
        self.grant
            .as_ref()
            .map(|g| g.fingerprint.as_str())
            .ok_or_else(|| ToolError::Denied("this write was not approved".into()))
    }
}

/// A capability the agent can use: a spec, an effect, and `call`.
///
/// Write tools also implement [`Tool::preview`]: what would change, and a fingerprint of the target,
/// so that exactly what was approved is applied. Everything besides `spec` and `call` is provided.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Name, description and JSON Schema of the arguments.
    fn spec(&self) -> &ToolSpec;

    /// Runs the tool with arguments already validated against [`Tool::spec`].
    ///
    /// # Errors
    /// A [`ToolError`] whose message goes back to the model.
    async fn call(&self, args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError>;

    /// Read or write. Default: read.
    fn effect(&self) -> Effect {
        Effect::Read
    }

    /// For writes: what would change (side-effect free, e.g. a server-side dry run).
    ///
    /// # Errors
    /// Default: a read tool has nothing to preview.
    async fn preview(&self, args: &Value, ctx: &ToolContext) -> Result<Preview, ToolError> {
        let _ = (args, ctx);
        Err(ToolError::Failed(format!(
            "tool {} has no preview",
            self.spec().name
        )))
    }

    /// For writes: the current fingerprint of the target, checked right before applying.
    /// Default: the fingerprint of a fresh [`Tool::preview`].
    ///
    /// # Errors
    /// When the target cannot be read.
    async fn fingerprint(&self, args: &Value, ctx: &ToolContext) -> Result<String, ToolError> {
        self.preview(args, ctx).await.map(|p| p.fingerprint)
    }

    /// For writes: checks the change after it was applied. `None`: nothing to verify.
    async fn verify(
        &self,
        args: &Value,
        output: &ToolOutput,
        ctx: &ToolContext,
    ) -> Option<Verification> {
        let _ = (args, output, ctx);
        None
    }

    /// For writes: undoes an applied change whose verification failed. Part of the approved
    /// change: the approval request says it will happen.
    ///
    /// # Errors
    /// Default: the tool cannot roll back.
    async fn rollback(
        &self,
        args: &Value,
        output: &ToolOutput,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let _ = (args, output, ctx);
        Err(ToolError::Failed(format!(
            "tool {} cannot roll back",
            self.spec().name
        )))
    }
}

macro_rules! forward_tool {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: Tool + ?Sized> Tool for $ty {
            fn spec(&self) -> &ToolSpec {
                (**self).spec()
            }
            async fn call(&self, args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
                (**self).call(args, ctx).await
            }
            fn effect(&self) -> Effect {
                (**self).effect()
            }
            async fn preview(&self, args: &Value, ctx: &ToolContext) -> Result<Preview, ToolError> {
                (**self).preview(args, ctx).await
            }
            async fn fingerprint(&self, args: &Value, ctx: &ToolContext) -> Result<String, ToolError> {
                (**self).fingerprint(args, ctx).await
            }
            async fn verify(&self, args: &Value, output: &ToolOutput, ctx: &ToolContext) -> Option<Verification> {
                (**self).verify(args, output, ctx).await
            }
            async fn rollback(&self, args: &Value, output: &ToolOutput, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
                (**self).rollback(args, output, ctx).await
            }
        }
    )*};
}

forward_tool!(&T, Box<T>, Arc<T>);

/// The JSON Schema of a typed argument struct, ready for a [`ToolSpec`].
///
/// The schema is an object schema; unless the type says otherwise it forbids unknown properties
/// (`additionalProperties: false`), so a misspelled argument is an error rather than ignored.
pub fn schema_for<A: JsonSchema>() -> Value {
    let mut schema = schemars::SchemaGenerator::default()
        .into_root_schema_for::<A>()
        .to_value();
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
        map.entry("type").or_insert_with(|| Value::from("object"));
        map.entry("properties")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        map.entry("additionalProperties")
            .or_insert(Value::Bool(false));
    }
    schema
}

/// Keywords a model does not need to call a tool well: the validator enforces them on every call,
/// and the model learns a violation from the error it gets back (a closed object included: an
/// unknown argument comes back as an error naming it).
const VALIDATION_ONLY: [&str; 19] = [
    "pattern",
    "minLength",
    "maxLength",
    "format",
    "default",
    "$schema",
    "title",
    "$comment",
    "additionalProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];

/// Words a property description may add to its name and still say nothing more
/// (`"namespace": "Kubernetes namespace."`, `"pod": "Pod name."`).
const FILLER: [&str; 7] = ["a", "an", "the", "name", "reference", "its", "kubernetes"];

/// True when `description` only restates the property `name` (`pod`: "Pod name.").
fn restates(name: &str, description: &str) -> bool {
    let own: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    description
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .all(|w| {
            let w = w.to_lowercase();
            FILLER.contains(&w.as_str()) || own.contains(&w)
        })
}

/// `{"anyOf": [S, {"type": "null"}]}` (an optional argument) as `S`; a `oneOf`/`anyOf` whose
/// branches are all constants of one type as `{"type": T, "enum": [...]}`. `None`: neither.
fn simplify_choice(map: &serde_json::Map<String, Value>) -> Option<Value> {
    let (key, branches) = ["anyOf", "oneOf"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_array).map(|b| (*k, b)))?;
    let not_null: Vec<&Value> = branches
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
        .collect();
    let mut out = if let [one] = not_null.as_slice()
        && not_null.len() < branches.len()
    {
        (*one).clone()
    } else {
        let consts: Option<Vec<&Value>> = not_null.iter().map(|b| b.get("const")).collect();
        let types: Vec<Option<&Value>> = not_null.iter().map(|b| b.get("type")).collect();
        let consts = consts.filter(|c| !c.is_empty())?;
        let mut e = serde_json::Map::new();
        if let Some(Some(t)) = types.first()
            && types.iter().all(|x| x == &Some(*t))
        {
            e.insert("type".into(), (*t).clone());
        }
        e.insert(
            "enum".into(),
            Value::Array(consts.into_iter().cloned().collect()),
        );
        Value::Object(e)
    };
    if let Value::Object(o) = &mut out {
        for (k, v) in map {
            if k != key {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    Some(out)
}

/// A tool's argument schema as a model is sent it. Only what a model needs to call the tool well
/// stays: types, `required`, `enum`, `const`, `items`, and the properties' descriptions that say
/// more than the property's name. Dropped: the keywords only validation needs (patterns, lengths,
/// ranges, formats, `null` defaults, `additionalProperties`), the struct's own description (the
/// tool has one), and descriptions that restate a property's name (`"pod": "Pod name."`).
/// Rewritten: `["string", "null"]` as `"string"` and `anyOf [S, null]` as `S` (an optional
/// argument is one not in `required`), local `$ref`s inlined (and `$defs` dropped), a choice of
/// constants as an `enum`. About two thirds of a tool spec's bytes, resent on every model call.
///
/// Arguments are still validated against the whole schema ([`ToolSet::validate`]).
pub fn compact_schema(schema: &Value) -> Value {
    let inlined = Compactor {
        root: schema,
        inline: true,
        too_deep: std::cell::Cell::new(false),
    };
    let out = inlined.walk(schema, true, 0);
    if !inlined.too_deep.get() {
        return out;
    }
    let kept = Compactor {
        inline: false,
        ..inlined
    };
    kept.walk(schema, true, 0)
}

/// A `$ref` reached deeper than this (a recursive type) is not inlined: the schema then keeps its
/// `$defs` and refs.
const MAX_INLINE_DEPTH: usize = 16;

/// One pass of [`compact_schema`] over a schema (`root`, for its local `$ref`s).
struct Compactor<'a> {
    root: &'a Value,
    /// Inline local `$ref`s and drop `$defs` (off for a recursive schema).
    inline: bool,
    /// Set when a `$ref` or the nesting went too deep to inline.
    too_deep: std::cell::Cell<bool>,
}

impl Compactor<'_> {
    fn walk(&self, v: &Value, top: bool, depth: usize) -> Value {
        if depth >= MAX_INLINE_DEPTH * 4 {
            self.too_deep.set(true);
            return v.clone();
        }
        let Value::Object(map) = v else {
            return match v {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|x| self.walk(x, false, depth + 1))
                        .collect(),
                ),
                other => other.clone(),
            };
        };
        // A local `$ref` is replaced by what it names, its siblings (a description) kept.
        if self.inline
            && let Some(Value::Object(target)) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|pointer| self.root.pointer(pointer))
        {
            if depth >= MAX_INLINE_DEPTH {
                self.too_deep.set(true);
                return v.clone();
            }
            let mut merged = target.clone();
            for (k, x) in map {
                if k != "$ref" {
                    merged.insert(k.clone(), x.clone());
                }
            }
            return self.walk(&Value::Object(merged), top, depth + 1);
        }
        if let Some(simpler) = simplify_choice(map) {
            return self.walk(&simpler, top, depth + 1);
        }
        let mut out = serde_json::Map::new();
        for (k, x) in map {
            if VALIDATION_ONLY.contains(&k.as_str())
                || (self.inline && matches!(k.as_str(), "$defs" | "definitions"))
                || (top && k == "description")
            {
                continue;
            }
            let x = match (k.as_str(), x) {
                ("type", Value::Array(types)) => {
                    let kept: Vec<&Value> = types
                        .iter()
                        .filter(|t| t.as_str() != Some("null"))
                        .collect();
                    match kept.as_slice() {
                        [one] => (*one).clone(),
                        _ => Value::Array(kept.into_iter().cloned().collect()),
                    }
                }
                // Property and definition names are data, not keywords: walk each one's schema.
                ("properties" | "$defs" | "definitions", Value::Object(named)) => {
                    self.named(named, k == "properties", depth)
                }
                _ => self.walk(x, false, depth + 1),
            };
            out.insert(k.clone(), x);
        }
        Value::Object(out)
    }

    /// The schemas of `properties` (whose descriptions that restate the name are dropped) or of
    /// `$defs`.
    fn named(
        &self,
        named: &serde_json::Map<String, Value>,
        properties: bool,
        depth: usize,
    ) -> Value {
        Value::Object(
            named
                .iter()
                .map(|(name, p)| {
                    let mut p = self.walk(p, false, depth + 1);
                    if properties
                        && let Value::Object(pm) = &mut p
                        && pm
                            .get("description")
                            .and_then(Value::as_str)
                            .is_some_and(|d| restates(name, d))
                    {
                        pm.remove("description");
                    }
                    (name.clone(), p)
                })
                .collect(),
        )
    }
}

/// A [`ToolSpec`] whose parameters are the schema of `A`.
pub fn spec_for<A: JsonSchema>(name: &str, description: &str) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters: schema_for::<A>(),
    }
}

/// Parses validated arguments into their typed struct.
///
/// # Errors
/// [`ToolError::InvalidArguments`] naming the tool and what did not parse.
pub fn parse_args<A: DeserializeOwned>(tool: &str, args: &Value) -> Result<A, ToolError> {
    A::deserialize(args).map_err(|e| ToolError::InvalidArguments {
        tool: tool.to_owned(),
        message: e.to_string(),
    })
}

struct Entry {
    tool: Arc<dyn Tool>,
    validator: jsonschema::Validator,
    model_spec: ToolSpec,
}

/// The tools of an agent, each with its compiled argument validator.
#[derive(Default)]
pub struct ToolSet {
    tools: BTreeMap<String, Entry>,
}

impl fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

/// Why a tool could not be added to a [`ToolSet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolSetError {
    /// Two tools share a name.
    #[error("duplicate tool name {0:?}")]
    Duplicate(String),
    /// The name is not `^[a-zA-Z0-9_-]{{1,64}}$`.
    #[error("invalid tool name {0:?}: use 1 to 64 of a-z, A-Z, 0-9, _ and -")]
    InvalidName(String),
    /// The parameters are not a valid JSON Schema of an object.
    #[error("tool {tool} has an invalid parameters schema: {message}")]
    InvalidSchema {
        /// Tool name.
        tool: String,
        /// What is wrong.
        message: String,
    },
}

fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ToolSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool, compiling its schema.
    ///
    /// # Errors
    /// A duplicate or invalid name, or a schema that is not a JSON Schema of an object.
    pub fn add(&mut self, tool: Arc<dyn Tool>) -> Result<(), ToolSetError> {
        let spec = tool.spec();
        let name = spec.name.clone();
        if !valid_tool_name(&name) {
            return Err(ToolSetError::InvalidName(name));
        }
        if self.tools.contains_key(&name) {
            return Err(ToolSetError::Duplicate(name));
        }
        if spec.parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(ToolSetError::InvalidSchema {
                tool: name,
                message: "parameters must have \"type\": \"object\"".into(),
            });
        }
        let validator = jsonschema::validator_for(&spec.parameters).map_err(|e| {
            ToolSetError::InvalidSchema {
                tool: name.clone(),
                message: e.to_string(),
            }
        })?;
        let model_spec = ToolSpec {
            name: spec.name.clone(),
            description: spec.description.clone(),
            parameters: compact_schema(&spec.parameters),
        };
        self.tools.insert(
            name,
            Entry {
                tool,
                validator,
                model_spec,
            },
        );
        Ok(())
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|e| &e.tool)
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// True when there are no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The specs, sorted by name, with their whole schemas (what arguments are validated against).
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|e| e.tool.spec().clone()).collect()
    }

    /// The specs as a model is sent them, sorted by name (a stable prefix that providers' prompt
    /// caches can hit): each schema [compacted](compact_schema). Arguments are still validated
    /// against the whole schema ([`ToolSet::validate`]).
    pub fn model_specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|e| e.model_spec.clone()).collect()
    }

    /// Finds the tool and checks the arguments against its schema. Never calls the tool.
    ///
    /// # Errors
    /// [`ToolError::UnknownTool`] or [`ToolError::InvalidArguments`] listing every violation with
    /// its JSON pointer, e.g. `/replicas: "three" is not of type "integer"`.
    pub fn validate(&self, name: &str, args: &Value) -> Result<&Arc<dyn Tool>, ToolError> {
        let Some(entry) = self.tools.get(name) else {
            return Err(ToolError::UnknownTool {
                name: name.to_owned(),
                available: self.tools.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        let problems: Vec<String> = entry
            .validator
            .iter_errors(args)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(&entry.tool)
        } else {
            Err(ToolError::InvalidArguments {
                tool: name.to_owned(),
                message: problems.join("; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, JsonSchema)]
    #[expect(dead_code, reason = "only the schema is used")]
    struct ScaleArgs {
        /// Namespace.
        namespace: String,
        /// Replicas.
        replicas: u32,
        /// Optional note.
        note: Option<String>,
    }

    struct Scale(ToolSpec);

    #[async_trait]
    impl Tool for Scale {
        fn spec(&self) -> &ToolSpec {
            &self.0
        }
        async fn call(&self, _: &Value, _: &ToolContext) -> Result<ToolOutput, ToolError> {
            Ok(ToolOutput::text("ok"))
        }
    }

    fn set() -> ToolSet {
        let mut s = ToolSet::new();
        s.add(Arc::new(Scale(spec_for::<ScaleArgs>("scale", "scale it"))))
            .unwrap();
        s
    }

    #[test]
    fn a_model_is_sent_a_compact_schema_and_calls_are_checked_against_the_whole_one() {
        struct Patch(ToolSpec);
        #[async_trait]
        impl Tool for Patch {
            fn spec(&self) -> &ToolSpec {
                &self.0
            }
            async fn call(&self, _: &Value, _: &ToolContext) -> Result<ToolOutput, ToolError> {
                Ok(ToolOutput::text("ok"))
            }
        }
        let whole = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Args",
            "description": "Arguments of `patch`.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "mode"],
            "properties": {
                "name": {"type": "string", "description": "Deployment name.",
                         "minLength": 1, "maxLength": 63, "pattern": "^[a-z0-9-]+$"},
                "mode": {"enum": ["fast", "safe"], "description": "How."},
                "count": {"type": ["integer", "null"], "format": "int32", "default": null,
                          "minimum": 0, "maximum": 10},
                "pattern": {"type": "string", "description": "a property named like a keyword"},
                "default": {"type": "boolean"}
            }
        });
        let compact = compact_schema(&whole);
        assert_eq!(
            compact,
            json!({
                "type": "object",
                "required": ["name", "mode"],
                "properties": {
                    "name": {"type": "string", "description": "Deployment name."},
                    "mode": {"enum": ["fast", "safe"], "description": "How."},
                    "count": {"type": "integer"},
                    "pattern": {"type": "string", "description": "a property named like a keyword"},
                    "default": {"type": "boolean"}
                }
            })
        );
        assert!(compact.to_string().len() * 2 < whole.to_string().len() + 200);

        let mut set = ToolSet::new();
        set.add(Arc::new(Patch(ToolSpec {
            name: "patch".into(),
            description: "patch it".into(),
            parameters: whole.clone(),
        })))
        .unwrap();
        assert_eq!(set.model_specs()[0].parameters, compact);
        assert_eq!(set.specs()[0].parameters, whole);
        // What the compact schema no longer says is still enforced.
        let e = set
            .validate("patch", &json!({"name": "Web/../x", "mode": "fast"}))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/name"), "{e}");
        assert!(
            set.validate("patch", &json!({"name": "web", "mode": "fast"}))
                .is_ok()
        );
    }

    #[test]
    fn optional_enums_and_refs_are_inlined_and_restated_names_dropped() {
        let whole = json!({
            "type": "object",
            "additionalProperties": false,
            "$defs": {"Severity": {"description": "A severity.", "oneOf": [
                {"const": "CRITICAL", "type": "string", "description": "CRITICAL."},
                {"const": "HIGH", "type": "string", "description": "HIGH."}
            ]}},
            "required": ["namespace"],
            "properties": {
                "namespace": {"type": "string", "description": "Kubernetes namespace."},
                "pod": {"type": "string", "description": "Pod name."},
                "container": {"type": "string", "description": "Container name; required when the pod has several."},
                "level": {"anyOf": [{"$ref": "#/$defs/Severity"}, {"type": "null"}],
                          "description": "Findings at this level or worse."},
                "mixed": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
            }
        });
        assert_eq!(
            compact_schema(&whole),
            json!({
                "type": "object",
                "required": ["namespace"],
                "properties": {
                    "namespace": {"type": "string"},
                    "pod": {"type": "string"},
                    "container": {"type": "string", "description": "Container name; required when the pod has several."},
                    "level": {"type": "string", "enum": ["CRITICAL", "HIGH"],
                              "description": "Findings at this level or worse."},
                    "mixed": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
                }
            })
        );
        assert!(restates("deployment", "Deployment name."));
        assert!(restates("tail_lines", "Tail lines."));
        assert!(!restates("replicas", "Desired replicas."));
    }

    #[test]
    fn a_recursive_schema_keeps_its_definitions() {
        let whole = json!({
            "type": "object",
            "$defs": {"Node": {"type": "object", "properties": {
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                "label": {"type": ["string", "null"], "maxLength": 3}
            }}},
            "properties": {"root": {"$ref": "#/$defs/Node"}}
        });
        let compact = compact_schema(&whole);
        assert_eq!(
            compact["$defs"]["Node"]["properties"]["children"]["items"],
            json!({"$ref": "#/$defs/Node"})
        );
        assert_eq!(
            compact["properties"]["root"],
            json!({"$ref": "#/$defs/Node"})
        );
        assert_eq!(
            compact["$defs"]["Node"]["properties"]["label"],
            json!({"type": "string"})
        );
        jsonschema::validator_for(&compact).unwrap();
    }

    #[test]
    fn schema_is_a_closed_object() {
        let s = schema_for::<ScaleArgs>();
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"], json!(["namespace", "replicas"]));
        assert!(s.get("$schema").is_none());
    }

    #[test]
    fn valid_arguments_pass() {
        let s = set();
        assert!(
            s.validate("scale", &json!({"namespace": "a", "replicas": 2}))
                .is_ok()
        );
        assert!(
            s.validate(
                "scale",
                &json!({"namespace": "a", "replicas": 2, "note": null})
            )
            .is_ok()
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = set()
            .validate("scale", &json!({"namespace": "a", "replicas": "three"}))
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid arguments for tool scale: "),
            "{msg}"
        );
        assert!(msg.contains("/replicas"), "{msg}");
        assert!(msg.contains("\"three\""), "{msg}");
    }

    #[test]
    fn missing_and_extra_fields_are_both_reported() {
        let err = set()
            .validate("scale", &json!({"namespace": "a", "replica": 2}))
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.contains("\"replicas\" is a required property"), "{msg}");
        assert!(msg.contains("replica"), "{msg}");
        assert!(msg.contains("Additional properties"), "{msg}");
        assert_eq!(err.kind(), "invalid_arguments");
    }

    #[test]
    fn unknown_tool_lists_the_available_ones() {
        let err = set()
            .validate("delete_everything", &json!({}))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "unknown tool \"delete_everything\"; available tools: scale"
        );
    }

    #[test]
    fn duplicate_and_bad_names_are_refused() {
        let mut s = set();
        let dup = s.add(Arc::new(Scale(spec_for::<ScaleArgs>("scale", "again"))));
        assert_eq!(dup, Err(ToolSetError::Duplicate("scale".into())));
        let bad = s.add(Arc::new(Scale(spec_for::<ScaleArgs>("scale it", "x"))));
        assert!(matches!(bad, Err(ToolSetError::InvalidName(_))));
        let not_object = s.add(Arc::new(Scale(ToolSpec {
            name: "x".into(),
            description: String::new(),
            parameters: json!({"type": "string"}),
        })));
        assert!(matches!(
            not_object,
            Err(ToolSetError::InvalidSchema { .. })
        ));
    }

    #[test]
    fn write_without_grant_is_denied_by_the_context() {
        let ctx = ToolContext::default();
        assert_eq!(ctx.approved_fingerprint().unwrap_err().kind(), "denied");
    }
}
