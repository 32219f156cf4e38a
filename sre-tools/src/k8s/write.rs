//! The write tools. Each plans against the deployment as it is, previews with a server-side dry
//! run (`dryRun=All`) that must provably write nothing, and returns a typed plan
//! ([`sre_core::Preview`]) with its target, the images before and after, the patch it will send and
//! the JSON patch that undoes it. Once approved, the tool applies exactly that plan — nothing is
//! re-planned — with the previewed resourceVersion as a precondition and field manager
//! `sre-agent`, verifies the rollout, and undoes itself from the plan when verification fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Resource as _;
use kube::api::{Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use sre_core::evidence::Evidence;
use sre_core::{
    Effect, ImageChange, Preview, Risk, Target, Tool, ToolContext, ToolError, ToolOutput, ToolSpec,
    Verification, parse_args, spec_for,
};

use super::names::{Label, Namespace, Subdomain};
use super::read::{
    DeploymentArgs, Rollout, all_images_of, images_of, revision_of, revisions, wait_rollout,
};
use super::{FIELD_MANAGER, Inner, kube_error};

/// Arguments of `k8s_patch_image`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchImageArgs {
    /// Kubernetes namespace.
    namespace: Namespace,
    /// Deployment name.
    deployment: Subdomain,
    /// Container name.
    container: Label,
    /// Image reference.
    #[schemars(
        length(min = 1, max = 512),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]*$")
    )]
    image: String,
}

/// Arguments of `k8s_scale_deployment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScaleArgs {
    /// Kubernetes namespace.
    namespace: Namespace,
    /// Deployment name.
    deployment: Subdomain,
    /// Replicas.
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

/// What a planned write would send, before it becomes a [`Preview`].
struct Plan {
    summary: String,
    patch: PatchDoc,
    risk: Risk,
    /// JSON patch operations that undo the change (checked with `test` ops first).
    undo: Option<Vec<Value>>,
    images: Vec<ImageChange>,
    /// Other objects the change copies from, with their versions (part of the fingerprint).
    reads: Vec<String>,
    warning: Option<String>,
    /// Why the write is proposed (scans, the crash).
    evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(tag = "patch_type", content = "patch", rename_all = "lowercase")]
enum PatchDoc {
    Strategic(Value),
    Json(Vec<Value>),
}

struct WriteTool {
    spec: ToolSpec,
    kind: Kind,
    inner: Arc<Inner>,
}

pub(crate) fn tools(inner: &Arc<Inner>) -> Vec<Arc<dyn Tool>> {
    let make = |kind, spec| -> Arc<dyn Tool> {
        Arc::new(WriteTool {
            spec,
            kind,
            inner: Arc::clone(inner),
        })
    };
    vec![
        make(
            Kind::PatchImage,
            spec_for::<PatchImageArgs>(
                "k8s_patch_image",
                "Set a container's image; undone if the rollout fails.",
            ),
        ),
        make(
            Kind::Rollback,
            spec_for::<DeploymentArgs>(
                "k8s_rollback",
                "Roll a deployment back to its previous revision.",
            ),
        ),
        make(
            Kind::Restart,
            spec_for::<DeploymentArgs>(
                "k8s_restart_deployment",
                "Rolling restart of a deployment.",
            ),
        ),
        make(
            Kind::Scale,
            spec_for::<ScaleArgs>("k8s_scale_deployment", "Set a deployment's replicas."),
        ),
    ]
}

fn fingerprint_of(ns: &str, name: &str, rv: &str) -> String {
    format!("deployments.apps/{ns}/{name}@resourceVersion={rv}")
}

fn rs_fingerprint(rs: &ReplicaSet) -> String {
    format!(
        "replicasets.apps/{}/{}@resourceVersion={}",
        rs.metadata.namespace.as_deref().unwrap_or_default(),
        rs.metadata.name.as_deref().unwrap_or_default(),
        rs.metadata.resource_version.as_deref().unwrap_or_default()
    )
}

