//! The cluster manifests of `deploy/kustomize` (a base and the EKS, AKS and GKE overlays), proven
//! four ways:
//!
//! 1. `kubectl kustomize` renders the base and every overlay, and every render keeps the
//!    restricted Pod Security profile, the probes, the resources, two replicas, a disruption
//!    budget that lets a drain proceed, a Service and a `NetworkPolicy` that agree with the pod,
//!    secrets only by reference, and each overlay its cloud identity.
//! 2. Every render applies with a server-side dry run to the real API server of
//!    `../shared/k8s-apiserver` (Kubernetes 1.20): only kinds whose API version that server
//!    predates (`policy/v1` `PodDisruptionBudget`) are skipped, and named.
//! 3. `sre-agent serve` starts from each render's Deployment (its arguments and environment; the
//!    mounted Secrets, the downward API and what the cloud's identity webhook would add emulated
//!    in a temporary directory; the listen address on loopback), as the rendered ServiceAccount
//!    (its token from the API server), with exactly the rendered RBAC: it passes its preflight,
//!    takes the Lease, answers the rendered probes and the approvals API with the token of the
//!    mounted Secret, and stops cleanly on SIGTERM.
//! 4. The Roles in every render are exactly what `sre-agent rbac` generates for the namespaces
//!    the Deployment names, and those equal the tools' permission table.
//!
//! The kubectl tests are skipped with a message when `kubectl` cannot be run, the harness tests
//! when the harness is not up; `SRE_K8S_REQUIRED=1` (`.ci/run`) makes either a failure.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a broken manifest or setup must fail the test loudly"
)]

#[path = "../../sre-tools/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use serde::Deserialize as _;
use serde_json::{Value, json};
use sre_tools::k8s::rbac;

const BIN: &str = env!("CARGO_BIN_EXE_sre-agent");

/// The kustomizations, relative to `deploy/kustomize`.
const RENDERS: [&str; 4] = ["base", "overlays/eks", "overlays/aks", "overlays/gke"];

/// The serve flags that take a secret reference (`file:`, `env:`, `vault:`, `aws-sm:`).
const SECRET_FLAGS: [&str; 8] = [
    "--api-key",
    "--api-token",
    "--webhook-token",
    "--audit-sink-token",
    "--slack-bot-token",
    "--slack-signing-secret",
    "--teams-app-password",
    "--teams-webhook-url",
];

/// The volume types the restricted Pod Security profile allows.
const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn kustomize_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kustomize")
}

/// True when `kubectl` runs; otherwise skips with a message, or fails under `SRE_K8S_REQUIRED=1`.
fn kubectl_available() -> bool {
    match Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()
    {
        Ok(out) if out.status.success() => {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            eprintln!(
                "kubectl {} with kustomize {}",
                v["clientVersion"]["gitVersion"], v["kustomizeVersion"]
            );
            true
        }
        Ok(out) => panic!(
            "`kubectl version --client` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            assert!(
                !support::required(),
                "SRE_K8S_REQUIRED=1 but kubectl cannot be run ({e}): install kubectl (it has kustomize built in) and put it on PATH"
            );
            eprintln!(
                "SKIPPED: kubectl cannot be run ({e}); install kubectl to render the manifests"
            );
            false
        }
    }
}

/// A YAML stream as JSON values (empty documents dropped).
fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|d| !d.is_null())
        .collect()
}

/// JSON values as a YAML stream, for `kubectl apply -f -`.
fn stream(docs: &[Value]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(d).unwrap());
    }
    out
}

/// `kubectl kustomize deploy/kustomize/NAME`, parsed.
fn render(name: &str) -> Vec<Value> {
    let dir = kustomize_dir().join(name);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    docs(&String::from_utf8(out.stdout).unwrap())
}

fn id(d: &Value) -> String {
    format!(
        "{} {}/{}",
        d["kind"].as_str().unwrap_or("?"),
        d["metadata"]["namespace"].as_str().unwrap_or(""),
        d["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one {kind} expected: {:?}",
        found.iter().map(|d| id(d)).collect::<Vec<_>>()
    );
    found[0]
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "one container: {containers:?}");
    &containers[0]
}

fn args(deployment: &Value) -> Vec<String> {
    container(deployment)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The value of `--flag=value` among `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// The agent's own namespace and the watched ones, as `serve` will see them: the pod's namespace
/// (`POD_NAMESPACE` from the downward API) unless `--agent-namespace`, and every `--namespace=`.
fn namespaces_of(deployment: &Value) -> (String, Vec<String>) {
    let args = args(deployment);
    for a in &args {
        assert!(
            a != "--namespace" && a != "-n" && a != "--agent-namespace",
            "write namespace flags as --flag=value so that they can be read back: {args:?}"
        );
    }
    let own = flag(&args, "--agent-namespace").map_or_else(
        || {
            deployment["metadata"]["namespace"]
                .as_str()
                .unwrap()
                .to_owned()
        },
        str::to_owned,
    );
    let watched: Vec<String> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--namespace="))
        .map(str::to_owned)
        .collect();
    assert!(!watched.is_empty(), "no --namespace= in {args:?}");
    (own, watched)
}

fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// `matchLabels` ⊆ `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let wanted = selector["matchLabels"].as_object().unwrap();
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels[k] == *v)
}

/// A Kubernetes quantity (`64Mi`, `1Gi`, `500m`, `1`) in base units (bytes or cores).
fn quantity(q: &Value) -> f64 {
    let s = match q {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let units: [(&str, f64); 9] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("m", 1e-3),
        ("T", 1e12),
        ("Ti", 1024.0_f64.powi(4)),
    ];
    for (suffix, factor) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap() * factor;
        }
    }
    s.parse().unwrap_or_else(|e| panic!("quantity {s:?}: {e}"))
}

