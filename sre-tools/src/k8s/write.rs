//! The write tools. Each previews with a server-side dry run (`dryRun=All`), is fingerprinted by
//! the deployment's resourceVersion, applies with that resourceVersion as a precondition and field
//! manager `sre-agent`, verifies the rollout, and (where that makes sense) can undo itself.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use sre_core::{
    Effect, Preview, Risk, Tool, ToolContext, ToolError, ToolOutput, ToolSpec, Verification,
    parse_args, spec_for,
};

use super::read::{DeploymentArgs, Rollout, images_of, revision_of, revisions, wait_rollout};
use super::{FIELD_MANAGER, Inner, kube_error};

/// Arguments of `k8s_patch_image`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchImageArgs {
    /// Kubernetes namespace.
    namespace: String,
    /// Deployment name.
    deployment: String,
    /// Container whose image changes.
    container: String,
    /// The new image reference, e.g. `nginx:1.25.5-alpine` or `repo@sha256:…`.
    #[schemars(length(min = 1, max = 512))]
    image: String,
}

/// Arguments of `k8s_scale_deployment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScaleArgs {
    /// Kubernetes namespace.
    namespace: String,
    /// Deployment name.
    deployment: String,
    /// Desired replicas.
    #[schemars(range(min = 0, max = 1000))]
    replicas: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PatchImage,
    Rollback,
    Restart,
    Scale,
}

/// What a planned write would send.
struct Plan {
    ns: String,
    name: String,
    patch: PatchDoc,
    summary: String,
    risk: Risk,
    /// JSON patch operations that undo the change (checked with `test` ops first).
    undo: Option<Vec<Value>>,
}

enum PatchDoc {
    Strategic(Value),
    Json(Vec<Value>),
}

/// (namespace, deployment, JSON patch operations) that undo one applied write.
type Undo = (String, String, Vec<Value>);

struct WriteTool {
    spec: ToolSpec,
    kind: Kind,
    inner: Arc<Inner>,
    /// Undo operations of applied writes, by call id.
    applied: Mutex<HashMap<String, Undo>>,
}

pub(crate) fn tools(inner: &Arc<Inner>) -> Vec<Arc<dyn Tool>> {
    let make = |kind, spec| -> Arc<dyn Tool> {
        Arc::new(WriteTool {
            spec,
            kind,
            inner: Arc::clone(inner),
            applied: Mutex::new(HashMap::new()),
        })
    };
    vec![
        make(
            Kind::PatchImage,
            spec_for::<PatchImageArgs>(
                "k8s_patch_image",
                "Change one container's image in a deployment (e.g. to a tag that fixes vulnerabilities). \
                 Shown to an approver as a server-side dry-run diff; verified by the rollout and rolled back \
                 automatically if the rollout fails.",
            ),
        ),
        make(
            Kind::Rollback,
            spec_for::<DeploymentArgs>(
                "k8s_rollback",
                "Roll a deployment back to its previous revision (like `kubectl rollout undo`), e.g. after a \
                 bad release or an image that cannot be pulled. Needs approval.",
            ),
        ),
        make(
            Kind::Restart,
            spec_for::<DeploymentArgs>(
                "k8s_restart_deployment",
                "Restart a deployment's pods with a rolling restart (like `kubectl rollout restart`). Needs approval.",
            ),
        ),
        make(
            Kind::Scale,
            spec_for::<ScaleArgs>(
                "k8s_scale_deployment",
                "Set a deployment's replica count. Needs approval; scaling to 0 is high risk.",
            ),
        ),
    ]
}

fn fingerprint_of(ns: &str, name: &str, rv: &str) -> String {
    format!("deployments.apps/{ns}/{name}@resourceVersion={rv}")
}

fn rv_of_fingerprint(fp: &str) -> Result<&str, ToolError> {
    fp.rsplit_once("@resourceVersion=")
        .map(|(_, rv)| rv)
        .ok_or_else(|| ToolError::Failed(format!("unexpected fingerprint {fp:?}")))
}