/// Leaf values of a JSON document by path. List items are keyed by name when every item has a
/// distinct name (containers, env vars), by index otherwise (so a duplicate cannot hide). An env
/// var is shown as `NAME=value`, so the redactor sees the variable's name beside its value.
fn flatten(v: &Value, path: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(n)), Some(Value::String(val))) =
                (m.get("name"), m.get("value"))
                && path.ends_with(']')
                && path.contains(".env[")
            {
                out.insert(format!("{path}.value"), format!("{n}={val}"));
                for (k, x) in m.iter().filter(|(k, _)| *k != "name" && *k != "value") {
                    flatten(x, &format!("{path}.{k}"), out);
                }
                return;
            }
            for (k, x) in m {
                flatten(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) if !items.is_empty() && unique_names(items) => {
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

fn unique_names(items: &[Value]) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    items.iter().all(|i| {
        i.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| seen.insert(n))
    })
}

/// The change between two deployments' specs, as `-`/`+` lines. Paths and values are escaped
/// (a newline or a terminal sequence in a value cannot forge another line of the diff).
pub(crate) fn diff_specs(before: &Value, after: &Value) -> String {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(before.get("spec").unwrap_or(&Value::Null), "spec", &mut a);
    flatten(after.get("spec").unwrap_or(&Value::Null), "spec", &mut b);
    let esc = |s: &str| sre_core::text::escape_untrusted(s).into_owned();
    let mut out = String::new();
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let key = esc(k);
        match (a.get(k), b.get(k)) {
            (Some(old), Some(new)) if old == new => {}
            (Some(old), Some(new)) => {
                let _ = writeln!(out, "- {key}: {}\n+ {key}: {}", esc(old), esc(new));
            }
            (Some(old), None) => {
                let _ = writeln!(out, "- {key}: {}", esc(old));
            }
            (None, Some(new)) => {
                let _ = writeln!(out, "+ {key}: {}", esc(new));
            }
            (None, None) => {}
        }
    }
    out.trim_end().to_owned()
}

/// The paths where two pod templates differ other than in container images and the
/// `pod-template-hash` label: what a rollback changes besides the images.
fn non_image_changes(before: &Value, after: &Value) -> Vec<String> {
    let strip = |t: &Value| -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        flatten(t, "template", &mut m);
        m.retain(|k, _| {
            let last = k.rsplit('.').next().unwrap_or_default();
            last != "image" && !k.ends_with(".labels.pod-template-hash")
        });
        m
    };
    let (a, b) = (strip(before), strip(after));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| sre_core::text::escape_untrusted(k).into_owned())
        .collect()
}

impl WriteTool {
    async fn fetch(&self, ns: &str, name: &str) -> Result<Deployment, ToolError> {
        self.inner.scope.check(ns)?;
        kube::Api::<Deployment>::namespaced(self.inner.client.clone(), ns)
            .get(name)
            .await
            .map_err(|e| kube_error(&format!("deployment {ns}/{name}"), &e))
    }

