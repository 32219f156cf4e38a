//! Scenario files: the cluster the simulator starts with. See `sre-tools/scenarios/README.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// How an image behaves when a pod runs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Runs and becomes ready.
    #[default]
    Healthy,
    /// Exits soon after start: `CrashLoopBackOff`.
    Crashloop,
    /// Cannot be pulled: `ErrImagePull` / `ImagePullBackOff`. Images missing from the catalogue
    /// behave like this too (`manifest unknown`).
    Imagepull,
    /// Killed for exceeding its memory limit: `OOMKilled`, then `CrashLoopBackOff`.
    Oom,
    /// Its container config references something missing: `CreateContainerConfigError`.
    ConfigError,
    /// Runs but never passes its readiness probe.
    NotReady,
}

/// One image of the catalogue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageProfile {
    /// How it behaves.
    pub health: Health,
    /// Log of the running container (healthy, not-ready) or of the last crashed one.
    pub logs: String,
    /// Exit code of a crash (default 1; 137 for `oom`).
    pub exit_code: Option<i32>,
    /// Restart count of a crash-looping pod (default 5).
    pub restarts: Option<i32>,
    /// The kubelet's message for `imagepull` and `config-error`.
    pub message: Option<String>,
    /// Vulnerabilities for the scenario's stand-in scanner (counts by severity).
    pub vulnerabilities: BTreeMap<String, u32>,
}

/// A container of a scenario deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Name.
    pub name: String,
    /// Image reference, looked up in the catalogue.
    pub image: String,
    /// `resources` as in a pod spec (e.g. `{limits: {memory: 128Mi}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
}

/// A deployment of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Namespace.
    pub namespace: String,
    /// Name (also the `app` label).
    pub name: String,
    /// Desired replicas.
    #[serde(default = "one")]
    pub replicas: i32,
    /// Containers (current revision).
    pub containers: Vec<ContainerSpec>,
    /// Earlier revisions, oldest first: each the image of every container, by container name.
    #[serde(default)]
    pub history: Vec<BTreeMap<String, String>>,
    /// When set, the pods stay Pending and the scheduler reports this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<String>,
}

impl DeploymentSpec {
    /// The pod template, with `images` (by container name) overriding the current images.
    pub fn template(&self, images: &BTreeMap<String, String>) -> Value {
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "image": images.get(&c.name).unwrap_or(&c.image),
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "resources": c.resources.clone().unwrap_or_else(|| serde_json::json!({})),
                })
            })
            .collect();
        serde_json::json!({
            "metadata": {"labels": {"app": self.name}},
            "spec": {"containers": containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                     "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}
        })
    }

    /// The Deployment object, with `images` overriding the current images.
    pub fn object(&self, images: &BTreeMap<String, String>) -> Value {
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": {"app": self.name},
                         "annotations": {}, "generation": 1},
            "spec": {"replicas": self.replicas, "selector": {"matchLabels": {"app": self.name}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                     "template": self.template(images)},
            "status": {}
        })
    }
}

fn one() -> i32 {
    1
}

/// An RBAC rule, as in a Role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// API groups (`""` is core).
    pub api_groups: Vec<String>,
    /// Resources, with subresources as `pods/log`.
    pub resources: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
}

/// Who the simulator's caller is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Access {
    /// The user name in 403 messages.
    #[serde(default = "default_user")]
    pub user: String,
    /// Namespaces where `rules` apply (a RoleBinding each). Default: the scenario's namespaces.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The rules. Default: exactly the Role of `deploy/rbac.yaml`.
    #[serde(default = "default_rules")]
    pub rules: Vec<Rule>,
    /// Rules bound cluster-wide (a ClusterRoleBinding), e.g. to make the caller cluster-admin.
    #[serde(default)]
    pub cluster_rules: Vec<Rule>,
}

impl Default for Access {
    fn default() -> Self {
        Self {
            user: default_user(),
            namespaces: Vec::new(),
            rules: default_rules(),
            cluster_rules: Vec::new(),
        }
    }
}

fn default_user() -> String {
    "system:serviceaccount:sre-agent:sre-agent".into()
}

/// The least-privilege Role of `deploy/rbac.yaml`.
pub fn default_rules() -> Vec<Rule> {
    crate::k8s::rbac::role_rules()
        .into_iter()
        .map(|(group, resources, verbs)| Rule {
            api_groups: vec![group],
            resources,
            verbs,
        })
        .collect()
}

/// Many generated deployments, for benchmarks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bulk {
    /// Namespaces `bulk-0` … `bulk-N-1`.
    pub namespaces: usize,
    /// Deployments per namespace.
    pub deployments: usize,
    /// Replicas per deployment.
    pub replicas: i32,
    /// Every Nth deployment runs `unhealthy_image` instead of `image`.
    pub unhealthy_every: usize,
    /// The healthy image.
    pub image: String,
    /// The unhealthy image.
    pub unhealthy_image: String,
}