/// Leaf values of a JSON document by path; containers and other named list items are keyed by name.
fn flatten(v: &Value, path: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items)
            if items
                .iter()
                .all(|i| i.get("name").and_then(Value::as_str).is_some())
                && !items.is_empty() =>
        {
            for i in items {
                let n = i.get("name").and_then(Value::as_str).unwrap_or_default();
                flatten(i, &format!("{path}[{n}]"), out);
            }
        }
        Value::Array(items) => {
            for (n, i) in items.iter().enumerate() {
                flatten(i, &format!("{path}[{n}]"), out);
            }
        }
        Value::String(s) => {
            out.insert(path.to_owned(), s.clone());
        }
        other => {
            out.insert(path.to_owned(), other.to_string());
        }
    }
}

/// The change between two deployments' specs, as `-`/`+` lines.
pub(crate) fn diff_specs(before: &Value, after: &Value) -> String {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(before.get("spec").unwrap_or(&Value::Null), "spec", &mut a);
    flatten(after.get("spec").unwrap_or(&Value::Null), "spec", &mut b);
    let mut out = String::new();
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let _ = writeln!(out, "- {k}: {x}\n+ {k}: {y}");
            }
            (Some(x), None) => {
                let _ = writeln!(out, "- {k}: {x}");
            }
            (None, Some(y)) => {
                let _ = writeln!(out, "+ {k}: {y}");
            }
            (None, None) => {}
        }
    }
    out.trim_end().to_owned()
}

