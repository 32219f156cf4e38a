//! Scenario files: the cluster the simulator starts with. See `sre-tools/scenarios/README.md`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::trivy::report::Severity;

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
    /// (an unknown tag or digest) behave like this too, with containerd's `not found`.
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
    /// Vulnerabilities for the scenario's stand-in scanner (counts by severity); each becomes a
    /// generated finding with a `SIM-…` id.
    pub vulnerabilities: BTreeMap<String, u32>,
    /// Explicit findings for the stand-in scanner, in addition to the generated ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<ImageFinding>,
    /// The content digest (`sha256:` and 64 lower-case hex digits) the registry serves for this
    /// image and pods report in `imageID`. Default: the digest in the reference when it has one,
    /// else the sha256 of the reference string. In the catalogue's answers it is always set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ImageProfile {
    /// The number of findings the stand-in scanner makes for this image: the generated ones and
    /// the explicit ones (saturating).
    pub fn vulnerability_count(&self) -> u64 {
        self.vulnerabilities
            .values()
            .map(|c| u64::from(*c))
            .fold(count(self.findings.len()), u64::saturating_add)
    }
}

/// One explicit vulnerability of an image, as Trivy would report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageFinding {
    /// Vulnerability id, e.g. `CVE-2024-45491` or `GHSA-…`.
    pub id: String,
    /// `CRITICAL`, `HIGH`, `MEDIUM`, `LOW` or `UNKNOWN` (exactly; anything else is an error).
    #[serde(deserialize_with = "strict_severity")]
    pub severity: Severity,
    /// The vulnerable package, e.g. `libexpat`.
    pub package: String,
    /// Its installed version, e.g. `2.5.0-r1`.
    pub installed: String,
    /// The first fixed version, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// CVSS v3 base score (NVD), 0 to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<f64>,
    /// Short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A severity spelled exactly as Trivy does.
fn strict_severity<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Severity, D::Error> {
    let s = String::deserialize(d)?;
    Severity::ALL
        .into_iter()
        .find(|sev| sev.to_string() == s)
        .ok_or_else(|| {
            de::Error::custom(format!(
                "unknown severity {s:?}: expected CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN"
            ))
        })
}

impl ImageFinding {
    /// What is wrong with the finding, if anything.
    fn check(&self) -> std::result::Result<(), String> {
        let text = |field: &str, v: &str, max: usize, spaces: bool| {
            if v.is_empty() || v.len() > max {
                return Err(format!("{field} must have 1 to {max} characters"));
            }
            if let Some(c) = v
                .chars()
                .find(|c| c.is_control() || (!spaces && c.is_whitespace()))
            {
                return Err(format!(
                    "{field} contains {}",
                    sre_core::text::describe_char(c)
                ));
            }
            Ok(())
        };
        if !self.id.is_empty()
            && let Some(c) = self
                .id
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(format!(
                "id contains {} (letters, digits, '-', '_', '.' and ':' only)",
                sre_core::text::describe_char(c)
            ));
        }
        text("id", &self.id, 64, false)?;
        text("package", &self.package, 128, false)?;
        text("installed", &self.installed, 128, false)?;
        if let Some(f) = &self.fixed {
            text("fixed", f, 256, true)?;
        }
        if let Some(t) = &self.title {
            text("title", t, 512, true)?;
        }
        if let Some(score) = self.cvss
            && !(0.0..=10.0).contains(&score)
        {
            return Err(format!("cvss {score} is not a score from 0 to 10"));
        }
        Ok(())
    }
}