/// The restricted Pod Security profile, checked on one container (with the pod's context as the
/// fallback for the fields a pod may set for all of its containers).
fn assert_restricted(label: &str, pod: &Value, c: &Value) {
    let name = c["name"].as_str().unwrap();
    let sc = &c["securityContext"];
    let psc = &pod["securityContext"];
    let what = format!("{label}: container {name}");
    assert_eq!(
        sc["allowPrivilegeEscalation"], false,
        "{what}: allowPrivilegeEscalation must be false"
    );
    assert_ne!(sc["privileged"], true, "{what}: privileged");
    let drop: Vec<&str> = sc["capabilities"]["drop"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        drop.contains(&"ALL"),
        "{what}: capabilities.drop must hold ALL"
    );
    let add: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        add.iter().all(|a| *a == "NET_BIND_SERVICE"),
        "{what}: only NET_BIND_SERVICE may be added: {add:?}"
    );
    let non_root = if sc["runAsNonRoot"].is_null() {
        &psc["runAsNonRoot"]
    } else {
        &sc["runAsNonRoot"]
    };
    assert_eq!(*non_root, true, "{what}: runAsNonRoot");
    let uid = if sc["runAsUser"].is_null() {
        &psc["runAsUser"]
    } else {
        &sc["runAsUser"]
    };
    assert_eq!(
        *uid, 65532,
        "{what}: runAsUser is the image's non-root UID 65532"
    );
    for (level, seccomp) in [
        ("container", &sc["seccompProfile"]),
        ("pod", &psc["seccompProfile"]),
    ] {
        if !seccomp.is_null() {
            assert!(
                seccomp["type"] == "RuntimeDefault" || seccomp["type"] == "Localhost",
                "{what}: {level} seccompProfile {seccomp}"
            );
        }
    }
    assert!(
        !sc["seccompProfile"].is_null() || !psc["seccompProfile"].is_null(),
        "{what}: no seccompProfile"
    );
    assert_eq!(
        sc["readOnlyRootFilesystem"], true,
        "{what}: readOnlyRootFilesystem"
    );
    assert!(
        sc["seLinuxOptions"]["type"].is_null(),
        "{what}: SELinux type"
    );
    assert!(sc["procMount"].is_null(), "{what}: procMount");
    for port in c["ports"].as_array().into_iter().flatten() {
        assert!(port["hostPort"].is_null(), "{what}: hostPort {port}");
    }
}