impl WriteTool {
    fn api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.inner.client.clone(), ns)
    }

    async fn fetch(&self, ns: &str, name: &str) -> Result<Deployment, ToolError> {
        self.inner.scope.check(ns)?;
        self.api(ns)
            .get(name)
            .await
            .map_err(|e| kube_error(&format!("deployment {ns}/{name}"), &e))
    }

    fn target(&self, args: &Value) -> Result<(String, String), ToolError> {
        let name = &self.spec.name;
        Ok(match self.kind {
            Kind::PatchImage => {
                let a: PatchImageArgs = parse_args(name, args)?;
                (a.namespace, a.deployment)
            }
            Kind::Scale => {
                let a: ScaleArgs = parse_args(name, args)?;
                (a.namespace, a.deployment)
            }
            Kind::Rollback | Kind::Restart => {
                let a: DeploymentArgs = parse_args(name, args)?;
                (a.namespace, a.deployment)
            }
        })
    }

    /// Works out the patch against the deployment as it is now.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per write kind, each short and linear"
    )]
    async fn plan(&self, args: &Value, dep: &Deployment) -> Result<Plan, ToolError> {
        let (ns, name) = self.target(args)?;
        let what = format!("deployment {ns}/{name}");
        let spec = dep.spec.clone().unwrap_or_default();
        Ok(match self.kind {
            Kind::PatchImage => {
                let a: PatchImageArgs = parse_args(&self.spec.name, args)?;
                let image = a.image.trim();
                if image.is_empty() || image.contains(char::is_whitespace) {
                    return Err(ToolError::InvalidArguments {
                        tool: self.spec.name.clone(),
                        message: format!("image {:?} is not a valid image reference", a.image),
                    });
                }
                let containers = images_of(Some(&spec.template));
                let Some(index) = containers.iter().position(|(c, _)| *c == a.container) else {
                    return Err(ToolError::InvalidArguments {
                        tool: self.spec.name.clone(),
                        message: format!(
                            "{what} has no container {:?}; its containers are: {}",
                            a.container,
                            containers
                                .iter()
                                .map(|(c, _)| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                };
                let old = containers[index].1.clone();
                if old == image {
                    return Err(ToolError::Refused(format!(
                        "{what} container {} already runs {image}; nothing to change",
                        a.container
                    )));
                }
                let path = format!("/spec/template/spec/containers/{index}/image");
                Plan {
                    summary: format!("{what}: container {} image {old} -> {image}", a.container),
                    patch: PatchDoc::Strategic(
                        json!({"spec": {"template": {"spec": {"containers": [{"name": a.container, "image": image}]}}}}),
                    ),
                    risk: Risk::Medium,
                    undo: Some(vec![
                        json!({"op": "test", "path": path, "value": image}),
                        json!({"op": "replace", "path": path, "value": old}),
                    ]),
                    ns,
                    name,
                }
            }
            Kind::Scale => {
                let a: ScaleArgs = parse_args(&self.spec.name, args)?;
                let max = self.inner.limits.max_replicas;
                if !(0..=max).contains(&a.replicas) {
                    return Err(ToolError::Refused(format!(
                        "{} replicas is outside the allowed range 0..={max}",
                        a.replicas
                    )));
                }
                let old = spec.replicas.unwrap_or(1);
                if old == a.replicas {
                    return Err(ToolError::Refused(format!(
                        "{what} already has {old} replicas; nothing to change"
                    )));
                }
                let risk = if a.replicas == 0 || a.replicas * 2 < old {
                    Risk::High
                } else {
                    Risk::Low
                };
                Plan {
                    summary: format!("{what}: replicas {old} -> {}", a.replicas),
                    patch: PatchDoc::Strategic(json!({"spec": {"replicas": a.replicas}})),
                    risk,
                    undo: Some(vec![
                        json!({"op": "test", "path": "/spec/replicas", "value": a.replicas}),
                        json!({"op": "replace", "path": "/spec/replicas", "value": old}),
                    ]),
                    ns,
                    name,
                }
            }
            Kind::Restart => {
                let now =
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
                Plan {
                    summary: format!("{what}: rolling restart of all pods"),
                    patch: PatchDoc::Strategic(
                        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}),
                    ),
                    risk: Risk::Low,
                    undo: None,
                    ns,
                    name,
                }
            }
            Kind::Rollback => {
                let revs = revisions(&self.inner, dep).await?;
                let current = revision_of(&dep.metadata)
                    .or_else(|| revs.keys().next_back().copied())
                    .unwrap_or(0);
                let Some((rev, rs)) = revs.range(..current).next_back() else {
                    return Err(ToolError::Refused(format!(
                        "{what} has no earlier revision to roll back to (current revision {current})"
                    )));
                };
                let mut template = serde_json::to_value(
                    rs.spec
                        .as_ref()
                        .and_then(|s| s.template.clone())
                        .unwrap_or_default(),
                )
                .map_err(|e| ToolError::Failed(e.to_string()))?;
                if let Some(labels) = template
                    .pointer_mut("/metadata/labels")
                    .and_then(Value::as_object_mut)
                {
                    labels.remove("pod-template-hash");
                }
                let from = images_of(Some(&spec.template));
                let to = images_of(rs.spec.as_ref().and_then(|s| s.template.as_ref()));
                let show = |v: &[(String, String)]| {
                    v.iter()
                        .map(|(c, i)| format!("{c}={i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Plan {
                    summary: format!(
                        "{what}: roll back from revision {current} ({}) to revision {rev} ({})",
                        show(&from),
                        show(&to)
                    ),
                    patch: PatchDoc::Json(vec![
                        json!({"op": "replace", "path": "/spec/template", "value": template}),
                    ]),
                    risk: Risk::Medium,
                    undo: None,
                    ns,
                    name,
                }
            }
        })
    }

    async fn send(
        &self,
        plan: &Plan,
        rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Deployment, ToolError> {
        let what = format!("deployment {}/{}", plan.ns, plan.name);
        let params = PatchParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let api = self.api(&plan.ns);
        let result = match &plan.patch {
            PatchDoc::Strategic(doc) => {
                let mut doc = doc.clone();
                if let Some(rv) = rv {
                    doc["metadata"] = json!({"resourceVersion": rv});
                }
                api.patch(&plan.name, &params, &Patch::Strategic(doc)).await
            }
            PatchDoc::Json(ops) => {
                let mut ops = ops.clone();
                if let Some(rv) = rv {
                    ops.push(
                        json!({"op": "replace", "path": "/metadata/resourceVersion", "value": rv}),
                    );
                }
                let ops: json_patch::Patch = serde_json::from_value(Value::Array(ops))
                    .map_err(|e| ToolError::Failed(e.to_string()))?;
                api.patch(&plan.name, &params, &Patch::Json::<()>(ops))
                    .await
            }
        };
        result.map_err(|e| match kube_error(&what, &e) {
            ToolError::Conflict(_) => ToolError::Conflict(format!(
                "{what} changed since it was approved (resourceVersion {}); nothing was applied. Re-read it and propose the change again.",
                rv.unwrap_or("?")
            )),
            other => other,
        })
    }
}

#[async_trait]
impl Tool for WriteTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn effect(&self) -> Effect {
        Effect::Write
    }

    async fn preview(&self, args: &Value, _ctx: &ToolContext) -> Result<Preview, ToolError> {
        let (ns, name) = self.target(args)?;
        let dep = self.fetch(&ns, &name).await?;
        let plan = self.plan(args, &dep).await?;
        let dry = self.send(&plan, None, true).await?;
        let before = serde_json::to_value(&dep).map_err(|e| ToolError::Failed(e.to_string()))?;
        let after = serde_json::to_value(&dry).map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut diff = diff_specs(&before, &after);
        if diff.is_empty() {
            diff = "(the server-side dry run shows no change to the spec)".into();
        }
        let rv = dep.metadata.resource_version.clone().unwrap_or_default();
        Ok(Preview {
            summary: plan.summary,
            diff: format!("deployment {ns}/{name} (server-side dry run):\n{diff}"),
            fingerprint: fingerprint_of(&ns, &name, &rv),
            risk: plan.risk,
        })
    }

    async fn fingerprint(&self, args: &Value, _ctx: &ToolContext) -> Result<String, ToolError> {
        let (ns, name) = self.target(args)?;
        let dep = self.fetch(&ns, &name).await?;
        Ok(fingerprint_of(
            &ns,
            &name,
            dep.metadata.resource_version.as_deref().unwrap_or_default(),
        ))
    }

    async fn call(&self, args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let approved = ctx.approved_fingerprint()?;
        let rv = rv_of_fingerprint(approved)?.to_owned();
        let (ns, name) = self.target(args)?;
        let dep = self.fetch(&ns, &name).await?;
        let plan = self.plan(args, &dep).await?;
        let applied = self.send(&plan, Some(&rv), false).await?;
        if let Some(undo) = &plan.undo
            && let Ok(mut map) = self.applied.lock()
        {
            map.insert(
                ctx.call_id.clone(),
                (ns.clone(), name.clone(), undo.clone()),
            );
        }
        let mut out = format!(
            "applied: {} (field manager {FIELD_MANAGER}, resourceVersion {rv} -> {})",
            plan.summary,
            applied.metadata.resource_version.as_deref().unwrap_or("?")
        );
        if self.kind == Kind::PatchImage {
            let _ = write!(out, "; previous image recorded for rollback");
        }
        Ok(ToolOutput::text(out))
    }

    async fn verify(
        &self,
        args: &Value,
        _output: &ToolOutput,
        _ctx: &ToolContext,
    ) -> Option<Verification> {
        let (ns, name) = self.target(args).ok()?;
        Some(
            match wait_rollout(&self.inner, &ns, &name, self.inner.limits.rollout_timeout).await {
                Ok((Rollout::Complete, text)) => Verification {
                    passed: true,
                    detail: text,
                },
                Ok((_, text)) => Verification {
                    passed: false,
                    detail: text,
                },
                Err(e) => Verification {
                    passed: false,
                    detail: format!("could not read the rollout: {e}"),
                },
            },
        )
    }

    async fn rollback(
        &self,
        _args: &Value,
        _output: &ToolOutput,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let record = self
            .applied
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&ctx.call_id));
        let Some((ns, name, undo)) = record else {
            return Err(ToolError::Failed(match self.kind {
                Kind::Rollback => "a rollback is not undone automatically: the revision it replaced is the one that was failing".into(),
                Kind::Restart => "a restart cannot be undone".into(),
                _ => "nothing recorded to undo".into(),
            }));
        };
        let what = format!("deployment {ns}/{name}");
        let ops: json_patch::Patch = serde_json::from_value(Value::Array(undo.clone()))
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        self.api(&ns)
            .patch(&name, &params, &Patch::Json::<()>(ops))
            .await
            .map_err(|e| {
                kube_error(
                    &format!(
                        "undo of the change to {what} (it was changed again since, or is gone)"
                    ),
                    &e,
                )
            })?;
        let restored = undo
            .get(1)
            .and_then(|op| op.get("value"))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default();
        let (state, text) =
            wait_rollout(&self.inner, &ns, &name, self.inner.limits.rollout_timeout).await?;
        Ok(ToolOutput::text(format!(
            "restored {what} to {restored}; {}",
            if state == Rollout::Complete {
                text
            } else {
                format!("but it is not healthy yet: {text}")
            }
        )))
    }
}
