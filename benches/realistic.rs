//! A `PodList` shaped like what an API server returns on a busy cluster: every pod carries
//! `managedFields` from two managers (the controller that created it, and the kubelet — or the
//! scheduler for pods it could not place — writing its status) with the real nested `fieldsV1`
//! shape, labels, annotations including a `kubectl.kubernetes.io/last-applied-configuration` of
//! the usual size, owner references, volumes, probes, 1–3 containers, init containers, and mixed
//! states. Deterministic: the same `n` gives the same bytes.
//!
//! Workloads have 10 pods each and are spread over 10 namespaces. By `workload % 50`:
//! 0 crash loop (last exit 1), 1 crash loop killed for memory (`OOMKilled`), 2 `ImagePullBackOff`,
//! 3 three pods `Pending` and unschedulable, 4 running again after an `OOMKilled`, 5 a restart
//! storm on every third pod, 6 `CreateContainerConfigError`, 17 a crash-looping `StatefulSet`;
//! every other workload is healthy (by `workload % 10`: 7 `StatefulSet`, 8 `DaemonSet`, 9 a
//! completed `Job`, the rest `Deployment`s). Workload 20 has one terminating pod in a crash loop
//! (not a finding: it is on its way out).

use std::fmt::Write as _;

/// Pods per workload.
pub const PODS_PER_WORKLOAD: usize = 10;

/// How many workloads of a `realistic_pod_list_json(n)` list triage must report unhealthy.
pub fn realistic_unhealthy_workloads(n: usize) -> usize {
    let mut unhealthy: Vec<usize> = (0..n)
        .filter(|i| {
            let state = state_of(i / PODS_PER_WORKLOAD, i % PODS_PER_WORKLOAD);
            !matches!(
                state,
                State::Healthy | State::Completed | State::Terminating
            )
        })
        .map(|i| i / PODS_PER_WORKLOAD)
        .collect();
    unhealthy.dedup();
    unhealthy.len()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Healthy,
    CrashLoop,
    OomLoop,
    OomRecovered,
    ImagePull,
    Unschedulable,
    RestartStorm,
    ConfigError,
    Completed,
    Terminating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

fn owner_of(w: usize) -> Owner {
    match w % 10 {
        7 => Owner::StatefulSet,
        8 => Owner::DaemonSet,
        9 => Owner::Job,
        _ => Owner::Deployment,
    }
}

fn state_of(w: usize, k: usize) -> State {
    match (w % 50, k) {
        (0 | 17, _) => State::CrashLoop,
        (1, _) => State::OomLoop,
        (2, _) => State::ImagePull,
        (3, 7..) => State::Unschedulable,
        (4, _) => State::OomRecovered,
        (5, k) if k % 3 == 0 => State::RestartStorm,
        (6, _) => State::ConfigError,
        (20, 0) => State::Terminating,
        _ if owner_of(w) == Owner::Job => State::Completed,
        _ => State::Healthy,
    }
}

/// splitmix64: deterministic pseudo-random bits for identifiers.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hex(seed: u64, len: usize) -> String {
    let mut s = String::with_capacity(len);
    let mut i = 0;
    while s.len() < len {
        let _ = write!(s, "{:016x}", mix(seed.wrapping_mul(31).wrapping_add(i)));
        i += 1;
    }
    s.truncate(len);
    s
}