    fn target(&self, args: &Value) -> Result<(Namespace, Subdomain), ToolError> {
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

    /// The revision a rollback goes back to, and its ReplicaSet.
    async fn rollback_source(&self, dep: &Deployment) -> Result<(u64, u64, ReplicaSet), ToolError> {
        let what = format!(
            "deployment {}/{}",
            dep.metadata.namespace.as_deref().unwrap_or_default(),
            dep.metadata.name.as_deref().unwrap_or_default()
        );
        let mut revs = revisions(&self.inner, dep).await?;
        let current = revision_of(&dep.metadata)
            .or_else(|| revs.keys().next_back().copied())
            .unwrap_or(0);
        let Some(rev) = revs.range(..current).next_back().map(|(r, _)| *r) else {
            return Err(ToolError::Refused(format!(
                "{what} has no earlier revision to roll back to (current revision {current})"
            )));
        };
        let rs = revs
            .remove(&rev)
            .ok_or_else(|| ToolError::Failed(format!("{what}: revision {rev} vanished")))?;
        Ok((current, rev, rs))
    }

    /// The fingerprint of everything a plan reads: the deployment and, for a rollback, the
    /// ReplicaSet whose template it copies.
    fn fingerprint_for(ns: &str, name: &str, dep: &Deployment, reads: &[String]) -> String {
        let mut fp = fingerprint_of(
            ns,
            name,
            dep.metadata.resource_version.as_deref().unwrap_or_default(),
        );
        for r in reads {
            let _ = write!(fp, ";{r}");
        }
        fp
    }

    fn invalid(&self, message: String) -> ToolError {
        ToolError::InvalidArguments {
            tool: self.spec.name.clone(),
            message,
        }
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
        let current = images_of(Some(&spec.template));
        let every = all_images_of(Some(&spec.template));
        let unchanged = || -> Vec<ImageChange> {
            every
                .iter()
                .map(|(c, i)| ImageChange {
                    container: c.clone(),
                    before: Some(i.clone()),
                    after: i.clone(),
                })
                .collect()
        };
        Ok(match self.kind {
            Kind::PatchImage => {
                let a: PatchImageArgs = parse_args(&self.spec.name, args)?;
                // Exactly as written: a runtime would not trim or case-fold it either.
                sre_core::image::ImageRef::parse(&a.image)
                    .map_err(|e| self.invalid(e.to_string()))?;
                let image = a.image.as_str();
                let Some(index) = current.iter().position(|(c, _)| a.container.as_str() == c)
                else {
                    return Err(self.invalid(format!(
                        "{what} has no container {:?}; its containers are: {}",
                        a.container.as_str(),
                        current
                            .iter()
                            .map(|(c, _)| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                let old = current[index].1.clone();
                if old == image {
                    return Err(ToolError::Refused(format!(
                        "{what} container {} already runs {image}; nothing to change",
                        a.container
                    )));
                }
                // Pinned to the digest the registry serves now, and scanned: what the approver
                // sees scanned is what will run.
                let mut evidence = Evidence::default();
                let mut notes = String::new();
                let pinned = match &self.inner.security {
                    Some(security) => {
                        let p = super::security::plan_patch(
                            &self.inner,
                            security,
                            dep,
                            a.container.as_str(),
                            &old,
                            image,
                        )
                        .await;
                        evidence.vulnerabilities = p.evidence;
                        if !p.notes.is_empty() {
                            notes = format!(" ({})", p.notes.join("; "));
                        }
                        p.image
                    }
                    None => image.to_owned(),
                };
                let image = pinned.as_str();
                let path = format!("/spec/template/spec/containers/{index}/image");
                let mut images = unchanged();
                if let Some(c) = images
                    .iter_mut()
                    .find(|c| c.container == a.container.as_str())
                {
                    image.clone_into(&mut c.after);
                }
                Plan {
                    summary: format!(
                        "{what}: container {} image {old} -> {image}{notes}",
                        a.container
                    ),
                    patch: PatchDoc::Strategic(
                        json!({"spec": {"template": {"spec": {"containers": [{"name": a.container.as_str(), "image": image}]}}}}),
                    ),
                    risk: Risk::Medium,
                    undo: Some(vec![
                        json!({"op": "test", "path": path, "value": image}),
                        json!({"op": "replace", "path": path, "value": old}),
                    ]),
                    images,
                    reads: Vec::new(),
                    warning: None,
                    evidence,
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
                let to_zero = a.replicas == 0;
                let risk = if to_zero || a.replicas * 2 < old {
                    Risk::High
                } else if a.replicas > old.max(1) * 2 {
                    // A large scale-up costs capacity and money.
                    Risk::Medium
                } else {
                    Risk::Low
                };
                Plan {
                    summary: if to_zero {
                        format!(
                            "SCALE TO ZERO: {what}: replicas {old} -> 0 (every pod stops; it serves nothing until scaled up again)"
                        )
                    } else {
                        format!("{what}: replicas {old} -> {}", a.replicas)
                    },
                    patch: PatchDoc::Strategic(json!({"spec": {"replicas": a.replicas}})),
                    risk,
                    undo: Some(vec![
                        json!({"op": "test", "path": "/spec/replicas", "value": a.replicas}),
                        json!({"op": "replace", "path": "/spec/replicas", "value": old}),
                    ]),
                    images: unchanged(),
                    reads: Vec::new(),
                    warning: to_zero.then(|| {
                        format!(
                            "this scales {what} to ZERO replicas: all {old} pods stop and it serves no traffic until someone scales it up again"
                        )
                    }),
                    evidence: Evidence::default(),
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
                    images: unchanged(),
                    reads: Vec::new(),
                    warning: None,
                    evidence: Evidence::default(),
                }
            }
            Kind::Rollback => {
                let (current_rev, rev, rs) = self.rollback_source(dep).await?;
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
                let to_template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
                let to = all_images_of(to_template);
                let show = |v: &[(String, String)]| {
                    v.iter()
                        .map(|(c, i)| format!("{c}={i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let images: Vec<ImageChange> = to
                    .iter()
                    .map(|(c, i)| ImageChange {
                        container: c.clone(),
                        before: every.iter().find(|(n, _)| n == c).map(|(_, i)| i.clone()),
                        after: i.clone(),
                    })
                    .collect();
                let now = serde_json::to_value(&spec.template)
                    .map_err(|e| ToolError::Failed(e.to_string()))?;
                let other = non_image_changes(&now, &template);
                let rs_name = rs.metadata.name.clone().unwrap_or_default();
                // What the revision it returns to runs, scanned against what runs now (a
                // rollback can bring back CRITICALs the current release fixed), and its own pods
                // failing too (going back is then no fix).
                let mut evidence = Evidence::default();
                let mut notes = String::new();
                if let Some(security) = &self.inner.security {
                    let changes: Vec<(String, String, String)> = images
                        .iter()
                        .filter(|c| c.changes())
                        .filter_map(|c| {
                            Some((c.container.clone(), c.before.clone()?, c.after.clone()))
                        })
                        .collect();
                    let r =
                        super::security::plan_rollback(&self.inner, security, dep, &rs, &changes)
                            .await;
                    evidence.target_scan = r.evidence;
                    if !r.notes.is_empty() {
                        notes = format!(" ({})", r.notes.join("; "));
                    }
                }
                match super::evidence::revision_crash(&self.inner, dep, &rs).await {
                    Ok(crash) => evidence.target_crash = crash,
                    Err(e) => evidence.unchecked.push(format!(
                        "the pods of revision {rev} (ReplicaSet {rs_name}): {e}"
                    )),
                }
                Plan {
                    summary: format!(
                        "{what}: roll back from revision {current_rev} ({}) to revision {rev} (ReplicaSet {rs_name}: {}){notes}",
                        show(&every),
                        show(&to)
                    ),
                    patch: PatchDoc::Json(vec![
                        json!({"op": "replace", "path": "/spec/template", "value": template}),
                    ]),
                    // A rollback that changes more than images (security context, volumes,
                    // service account, commands…) is not a routine change.
                    risk: if other.is_empty() {
                        Risk::Medium
                    } else {
                        Risk::High
                    },
                    undo: None,
                    images,
                    reads: vec![rs_fingerprint(&rs)],
                    warning: (!other.is_empty()).then(|| {
                        format!(
                            "this rollback also changes the pod template beyond images: {}",
                            other.join(", ")
                        )
                    }),
                    evidence,
                }
            }
        })
    }

    /// Sends `patch` to deployment `ns/name`, with `rv` as a precondition. A dry run must carry
    /// `dryRun=All` and come back with the resourceVersion it was sent with — proof that nothing
    /// was written; anything else is an error. A real write must not carry `dryRun`.
    async fn send(
        &self,
        ns: &str,
        name: &str,
        patch: &PatchDoc,
        rv: &str,
        dry_run: bool,
    ) -> Result<Deployment, ToolError> {
        let what = format!("deployment {ns}/{name}");
        let params = PatchParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let failed = |e: String| ToolError::Failed(format!("{what}: {e}"));
        let url = Deployment::url_path(&(), Some(ns));
        let request = kube::core::Request::new(url.clone());
        let built = match patch {
            PatchDoc::Strategic(doc) => {
                let mut doc = doc.clone();
                doc["metadata"] = json!({"resourceVersion": rv});
                request.patch(name, &params, &Patch::Strategic(doc))
            }
            PatchDoc::Json(ops) => {
                let mut ops = ops.clone();
                ops.push(
                    json!({"op": "replace", "path": "/metadata/resourceVersion", "value": rv}),
                );
                let ops: json_patch::Patch =
                    serde_json::from_value(Value::Array(ops)).map_err(|e| failed(e.to_string()))?;
                request.patch(name, &params, &Patch::Json::<()>(ops))
            }
        }
        .map_err(|e| failed(format!("could not build the request: {e}")))?;
        // The request must name exactly this object, and say dryRun exactly when it is one.
        let uri = built.uri().clone();
        let query = uri.query().unwrap_or_default();
        let says_dry_run = query.split('&').any(|p| p == "dryRun=All");
        if uri.path() != format!("{url}/{name}") || uri.to_string().contains('#') {
            return Err(failed(format!(
                "refusing to send a request whose path is not {url}/{name}"
            )));
        }
        if says_dry_run != dry_run {
            return Err(failed(format!(
                "refusing to send a request with dryRun={says_dry_run} where dryRun={dry_run} was meant"
            )));
        }
        let result: Result<Deployment, kube::Error> = self.inner.client.request(built).await;
        let out = result.map_err(|e| match kube_error(&what, &e) {
            ToolError::Conflict(_) => ToolError::Conflict(format!(
                "{what} changed since it was {} (resourceVersion {rv}); nothing was applied. Re-read it and propose the change again.",
                if dry_run { "read" } else { "approved" }
            )),
            other => other,
        })?;
        if dry_run {
            let after = out.metadata.resource_version.as_deref().unwrap_or_default();
            if after != rv {
                return Err(ToolError::Failed(format!(
                    "{what}: the server-side dry run came back with resourceVersion {after}, not {rv}: \
                     it may have written. The action is aborted; check the object's history."
                )));
            }
        }
        Ok(out)
    }

    /// After a healthy rollout of an image patch that came with vulnerability evidence: the
    /// re-scan of what runs. A check that fails fails the verification (and the gate rolls the
    /// patch back); a re-scan that cannot be made leaves the rollout's verdict and says so.
    async fn verify_security(
        &self,
        ns: &str,
        name: &str,
        args: &Value,
        ctx: &ToolContext,
        mut rollout: Verification,
    ) -> Verification {
        let (Some(sec), Ok(plan)) = (
            &self.inner.security,
            ctx.approved_plan(&self.spec.name, args),
        ) else {
            return rollout;
        };
        let Some(ev) = plan
            .evidence
            .as_ref()
            .and_then(|e| e.vulnerabilities.as_ref())
        else {
            return rollout;
        };
        let Some(applied) = plan
            .images
            .iter()
            .flatten()
            .find(|c| c.container == ev.container)
            .map(|c| c.after.clone())
        else {
            return rollout;
        };
        let checked = match self.fetch(ns, name).await {
            Ok(dep) => super::security::verify_patch(&self.inner, sec, &dep, &applied, ev).await,
            Err(e) => Err(e.to_string()),
        };
        match checked {
            Ok(check) => {
                let _ = write!(rollout.detail, "; {}", check.render());
                rollout.passed = check.passed;
                rollout.security = Some(Box::new(check));
            }
            Err(e) => {
                // Nothing scanned what runs. Only a digest pin still guarantees it is the
                // approved content; a patch by tag fails safe (and is rolled back).
                let pinned = ev
                    .candidate
                    .digest
                    .as_deref()
                    .is_some_and(|d| applied.ends_with(&format!("@{d}")));
                if pinned {
                    let _ = write!(
                        rollout.detail,
                        "; security not re-checked ({e}), but the pods run the approved digest pin"
                    );
                } else {
                    rollout.passed = false;
                    let _ = write!(
                        rollout.detail,
                        "; security not re-checked ({e}) and the image is not pinned to the approved digest: what runs is unknown"
                    );
                }
            }
        }
        rollout
    }

    async fn verify_scale_to_zero(&self, ns: &str, name: &str) -> Verification {
        let what = format!("deployment {ns}/{name}");
        match self.fetch(ns, name).await {
            Ok(dep) => {
                let desired = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let running = dep.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                Verification::new(
                    desired == 0,
                    format!(
                        "{what} is scaled to zero ({desired} desired, {running} pods still terminating): \
                         it serves nothing — not healthy, a human must decide when it comes back"
                    ),
                )
            }
            Err(e) => Verification::new(false, format!("could not read {what}: {e}")),
        }
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
        let rv = dep.metadata.resource_version.clone().unwrap_or_default();
        let dry = self.send(&ns, &name, &plan.patch, &rv, true).await?;
        let before = serde_json::to_value(&dep).map_err(|e| ToolError::Failed(e.to_string()))?;
        let after = serde_json::to_value(&dry).map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut diff = diff_specs(&before, &after);
        if diff.is_empty() {
            diff = "(the server-side dry run shows no change to the spec)".into();
        }
        let mut preview = Preview::new(
            plan.summary,
            format!("deployment {ns}/{name} (server-side dry run):\n{diff}"),
            Self::fingerprint_for(&ns, &name, &dep, &plan.reads),
            plan.risk,
        );
        preview.target = Some(Target {
            kind: "deployments.apps".into(),
            namespace: ns.to_string(),
            name: name.to_string(),
            resource_version: rv,
        });
        preview.images = Some(plan.images);
        preview.warning = plan.warning;
        preview.payload =
            serde_json::to_value(&plan.patch).map_err(|e| ToolError::Failed(e.to_string()))?;
        preview.undo = plan.undo.map_or(Value::Null, Value::Array);
        let mut evidence = plan.evidence;
        if matches!(self.kind, Kind::Rollback | Kind::Restart | Kind::PatchImage) {
            // The crash that led here, as the cluster shows it (best effort: never blocks a plan);
            // an unattended approval asks for it (`Rules::evidence_required`). A scale has none:
            // capacity is a human's decision, so `--approve auto` never scales.
            evidence.crash = super::evidence::crash_evidence(&self.inner, &dep).await;
        }
        preview.evidence = (!evidence.is_empty()).then(|| Box::new(evidence));
        Ok(preview)
    }

    async fn fingerprint(&self, args: &Value, _ctx: &ToolContext) -> Result<String, ToolError> {
        let (ns, name) = self.target(args)?;
        let dep = self.fetch(&ns, &name).await?;
        let reads = if self.kind == Kind::Rollback {
            vec![rs_fingerprint(&self.rollback_source(&dep).await?.2)]
        } else {
            Vec::new()
        };
        Ok(Self::fingerprint_for(&ns, &name, &dep, &reads))
    }

    async fn call(&self, args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let plan = ctx.approved_plan(&self.spec.name, args)?;
        let (ns, name) = self.target(args)?;
        let Some(target) = plan.target.as_ref().filter(|t| {
            t.kind == "deployments.apps" && ns == *t.namespace.as_str() && name == *t.name.as_str()
        }) else {
            return Err(ToolError::Denied(format!(
                "the approved plan is not for deployment {ns}/{name}; nothing was applied"
            )));
        };
        self.inner.scope.check(&ns)?;
        let patch: PatchDoc = serde_json::from_value(plan.payload.clone()).map_err(|e| {
            ToolError::Failed(format!(
                "the approved plan carries no patch ({e}); nothing was applied"
            ))
        })?;
        let rv = target.resource_version.clone();
        let applied = self.send(&ns, &name, &patch, &rv, false).await?;
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
        ctx: &ToolContext,
    ) -> Option<Verification> {
        let (ns, name) = self.target(args).ok()?;
        if self.kind == Kind::Scale
            && parse_args::<ScaleArgs>(&self.spec.name, args).is_ok_and(|a| a.replicas == 0)
        {
            return Some(self.verify_scale_to_zero(&ns, &name).await);
        }
        let rollout =
            match wait_rollout(&self.inner, &ns, &name, self.inner.limits.rollout_timeout).await {
                Ok((Rollout::Complete, text)) => Verification::new(true, text),
                Ok((_, text)) => Verification::new(false, text),
                Err(e) => Verification::new(false, format!("could not read the rollout: {e}")),
            };
        if !rollout.passed || self.kind != Kind::PatchImage {
            return Some(rollout);
        }
        Some(self.verify_security(&ns, &name, args, ctx, rollout).await)
    }

    async fn rollback(
        &self,
        args: &Value,
        _output: &ToolOutput,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let plan = ctx.approved_plan(&self.spec.name, args)?;
        let Some(undo) = plan.undo.as_array().filter(|u| !u.is_empty()) else {
            return Err(ToolError::Failed(match self.kind {
                Kind::Rollback => "a rollback is not undone automatically: the revision it replaced is the one that was failing".into(),
                Kind::Restart => "a restart cannot be undone".into(),
                _ => "nothing recorded to undo".into(),
            }));
        };
        let (ns, name) = self.target(args)?;
        self.inner.scope.check(&ns)?;
        let what = format!("deployment {ns}/{name}");
        let ops: json_patch::Patch = serde_json::from_value(Value::Array(undo.clone()))
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        kube::Api::<Deployment>::namespaced(self.inner.client.clone(), &ns)
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