/// Every check that holds for the base and every overlay.
#[expect(
    clippy::too_many_lines,
    reason = "one list of what a render must keep, in manifest order"
)]
fn assert_common(label: &str, docs: &[Value]) {
    // The kinds, each once (the Roles and RoleBindings are checked against the generator).
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]),
        "{label}: the kinds of the render"
    );
    assert!(
        docs.iter().all(|d| d["kind"] != "Secret"),
        "{label}: no Secret in git (the API token is created in the cluster)"
    );

    let deployment = one(docs, "Deployment");
    let own = deployment["metadata"]["namespace"].as_str().unwrap();
    let namespace = one(docs, "Namespace");
    assert_eq!(namespace["metadata"]["name"], own, "{label}");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
        "{label}: the agent's namespace enforces the restricted profile"
    );
    let spec = &deployment["spec"];
    assert!(
        spec["replicas"].as_u64().unwrap() >= 2,
        "{label}: at least 2 replicas (one leader, one ready to take over)"
    );
    let pod = &spec["template"]["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert!(
        selects(&spec["selector"], pod_labels),
        "{label}: the selector selects the pods"
    );
    assert_eq!(pod["serviceAccountName"], "sre-agent", "{label}");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[host], true, "{label}: {host}");
    }
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        let kind = volume
            .as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "name")
            .unwrap();
        assert!(
            RESTRICTED_VOLUMES.contains(&kind.as_str()),
            "{label}: volume {volume} is not allowed by the restricted profile"
        );
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in pod[list].as_array().into_iter().flatten() {
            assert_restricted(label, pod, c);
        }
    }

    // What serve runs with: the Kubernetes store (replicas, a Lease), the approvals API, JSON logs.
    let c = container(deployment);
    assert!(
        c["command"].is_null(),
        "{label}: the image's entrypoint is the binary; the Deployment passes arguments only"
    );
    let args = args(deployment);
    assert_eq!(args[0], "serve", "{label}");
    assert_eq!(flag(&args, "--store"), Some("kubernetes"), "{label}");
    assert!(
        flag(&args, "--approve")
            .unwrap()
            .split(',')
            .any(|m| m == "api"),
        "{label}: --approve api"
    );
    assert_eq!(flag(&args, "--log-format"), Some("json"), "{label}");
    let listen: std::net::SocketAddr = flag(&args, "--listen").unwrap().parse().unwrap();
    let http = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .unwrap();
    assert_eq!(
        http["containerPort"],
        listen.port(),
        "{label}: the http port is where serve listens"
    );
    for var in ["POD_NAMESPACE", "POD_NAME"] {
        assert!(
            !env_var(c, var).unwrap()["valueFrom"]["fieldRef"].is_null(),
            "{label}: {var} from the downward API"
        );
    }

    // Secrets by reference only; a file reference points into a mounted Secret's items.
    let mounts: Vec<&Value> = c["volumeMounts"].as_array().unwrap().iter().collect();
    let volumes: Vec<&Value> = pod["volumes"].as_array().unwrap().iter().collect();
    for a in &args {
        let Some((name, value)) = a.split_once('=') else {
            continue;
        };
        assert!(
            !SECRET_FLAGS.iter().any(|f| name == format!("{f}-file")),
            "{label}: {a}: the secret flags take references now ({})",
            name.trim_end_matches("-file")
        );
        if !SECRET_FLAGS.contains(&name) {
            continue;
        }
        let (scheme, path) = value.split_once(':').unwrap();
        assert!(
            ["file", "env", "vault", "aws-sm"].contains(&scheme),
            "{label}: {a} is not a secret reference"
        );
        if scheme != "file" {
            continue;
        }
        let mount = mounts
            .iter()
            .find(|m| {
                path.strip_prefix(m["mountPath"].as_str().unwrap())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .unwrap_or_else(|| panic!("{label}: {a}: no volume is mounted there"));
        let relative = &path[mount["mountPath"].as_str().unwrap().len() + 1..];
        let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap();
        let secret = &volume["secret"];
        assert!(
            !secret.is_null(),
            "{label}: {a}: mounted from a Secret: {volume}"
        );
        if let Some(items) = secret["items"].as_array() {
            assert!(
                items.iter().any(|i| i["path"] == relative),
                "{label}: {a}: the Secret volume has no item {relative}"
            );
        }
    }
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let secretish = ["KEY", "TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|s| name.ends_with(s));
        assert!(
            !(secretish && e["value"].is_string()),
            "{label}: {name} is a literal value; take it from a Secret"
        );
    }

    // Probes: the process (startup, liveness) and the HTTP API (readiness), on the http port.
    let probe = |kind: &str| {
        let p = &c[kind]["httpGet"];
        assert_eq!(p["port"], "http", "{label}: {kind} port");
        p["path"].as_str().unwrap().to_owned()
    };
    assert_eq!(probe("livenessProbe"), "/healthz", "{label}");
    assert_eq!(probe("startupProbe"), "/healthz", "{label}");
    assert_eq!(
        probe("readinessProbe"),
        "/healthz",
        "{label}: /readyz is 200 on the leader only; as the readiness probe it would keep a follower unready, stall rolling updates and block drains"
    );

    // Resources: requests at least the measured idle footprint (25.8 MiB), limits above them.
    let r = &c["resources"];
    for what in ["cpu", "memory"] {
        let request = quantity(&r["requests"][what]);
        let limit = quantity(&r["limits"][what]);
        assert!(request > 0.0 && limit >= request, "{label}: {what} {r}");
    }
    assert!(
        quantity(&r["requests"]["memory"]) >= 26.0 * 1024.0 * 1024.0,
        "{label}: the memory request is below the measured idle RSS"
    );

    // The disruption budget lets one replica go at a time.
    let pdb = one(docs, "PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], "policy/v1", "{label}");
    assert!(
        selects(&pdb["spec"]["selector"], pod_labels),
        "{label}: PDB"
    );
    let min = pdb["spec"]["minAvailable"].as_u64().unwrap();
    assert!(
        min >= 1 && min < spec["replicas"].as_u64().unwrap(),
        "{label}: minAvailable {min} must leave room for a drain"
    );

    // The Service reaches the http port of the pods.
    let service = one(docs, "Service");
    assert!(
        service["spec"]["selector"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| pod_labels[k] == *v),
        "{label}: the Service selects the pods"
    );
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["targetPort"] == "http"),
        "{label}: the Service targets the http port"
    );

    // The NetworkPolicy: in, the http port only; out, DNS and HTTPS (and the API server).
    let np = one(docs, "NetworkPolicy");
    assert!(selects(&np["spec"]["podSelector"], pod_labels), "{label}");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert!(!ingress.is_empty(), "{label}: ingress");
    for rule in ingress {
        let ports = rule["ports"].as_array().unwrap();
        assert!(
            ports
                .iter()
                .all(|p| p["port"] == listen.port() && p["protocol"] == "TCP"),
            "{label}: ingress only to the http port: {rule}"
        );
    }
    let egress: BTreeSet<(String, u64)> = np["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["to"].is_null())
        .flat_map(|r| r["ports"].as_array().unwrap().iter())
        .map(|p| {
            (
                p["protocol"].as_str().unwrap().to_owned(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect();
    for need in [("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)] {
        assert!(
            egress.contains(&(need.0.to_owned(), need.1)),
            "{label}: egress to {need:?}: {egress:?}"
        );
    }
}

fn sa_annotations(docs: &[Value]) -> &Value {
    &one(docs, "ServiceAccount")["metadata"]["annotations"]
}

#[test]
fn the_base_and_every_overlay_render_with_the_restricted_profile_probes_and_resources() {
    if !kubectl_available() {
        return;
    }
    for name in RENDERS {
        let docs = render(name);
        assert_common(name, &docs);
    }
}

#[test]
fn the_base_runs_the_offline_brain_with_no_cloud_identity() {
    if !kubectl_available() {
        return;
    }
    let base = render("base");
    let d = one(&base, "Deployment");
    assert!(
        flag(&args(d), "--provider").is_none(),
        "base: the offline brain (no --provider)"
    );
    assert!(sa_annotations(&base).is_null(), "base: no cloud identity");
}

#[test]
fn the_eks_overlay_has_the_irsa_role_the_region_and_bedrock() {
    if !kubectl_available() {
        return;
    }
    // IRSA's role ARN, the region, Bedrock; the Pod Identity agent reachable.
    let eks = render("overlays/eks");
    let arn = sa_annotations(&eks)["eks.amazonaws.com/role-arn"]
        .as_str()
        .unwrap();
    let account = arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(":role/"))
        .unwrap_or_else(|| panic!("eks: {arn} is not an IAM role ARN"));
    assert!(
        account.0.len() == 12 && account.0.bytes().all(|b| b.is_ascii_digit()),
        "eks: {arn}"
    );
    assert!(!account.1.is_empty(), "eks: {arn}");
    let d = one(&eks, "Deployment");
    let a = args(d);
    assert_eq!(flag(&a, "--provider"), Some("bedrock"), "eks");
    assert!(
        !flag(&a, "--model").unwrap().is_empty(),
        "eks: Bedrock needs a model id"
    );
    assert!(
        !env_var(container(d), "AWS_REGION").unwrap()["value"]
            .as_str()
            .unwrap()
            .is_empty(),
        "eks: AWS_REGION"
    );
    let np = one(&eks, "NetworkPolicy");
    assert!(
        np["spec"]["egress"].as_array().unwrap().iter().any(|r| {
            r["to"].as_array().is_some_and(|to| {
                to.iter()
                    .any(|t| t["ipBlock"]["cidr"] == "169.254.170.23/32")
            }) && r["ports"][0]["port"] == 80
        }),
        "eks: the Pod Identity agent (169.254.170.23:80) is reachable"
    );
}

#[test]
fn the_aks_overlay_has_the_workload_identity_label_and_client_id_and_azure() {
    if !kubectl_available() {
        return;
    }
    // The workload identity label on the pods (not the selector), the client id, Azure.
    let aks = render("overlays/aks");
    let d = one(&aks, "Deployment");
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"], "true",
        "aks: the pod label, a string"
    );
    assert!(
        d["spec"]["selector"]["matchLabels"]["azure.workload.identity/use"].is_null(),
        "aks: the label is not part of the selector (it would make the selector differ from the base's, which is immutable)"
    );
    let client_id = sa_annotations(&aks)["azure.workload.identity/client-id"]
        .as_str()
        .unwrap();
    let groups: Vec<usize> = client_id.split('-').map(str::len).collect();
    assert!(
        groups == [8, 4, 4, 4, 12]
            && client_id
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit()),
        "aks: {client_id} is not a GUID"
    );
    let a = args(d);
    assert_eq!(flag(&a, "--provider"), Some("azure"), "aks");
    assert!(flag(&a, "--model").is_some(), "aks: the deployment name");
    assert!(
        env_var(container(d), "AZURE_OPENAI_ENDPOINT").unwrap()["value"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "aks: AZURE_OPENAI_ENDPOINT"
    );
}

#[test]
fn the_gke_overlay_has_the_google_service_account_and_groq_keyed_from_a_secret() {
    if !kubectl_available() {
        return;
    }
    // The Google service account, Groq with its key from a mounted Secret.
    let gke = render("overlays/gke");
    let gsa = sa_annotations(&gke)["iam.gke.io/gcp-service-account"]
        .as_str()
        .unwrap();
    assert!(
        gsa.contains('@') && gsa.ends_with(".iam.gserviceaccount.com"),
        "gke: {gsa}"
    );
    let d = one(&gke, "Deployment");
    let a = args(d);
    assert_eq!(flag(&a, "--provider"), Some("groq"), "gke");
    // The key is a file of the mounted Secret (assert_common checks the mount), so a rotation
    // reaches the running pods.
    let key = flag(&a, "--api-key").unwrap();
    assert!(key.starts_with("file:"), "gke: {key}");
    assert!(
        env_var(container(d), "GROQ_API_KEY").is_none(),
        "gke: the key by reference, not in the environment"
    );
    let provider = d["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "sre-agent-provider");
    assert!(
        provider.is_some(),
        "gke: the Secret sre-agent-provider is mounted"
    );
}

/// Each `ServiceAccount`, `Role`, `RoleBinding`, `ClusterRole` and `ClusterRoleBinding` of a render.
fn rbac_docs(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| {
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
            ]
            .contains(&d["kind"].as_str().unwrap())
        })
        .collect()
}

/// The rendered RBAC is exactly `rbac::serve_manifests` for the namespaces the Deployment names,
/// and that grants exactly the permission table: the tools' and triggers' needs (with `get`
/// wherever `list` is granted) in each watched namespace, the store and Lease in its own.
fn assert_rbac_is_generated(label: &str, docs: &[Value]) {
    let (own, watched) = namespaces_of(one(docs, "Deployment"));
    let generated = self::docs(&rbac::serve_manifests(&own, &watched));
    let rendered = rbac_docs(docs);
    let ids = |ds: &[&Value]| ds.iter().map(|d| id(d)).collect::<BTreeSet<_>>();
    let want: Vec<&Value> = generated.iter().collect();
    assert_eq!(
        ids(&rendered),
        ids(&want),
        "{label}: the RBAC objects of the render are those `sre-agent rbac --agent-namespace {own} --namespace {}` prints",
        watched.join(" --namespace ")
    );
    assert_eq!(rendered.len(), want.len(), "{label}: no duplicates");
    for g in &generated {
        let r = rendered.iter().find(|r| id(r) == id(g)).unwrap();
        match g["kind"].as_str().unwrap() {
            "Role" => assert_eq!(r["rules"], g["rules"], "{label}: {}", id(g)),
            "RoleBinding" => {
                assert_eq!(r["roleRef"], g["roleRef"], "{label}: {}", id(g));
                assert_eq!(r["subjects"], g["subjects"], "{label}: {}", id(g));
            }
            _ => {}
        }
    }

    // The permission table, independently of how the generator groups it.
    let mut needs: BTreeSet<(String, String, String)> = rbac::TOOL_NAMES
        .iter()
        .chain(std::iter::once(&rbac::TRIGGERS))
        .flat_map(|t| rbac::required(t))
        .map(|p| (p.group, p.resource, p.verb))
        .collect();
    let lists: Vec<_> = needs.iter().filter(|p| p.2 == "list").cloned().collect();
    for (g, r, _) in lists {
        needs.insert((g, r, "get".to_owned()));
    }
    let own_needs: BTreeSet<(String, String, String)> = rbac::own_namespace()
        .into_iter()
        .map(|p| (p.group, p.resource, p.verb))
        .collect();
    for ns in &watched {
        let role = rendered
            .iter()
            .find(|d| {
                d["kind"] == "Role"
                    && d["metadata"]["namespace"] == **ns
                    && d["metadata"]["name"] == "sre-agent"
            })
            .unwrap_or_else(|| panic!("{label}: no Role sre-agent in {ns}"));
        assert_eq!(
            rbac::granted(role),
            needs,
            "{label}: the tools' Role in {ns}"
        );
    }
    let serve_role = rendered
        .iter()
        .find(|d| {
            d["kind"] == "Role"
                && d["metadata"]["namespace"] == own.as_str()
                && d["metadata"]["name"] == rbac::SERVE_ROLE
        })
        .unwrap_or_else(|| panic!("{label}: no Role {} in {own}", rbac::SERVE_ROLE));
    assert_eq!(
        rbac::granted(serve_role),
        own_needs,
        "{label}: serve's own Role"
    );
    for d in &rendered {
        if let Some(subjects) = d["subjects"].as_array() {
            assert_eq!(
                subjects,
                &vec![json!({"kind": "ServiceAccount", "name": "sre-agent", "namespace": own})],
                "{label}: {} binds the agent's ServiceAccount only",
                id(d)
            );
        }
    }
}

#[test]
fn the_rendered_roles_are_what_sre_agent_rbac_generates_and_the_tools_need() {
    if !kubectl_available() {
        return;
    }
    for name in RENDERS {
        assert_rbac_is_generated(name, &render(name));
    }
}

#[test]
fn the_base_rbac_yaml_is_the_output_of_sre_agent_rbac_for_the_deployments_namespaces() {
    let base = kustomize_dir().join("base");
    let deployment = docs(&std::fs::read_to_string(base.join("deployment.yaml")).unwrap());
    let (own, watched) = namespaces_of(one(&deployment, "Deployment"));
    let mut cmd = Command::new(BIN);
    cmd.args(["rbac", "--agent-namespace", &own]);
    for ns in &watched {
        cmd.args(["--namespace", ns]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(base.join("rbac.yaml")).unwrap();
    assert_eq!(
        committed,
        String::from_utf8(out.stdout).unwrap(),
        "deploy/kustomize/base/rbac.yaml is out of date: regenerate it with `sre-agent rbac --agent-namespace {own} --namespace {}` > deploy/kustomize/base/rbac.yaml",
        watched.join(" --namespace ")
    );
}

/// Whether the API server serves `kind` in `api_version`.
async fn served(admin: &kube::Client, api_version: &str, kind: &str) -> bool {
    let list = if api_version.contains('/') {
        admin.list_api_group_resources(api_version).await
    } else {
        admin.list_core_api_resources(api_version).await
    };
    list.is_ok_and(|l| l.resources.iter().any(|r| r.kind == kind))
}

/// The render split into what this API server serves and what it predates, the latter named.
async fn servable(admin: &kube::Client, docs: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for d in docs {
        if served(
            admin,
            d["apiVersion"].as_str().unwrap(),
            d["kind"].as_str().unwrap(),
        )
        .await
        {
            ok.push(d.clone());
        } else {
            skipped.push(d.clone());
        }
    }
    (ok, skipped)
}

/// `kubectl apply --server-side [--dry-run=server]` of `docs` as admin; the output.
fn apply(docs: &[Value], dry_run: bool) -> String {
    let admin = std::env::var("SRE_K8S_ADMIN_KUBECONFIG").unwrap();
    let mut cmd = Command::new("kubectl");
    cmd.args([
        "--kubeconfig",
        &admin,
        "apply",
        "--server-side",
        "--validate=strict",
        "--field-manager=sre-agent-deploy-test",
        "-f",
        "-",
    ]);
    if dry_run {
        cmd.arg("--dry-run=server");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream(docs).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubectl apply --server-side{} failed:\n{text}",
        if dry_run { " --dry-run=server" } else { "" }
    );
    text
}

async fn create_namespace(admin: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"sre-agent-test": "true"}}}),
    )
    .unwrap();
    match Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_render_applies_with_a_server_side_dry_run() {
    let Some((admin, _)) = support::real_clients().await else {
        return;
    };
    if !kubectl_available() {
        return;
    }
    let version = admin.apiserver_version().await.unwrap().git_version;
    for name in RENDERS {
        let docs = render(name);
        // A dry run needs its namespaces: the agent's (from the render, applied for real, as
        // `kubectl apply -k` would) and the watched ones (the user's). They stay, empty.
        let namespaces: Vec<Value> = docs
            .iter()
            .filter(|d| d["kind"] == "Namespace")
            .cloned()
            .collect();
        apply(&namespaces, false);
        let (_, watched) = namespaces_of(one(&docs, "Deployment"));
        for ns in &watched {
            create_namespace(&admin, ns).await;
        }

        let (ok, skipped) = servable(&admin, &docs).await;
        for d in &skipped {
            eprintln!(
                "SKIPPED on this API server ({version}): {} {} is not served",
                d["apiVersion"].as_str().unwrap(),
                id(d)
            );
        }
        assert!(
            skipped
                .iter()
                .all(|d| d["kind"] == "PodDisruptionBudget" && d["apiVersion"] == "policy/v1"),
            "{name}: only policy/v1 PodDisruptionBudget (Kubernetes 1.21+) may be skipped on {version}; also not served: {:?}",
            skipped.iter().map(id).collect::<Vec<_>>()
        );
        let out = apply(&ok, true);
        for d in &ok {
            let kind = d["kind"].as_str().unwrap().to_lowercase();
            let name = d["metadata"]["name"].as_str().unwrap();
            let applied = out.lines().any(|l| {
                l.ends_with("serverside-applied (server dry run)")
                    && l.split_once('/').is_some_and(|(resource, rest)| {
                        resource.split('.').next() == Some(kind.as_str())
                            && rest.split(' ').next() == Some(name)
                    })
            });
            assert!(applied, "{} was not applied:\n{out}", id(d));
        }
        // A PodDisruptionBudget this server predates: its spec, as the policy/v1beta1 it does
        // serve (without unhealthyPodEvictionPolicy, a 1.26 field), so its selector and
        // minAvailable are still checked by the server.
        for d in &skipped {
            if served(&admin, "policy/v1beta1", "PodDisruptionBudget").await {
                let mut old = d.clone();
                old["apiVersion"] = json!("policy/v1beta1");
                old["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("unhealthyPodEvictionPolicy");
                let out = apply(&[old], true);
                eprintln!("{name}: {} as policy/v1beta1: {}", id(d), out.trim());
            }
        }
        eprintln!("{name}: {} objects applied (server dry run)", ok.len());
    }
}

/// Rewrites the namespaces of a render (`map`: old → new) wherever the manifests name them:
/// objects' namespaces, the Namespace's name, RoleBinding subjects, `--namespace=` and
/// `--agent-namespace=` arguments. Nothing else changes.
fn relocate(docs: &[Value], map: &BTreeMap<&str, String>) -> Vec<Value> {
    // `pointer_mut`, not `d["…"]`: indexing a mutable object inserts the fields it misses.
    let moved = |v: Option<&mut Value>| {
        if let Some(v) = v
            && let Some(new) = v.as_str().and_then(|s| map.get(s))
        {
            *v = json!(new);
        }
    };
    docs.iter()
        .cloned()
        .map(|mut d| {
            moved(d.pointer_mut("/metadata/namespace"));
            if d["kind"] == "Namespace" {
                moved(d.pointer_mut("/metadata/name"));
            }
            if let Some(subjects) = d.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    moved(s.get_mut("namespace"));
                }
            }
            let args = d
                .pointer_mut("/spec/template/spec/containers")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get_mut("args").and_then(Value::as_array_mut))
                .flatten();
            for a in args {
                let text = a.as_str().unwrap().to_owned();
                for flag in ["--namespace=", "--agent-namespace="] {
                    if let Some(new) = text.strip_prefix(flag).and_then(|ns| map.get(ns)) {
                        *a = json!(format!("{flag}{new}"));
                    }
                }
            }
            d
        })
        .collect()
}