fn uid(seed: u64) -> String {
    let h = hex(seed, 32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A pod's containers (1 for 85 % of workloads, 2 for 10 %, 3 for 5 %): (name, image, memory
/// limit, port).
fn containers(w: usize) -> Vec<(&'static str, String, &'static str, u16)> {
    let app_limit = if matches!(w % 50, 1 | 4) {
        "256Mi"
    } else {
        "512Mi"
    };
    let mut image = format!("registry.example.com/shop/svc-{w}:v1.{}.3", w % 20);
    if w % 50 == 2 {
        image.push_str("-rc0-typo");
    }
    let mut out = vec![("app", image, app_limit, 8080)];
    let count = match mix(w as u64) % 20 {
        0..=16 => 1,
        17..=18 => 2,
        _ => 3,
    };
    if count >= 2 {
        out.push((
            "istio-proxy",
            "docker.io/istio/proxyv2:1.22.3".into(),
            "1Gi",
            15090,
        ));
    }
    if count == 3 {
        out.push((
            "log-shipper",
            "cr.fluentbit.io/fluent/fluent-bit:3.0.7".into(),
            "128Mi",
            2020,
        ));
    }
    out
}

/// Environment variables of the first container besides `POD_NAME` (the others have only that).
const ENV: [(&str, &str); 1] = [("LOG_LEVEL", "info")];

fn env_count(container: usize) -> usize {
    if container == 0 { ENV.len() } else { 0 }
}

struct Pod {
    i: usize,
    w: usize,
    k: usize,
    ns: String,
    name: String,
    workload: String,
    owner: Owner,
    owner_name: String,
    owner_uid: String,
    hash: String,
    uid: String,
    state: State,
    node: String,
    ip: String,
    created: String,
    /// Added to the first container's restart count.
    bump: u32,
}

impl Pod {
    fn new(i: usize) -> Self {
        let w = i / PODS_PER_WORKLOAD;
        let k = i % PODS_PER_WORKLOAD;
        let owner = owner_of(w);
        let hash = hex(w as u64 * 7919, 10);
        let workload = match owner {
            Owner::Deployment => format!("svc-{w}"),
            Owner::StatefulSet => format!("db-{w}"),
            Owner::DaemonSet => format!("agent-{w}"),
            Owner::Job => format!("report-{w}"),
        };
        let suffix = &hex(i as u64 + 1_000_003, 5);
        let (name, owner_name) = match owner {
            Owner::Deployment => (
                format!("{workload}-{hash}-{suffix}"),
                format!("{workload}-{hash}"),
            ),
            Owner::StatefulSet => (format!("{workload}-{k}"), workload.clone()),
            Owner::DaemonSet | Owner::Job => (format!("{workload}-{suffix}"), workload.clone()),
        };
        Self {
            i,
            w,
            k,
            ns: format!("team-{}", w % 10),
            name,
            owner,
            owner_uid: uid(w as u64 + 77),
            owner_name,
            workload,
            hash,
            uid: uid(i as u64),
            state: state_of(w, k),
            node: format!("ip-10-20-{}-{}.ec2.internal", i % 7, 10 + i % 200),
            ip: format!("10.244.{}.{}", (i / 250) % 256, 2 + i % 250),
            created: format!(
                "2025-11-{:02}T{:02}:{:02}:{:02}Z",
                1 + w % 28,
                w % 24,
                i % 60,
                k * 5
            ),
            bump: 0,
        }
    }

    fn scheduled(&self) -> bool {
        self.state != State::Unschedulable
    }

    fn labels(&self, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"app.kubernetes.io/name":"{w}","app.kubernetes.io/version":"1.{v}.3""#,
            w = self.workload,
            v = self.w % 20
        );
        match self.owner {
            Owner::Deployment => {
                let _ = write!(out, r#","pod-template-hash":"{}""#, self.hash);
            }
            Owner::StatefulSet => {
                let _ = write!(
                    out,
                    r#","controller-revision-hash":"{w}-{h}","statefulset.kubernetes.io/pod-name":"{n}","apps.kubernetes.io/pod-index":"{k}""#,
                    w = self.workload,
                    h = &self.hash[..9],
                    n = self.name,
                    k = self.k
                );
            }
            Owner::DaemonSet => {
                let _ = write!(
                    out,
                    r#","controller-revision-hash":"{}","pod-template-generation":"3""#,
                    &self.hash[..9]
                );
            }
            Owner::Job => {
                let _ = write!(
                    out,
                    r#","batch.kubernetes.io/controller-uid":"{u}","batch.kubernetes.io/job-name":"{w}","controller-uid":"{u}","job-name":"{w}""#,
                    u = self.owner_uid,
                    w = self.workload
                );
            }
        }
        out.push('}');
    }

    /// The `last-applied-configuration` annotation: the manifest `kubectl apply` was given, as
    /// an escaped JSON string (about 350 bytes for one container).
    fn last_applied(&self) -> String {
        let mut m = String::new();
        let _ = write!(
            m,
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"annotations":{{"prometheus.io/scrape":"true"}},"labels":{{"app.kubernetes.io/name":"{w}"}},"name":"{w}","namespace":"{ns}"}},"spec":{{"containers":["#,
            w = self.workload,
            ns = self.ns
        );
        for (j, (name, image, _, _)) in containers(self.w).iter().enumerate() {
            if j > 0 {
                m.push(',');
            }
            let _ = write!(m, r#"{{"image":"{image}","name":"{name}"}}"#);
        }
        m.push_str(r#"],"serviceAccountName":"shop-runtime"}}"#);
        m.push('\n');
        serde_json::Value::String(m).to_string()
    }

    fn metadata(&self, out: &mut String) {
        let _ = write!(out, r#"{{"name":"{}""#, self.name);
        if self.owner != Owner::StatefulSet {
            let gen_name = self.name.rsplit_once('-').map_or("", |(p, _)| p);
            let _ = write!(out, r#","generateName":"{gen_name}-""#);
        }
        let _ = write!(
            out,
            r#","namespace":"{}","uid":"{}","resourceVersion":"{}","creationTimestamp":"{}","#,
            self.ns,
            self.uid,
            48_211_000 + self.i * 3,
            self.created
        );
        if self.state == State::Terminating {
            let _ = write!(
                out,
                r#""deletionTimestamp":"2025-12-01T10:00:30Z","deletionGracePeriodSeconds":30,"#
            );
        }
        out.push_str(r#""labels":"#);
        self.labels(out);
        let _ = write!(
            out,
            r#","annotations":{{"kubectl.kubernetes.io/last-applied-configuration":{},"prometheus.io/scrape":"true"}}"#,
            self.last_applied()
        );
        let (api, kind) = match self.owner {
            Owner::Deployment => ("apps/v1", "ReplicaSet"),
            Owner::StatefulSet => ("apps/v1", "StatefulSet"),
            Owner::DaemonSet => ("apps/v1", "DaemonSet"),
            Owner::Job => ("batch/v1", "Job"),
        };
        let _ = write!(
            out,
            r#","ownerReferences":[{{"apiVersion":"{api}","kind":"{kind}","name":"{}","uid":"{}","controller":true,"blockOwnerDeletion":true}}],"managedFields":["#,
            self.owner_name, self.owner_uid
        );
        self.managed_by_controller(out);
        out.push(',');
        self.managed_status(out);
        out.push_str("]}");
    }

    /// `managedFields` of the controller that created the pod (`fieldsV1` of metadata and spec).
    fn managed_by_controller(&self, out: &mut String) {
        let manager = "kube-controller-manager";
        let _ = write!(
            out,
            r#"{{"manager":"{manager}","operation":"Update","apiVersion":"v1","time":"{}","fieldsType":"FieldsV1","fieldsV1":{{"f:metadata":{{"f:annotations":{{".":{{}},"f:kubectl.kubernetes.io/last-applied-configuration":{{}},"f:prometheus.io/scrape":{{}}}},"f:generateName":{{}},"f:labels":{{".":{{}},"f:app.kubernetes.io/name":{{}},"f:app.kubernetes.io/version":{{}},"f:pod-template-hash":{{}}}},"f:ownerReferences":{{".":{{}},"k:{{\"uid\":\"{}\"}}":{{}}}}}},"f:spec":{{"f:containers":{{"#,
            self.created, self.owner_uid
        );
        for (j, (name, _, _, port)) in containers(self.w).iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                r#""k:{{\"name\":\"{name}\"}}":{{".":{{}},"f:env":{{".":{{}}"#
            );
            for (var, _) in ENV.iter().take(env_count(j)) {
                let _ = write!(
                    out,
                    r#","k:{{\"name\":\"{var}\"}}":{{".":{{}},"f:name":{{}},"f:value":{{}}}}"#
                );
            }
            let probes = if j == 0 && self.w.is_multiple_of(3) {
                r#""f:readinessProbe":{".":{},"f:failureThreshold":{},"f:httpGet":{".":{},"f:path":{},"f:port":{},"f:scheme":{}},"f:periodSeconds":{},"f:successThreshold":{},"f:timeoutSeconds":{}},"#
            } else {
                ""
            };
            let _ = write!(
                out,
                r#"}},"f:image":{{}},"f:imagePullPolicy":{{}},{probes}"f:name":{{}},"f:ports":{{".":{{}},"k:{{\"containerPort\":{port},\"protocol\":\"TCP\"}}":{{".":{{}},"f:containerPort":{{}},"f:name":{{}},"f:protocol":{{}}}}}},"f:resources":{{".":{{}},"f:limits":{{".":{{}},"f:cpu":{{}},"f:memory":{{}}}},"f:requests":{{".":{{}},"f:cpu":{{}},"f:memory":{{}}}}}},"f:terminationMessagePath":{{}},"f:terminationMessagePolicy":{{}}}}"#
            );
        }
        out.push_str(r#"},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{".":{},"f:fsGroup":{},"f:runAsNonRoot":{}},"f:serviceAccount":{},"f:serviceAccountName":{},"f:terminationGracePeriodSeconds":{},"f:volumes":{".":{},"k:{\"name\":\"kube-api-access\"}":{".":{},"f:name":{},"f:projected":{}}}}}}"#);
    }

    /// `managedFields` of the status writer: the kubelet, or the scheduler for a pod it could
    /// not place.
    fn managed_status(&self, out: &mut String) {
        if !self.scheduled() {
            let _ = write!(
                out,
                r#"{{"manager":"kube-scheduler","operation":"Update","apiVersion":"v1","time":"{}","fieldsType":"FieldsV1","fieldsV1":{{"f:status":{{"f:conditions":{{".":{{}},"k:{{\"type\":\"PodScheduled\"}}":{{".":{{}},"f:lastProbeTime":{{}},"f:lastTransitionTime":{{}},"f:message":{{}},"f:reason":{{}},"f:status":{{}},"f:type":{{}}}}}}}}}},"subresource":"status"}}"#,
                self.created
            );
            return;
        }
        let _ = write!(
            out,
            r#"{{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"{}","fieldsType":"FieldsV1","fieldsV1":{{"f:status":{{"f:conditions":{{"#,
            self.created
        );
        for (j, t) in [
            "ContainersReady",
            "Initialized",
            "PodReadyToStartContainers",
            "Ready",
        ]
        .iter()
        .enumerate()
        {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                r#""k:{{\"type\":\"{t}\"}}":{{".":{{}},"f:lastProbeTime":{{}},"f:lastTransitionTime":{{}},"f:message":{{}},"f:reason":{{}},"f:status":{{}},"f:type":{{}}}}"#
            );
        }
        let _ = write!(
            out,
            r#"}},"f:containerStatuses":{{}},"f:hostIP":{{}},"f:hostIPs":{{}},"f:initContainerStatuses":{{}},"f:phase":{{}},"f:podIP":{{}},"f:podIPs":{{".":{{}},"k:{{\"ip\":\"{}\"}}":{{".":{{}},"f:ip":{{}}}}}},"f:startTime":{{}}}}}},"subresource":"status"}}"#,
            self.ip
        );
    }

    fn container_spec(
        &self,
        out: &mut String,
        c: &(&str, String, &str, u16),
        env: usize,
        probes: bool,
    ) {
        let (name, image, limit, port) = c;
        let _ = write!(
            out,
            r#"{{"name":"{name}","image":"{image}","ports":[{{"name":"http","containerPort":{port},"protocol":"TCP"}}],"env":["#
        );
        for (var, value) in ENV.iter().take(env) {
            let _ = write!(out, r#"{{"name":"{var}","value":"{value}"}},"#);
        }
        let _ = write!(
            out,
            r#"{{"name":"POD_NAME","valueFrom":{{"fieldRef":{{"apiVersion":"v1","fieldPath":"metadata.name"}}}}}}],"resources":{{"limits":{{"cpu":"1","memory":"{limit}"}},"requests":{{"cpu":"250m","memory":"{limit}"}}}},"volumeMounts":[{{"name":"kube-api-access-{t}","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}}],"#,
            t = &self.uid[..5]
        );
        if probes {
            let _ = write!(
                out,
                r#""readinessProbe":{{"httpGet":{{"path":"/healthz","port":{port},"scheme":"HTTP"}},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3}},"#
            );
        }
        out.push_str(r#""terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}"#);
    }

    fn spec(&self, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"volumes":[{{"name":"kube-api-access-{t}","projected":{{"sources":[{{"serviceAccountToken":{{"expirationSeconds":3607,"path":"token"}}}},{{"configMap":{{"name":"kube-root-ca.crt","items":[{{"key":"ca.crt","path":"ca.crt"}}]}}}},{{"downwardAPI":{{"items":[{{"path":"namespace","fieldRef":{{"apiVersion":"v1","fieldPath":"metadata.namespace"}}}}]}}}}],"defaultMode":420}}}}],"#,
            t = &self.uid[..5]
        );
        if self.w % 20 == 5 {
            out.push_str(r#""initContainers":["#);
            self.container_spec(
                out,
                &(
                    "istio-init",
                    "docker.io/istio/proxyv2:1.22.3".into(),
                    "128Mi",
                    15001,
                ),
                0,
                false,
            );
            out.push_str("],");
        }
        out.push_str(r#""containers":["#);
        for (j, c) in containers(self.w).iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            self.container_spec(out, c, env_count(j), j == 0 && self.w.is_multiple_of(3));
        }
        let restart = if self.owner == Owner::Job {
            "Never"
        } else {
            "Always"
        };
        let _ = write!(
            out,
            r#"],"restartPolicy":"{restart}","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"shop-runtime","serviceAccount":"shop-runtime","#
        );
        if self.scheduled() {
            let _ = write!(out, r#""nodeName":"{}","#, self.node);
        }
        out.push_str(r#""securityContext":{"runAsNonRoot":true,"fsGroup":2000},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"}"#);
    }

    fn conditions(&self, out: &mut String, ready: bool) {
        let t = &self.created;
        if !self.scheduled() {
            let _ = write!(
                out,
                r#""conditions":[{{"type":"PodScheduled","status":"False","lastProbeTime":null,"lastTransitionTime":"{t}","reason":"Unschedulable","message":"0/24 nodes are available: 6 Insufficient memory, 18 node(s) didn't match Pod's node affinity/selector. preemption: 0/24 nodes are available: 6 No preemption victims found for incoming pod, 18 Preemption is not helpful for scheduling."}}]"#
            );
            return;
        }
        let (status, extra) = if ready {
            ("True", String::new())
        } else if self.state == State::Completed {
            ("False", r#","reason":"PodCompleted""#.to_owned())
        } else {
            (
                "False",
                r#","reason":"ContainersNotReady","message":"containers with unready status: [app]""#
                    .to_owned(),
            )
        };
        let _ = write!(
            out,
            r#""conditions":[{{"type":"PodReadyToStartContainers","status":"True","lastProbeTime":null,"lastTransitionTime":"{t}"}},{{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"{t}"}},{{"type":"Ready","status":"{status}","lastProbeTime":null,"lastTransitionTime":"{t}"{extra}}},{{"type":"ContainersReady","status":"{status}","lastProbeTime":null,"lastTransitionTime":"{t}"{extra}}},{{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"{t}"}}]"#
        );
    }

    /// The app container's (state, last state, ready, restarts, started).
    fn app_state(&self) -> (String, String, bool, u32) {
        let t = &self.created;
        let term = |code: i32, reason: &str| {
            format!(
                r#"{{"terminated":{{"exitCode":{code},"reason":"{reason}","startedAt":"2025-12-01T09:58:05Z","finishedAt":"2025-12-01T09:58:10Z","containerID":"containerd://{}"}}}}"#,
                hex(self.i as u64 + 3, 64)
            )
        };
        let running = format!(r#"{{"running":{{"startedAt":"{t}"}}}}"#);
        let back_off = format!(
            r#"{{"waiting":{{"reason":"CrashLoopBackOff","message":"back-off 5m0s restarting failed container=app pod={}_{}({})"}}}}"#,
            self.name, self.ns, self.uid
        );
        match self.state {
            State::Healthy => (running, "{}".into(), true, 0),
            State::CrashLoop => (back_off, term(1, "Error"), false, 22),
            State::OomLoop => (back_off, term(137, "OOMKilled"), false, 14),
            State::OomRecovered => (running, term(137, "OOMKilled"), true, 3),
            State::RestartStorm => (running, term(2, "Error"), true, 7),
            State::ImagePull => (
                format!(
                    r#"{{"waiting":{{"reason":"ImagePullBackOff","message":"Back-off pulling image \"{}\""}}}}"#,
                    containers(self.w)[0].1
                ),
                "{}".into(),
                false,
                0,
            ),
            State::ConfigError => (
                format!(
                    r#"{{"waiting":{{"reason":"CreateContainerConfigError","message":"configmap \"{}-config\" not found"}}}}"#,
                    self.workload
                ),
                "{}".into(),
                false,
                0,
            ),
            State::Completed => (term(0, "Completed"), "{}".into(), false, 0),
            State::Terminating => (back_off, term(1, "Error"), false, 5),
            State::Unschedulable => (String::new(), String::new(), false, 0),
        }
    }

    /// A container status: `status` is (state, last state, ready, restart count).
    fn container_status(
        &self,
        out: &mut String,
        (name, image): (&str, &str),
        (state, last, ready, restarts): (&str, &str, bool, u32),
    ) {
        let id = hex(self.i as u64 * 3 + name.len() as u64, 64);
        let digest = hex(self.w as u64 + name.len() as u64, 64);
        let started = state.contains("running");
        let _ = write!(
            out,
            r#"{{"name":"{name}","state":{state},"lastState":{last},"ready":{ready},"restartCount":{restarts},"image":"{image}","imageID":"{repo}@sha256:{digest}","containerID":"containerd://{id}","started":{started}}}"#,
            repo = image.split(':').next().unwrap_or(image),
        );
    }

    fn status(&self, out: &mut String) {
        let (state, last, ready, restarts) = self.app_state();
        let phase = match self.state {
            State::Unschedulable | State::ImagePull | State::ConfigError => "Pending",
            State::Completed => "Succeeded",
            _ => "Running",
        };
        let pod_ready = ready && self.state != State::Terminating;
        let _ = write!(out, r#"{{"phase":"{phase}","#);
        self.conditions(out, pod_ready);
        if !self.scheduled() {
            out.push_str(r#","qosClass":"Guaranteed"}"#);
            return;
        }
        let _ = write!(
            out,
            r#","hostIP":"10.20.{a}.{b}","hostIPs":[{{"ip":"10.20.{a}.{b}"}}],"podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"startTime":"{t}","#,
            a = self.i % 7,
            b = 10 + self.i % 200,
            ip = self.ip,
            t = self.created
        );
        if self.w % 20 == 5 {
            out.push_str(r#""initContainerStatuses":["#);
            let done = format!(
                r#"{{"terminated":{{"exitCode":0,"reason":"Completed","startedAt":"{t}","finishedAt":"{t}","containerID":"containerd://{}"}}}}"#,
                hex(self.i as u64 + 11, 64),
                t = self.created
            );
            self.container_status(
                out,
                ("istio-init", "docker.io/istio/proxyv2:1.22.3"),
                (&done, "{}", true, 0),
            );
            out.push_str("],");
        }
        out.push_str(r#""containerStatuses":["#);
        for (j, (name, image, _, _)) in containers(self.w).iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            if j == 0 {
                let status = (state.as_str(), last.as_str(), ready, restarts + self.bump);
                self.container_status(out, (name, image), status);
            } else {
                let (s, r) = match self.state {
                    State::Completed | State::Terminating => (self.app_state().0, false),
                    State::ImagePull | State::ConfigError => (
                        r#"{"waiting":{"reason":"PodInitializing"}}"#.to_owned(),
                        false,
                    ),
                    _ => (
                        format!(r#"{{"running":{{"startedAt":"{}"}}}}"#, self.created),
                        true,
                    ),
                };
                self.container_status(out, (name, image), (&s, "{}", r, 0));
            }
        }
        out.push_str(r#"],"qosClass":"Guaranteed"}"#);
    }

    fn write(&self, out: &mut String) {
        out.push_str(r#"{"metadata":"#);
        self.metadata(out);
        out.push_str(r#","spec":"#);
        self.spec(out);
        out.push_str(r#","status":"#);
        self.status(out);
        out.push('}');
    }
}

/// A realistic `PodList` of `n` pods as `GET /api/v1/pods` returns it (compact JSON, items
/// without `kind`/`apiVersion`, as the API server lists them): see the module documentation.
/// 10,000 pods make about 65 MB.
pub fn realistic_pod_list_json(n: usize) -> String {
    realistic_pod_page_json(0..n, None)
}

/// One page of the realistic list: the pods of `range`, with the `continue` token the API
/// server sets when more pages follow (what a paginated list or a reflector's first list reads).
pub fn realistic_pod_page_json(range: std::ops::Range<usize>, next: Option<&str>) -> String {
    let mut out = String::with_capacity(range.len() * 6_600 + 200);
    out.push_str(r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"48260000""#);
    if let Some(token) = next {
        let _ = write!(out, r#","continue":"{token}""#);
    }
    out.push_str(r#"},"items":["#);
    for i in range {
        if !out.ends_with('[') {
            out.push(',');
        }
        Pod::new(i).write(&mut out);
    }
    out.push_str("]}");
    out
}

/// Pod `i` of the realistic list alone, as a watch event carries it (with `kind` and
/// `apiVersion`, as watch events do), its restart count raised by `bump` (a `MODIFIED` event).
pub fn realistic_pod_json(i: usize, bump: u32) -> String {
    let mut out = String::with_capacity(8_000);
    out.push_str(r#"{"kind":"Pod","apiVersion":"v1","#);
    let mut pod = Pod::new(i);
    pod.bump = bump;
    let mut body = String::with_capacity(8_000);
    pod.write(&mut body);
    out.push_str(body.strip_prefix('{').unwrap_or(&body));
    out
}
