//! What a kubelet (and the scheduler) would report for a pod whose containers run images of the
//! catalogue: the pod status, container logs and events. The simulator uses it for its own pods;
//! the real-API-server test tier uses it to play the kubelet the control plane there lacks.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::scenario::{Health, ImageProfile};

/// One event the kubelet or scheduler would record about the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// Reason, e.g. `BackOff`.
    pub reason: &'static str,
    /// Message.
    pub message: String,
    /// How many times it happened.
    pub count: i32,
    /// `kubelet` or `default-scheduler`.
    pub source: &'static str,
}

/// The logs of one container: current and previous instance, or the API server's 400 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLogs {
    /// Container name.
    pub container: String,
    /// Current instance.
    pub current: Result<String, String>,
    /// Previous (crashed) instance.
    pub previous: Result<String, String>,
}

/// A pod as the kubelet would report it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// The whole `status`.
    pub status: Value,
    /// True when every container is ready.
    pub ready: bool,
    /// False when the scheduler could not place it (no node).
    pub scheduled: bool,
    /// Logs per container.
    pub logs: Vec<ContainerLogs>,
    /// Events about the pod.
    pub events: Vec<PodEvent>,
}

fn ts(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The profile of an image missing from the catalogue (an unknown repository, tag or digest): it
/// cannot be pulled, and containerd says so about the fully qualified reference (the tag dropped
/// when a digest is given), e.g. `docker.io/library/nginx@sha256:…: not found`.
pub fn missing_image(image: &str) -> ImageProfile {
    let resolved = crate::trivy::registry::ImageRef::parse(image).map_or_else(
        |_| image.to_owned(),
        |r| match &r.digest {
            Some(d) => format!("{}/{}@{d}", r.registry, r.repository),
            None => format!(
                "{}/{}:{}",
                r.registry,
                r.repository,
                r.tag.as_deref().unwrap_or("latest")
            ),
        },
    );
    ImageProfile {
        health: Health::Imagepull,
        message: Some(format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{resolved}\": failed to resolve reference \"{resolved}\": {resolved}: not found"
        )),
        ..ImageProfile::default()
    }
}

struct Container<'a> {
    status: Value,
    ready: bool,
    pending: bool,
    logs: ContainerLogs,
    events: Vec<PodEvent>,
    _profile: &'a ImageProfile,
}

fn ev(type_: &'static str, reason: &'static str, message: String, count: i32) -> PodEvent {
    PodEvent {
        type_,
        reason,
        message,
        count,
        source: "kubelet",
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per health, each what a kubelet reports for it"
)]
fn container<'a>(
    pod: &str,
    ns: &str,
    uid: &str,
    name: &str,
    image: &str,
    profile: &'a ImageProfile,
    now: SystemTime,
) -> Container<'a> {
    let no_previous = || {
        Err(format!(
            "previous terminated container \"{name}\" in pod \"{pod}\" not found"
        ))
    };
    // What runs, by content: `<repo as written>@sha256:…`, as a kubelet reports it.
    let image_id = super::trivy::repo_digest(
        image,
        &profile
            .digest
            .clone()
            .unwrap_or_else(|| super::trivy::default_digest(image)),
    );
    let restarts = profile.restarts.unwrap_or(5);
    let mut events = Vec::new();
    let mut pending = false;
    let (state, last, ready, current, previous) = match profile.health {
        Health::Healthy => {
            events.push(ev(
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
                1,
            ));
            events.push(ev(
                "Normal",
                "Created",
                format!("Created container {name}"),
                1,
            ));
            events.push(ev(
                "Normal",
                "Started",
                format!("Started container {name}"),
                1,
            ));
            (
                json!({"running": {"startedAt": ts(now)}}),
                None,
                true,
                Ok(profile.logs.clone()),
                no_previous(),
            )
        }
        Health::NotReady => {
            events.push(ev(
                "Normal",
                "Started",
                format!("Started container {name}"),
                1,
            ));
            events.push(ev(
                "Warning",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
                20,
            ));
            let started = ts(now - Duration::from_secs(600));
            (
                json!({"running": {"startedAt": started}}),
                None,
                false,
                Ok(profile.logs.clone()),
                no_previous(),
            )
        }
        Health::Crashloop | Health::Oom => {
            let oom = profile.health == Health::Oom;
            let code = profile.exit_code.unwrap_or(if oom { 137 } else { 1 });
            events.push(ev(
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
                restarts + 1,
            ));
            events.push(ev(
                "Normal",
                "Started",
                format!("Started container {name}"),
                restarts + 1,
            ));
            events.push(ev(
                "Warning",
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod}_{ns}({uid})"),
                restarts * 4,
            ));
            let last = json!({"terminated": {"exitCode": code, "reason": if oom { "OOMKilled" } else { "Error" },
                "startedAt": ts(now - Duration::from_secs(30)), "finishedAt": ts(now - Duration::from_secs(28))}});
            let state = json!({"waiting": {"reason": "CrashLoopBackOff",
                "message": format!("back-off 5m0s restarting failed container={name} pod={pod}_{ns}({uid})")}});
            (
                state,
                Some(last),
                false,
                Ok(profile.logs.clone()),
                Ok(profile.logs.clone()),
            )
        }
        Health::Imagepull => {
            pending = true;
            let msg = profile
                .message
                .clone()
                .or_else(|| missing_image(image).message)
                .unwrap_or_default();
            events.push(ev(
                "Normal",
                "Pulling",
                format!("Pulling image \"{image}\""),
                4,
            ));
            events.push(ev(
                "Warning",
                "Failed",
                format!("Failed to pull image \"{image}\": {msg}"),
                4,
            ));
            events.push(ev("Warning", "Failed", "Error: ErrImagePull".into(), 4));
            events.push(ev(
                "Normal",
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
                6,
            ));
            events.push(ev("Warning", "Failed", "Error: ImagePullBackOff".into(), 6));
            let state = json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}});
            let current = Err(format!(
                "container \"{name}\" in pod \"{pod}\" is waiting to start: trying and failing to pull image"
            ));
            (state, None, false, current, no_previous())
        }
        Health::ConfigError => {
            pending = true;
            let msg = profile
                .message
                .clone()
                .unwrap_or_else(|| "configmap \"app-config\" not found".into());
            events.push(ev("Warning", "Failed", format!("Error: {msg}"), 5));
            let state =
                json!({"waiting": {"reason": "CreateContainerConfigError", "message": msg}});
            let current = Err(format!(
                "container \"{name}\" in pod \"{pod}\" is waiting to start: CreateContainerConfigError"
            ));
            (state, None, false, current, no_previous())
        }
    };
    let mut status = Map::new();
    status.insert("name".into(), json!(name));
    status.insert("image".into(), json!(image));
    status.insert(
        "imageID".into(),
        json!(if pending { String::new() } else { image_id }),
    );
    status.insert("ready".into(), json!(ready));
    status.insert("started".into(), json!(state.get("running").is_some()));
    status.insert(
        "restartCount".into(),
        json!(if last.is_some() { restarts } else { 0 }),
    );
    status.insert("state".into(), state);
    status.insert("lastState".into(), last.unwrap_or_else(|| json!({})));
    if !pending {
        status.insert(
            "containerID".into(),
            json!(format!(
                "containerd://{}",
                hex::encode(Sha256::digest(format!("{pod}/{name}").as_bytes()))
            )),
        );
    }
    Container {
        status: Value::Object(status),
        ready,
        pending,
        logs: ContainerLogs {
            container: name.to_owned(),
            current,
            previous,
        },
        events,
        _profile: profile,
    }
}