/// What is wrong with the catalogue entry `image` (its reference and profile), if anything:
/// the checks [`Scenario::validate`] makes on every image, also made on a profile pushed into a
/// running simulator's catalogue.
pub(crate) fn check_image(image: &str, p: &ImageProfile) -> std::result::Result<(), String> {
    use limits::{MAX_LOG_BYTES, MAX_RESTARTS, MAX_VULNERABILITIES_PER_IMAGE};
    if p.logs.len() > MAX_LOG_BYTES {
        return Err(format!(
            "image {image} has logs of {} bytes; the simulator allows at most {MAX_LOG_BYTES} \
             bytes per image",
            p.logs.len()
        ));
    }
    let vulns = p.vulnerability_count();
    if vulns > MAX_VULNERABILITIES_PER_IMAGE {
        return Err(format!(
            "image {image} has {vulns} vulnerabilities; the simulator allows at most \
             {MAX_VULNERABILITIES_PER_IMAGE} per image"
        ));
    }
    if let Some(r) = p.restarts
        && !(0..=MAX_RESTARTS).contains(&r)
    {
        return Err(format!(
            "image {image} has restarts {r}; the simulator allows 0 to {MAX_RESTARTS}"
        ));
    }
    let reference = crate::trivy::registry::ImageRef::parse(image)
        .map_err(|e| format!("image {image} is not an image reference: {e}"))?;
    if let Some(d) = &p.digest {
        crate::trivy::registry::check_digest(d)
            .map_err(|e| format!("image {image}: digest {e}"))?;
    }
    if let Some(d) = &reference.digest {
        crate::trivy::registry::check_digest(d)
            .map_err(|e| format!("image {image}: the reference's digest {e}"))?;
        if p.digest.as_ref().is_some_and(|given| given != d) {
            return Err(format!(
                "image {image}: digest {} differs from the digest in the reference",
                p.digest.as_deref().unwrap_or_default()
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, f) in p.findings.iter().enumerate() {
        f.check()
            .map_err(|e| format!("image {image}: findings[{i}]: {e}"))?;
        if !seen.insert((&f.id, &f.package)) {
            return Err(format!(
                "image {image}: findings[{i}]: {} in {} is listed twice (Trivy reports one entry \
                 per vulnerability and package)",
                f.id, f.package
            ));
        }
    }
    Ok(())
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

/// How big a scenario may be. The simulator keeps every object in memory and makes a pod object,
/// events and logs per replica, so a scenario is checked against these limits when it is loaded,
/// before anything is allocated for it: a typo like `replicas: 1000000` is an error naming the
/// field, not an out-of-memory abort. The built-in `large-cluster` (10,000 pods) fits with room
/// to spare. Documented in `sre-tools/scenarios/README.md`.
pub mod limits {
    /// Bytes of a scenario file (8 MiB).
    pub const MAX_FILE_BYTES: usize = 8 << 20;
    /// YAML nodes (scalars, sequences, mappings), counted with anchors and aliases expanded, as
    /// the parser would build them: a few aliases must not expand into gigabytes.
    pub const MAX_YAML_NODES: usize = 1_000_000;
    /// Bytes of YAML scalars, counted with aliases expanded (32 MiB).
    pub const MAX_YAML_BYTES: usize = 32 << 20;
    /// Namespaces, counting `namespaces`, those of deployments and objects, and `bulk`'s.
    pub const MAX_NAMESPACES: usize = 1_000;
    /// Deployments, counting `bulk`'s (namespaces × deployments).
    pub const MAX_DEPLOYMENTS: usize = 2_000;
    /// Replicas of one deployment.
    pub const MAX_REPLICAS: i32 = 1_000;
    /// Replicas summed over every deployment: the pods the simulator makes.
    pub const MAX_PODS: u64 = 20_000;
    /// Containers of one deployment's pod.
    pub const MAX_CONTAINERS_PER_POD: usize = 20;
    /// Containers summed over every pod (replicas × containers).
    pub const MAX_CONTAINERS: u64 = 40_000;
    /// Earlier revisions of one deployment (the deployment's `revisionHistoryLimit`).
    pub const MAX_HISTORY: usize = 10;
    /// Images in the catalogue.
    pub const MAX_IMAGES: usize = 1_000;
    /// Bytes of one image's `logs` (64 KiB).
    pub const MAX_LOG_BYTES: usize = 64 << 10;
    /// Bytes of pod logs the simulator holds: each container of each pod keeps its image's log,
    /// current and previous (128 MiB).
    pub const MAX_POD_LOG_BYTES: u64 = 128 << 20;
    /// Vulnerabilities of one image (`vulnerabilities` summed over severities, plus `findings`):
    /// the stand-in scanner makes one finding each.
    pub const MAX_VULNERABILITIES_PER_IMAGE: u64 = 10_000;
    /// `restarts` of one image.
    pub const MAX_RESTARTS: i32 = 100_000;
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
    (
        "two-incidents",
        include_str!("../../scenarios/two-incidents.yaml"),
    ),
    (
        "five-incidents",
        include_str!("../../scenarios/five-incidents.yaml"),
    ),
    (
        "release-wave",
        include_str!("../../scenarios/release-wave.yaml"),
    ),
    (
        "prompt-injection",
        include_str!("../../scenarios/prompt-injection.yaml"),
    ),
];

impl Scenario {
    /// Parses a scenario from YAML. `origin` names it in errors.
    ///
    /// # Errors
    /// When the YAML is invalid or a field is unknown, with its line; when it is inconsistent or
    /// exceeds one of the [`limits`] (see [`Scenario::validate`]).
    pub fn from_yaml(yaml: &str, origin: &str) -> Result<Self> {
        if yaml.len() > limits::MAX_FILE_BYTES {
            return Err(too_big(origin, yaml.len()));
        }
        if let Some(message) = yaml_over_budget(yaml) {
            return Err(Error::Scenario {
                origin: origin.to_owned(),
                message,
            });
        }
        // serde_yaml's message quotes the offending value, which can be a log line holding a
        // credential: it passes the redactor like any other text that reaches a terminal or model.
        // Its path (`images.<key>: …`) quotes the file's map keys: odd ones are left out too.
        let s: Self = serde_yaml::from_str(yaml).map_err(|e| Error::Scenario {
            origin: origin.to_owned(),
            message: sre_core::Redactor::default().redact_message(&elide_odd_keys(
                &sre_core::text::elide_quoted_values(&e.to_string()),
                yaml,
            )),
        })?;
        // Validation names what it found (a container, an image): redacted the same way.
        s.validate(origin).map_err(|e| match e {
            Error::Scenario { origin, message } => Error::Scenario {
                origin,
                message: sre_core::Redactor::default().redact_message(&message),
            },
            other => other,
        })?;
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
        let io = |e: std::io::Error| Error::Scenario {
            origin: name_or_path.to_owned(),
            message: e.to_string(),
        };
        // Read at most one byte past the limit: a huge file (or /dev/zero) is refused, not read.
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(limits::MAX_FILE_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() > limits::MAX_FILE_BYTES {
            return Err(too_big(name_or_path, text.len()));
        }
        Self::from_yaml(&text, name_or_path)
    }

    /// Checks what the YAML schema cannot: a name, no duplicate deployments, containers in every
    /// deployment, history naming real containers, objects with a kind and a name, and the
    /// [`limits`] on sizes. [`Scenario::from_yaml`] calls it; call it on a scenario built in code
    /// before starting a simulator on it.
    ///
    /// # Errors
    /// The first problem found, naming the field, its value and the limit.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |message: String| {
            Err(Error::Scenario {
                origin: origin.to_owned(),
                message,
            })
        };
        if self.name.is_empty() {
            return bad("name is empty".into());
        }
        // Sizes first: the checks below, and the simulator, allocate in proportion to them.
        if let Err(message) = self.check_limits() {
            return bad(message);
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

    /// The first of the [`limits`] the scenario exceeds, as a message. Counts are computed in
    /// `u64` with saturation, so hostile numbers cannot overflow.
    fn check_limits(&self) -> std::result::Result<(), String> {
        use limits::{
            MAX_CONTAINERS, MAX_DEPLOYMENTS, MAX_NAMESPACES, MAX_POD_LOG_BYTES, MAX_PODS,
        };
        self.check_images()?;
        let mut t = Totals {
            deployments: count(self.deployments.len()),
            ..Totals::default()
        };
        for d in &self.deployments {
            self.check_deployment(d, &mut t)?;
        }
        if let Some(b) = &self.bulk {
            self.check_bulk(b, &mut t)?;
        }
        if t.deployments > count(MAX_DEPLOYMENTS) {
            return Err(format!(
                "the scenario has {} deployments (bulk.namespaces × bulk.deployments included); \
                 the simulator allows at most {MAX_DEPLOYMENTS}",
                t.deployments
            ));
        }
        if t.pods > MAX_PODS {
            return Err(format!(
                "the deployments ask for {} pods in all (replicas summed over every deployment, \
                 bulk included); the simulator allows at most {MAX_PODS}",
                t.pods
            ));
        }
        if t.containers > MAX_CONTAINERS {
            return Err(format!(
                "the pods have {} containers in all (replicas × containers); the simulator \
                 allows at most {MAX_CONTAINERS}",
                t.containers
            ));
        }
        if t.pod_log_bytes > MAX_POD_LOG_BYTES {
            return Err(format!(
                "the pods' logs would take {} bytes (each container keeps its image's log, \
                 current and previous); the simulator allows at most {MAX_POD_LOG_BYTES}: \
                 shorten the logs or lower the replicas",
                t.pod_log_bytes
            ));
        }
        // Bulk is within its limits here, so listing its namespaces is cheap.
        let namespaces = self.all_namespaces().len();
        if namespaces > MAX_NAMESPACES {
            return Err(format!(
                "the scenario has {namespaces} namespaces; the simulator allows at most \
                 {MAX_NAMESPACES}"
            ));
        }
        Ok(())
    }

    fn check_images(&self) -> std::result::Result<(), String> {
        use limits::MAX_IMAGES;
        if self.images.len() > MAX_IMAGES {
            return Err(format!(
                "the image catalogue has {} images; the simulator allows at most {MAX_IMAGES}",
                self.images.len()
            ));
        }
        // One content per digest and repository: two references may name the same content (two
        // tags of one build), but not the same digest with different content.
        let mut contents: BTreeMap<(String, String), (&String, &ImageProfile)> = BTreeMap::new();
        for (image, p) in &self.images {
            check_image(image, p)?;
            let digest = super::trivy::content_digest(image, p);
            let repo = super::trivy::repository_key(image).unwrap_or_default();
            if let Some((other, q)) = contents.get(&(repo.clone(), digest.clone()))
                && !super::trivy::same_content(p, q)
            {
                return Err(format!(
                    "images {other} and {image} have the same digest {digest} but different \
                     content: give one of them its own digest"
                ));
            }
            contents.insert((repo, digest), (image, p));
        }
        Ok(())
    }

    /// Bytes of the log of `image` (0 when it is not in the catalogue).
    fn log_bytes(&self, image: &str) -> u64 {
        count(self.images.get(image).map_or(0, |p| p.logs.len()))
    }

    fn check_deployment(
        &self,
        d: &DeploymentSpec,
        t: &mut Totals,
    ) -> std::result::Result<(), String> {
        use limits::{MAX_CONTAINERS_PER_POD, MAX_HISTORY, MAX_REPLICAS};
        let id = format!("{}/{}", d.namespace, d.name);
        if d.replicas > MAX_REPLICAS {
            return Err(format!(
                "deployment {id} has replicas {}; the simulator allows at most {MAX_REPLICAS} per \
                 deployment",
                d.replicas
            ));
        }
        if d.containers.len() > MAX_CONTAINERS_PER_POD {
            return Err(format!(
                "deployment {id} has {} containers; the simulator allows at most \
                 {MAX_CONTAINERS_PER_POD} per pod",
                d.containers.len()
            ));
        }
        if d.history.len() > MAX_HISTORY {
            return Err(format!(
                "deployment {id} has {} history revisions; the simulator allows at most \
                 {MAX_HISTORY} (the deployment's revisionHistoryLimit)",
                d.history.len()
            ));
        }
        // Each container keeps its log, current and previous; a stalled rollout's old pods run a
        // history image, so count the longest log of any revision.
        let per_pod = d
            .containers
            .iter()
            .map(|c| {
                d.history
                    .iter()
                    .filter_map(|rev| rev.get(&c.name))
                    .map(|image| self.log_bytes(image))
                    .fold(self.log_bytes(&c.image), u64::max)
            })
            .fold(0, u64::saturating_add);
        t.add_pods(
            u64::try_from(d.replicas).unwrap_or(0),
            count(d.containers.len()),
            per_pod,
        );
        Ok(())
    }

    fn check_bulk(&self, b: &Bulk, t: &mut Totals) -> std::result::Result<(), String> {
        use limits::{MAX_DEPLOYMENTS, MAX_NAMESPACES, MAX_REPLICAS};
        if b.namespaces > MAX_NAMESPACES {
            return Err(format!(
                "bulk.namespaces is {}; the simulator allows at most {MAX_NAMESPACES} namespaces",
                b.namespaces
            ));
        }
        if b.deployments > MAX_DEPLOYMENTS {
            return Err(format!(
                "bulk.deployments is {}; the simulator allows at most {MAX_DEPLOYMENTS} \
                 deployments",
                b.deployments
            ));
        }
        if b.replicas > MAX_REPLICAS {
            return Err(format!(
                "bulk.replicas is {}; the simulator allows at most {MAX_REPLICAS} per deployment",
                b.replicas
            ));
        }
        if b.replicas < 0 {
            return Err(format!(
                "bulk.replicas is {}; it must be 0 or more",
                b.replicas
            ));
        }
        let deployments = count(b.namespaces).saturating_mul(count(b.deployments));
        t.deployments = t.deployments.saturating_add(deployments);
        let per_pod = self
            .log_bytes(&b.image)
            .max(self.log_bytes(&b.unhealthy_image));
        t.add_pods(
            deployments.saturating_mul(u64::try_from(b.replicas).unwrap_or(0)),
            1,
            per_pod,
        );
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

/// What a scenario asks the simulator to make, summed while checking the [`limits`].
#[derive(Default)]
struct Totals {
    deployments: u64,
    pods: u64,
    containers: u64,
    pod_log_bytes: u64,
}

impl Totals {
    /// Adds `pods` pods of `containers` containers whose logs take `log_bytes` per pod.
    fn add_pods(&mut self, pods: u64, containers: u64, log_bytes: u64) {
        self.pods = self.pods.saturating_add(pods);
        self.containers = self
            .containers
            .saturating_add(pods.saturating_mul(containers));
        // Current and previous.
        self.pod_log_bytes = self
            .pod_log_bytes
            .saturating_add(pods.saturating_mul(log_bytes.saturating_mul(2)));
    }
}

/// `x` as `u64` (saturating; `usize` is never wider on supported targets).
fn count(x: usize) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

fn too_big(origin: &str, bytes: usize) -> Error {
    Error::Scenario {
        origin: origin.to_owned(),
        message: format!(
            "the file has {bytes} bytes or more; the simulator reads scenario files of at most {} \
             bytes (8 MiB)",
            limits::MAX_FILE_BYTES
        ),
    }
}

/// `message` (a deserializer's, for `yaml`) with each string of `yaml` that is not plain
/// (map keys above all) replaced by its length: serde's path (`images.<key>: invalid type…`)
/// quotes keys whole, and a key is the file's text, which can hold a credential
/// (`…/x=AKEY=k4Vq…`) that the redactor no longer recognises once glued to the path and message. Plain keys — names, label keys,
/// image references — stay: they say where the error is.
fn elide_odd_keys(message: &str, yaml: &str) -> String {
    // Every string scalar the deserializer reaches, up to where the document breaks (a file
    // can fail on a type before the syntax error further on that a whole parse stops at).
    let (nodes, bytes, exceeded) = (Cell::new(0), Cell::new(0), Cell::new(false));
    let odd = RefCell::new(Vec::new());
    let walk = Budget {
        nodes: &nodes,
        bytes: &bytes,
        exceeded: &exceeded,
        odd: Some(&odd),
    };
    let _ = walk.deserialize(serde_yaml::Deserializer::from_str(yaml));
    let mut odd = odd.into_inner();
    // Longest first, so a string inside a longer one does not break the longer one's match.
    odd.sort_by_key(|k: &String| std::cmp::Reverse(k.len()));
    let mut out = message.to_owned();
    for key in &odd {
        if out.contains(key.as_str()) {
            out = out.replace(
                key.as_str(),
                &format!("({} characters)", key.chars().count()),
            );
        }
    }
    out
}

/// Walks `yaml` as the parser expands it, aliases included, building nothing, and stops past
/// [`limits::MAX_YAML_NODES`] or [`limits::MAX_YAML_BYTES`]: the message when it does. Syntax
/// errors are left to the real parse, which reports them with their line.
fn yaml_over_budget(yaml: &str) -> Option<String> {
    let nodes = Cell::new(0);
    let bytes = Cell::new(0);
    let exceeded = Cell::new(false);
    let budget = Budget {
        nodes: &nodes,
        bytes: &bytes,
        exceeded: &exceeded,
        odd: None,
    };
    let _ = budget.deserialize(serde_yaml::Deserializer::from_str(yaml));
    exceeded.get().then(|| {
        format!(
            "the YAML expands (anchors and aliases included) to more than {} nodes or {} bytes of \
             values; the simulator allows at most that: use fewer objects and aliases, or `bulk` \
             for many deployments",
            limits::MAX_YAML_NODES,
            limits::MAX_YAML_BYTES
        )
    })
}

/// Counts the nodes and scalar bytes of a YAML document as serde sees them (see
/// [`yaml_over_budget`]).
#[derive(Clone, Copy)]
struct Budget<'a> {
    nodes: &'a Cell<usize>,
    bytes: &'a Cell<usize>,
    exceeded: &'a Cell<bool>,
    /// Where to keep the strings that are not plain (see [`elide_odd_keys`]), when asked.
    odd: Option<&'a RefCell<Vec<String>>>,
}

impl Budget<'_> {
    fn tick<E: de::Error>(self, bytes: usize) -> std::result::Result<(), E> {
        self.nodes.set(self.nodes.get().saturating_add(1));
        self.bytes.set(self.bytes.get().saturating_add(bytes));
        if self.nodes.get() > limits::MAX_YAML_NODES || self.bytes.get() > limits::MAX_YAML_BYTES {
            self.exceeded.set(true);
            return Err(E::custom("over budget"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Budget<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budget<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<(), E> {
        self.tick(0)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<(), E> {
        self.tick(0)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<(), E> {
        self.tick(0)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> std::result::Result<(), E> {
        self.tick(0)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> std::result::Result<(), E> {
        self.tick(0)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<(), E> {
        self.tick(0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<(), E> {
        if let Some(odd) = self.odd {
            let plain = v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
            if !plain && !v.is_empty() {
                odd.borrow_mut().push(v.to_owned());
            }
        }
        self.tick(v.len())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<(), E> {
        self.tick(v.len())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        self.tick(0)
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<(), E> {
        self.tick(0)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        self.tick(0)?;
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        self.tick(0)?;
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        self.tick(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        self.tick(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> std::result::Result<(), A::Error> {
        // A tagged node (`!Tag value`): the tag, then the value.
        self.tick(0)?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_error_never_quotes_a_credential_of_the_file() {
        // Found by the fuzz target `scenario`: serde_yaml's "invalid type: string ..." quoted a
        // log line with an AWS access key whole in the load error.
        let yaml = "name: x\nimages:\n  web:1: \"env AWS_ACCESS_KEY_ID=AKIAQX4ZT7PLMN3VB2RW\"\n";
        let e = Scenario::from_yaml(yaml, "t").unwrap_err().to_string();
        assert!(e.contains("invalid type"), "{e}");
        assert!(!e.contains("AKIAQX4ZT7PLMN3VB2RW"), "{e}");
        // Found next: a credential the redactor does not recognise inside a longer run of text
        // was still quoted. The value is not quoted at all now, only its length.
        let yaml =
            "\"de.eyJzdWIi_ACCESS_KEY_0D=ACESS_KEY_0D=AKIAQX4ZT7PLMN3VN1VB2RW&AWS_SECRET=x\"\n";
        let e = Scenario::from_yaml(yaml, "t").unwrap_err().to_string();
        assert!(e.contains("invalid type: string ("), "{e}");
        assert!(!e.contains("AKIAQX4ZT7"), "{e}");
        // And as a key: serde quotes an unknown field's name, which a broken file can make any
        // text. A plain misspelt key is still named.
        let yaml =
            "name: x\nimages:\n  web:1:\n    \"env AWS_ACCESS_KEY_ID=AKIAQX4ZT7PLMN3VB2RW\": 1\n";
        let e = Scenario::from_yaml(yaml, "t").unwrap_err().to_string();
        assert!(e.contains("unknown field `("), "{e}");
        assert!(!e.contains("AKIAQX4ZT7"), "{e}");
        let e = Scenario::from_yaml("name: x\ntaks: y\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `taks`"), "{e}");
        // A consistency error names what it found, redacted.
        let yaml = "name: x\nimages: {}\ndeployments:\n  - namespace: shop\n    name: web\n    history:\n      - \"a AKIAQX4ZT7PLMN3VB2RW b\": web:1\n    containers:\n      - {name: web, image: web:2}\n";
        let e = Scenario::from_yaml(yaml, "t").unwrap_err().to_string();
        assert!(e.contains("history names container"), "{e}");
        assert!(!e.contains("AKIAQX4ZT7"), "{e}");
    }

    #[test]
    fn a_path_through_an_odd_key_never_quotes_it() {
        // Found by a fuzz campaign of `scenario`: serde's path (`images.<key>: …`) quoted the
        // key whole, and a credential in it (`AKEY=k4Vq…`) glued to more text was no longer one
        // the redactor recognised. Odd keys are replaced by their length; plain ones stay.
        let key =
            "aaaa.io/acS_KEY_ID=AKEY=k4Vq2mWx7RtYpw4uXdlYiIsInS_ACKESS_KEY_0D=ACESS_KEY_1VB2RW&x";
        let yaml = format!("name: x\nimages:\n  \"{key}\": kMEEACCESS\n");
        let e = Scenario::from_yaml(&yaml, "t").unwrap_err().to_string();
        assert!(!e.contains("k4Vq2mWx7RtYpw4u"), "{e}");
        assert!(
            e.contains("images.(83 characters): invalid type: string (10 characters)"),
            "{e}"
        );
        // The same with a syntax error further on, which a whole parse of the file stops at
        // (found next): the keys are read up to where the document breaks.
        let broken = format!("{yaml}deployments: a: b\n");
        let e = Scenario::from_yaml(&broken, "t").unwrap_err().to_string();
        assert!(!e.contains("k4Vq2mWx7RtYpw4u"), "{e}");
        assert!(e.contains("images.(83 characters): invalid type"), "{e}");
        let e = Scenario::from_yaml("name: x\nimages:\n  ghcr.io/acme/web:1: 7\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("images.ghcr.io/acme/web:1: invalid type"), "{e}");
    }

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