/// One `sre-agent serve` process and what it printed.
struct Serve {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |pipe: Box<dyn Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Self { child, out, err }
    }

    fn dump(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.out.lock().unwrap().join("\n"),
            self.err.lock().unwrap().join("\n")
        )
    }

    /// The JSON log lines with this message.
    fn logs(&self, message: &str) -> Vec<Value> {
        self.out
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == message)
            .collect()
    }

    fn wait_log(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.logs(message).into_iter().next() {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "serve exited ({status}) before {message:?}\n{}",
                    self.dump()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {message:?}\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GETs `path` until it answers 200; the body.
    fn wait_ok(&mut self, addr: &str, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = http_get(addr, path, None);
            if status == 200 {
                return body;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "serve exited ({status}) before {path} was 200\n{}",
                    self.dump()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{path} never answered 200 (last {status} {body})\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; the exit status, the stdout lines and everything printed.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                let out = self.out.lock().unwrap().clone();
                return (status, out, self.dump());
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop on SIGTERM\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr` (`HOST:PORT`), with a bearer token: the status and the body.
fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let Ok(mut socket) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    let status = reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The legacy token Secret the 1.20 controller-manager fills in for a ServiceAccount, as the
/// kubelet would mount it: the token and the CA bundle (base64, as stored).
async fn service_account_token(admin: &kube::Client, ns: &str, name: &str) -> (String, String) {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sa = accounts.get(name).await.unwrap();
        if let Some(secret) = sa.secrets.iter().flatten().find_map(|r| r.name.clone()) {
            let s = secrets.get(&secret).await.unwrap();
            let raw = serde_json::to_value(&s).unwrap();
            if let (Some(token), Some(ca)) = (
                s.data.as_ref().and_then(|d| d.get("token")),
                raw["data"]["ca.crt"].as_str(),
            ) {
                return (String::from_utf8(token.0.clone()).unwrap(), ca.to_owned());
            }
        }
        assert!(
            Instant::now() < deadline,
            "the controller-manager gave ServiceAccount {ns}/{name} no token Secret"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A kubeconfig for the ServiceAccount: what in-cluster config would give the pod.
fn service_account_kubeconfig(dir: &Path, ns: &str, token: &str, ca: &str) -> PathBuf {
    let admin =
        kube::config::Kubeconfig::read_from(std::env::var("SRE_K8S_ADMIN_KUBECONFIG").unwrap())
            .unwrap();
    let server = admin.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "sre-agent", "user": {"token": token}}],
        "contexts": [{"name": "sre-agent", "context": {"cluster": "in-cluster", "user": "sre-agent", "namespace": ns}}],
        "current-context": "sre-agent",
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// What the kubelet would do for the container: the Secret and emptyDir volumes under `root`
/// (mount path → local directory), and the environment (downward API and Secret references
/// resolved). Anything else it cannot emulate fails the test.
async fn emulate_kubelet(
    admin: &kube::Client,
    root: &Path,
    pod: &Value,
    namespace: &str,
    pod_name: &str,
) -> (Vec<(String, PathBuf)>, Vec<(String, String)>) {
    let c = &pod["containers"][0];
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), namespace);
    let mut mounts = Vec::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let mount = m["mountPath"].as_str().unwrap();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        let local = root.join(mount.trim_start_matches('/'));
        std::fs::create_dir_all(&local).unwrap();
        if let Some(name) = volume["secret"]["secretName"].as_str() {
            let data = secrets.get(name).await.unwrap().data.unwrap_or_default();
            let items: Vec<(String, String)> = match volume["secret"]["items"].as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        (
                            i["key"].as_str().unwrap().to_owned(),
                            i["path"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect(),
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in items {
                let value = data
                    .get(&key)
                    .unwrap_or_else(|| panic!("Secret {name} has no key {key}"));
                std::fs::write(local.join(path), &value.0).unwrap();
            }
        } else {
            assert!(
                volume.get("emptyDir").is_some(),
                "cannot emulate volume {volume}"
            );
        }
        mounts.push((mount.to_owned(), local));
    }
    let mut env = Vec::new();
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_owned()
        } else if let Some(field) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match field {
                "metadata.namespace" => namespace.to_owned(),
                "metadata.name" => pod_name.to_owned(),
                other => panic!("cannot emulate fieldRef {other}"),
            }
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            let s = secrets.get(r["name"].as_str().unwrap()).await.unwrap();
            String::from_utf8(s.data.unwrap()[r["key"].as_str().unwrap()].0.clone()).unwrap()
        } else {
            panic!("cannot emulate env {e}")
        };
        env.push((name, value));
    }
    assert!(c["envFrom"].is_null(), "cannot emulate envFrom");
    (mounts, env)
}

/// A path under a mount moved to the mount's local directory (the longest mount wins), or `None`.
fn remount_path(path: &str, mounts: &[(String, PathBuf)]) -> Option<String> {
    mounts
        .iter()
        .filter(|(mount, _)| {
            path == mount
                || path
                    .strip_prefix(mount.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(mount, _)| mount.len())
        .map(|(mount, local)| format!("{}{}", local.display(), &path[mount.len()..]))
}

/// An argument (`--flag=PATH`, `--flag=file:PATH`, `PATH`) or an environment value with its
/// mounted path moved to the local directory; anything else unchanged.
fn remount(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let (head, value) = text
        .split_once('=')
        .map_or(("", text), |(flag, value)| (flag, value));
    let (scheme, path) = value
        .strip_prefix("file:")
        .map_or(("", value), |p| ("file:", p));
    match remount_path(path, mounts) {
        Some(moved) if head.is_empty() => format!("{scheme}{moved}"),
        Some(moved) => format!("{head}={scheme}{moved}"),
        None => text.to_owned(),
    }
}

/// Deletes the test's namespaces (and what is in them) and its directory, pass or fail.
struct Cleanup {
    namespaces: Vec<String>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(admin) = std::env::var("SRE_K8S_ADMIN_KUBECONFIG") {
            let _ = Command::new("kubectl")
                .args([
                    "--kubeconfig",
                    &admin,
                    "delete",
                    "namespace",
                    "--wait=false",
                ])
                .args(&self.namespaces)
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the cloud's admission webhook adds to a pod of this render (it is not in the manifests):
/// EKS's pod identity webhook for an IRSA annotation, Azure's workload identity webhook for the
/// labelled pods; the federated token a file. Plus a fence: the identity endpoints on a closed
/// loopback port, so that nothing a start might try leaves this machine.
fn emulate_admission(docs: &[Value], dir: &Path) -> Vec<(String, String)> {
    let annotations = sa_annotations(docs);
    let labels = &one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    let token = dir.join("federated-token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl").unwrap();
    let token = token.display().to_string();
    let closed = "http://127.0.0.1:9".to_owned();
    let mut env = vec![
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
        ("AWS_ENDPOINT_URL_STS".to_owned(), closed.clone()),
    ];
    if let Some(arn) = annotations["eks.amazonaws.com/role-arn"].as_str() {
        env.push(("AWS_ROLE_ARN".into(), arn.into()));
        env.push(("AWS_WEB_IDENTITY_TOKEN_FILE".into(), token.clone()));
        env.push(("AWS_STS_REGIONAL_ENDPOINTS".into(), "regional".into()));
    }
    if labels["azure.workload.identity/use"] == "true" {
        let client = annotations["azure.workload.identity/client-id"]
            .as_str()
            .unwrap();
        env.push(("AZURE_CLIENT_ID".into(), client.into()));
        env.push((
            "AZURE_TENANT_ID".into(),
            "00000000-0000-0000-0000-000000000000".into(),
        ));
        env.push(("AZURE_FEDERATED_TOKEN_FILE".into(), token));
        env.push(("AZURE_AUTHORITY_HOST".into(), format!("{closed}/")));
    }
    env
}

/// Every Secret the pod mounts or reads, created as the user would (the API token as the
/// README says; other keys with placeholder values): the API token.
async fn create_secrets(admin: &kube::Client, deployment: &Value, own: &str, u: &str) -> String {
    let token = format!("deploy-test-token-{u}-0123456789abcdef");
    let pod = &deployment["spec"]["template"]["spec"];
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for v in pod["volumes"].as_array().unwrap() {
        if let Some(name) = v["secret"]["secretName"].as_str() {
            let keys = wanted.entry(name.to_owned()).or_default();
            for i in v["secret"]["items"].as_array().into_iter().flatten() {
                keys.insert(i["key"].as_str().unwrap().to_owned());
            }
        }
    }
    for e in container(deployment)["env"].as_array().unwrap() {
        let r = &e["valueFrom"]["secretKeyRef"];
        if let Some(name) = r["name"].as_str() {
            wanted
                .entry(name.to_owned())
                .or_default()
                .insert(r["key"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        wanted.contains_key("sre-agent-api"),
        "the API token Secret is mounted: {wanted:?}"
    );
    for (name, keys) in wanted {
        let data: BTreeMap<String, String> = keys
            .into_iter()
            .map(|k| {
                let value = if name == "sre-agent-api" && k == "token" {
                    token.clone()
                } else {
                    format!("placeholder-{k}-{u}")
                };
                (k, value)
            })
            .collect();
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": own},
            "stringData": data,
        }))
        .unwrap();
        Api::<Secret>::namespaced(admin.clone(), own)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_from_every_rendered_deployment_as_its_service_account() {
    let Some((admin, _)) = support::real_clients().await else {
        return;
    };
    if !kubectl_available() {
        return;
    }
    for name in RENDERS {
        start_serve_from(&admin, name).await;
    }
}

/// Applies the render `name` in namespaces of its own, and starts `serve` from its Deployment
/// as its ServiceAccount: preflight passed, Lease taken, probes and approvals API answered,
/// SIGTERM obeyed.
#[expect(
    clippy::too_many_lines,
    reason = "one story: apply, emulate the pod, start, probe, stop"
)]
async fn start_serve_from(admin: &kube::Client, name: &str) {
    let admin = admin.clone();
    let rendered = render(name);
    let (own0, watched0) = namespaces_of(one(&rendered, "Deployment"));
    // The same render in namespaces of its own, so that runs never meet.
    let u = support::unique();
    let mut map: BTreeMap<&str, String> = BTreeMap::new();
    map.insert(own0.as_str(), format!("{own0}-{u}"));
    for ns in &watched0 {
        map.insert(ns.as_str(), format!("{ns}-{u}"));
    }
    let docs = relocate(&rendered, &map);
    // Relocated, it is still exactly what the generator prints for those namespaces.
    assert_rbac_is_generated(&format!("{name} (relocated)"), &docs);
    let deployment = one(&docs, "Deployment").clone();
    let (own, watched) = namespaces_of(&deployment);

    let dir = std::env::temp_dir().join(format!("sre-deploy-{u}"));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Cleanup {
        namespaces: watched
            .iter()
            .chain(std::iter::once(&own))
            .cloned()
            .collect(),
        dir: dir.clone(),
    };
    for ns in &watched {
        create_namespace(&admin, ns).await;
    }
    let (ok, skipped) = servable(&admin, &docs).await;
    for d in &skipped {
        eprintln!(
            "SKIPPED on this API server: {} {} is not served",
            d["apiVersion"].as_str().unwrap(),
            id(d)
        );
    }
    apply(&ok, false);

    // The Secrets, as the README tells the user to create them.
    let token = create_secrets(&admin, &deployment, &own, &u).await;

    // The pod, as far as it can exist outside a node: its ServiceAccount's token, its volumes
    // and environment; the listen address on loopback.
    let (sa_token, ca) = service_account_token(&admin, &own, "sre-agent").await;
    let kubeconfig = service_account_kubeconfig(&dir, &own, &sa_token, &ca);
    let pod_name = format!("sre-agent-{u}-0");
    let pod = &deployment["spec"]["template"]["spec"];
    let (mounts, env) = emulate_kubelet(&admin, &dir.join("pod"), pod, &own, &pod_name).await;
    let mut listen_replaced = 0;
    let args: Vec<String> = args(&deployment)
        .iter()
        .map(|a| {
            if a.starts_with("--listen=") {
                listen_replaced += 1;
                "--listen=127.0.0.1:0".to_owned()
            } else {
                remount(a, &mounts)
            }
        })
        .collect();
    assert_eq!(listen_replaced, 1, "{name}: {args:?}");
    assert!(
        args.iter()
            .any(|a| a.starts_with("--api-token=file:") && a.contains(&dir.display().to_string())),
        "{name}: the API token file was moved to the emulated mount: {args:?}"
    );
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(&args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.clone(), remount(v, &mounts))))
        .envs(emulate_admission(&docs, &dir))
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", &home);
    let mut serve = tokio::task::block_in_place(|| Serve::spawn(cmd));

    let started = tokio::task::block_in_place(|| serve.wait_log("sre-agent serve started"));
    let addr = started["listen"].as_str().unwrap().to_owned();
    assert_eq!(
        started["agent_namespace"],
        own.as_str(),
        "{name}: {started}"
    );
    assert_eq!(started["identity"], pod_name.as_str(), "{name}: {started}");
    tokio::task::block_in_place(|| serve.wait_log("leading: watching and running incidents"));
    // The rendered probes answer; /readyz too, once this single replica leads and watches.
    let c = container(&deployment);
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let path = c[probe]["httpGet"]["path"].as_str().unwrap();
        tokio::task::block_in_place(|| serve.wait_ok(&addr, path));
    }
    let ready = tokio::task::block_in_place(|| serve.wait_ok(&addr, "/readyz"));
    assert!(ready.contains("\"leader\":true"), "{name}: {ready}");
    // It holds the Lease in its own namespace, under its pod name.
    let lease = Api::<Lease>::namespaced(admin.clone(), &own)
        .get("sre-agent-leader")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some(pod_name.as_str()),
        "{name}: the Lease holder"
    );
    // The approvals API takes the token of the mounted Secret, and only that.
    let (status, body) = http_get(&addr, "/api/v1/approvals", Some(&token));
    assert_eq!(status, 200, "{name}: {body}");
    let (status, body) = http_get(&addr, "/api/v1/approvals", None);
    assert_eq!(status, 401, "{name}: {body}");
    let (status, body) = http_get(&addr, "/api/v1/approvals", Some("not-the-token"));
    assert!(status == 401 || status == 403, "{name}: {status} {body}");
    let (status, metrics) = http_get(&addr, "/metrics", None);
    assert_eq!(status, 200, "{name}: /metrics");
    assert!(metrics.contains("sre_agent_leader 1"), "{name}: {metrics}");
    // The rendered RBAC is enough: the preflight found nothing missing (and, as serve refuses
    // an over-privileged identity, nothing dangerous).
    assert!(
        serve
            .logs("the agent lacks permissions some tools need")
            .is_empty(),
        "{name}: {}",
        serve.dump()
    );

    let (status, stdout, logs) = tokio::task::block_in_place(|| serve.terminate());
    assert!(status.success(), "{name}: {logs}");
    assert!(
        !logs.contains(&token) && !logs.contains(&sa_token),
        "{name}: a token was printed"
    );
    assert!(
        stdout.iter().any(|l| l.contains("\"stopped\"")),
        "{name}: serve stopped cleanly\n{logs}"
    );
    for line in stdout.iter().filter(|l| !l.is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "{name}: --log-format=json printed a line that is not JSON: {line}"
        );
    }
    eprintln!(
        "{name}: serve started from the rendered Deployment as {own}/sre-agent, led, stopped"
    );
}