/// A whole scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it shows and what the agent should do.
    #[serde(default)]
    pub description: String,
    /// The task the demo gives the agent.
    #[serde(default)]
    pub task: String,
    /// Namespaces to create (those of the deployments are added).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The image catalogue.
    #[serde(default)]
    pub images: BTreeMap<String, ImageProfile>,
    /// Deployments.
    #[serde(default)]
    pub deployments: Vec<DeploymentSpec>,
    /// Extra objects stored as they are (e.g. VulnerabilityReports, Events).
    #[serde(default)]
    pub objects: Vec<Value>,
    /// The caller's permissions.
    #[serde(default)]
    pub access: Access,
    /// Generated deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<Bulk>,
}

/// The scenarios shipped with the crate: name and YAML.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "bad-release",
        include_str!("../../scenarios/bad-release.yaml"),
    ),
    (
        "critical-cve",
        include_str!("../../scenarios/critical-cve.yaml"),
    ),
    (
        "image-typo",
        include_str!("../../scenarios/image-typo.yaml"),
    ),
    (
        "oom-worker",
        include_str!("../../scenarios/oom-worker.yaml"),
    ),
    (
        "unschedulable",
        include_str!("../../scenarios/unschedulable.yaml"),
    ),
    ("healthy", include_str!("../../scenarios/healthy.yaml")),
    (
        "large-cluster",
        include_str!("../../scenarios/large-cluster.yaml"),
    ),
];

impl Scenario {
    /// Parses a scenario from YAML. `origin` names it in errors.
    ///
    /// # Errors
    /// When the YAML is invalid or a field is unknown, with its line.
    pub fn from_yaml(yaml: &str, origin: &str) -> Result<Self> {
        let s: Self = serde_yaml::from_str(yaml).map_err(|e| Error::Scenario {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        s.validate(origin)?;
        Ok(s)
    }

    /// A built-in scenario by name.
    ///
    /// # Errors
    /// When there is no such scenario; the message lists the names.
    pub fn builtin(name: &str) -> Result<Self> {
        let (_, yaml) =
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| Error::Scenario {
                    origin: name.to_owned(),
                    message: format!(
                        "no such built-in scenario; choose one of: {}",
                        BUILTIN
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
        Self::from_yaml(yaml, name)
    }

    /// A built-in name, or else a path to a YAML file.
    ///
    /// # Errors
    /// When neither a built-in scenario nor a readable, valid file.
    pub fn load(name_or_path: &str) -> Result<Self> {
        if BUILTIN.iter().any(|(n, _)| *n == name_or_path) {
            return Self::builtin(name_or_path);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Self::builtin(name_or_path);
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::Scenario {
            origin: name_or_path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_yaml(&text, name_or_path)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |message: String| {
            Err(Error::Scenario {
                origin: origin.to_owned(),
                message,
            })
        };
        if self.name.is_empty() {
            return bad("name is empty".into());
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.deployments {
            if !seen.insert((&d.namespace, &d.name)) {
                return bad(format!(
                    "deployment {}/{} is defined twice",
                    d.namespace, d.name
                ));
            }
            if d.containers.is_empty() {
                return bad(format!(
                    "deployment {}/{} has no containers",
                    d.namespace, d.name
                ));
            }
            if d.replicas < 0 {
                return bad(format!(
                    "deployment {}/{} has negative replicas",
                    d.namespace, d.name
                ));
            }
            for rev in &d.history {
                for c in rev.keys() {
                    if !d.containers.iter().any(|k| &k.name == c) {
                        return bad(format!(
                            "deployment {}/{}: history names container {c:?}, which it does not have",
                            d.namespace, d.name
                        ));
                    }
                }
            }
        }
        for (i, o) in self.objects.iter().enumerate() {
            if o.get("kind").and_then(Value::as_str).is_none()
                || o.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_none()
            {
                return bad(format!("objects[{i}] needs a kind and metadata.name"));
            }
        }
        Ok(())
    }

    /// Every namespace of the scenario, sorted.
    pub fn all_namespaces(&self) -> Vec<String> {
        let mut ns: Vec<String> = self
            .namespaces
            .iter()
            .cloned()
            .chain(self.deployments.iter().map(|d| d.namespace.clone()))
            .chain(self.objects.iter().filter_map(|o| {
                o.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }))
            .collect();
        if let Some(b) = &self.bulk {
            ns.extend((0..b.namespaces).map(|i| format!("bulk-{i}")));
        }
        ns.sort();
        ns.dedup();
        ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_scenario_parses() {
        for (name, _) in BUILTIN {
            let s = Scenario::builtin(name).unwrap();
            assert_eq!(&s.name, name);
            assert!(!s.task.is_empty(), "{name} has no task");
        }
    }

    #[test]
    fn errors_name_the_scenario_and_the_problem() {
        let e = Scenario::builtin("nope").unwrap_err().to_string();
        assert!(
            e.starts_with("scenario nope: no such built-in scenario; choose one of: bad-release,"),
            "{e}"
        );
        let e = Scenario::from_yaml(
            "name: x\ndeployments: [{namespace: a, name: b, containers: []}]",
            "f.yaml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "scenario f.yaml: deployment a/b has no containers");
        let e = Scenario::from_yaml("name: x\nbogus: 1", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `bogus`"), "{e}");
    }
}