/// Which pod a [`pod_view`] is for.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    /// Pod name.
    pub name: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Pod uid.
    pub uid: &'a str,
    /// The node it is bound to.
    pub node: &'a str,
}

/// The status, logs and events of `pod` running `containers` (name, image), as of `now`.
/// `profile` looks an image up in the catalogue ([`super::trivy::Catalogue::profile`]): its
/// `digest` is what `imageID` reports (when it has none, the sha256 of the reference, as for a
/// catalogue entry that names none); `unschedulable` is the scheduler's message when
/// the pod cannot be placed.
pub fn pod_view(
    pod: PodRef<'_>,
    containers: &[(String, String)],
    profile: impl Fn(&str) -> ImageProfile,
    unschedulable: Option<&str>,
    now: SystemTime,
) -> PodView {
    let PodRef {
        name,
        namespace: ns,
        uid,
        node,
    } = pod;
    let now_s = ts(now);
    if let Some(msg) = unschedulable {
        return PodView {
            status: json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [{"type": "PodScheduled",
                "status": "False", "reason": "Unschedulable", "message": msg, "lastProbeTime": null,
                "lastTransitionTime": now_s}]}),
            ready: false,
            scheduled: false,
            logs: Vec::new(),
            events: vec![PodEvent {
                type_: "Warning",
                reason: "FailedScheduling",
                message: msg.to_owned(),
                count: 1,
                source: "default-scheduler",
            }],
        };
    }
    let mut events = vec![ev(
        "Normal",
        "Scheduled",
        format!("Successfully assigned {ns}/{name} to {node}"),
        1,
    )];
    events[0].source = "default-scheduler";
    let profiles: Vec<ImageProfile> = containers.iter().map(|(_, image)| profile(image)).collect();
    let views: Vec<Container<'_>> = containers
        .iter()
        .zip(&profiles)
        .map(|((cname, image), p)| container(name, ns, uid, cname, image, p, now))
        .collect();
    let ready = views.iter().all(|v| v.ready);
    let pending = views.iter().any(|v| v.pending);
    let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now_s});
    let ip_seed = Sha256::digest(name.as_bytes());
    let status = json!({
        "phase": if pending { "Pending" } else { "Running" },
        "conditions": [cond("Initialized", true), cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", true)],
        "hostIP": "10.0.0.10",
        "podIP": format!("10.244.{}.{}", ip_seed[0], ip_seed[1].max(2)),
        "startTime": now_s,
        "qosClass": "BestEffort",
        "containerStatuses": views.iter().map(|v| v.status.clone()).collect::<Vec<_>>(),
    });
    for v in &views {
        events.extend(v.events.iter().cloned());
    }
    PodView {
        status,
        ready,
        scheduled: true,
        logs: views.into_iter().map(|v| v.logs).collect(),
        events,
    }
}
