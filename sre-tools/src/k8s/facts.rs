//! The facts of a pod that the analyzers read, and nothing else, so one set of analyzers serves
//! typed clients, bulk JSON and a watch cache alike. They come from the API server's JSON through
//! [`pod_list_from_json`] and [`PodFacts::from_json`] — a reader that decodes only these fields
//! and skips the rest (`managedFields`, annotations, most of `metadata` and `spec`) without
//! decoding or allocating it, on every core for large lists — or convert from a `k8s_openapi`
//! [`Pod`], or deserialize with serde from any format; all three give the same facts.
//!
//! About 1 KB per pod (10,000 realistic pods: 9.8 MiB, against 475 MiB as `Pod` objects), so a
//! cache of every pod in scope stays small:
//!
//! ```
//! let list = br#"{"items":[{"metadata":{"name":"web-1","managedFields":[{"manager":"kubelet"}]},
//!   "status":{"containerStatuses":[{"name":"web","restartCount":7}]}}]}"#;
//! let pods = sre_tools::k8s::facts::pod_list_from_json(list).unwrap();
//! assert_eq!(pods[0].metadata.name, "web-1");
//! assert_eq!(pods[0].status.container_statuses[0].restart_count, 7);
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
use serde::{Deserialize, Deserializer, Serialize};

use crate::serde_util::nullable;

/// A pod, as far as triage needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodFacts {
    /// Metadata.
    pub metadata: MetaFacts,
    /// Spec.
    pub spec: SpecFacts,
    /// Status.
    pub status: StatusFacts,
}

/// Pod metadata facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetaFacts {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Namespace.
    #[serde(deserialize_with = "nullable")]
    pub namespace: String,
    /// The `pod-template-hash` label, the only label triage reads.
    #[serde(rename = "labels", deserialize_with = "template_hash")]
    pub pod_template_hash: Option<String>,
    /// Owners.
    #[serde(deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerFacts>,
    /// Set when the pod is being deleted (terminating).
    pub deletion_timestamp: Option<String>,
}

/// An owner reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerFacts {
    /// Kind.
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// True for the managing controller.
    pub controller: Option<bool>,
}

/// Pod spec facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SpecFacts {
    /// Containers.
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<ContainerFacts>,
    /// Init containers.
    #[serde(deserialize_with = "nullable")]
    pub init_containers: Vec<ContainerFacts>,
}

/// A container of the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerFacts {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Its memory limit, e.g. `128Mi`.
    #[serde(rename = "resources", deserialize_with = "memory_limit")]
    pub memory_limit: Option<String>,
}

/// Pod status facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StatusFacts {
    /// Phase.
    pub phase: Option<String>,
    /// Reason (e.g. `Evicted`).
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// The conditions that do not hold (status other than `True`): a condition that holds is
    /// never a finding, so a healthy pod keeps none.
    #[serde(deserialize_with = "conditions_not_holding")]
    pub conditions: Vec<ConditionFacts>,
    /// Container statuses.
    #[serde(deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatusFacts>,
    /// Init container statuses.
    #[serde(deserialize_with = "nullable")]
    pub init_container_statuses: Vec<ContainerStatusFacts>,
}

/// A pod condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConditionFacts {
    /// Type.
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// A container status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatusFacts {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Image.
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    /// Ready.
    pub ready: bool,
    /// Restarts.
    pub restart_count: i32,
    /// Current state.
    #[serde(deserialize_with = "nullable")]
    pub state: StateFacts,
    /// Last state.
    #[serde(deserialize_with = "nullable")]
    pub last_state: StateFacts,
}

/// A container state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StateFacts {
    /// Waiting.
    pub waiting: Option<WaitingFacts>,
    /// Running.
    pub running: Option<RunningFacts>,
    /// Terminated.
    pub terminated: Option<TerminatedFacts>,
}

/// A waiting state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WaitingFacts {
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// A running state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RunningFacts {
    /// Start time, RFC 3339.
    pub started_at: Option<String>,
}

/// A terminated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TerminatedFacts {
    /// Exit code.
    pub exit_code: i32,
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

fn template_hash<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Labels {
        #[serde(rename = "pod-template-hash")]
        hash: Option<String>,
    }
    Ok(Option::<Labels>::deserialize(d)?.and_then(|l| l.hash))
}

fn conditions_not_holding<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<ConditionFacts>, D::Error> {
    let mut all: Vec<ConditionFacts> = nullable(d)?;
    all.retain(|c| c.status != "True");
    Ok(all)
}

fn memory_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Limits {
        memory: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    struct Resources {
        limits: Option<Limits>,
    }
    Ok(Option::<Resources>::deserialize(d)?
        .and_then(|r| r.limits)
        .and_then(|l| l.memory)
        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned)))
}

fn state(s: Option<&ContainerState>) -> StateFacts {
    let Some(s) = s else {
        return StateFacts::default();
    };
    StateFacts {
        waiting: s.waiting.as_ref().map(|w| WaitingFacts {
            reason: w.reason.clone(),
            message: w.message.clone(),
        }),
        running: s.running.as_ref().map(|r| RunningFacts {
            started_at: r.started_at.as_ref().map(|t| t.0.to_string()),
        }),
        terminated: s.terminated.as_ref().map(|t| TerminatedFacts {
            exit_code: t.exit_code,
            reason: t.reason.clone(),
            message: t.message.clone(),
        }),
    }
}

fn container_status(cs: &ContainerStatus) -> ContainerStatusFacts {
    ContainerStatusFacts {
        name: cs.name.clone(),
        image: cs.image.clone(),
        ready: cs.ready,
        restart_count: cs.restart_count,
        state: state(cs.state.as_ref()),
        last_state: state(cs.last_state.as_ref()),
    }
}

impl From<&Pod> for PodFacts {
    fn from(pod: &Pod) -> Self {
        let m = &pod.metadata;
        let labels: Option<&BTreeMap<String, String>> = m.labels.as_ref();
        let containers = |cs: &[k8s_openapi::api::core::v1::Container]| {
            cs.iter()
                .map(|c| ContainerFacts {
                    name: c.name.clone(),
                    memory_limit: c
                        .resources
                        .as_ref()
                        .and_then(|r| r.limits.as_ref())
                        .and_then(|l| l.get("memory"))
                        .map(|q| q.0.clone()),
                })
                .collect()
        };
        let spec = pod.spec.as_ref();
        let status = pod.status.clone().unwrap_or_default();
        Self {
            metadata: MetaFacts {
                name: m.name.clone().unwrap_or_default(),
                namespace: m.namespace.clone().unwrap_or_default(),
                pod_template_hash: labels.and_then(|l| l.get("pod-template-hash")).cloned(),
                owner_references: m
                    .owner_references
                    .iter()
                    .flatten()
                    .map(|o| OwnerFacts {
                        kind: o.kind.clone(),
                        name: o.name.clone(),
                        controller: o.controller,
                    })
                    .collect(),
                deletion_timestamp: m.deletion_timestamp.as_ref().map(|t| t.0.to_string()),
            },
            spec: SpecFacts {
                containers: spec.map(|s| containers(&s.containers)).unwrap_or_default(),
                init_containers: spec
                    .and_then(|s| s.init_containers.as_deref())
                    .map(containers)
                    .unwrap_or_default(),
            },
            status: StatusFacts {
                phase: status.phase,
                reason: status.reason,
                message: status.message,
                conditions: status
                    .conditions
                    .iter()
                    .flatten()
                    .filter(|c| c.status != "True")
                    .map(|c| ConditionFacts {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                    })
                    .collect(),
                container_statuses: status
                    .container_statuses
                    .iter()
                    .flatten()
                    .map(container_status)
                    .collect(),
                init_container_statuses: status
                    .init_container_statuses
                    .iter()
                    .flatten()
                    .map(container_status)
                    .collect(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the API server's JSON.
//
// A pull reader over the bytes that decodes the few fields above and skips everything else by
// counting brackets outside strings, 64 bytes at a time (bit masks built eight bytes per word,
// in safe code): `managedFields`, annotations, most of `metadata` and of `spec` are never decoded
// or allocated. Skipped values are checked for balanced brackets, terminated strings and control
// characters in strings, not otherwise validated (as a SIMD parser's on-demand mode does); the
// fields read are checked strictly (types, numbers, escapes, UTF-8). Errors name the JSON path
// and the line and column, e.g. `expected an integer, found a string at
// items[3].status.containerStatuses[0].restartCount (line 1, column 18230)`.
// ---------------------------------------------------------------------------------------------

/// Parses a `PodList` (or any object with an `items` array of pods, e.g. `kubectl get pods -o
/// json`) into facts, in document order. A `null` or absent field reads as its default, as the
/// serde model above does.
///
/// # Errors
/// When the bytes are not such a list; the message names what was wrong, where (JSON path), and
/// the line and column.
pub fn pod_list_from_json(json: &[u8]) -> Result<Vec<PodFacts>, serde_json::Error> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    list(json, threads.min(8)).map_err(|e| e.into_error(json))
}

impl PodFacts {
    /// Parses one pod's JSON (a watch event's object, `kubectl get pod -o json`) into facts.
    ///
    /// # Errors
    /// When the bytes are not a JSON object; the message names the JSON path, line and column.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        let mut r = Reader::new(json);
        let pod = pod(&mut r).and_then(|p| r.end().map(|()| p));
        pod.map_err(|e| e.into_error(json))
    }
}

/// The list, its items decoded on up to `threads` threads.
fn list(json: &[u8], threads: usize) -> Parsed<Vec<PodFacts>> {
    let mut r = Reader::new(json);
    let mut pods = None;
    r.object(|r, key| {
        if key == b"items" {
            pods = Some(if r.null()? {
                Vec::new()
            } else {
                items(r, threads)?
            });
            Ok(())
        } else {
            r.skip()
        }
    })?;
    r.end()?;
    pods.ok_or(Fail {
        pos: 0,
        what: "expected a list of pods: an object with `items`".into(),
    })
}

/// Room for the pods of `bytes` of JSON: one per KiB, more than a list ever holds (a pod as the
/// API server sends it is several KiB), so the vector never grows by copying; the pages of the
/// unused room are never touched, and the vector is shrunk in place at the end.
fn capacity(bytes: usize) -> usize {
    bytes / 1024 + 16
}

/// Below this many bytes of items, one thread decodes them all.
const SPLIT_MIN_BYTES: usize = 1 << 20;

/// The `items` array (the reader is at it). Large lists are decoded on every core: each thread
/// starts at a guessed item boundary — the first item's first key, right after `},{` — and stops
/// where the next thread started. A guess is used only once the thread before it has reached
/// that exact position as the start of an item, so a wrong guess (say, a nested object that
/// happens to look the same) costs time, never correctness.
fn items(r: &mut Reader<'_>, threads: usize) -> Parsed<Vec<PodFacts>> {
    let starts = if threads > 1 && r.len_hint() >= SPLIT_MIN_BYTES {
        split_points(r.src, r.pos, threads)
    } else {
        Vec::new()
    };
    if r.peek()? != b'[' {
        return r.expected("an array");
    }
    r.pos += 1;
    if r.peek()? == b']' {
        r.pos += 1;
        return Ok(Vec::new());
    }
    if starts.is_empty() {
        let mut pods = run(r, &[], capacity(r.len_hint()))?.0;
        pods.shrink_to_fit();
        return Ok(pods);
    }
    let src = r.src;
    let first_start = r.pos;
    let starts = &starts[..];
    // Run `i`: from the first item for run 0, else from `starts[i - 1]`; its pods, where it
    // stopped, and where it ended.
    let run_from = |i: usize, stops: &[usize], capacity: usize| {
        let mut r = Reader {
            src,
            pos: if i == 0 { first_start } else { starts[i - 1] },
        };
        run(&mut r, stops, capacity).map(|(pods, stop)| Run {
            pods,
            stop,
            end: r.pos,
        })
    };
    let mut runs: Vec<Option<Parsed<Run>>> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..=starts.len())
            .map(|i| {
                let span = starts.get(i).unwrap_or(&src.len()) - starts[i - 1];
                std::thread::Builder::new()
                    .name("pod-list-reader".into())
                    .spawn_scoped(scope, move || run_from(i, &starts[i..], capacity(span)))
                    .ok()
            })
            .collect();
        // Room for every item: the other runs' pods are moved in without a reallocation.
        let first = run_from(0, starts, capacity(src.len() - first_start));
        let mut runs = vec![Some(first)];
        for h in others {
            runs.push(match h.map(std::thread::ScopedJoinHandle::join) {
                Some(Ok(run)) => Some(run),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => None,
            });
        }
        runs
    });
    // Follow the chain from the first run: a run stops at the start of run `k` only when that
    // is an item's start. A run whose thread could not be started is read here, to the end.
    let mut pods: Vec<PodFacts> = Vec::new();
    let mut k = 0;
    loop {
        let Run {
            pods: part,
            stop,
            end,
        } = match runs[k].take() {
            Some(run) => run?,
            None => run_from(k, &[], capacity(src.len() - starts[k - 1]))?,
        };
        if k == 0 {
            pods = part;
        } else {
            pods.extend(part);
        }
        let Some(j) = stop else {
            r.pos = end;
            pods.shrink_to_fit();
            return Ok(pods);
        };
        k += j + 1;
    }
}

/// What one thread decoded: its pods, the index of the start where it stopped (another
/// thread's), or else the position after the closing `]`.
struct Run {
    pods: Vec<PodFacts>,
    stop: Option<usize>,
    end: usize,
}

/// Decodes items from the reader's position (an item's start) until the closing `]`, or until
/// an item starts exactly at one of `stops` (sorted): then returns that stop's index unread.
fn run(
    r: &mut Reader<'_>,
    stops: &[usize],
    capacity: usize,
) -> Parsed<(Vec<PodFacts>, Option<usize>)> {
    let mut pods = Vec::with_capacity(capacity);
    let mut next = 0;
    loop {
        r.peek()?;
        while stops.get(next).is_some_and(|&s| s < r.pos) {
            next += 1;
        }
        if stops.get(next) == Some(&r.pos) {
            return Ok((pods, Some(next)));
        }
        pods.push(pod(r)?);
        match r.peek()? {
            b',' => r.pos += 1,
            b']' => {
                r.pos += 1;
                return Ok((pods, None));
            }
            _ => return r.expected("`,` or `]`"),
        }
    }
}

/// Up to `parts - 1` guessed item starts after `open` (the items' `[`), evenly spread: at each
/// share of the bytes, the next `{` that follows `},` (whitespace allowed) and opens with the
/// same key as the first item. Empty when the first item is not an object with a plain key.
fn split_points(src: &[u8], open: usize, parts: usize) -> Vec<usize> {
    let mut r = Reader { src, pos: open + 1 };
    if !matches!(r.peek(), Ok(b'{')) {
        return Vec::new();
    }
    r.pos += 1;
    let key_start = match r.peek() {
        Ok(b'"') => r.pos,
        _ => return Vec::new(),
    };
    let Ok(Raw::Plain(_)) = r.raw_string() else {
        return Vec::new();
    };
    let key = &src[key_start..r.pos];
    let is_ws = |b: &u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
    let before = |mut i: usize| {
        while i > 0 && is_ws(&src[i - 1]) {
            i -= 1;
        }
        i.checked_sub(1).map(|j| (j, src[j]))
    };
    let len = src.len() - open;
    let mut starts = Vec::new();
    for part in 1..parts {
        let mut from = open + len / parts * part;
        while let Some(off) = src
            .get(from..)
            .and_then(|rest| rest.windows(key.len()).position(|w| w == key))
        {
            let q = from + off;
            from = q + 1;
            let Some((brace, b'{')) = before(q) else {
                continue;
            };
            let Some((comma, b',')) = before(brace) else {
                continue;
            };
            if matches!(before(comma), Some((_, b'}'))) {
                if starts.last().is_none_or(|&last| last < brace) {
                    starts.push(brace);
                }
                break;
            }
        }
    }
    starts
}

fn pod(r: &mut Reader<'_>) -> Parsed<PodFacts> {
    let mut pod = PodFacts::default();
    r.object(|r, key| match key {
        b"metadata" => r.nullable(meta, &mut pod.metadata),
        b"spec" => r.nullable(spec, &mut pod.spec),
        b"status" => r.nullable(status, &mut pod.status),
        _ => r.skip(),
    })?;
    Ok(pod)
}

fn meta(r: &mut Reader<'_>, m: &mut MetaFacts) -> Parsed<()> {
    r.object(|r, key| match key {
        b"name" => r.string_into(&mut m.name),
        b"namespace" => r.string_into(&mut m.namespace),
        b"labels" => r.nullable(
            |r, hash: &mut Option<String>| {
                r.object(|r, key| match key {
                    b"pod-template-hash" => {
                        *hash = r.opt_string()?;
                        Ok(())
                    }
                    _ => r.skip(),
                })
            },
            &mut m.pod_template_hash,
        ),
        b"ownerReferences" => r.nullable(
            |r, owners: &mut Vec<OwnerFacts>| {
                r.array(|r| {
                    let mut o = OwnerFacts::default();
                    r.nullable(owner, &mut o)?;
                    owners.push(o);
                    Ok(())
                })?;
                owners.shrink_to_fit();
                Ok(())
            },
            &mut m.owner_references,
        ),
        b"deletionTimestamp" => {
            m.deletion_timestamp = r.opt_string()?;
            Ok(())
        }
        _ => r.skip(),
    })
}

fn owner(r: &mut Reader<'_>, o: &mut OwnerFacts) -> Parsed<()> {
    r.object(|r, key| match key {
        b"kind" => r.string_into(&mut o.kind),
        b"name" => r.string_into(&mut o.name),
        b"controller" => {
            o.controller = r.opt_bool()?;
            Ok(())
        }
        _ => r.skip(),
    })
}

fn spec(r: &mut Reader<'_>, s: &mut SpecFacts) -> Parsed<()> {
    r.object(|r, key| match key {
        b"containers" => r.nullable(containers, &mut s.containers),
        b"initContainers" => r.nullable(containers, &mut s.init_containers),
        _ => r.skip(),
    })
}

fn containers(r: &mut Reader<'_>, out: &mut Vec<ContainerFacts>) -> Parsed<()> {
    r.array(|r| {
        let mut c = ContainerFacts::default();
        r.nullable(container, &mut c)?;
        out.push(c);
        Ok(())
    })?;
    out.shrink_to_fit();
    Ok(())
}

fn container(r: &mut Reader<'_>, c: &mut ContainerFacts) -> Parsed<()> {
    r.object(|r, key| match key {
        b"name" => r.string_into(&mut c.name),
        b"resources" => r.nullable(
            |r, limit: &mut Option<String>| {
                r.object(|r, key| match key {
                    b"limits" => r.nullable(
                        |r, limit: &mut Option<String>| {
                            r.object(|r, key| match key {
                                b"memory" => {
                                    *limit = r.quantity()?;
                                    Ok(())
                                }
                                _ => r.skip(),
                            })
                        },
                        limit,
                    ),
                    _ => r.skip(),
                })
            },
            &mut c.memory_limit,
        ),
        _ => r.skip(),
    })
}

fn status(r: &mut Reader<'_>, s: &mut StatusFacts) -> Parsed<()> {
    r.object(|r, key| match key {
        b"phase" => {
            s.phase = r.opt_string()?;
            Ok(())
        }
        b"reason" => {
            s.reason = r.opt_string()?;
            Ok(())
        }
        b"message" => {
            s.message = r.opt_string()?;
            Ok(())
        }
        b"conditions" => r.nullable(
            |r, out: &mut Vec<ConditionFacts>| {
                r.array(|r| {
                    let mut c = ConditionFacts::default();
                    r.nullable(condition, &mut c)?;
                    if c.status != "True" {
                        out.push(c);
                    }
                    Ok(())
                })?;
                out.shrink_to_fit();
                Ok(())
            },
            &mut s.conditions,
        ),
        b"containerStatuses" => r.nullable(container_statuses, &mut s.container_statuses),
        b"initContainerStatuses" => r.nullable(container_statuses, &mut s.init_container_statuses),
        _ => r.skip(),
    })
}

fn condition(r: &mut Reader<'_>, c: &mut ConditionFacts) -> Parsed<()> {
    r.object(|r, key| match key {
        b"type" => r.string_into(&mut c.type_),
        b"status" => r.string_into(&mut c.status),
        b"reason" => {
            c.reason = r.opt_string()?;
            Ok(())
        }
        b"message" => {
            c.message = r.opt_string()?;
            Ok(())
        }
        _ => r.skip(),
    })
}

fn container_statuses(r: &mut Reader<'_>, out: &mut Vec<ContainerStatusFacts>) -> Parsed<()> {
    r.array(|r| {
        let mut cs = ContainerStatusFacts::default();
        r.nullable(container_status_json, &mut cs)?;
        out.push(cs);
        Ok(())
    })?;
    out.shrink_to_fit();
    Ok(())
}

fn container_status_json(r: &mut Reader<'_>, cs: &mut ContainerStatusFacts) -> Parsed<()> {
    r.object(|r, key| match key {
        b"name" => r.string_into(&mut cs.name),
        b"image" => r.string_into(&mut cs.image),
        b"ready" => {
            cs.ready = r.opt_bool()?.unwrap_or_default();
            Ok(())
        }
        b"restartCount" => {
            cs.restart_count = r.opt_i32()?.unwrap_or_default();
            Ok(())
        }
        b"state" => r.nullable(state_json, &mut cs.state),
        b"lastState" => r.nullable(state_json, &mut cs.last_state),
        _ => r.skip(),
    })
}

fn state_json(r: &mut Reader<'_>, s: &mut StateFacts) -> Parsed<()> {
    r.object(|r, key| match key {
        b"waiting" => {
            if !r.null()? {
                let mut w = WaitingFacts::default();
                r.object(|r, key| match key {
                    b"reason" => {
                        w.reason = r.opt_string()?;
                        Ok(())
                    }
                    b"message" => {
                        w.message = r.opt_string()?;
                        Ok(())
                    }
                    _ => r.skip(),
                })?;
                s.waiting = Some(w);
            }
            Ok(())
        }
        b"running" => {
            if !r.null()? {
                let mut run = RunningFacts::default();
                r.object(|r, key| match key {
                    b"startedAt" => {
                        run.started_at = r.opt_string()?;
                        Ok(())
                    }
                    _ => r.skip(),
                })?;
                s.running = Some(run);
            }
            Ok(())
        }
        b"terminated" => {
            if !r.null()? {
                let mut t = TerminatedFacts::default();
                r.object(|r, key| match key {
                    b"exitCode" => {
                        t.exit_code = r.opt_i32()?.unwrap_or_default();
                        Ok(())
                    }
                    b"reason" => {
                        t.reason = r.opt_string()?;
                        Ok(())
                    }
                    b"message" => {
                        t.message = r.opt_string()?;
                        Ok(())
                    }
                    _ => r.skip(),
                })?;
                s.terminated = Some(t);
            }
            Ok(())
        }
        _ => r.skip(),
    })
}

/// A parse failure: where (byte offset) and what. The JSON path is worked out only when the
/// error is reported ([`Fail::into_error`]), so the fast path carries none.
#[derive(Debug)]
struct Fail {
    pos: usize,
    what: std::borrow::Cow<'static, str>,
}

type Parsed<T> = Result<T, Fail>;

impl Fail {
    fn into_error(self, json: &[u8]) -> serde_json::Error {
        let pos = self.pos.min(json.len());
        let before = &json[..pos];
        let line = before.split(|&b| b == b'\n').count();
        let column = pos
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        let path = path_at(json, pos);
        let at = if path.is_empty() {
            String::new()
        } else {
            format!(" at {path}")
        };
        <serde_json::Error as serde::de::Error>::custom(format_args!(
            "{}{at} (line {line}, column {column})",
            self.what
        ))
    }
}

/// Bytes that may follow a JSON value's start in a number or literal.
fn is_scalar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` equal to `b`, exact for the lowest such byte.
fn bytes_equal(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * u64::from(b));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The high bit of each byte of `w` below 0x20 (a control character), exact for the lowest.
fn bytes_control(w: u64) -> u64 {
    w.wrapping_sub(ONES * 0x20) & !w & HIGHS
}

fn word(src: &[u8], i: usize) -> Option<u64> {
    let b: [u8; 8] = src.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Nesting deeper than this is refused (as `serde_json` refuses more than 128).
const MAX_DEPTH: u32 = 128;

/// The high bit of each byte of `w` that is zero, exactly.
fn zero_bytes(w: u64) -> u64 {
    !(((w & !HIGHS).wrapping_add(!HIGHS)) | w) & HIGHS
}

/// The high bits of `m` (one per byte) packed into the low eight bits, byte 0 first.
fn pack(m: u64) -> u64 {
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// One bit per byte of a 64-byte block, byte 0 in bit 0.
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{` and `[`.
    open: u64,
    /// `}` and `]`.
    close: u64,
    /// Bytes below 0x20.
    control: u64,
}

impl Masks {
    fn of(block: &[u8; 64]) -> Self {
        let words: [u64; 8] = std::array::from_fn(|k| {
            let mut b = [0; 8];
            b.copy_from_slice(&block[8 * k..8 * k + 8]);
            u64::from_le_bytes(b)
        });
        let mut m = Self {
            quote: 0,
            backslash: 0,
            open: 0,
            close: 0,
            control: 0,
        };
        let mut rare = 0;
        for (k, &w) in words.iter().enumerate() {
            // `{` is `[` with the 0x20 bit set, `}` is `]` with it.
            let folded = w | (ONES * 0x20);
            let shift = 8 * k;
            m.quote |= pack(zero_bytes(w ^ (ONES * u64::from(b'"')))) << shift;
            m.open |= pack(zero_bytes(folded ^ (ONES * u64::from(b'{')))) << shift;
            m.close |= pack(zero_bytes(folded ^ (ONES * u64::from(b'}')))) << shift;
            rare |= bytes_equal(w, b'\\') | bytes_control(w);
        }
        if rare != 0 {
            for (k, &w) in words.iter().enumerate() {
                let shift = 8 * k;
                m.backslash |= pack(zero_bytes(w ^ (ONES * u64::from(b'\\')))) << shift;
                // Below 0x20: adding 0x60 to the low seven bits does not reach the high bit.
                let control = !(((w & !HIGHS).wrapping_add(ONES * 0x60)) | w) & HIGHS;
                m.control |= pack(control) << shift;
            }
        }
        m
    }
}

/// The bytes escaped by a backslash (each backslash not itself escaped escapes the next byte);
/// `carry` is 1 when byte 0 is escaped, and is set for the next block.
fn escapes(backslash: u64, carry: &mut u64) -> u64 {
    let mut escaped = *carry;
    let mut starts = backslash & !*carry;
    *carry = 0;
    while starts != 0 {
        let at = starts.trailing_zeros();
        if at == 63 {
            *carry = 1;
            break;
        }
        let next = 1u64 << (at + 1);
        escaped |= next;
        starts &= !((1u64 << at) | next);
    }
    escaped
}

/// Bit `i` is the XOR of bits `0..=i`: set from an opening quote up to its closing quote.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(src: &'a [u8]) -> Self {
        Self { src, pos: 0 }
    }

    fn len_hint(&self) -> usize {
        self.src.len() - self.pos
    }

    fn fail<T>(&self, what: impl Into<std::borrow::Cow<'static, str>>) -> Parsed<T> {
        Err(Fail {
            pos: self.pos,
            what: what.into(),
        })
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Parsed<u8> {
        while let Some(&b) = self.src.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Ok(b);
            }
            self.pos += 1;
        }
        self.fail("unexpected end of input")
    }

    /// Only whitespace is left.
    fn end(&mut self) -> Parsed<()> {
        match self.peek() {
            Ok(_) => self.fail("trailing characters after the JSON value"),
            Err(_) => Ok(()),
        }
    }

    fn found(&mut self) -> &'static str {
        match self.peek() {
            Ok(b'{') => "an object",
            Ok(b'[') => "an array",
            Ok(b'"') => "a string",
            Ok(b't' | b'f') => "a boolean",
            Ok(b'n') => "null",
            Ok(b'-' | b'0'..=b'9') => "a number",
            Ok(_) => "an invalid character",
            Err(_) => "the end of input",
        }
    }

    fn expected<T>(&mut self, what: &str) -> Parsed<T> {
        let found = self.found();
        self.fail(format!("expected {what}, found {found}"))
    }

    /// Consumes a `null` if one is next.
    fn null(&mut self) -> Parsed<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    fn literal(&mut self, word: &[u8]) -> Parsed<()> {
        let end = self.pos + word.len();
        if self.src.get(self.pos..end) != Some(word)
            || self.src.get(end).is_some_and(|&b| is_scalar_byte(b))
        {
            return self.fail("invalid literal");
        }
        self.pos = end;
        Ok(())
    }

    /// Reads `null` as the default, else the value with `read`.
    fn nullable<T>(
        &mut self,
        read: impl FnOnce(&mut Self, &mut T) -> Parsed<()>,
        into: &mut T,
    ) -> Parsed<()> {
        if self.null()? {
            return Ok(());
        }
        read(self, into)
    }

    /// An object: `member` is called with each key (unescaped) and must consume its value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Parsed<()>) -> Parsed<()> {
        if self.peek()? != b'{' {
            return self.expected("an object");
        }
        self.pos += 1;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek()? != b'"' {
                return self.expected("a key (a string)");
            }
            let key_start = self.pos + 1;
            let key = self.raw_string()?;
            if self.peek()? != b':' {
                return self.expected("`:`");
            }
            self.pos += 1;
            match key {
                Raw::Plain(k) => member(self, k)?,
                Raw::Escaped(k) => {
                    let k = unescape(k).map_err(|(off, what)| Fail {
                        pos: key_start + off,
                        what: what.into(),
                    })?;
                    member(self, k.as_bytes())?;
                }
            }
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.expected("`,` or `}`"),
            }
        }
    }

    /// An array: `element` is called for each element and must consume it.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Parsed<()>) -> Parsed<()> {
        if self.peek()? != b'[' {
            return self.expected("an array");
        }
        self.pos += 1;
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.expected("`,` or `]`"),
            }
        }
    }

    /// A string's raw bytes between the quotes (the reader is at the opening quote).
    fn raw_string(&mut self) -> Parsed<Raw<'a>> {
        let start = self.pos + 1;
        let src = self.src;
        let mut i = start;
        let mut escaped = false;
        loop {
            while let Some(w) = word(src, i) {
                let hit = bytes_equal(w, b'"') | bytes_equal(w, b'\\') | bytes_control(w);
                if hit != 0 {
                    i += (hit.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match src.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    let raw = &src[start..i];
                    return Ok(if escaped {
                        Raw::Escaped(raw)
                    } else {
                        Raw::Plain(raw)
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(b) if *b < 0x20 => {
                    self.pos = i;
                    return self.fail("control character in a string");
                }
                Some(_) => i += 1,
                None => {
                    self.pos = src.len();
                    return self.fail("unterminated string");
                }
            }
        }
    }

    fn string(&mut self) -> Parsed<String> {
        if self.peek()? != b'"' {
            return self.expected("a string");
        }
        let start = self.pos;
        match self.raw_string()? {
            Raw::Plain(s) => match std::str::from_utf8(s) {
                Ok(s) => Ok(s.to_owned()),
                Err(e) => Err(Fail {
                    pos: start + 1 + e.valid_up_to(),
                    what: "invalid UTF-8 in a string".into(),
                }),
            },
            Raw::Escaped(s) => unescape(s).map_err(|(off, what)| Fail {
                pos: start + 1 + off,
                what: what.into(),
            }),
        }
    }

    fn string_into(&mut self, into: &mut String) -> Parsed<()> {
        if !self.null()? {
            *into = self.string()?;
        }
        Ok(())
    }

    fn opt_string(&mut self) -> Parsed<Option<String>> {
        if self.null()? {
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn opt_bool(&mut self) -> Parsed<Option<bool>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b't' => self.literal(b"true").map(|()| Some(true)),
            b'f' => self.literal(b"false").map(|()| Some(false)),
            _ => self.expected("a boolean"),
        }
    }

    /// A number's text (JSON grammar checked), the reader at its first byte.
    fn number(&mut self) -> Parsed<&'a [u8]> {
        let src = self.src;
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while src.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        if src.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        let n = digits(&mut i);
        let ok = n > 0 && !(n > 1 && src[int_start] == b'0');
        let mut ok = ok;
        if ok && src.get(i) == Some(&b'.') {
            i += 1;
            ok = digits(&mut i) > 0;
        }
        if ok && matches!(src.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(src.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            ok = digits(&mut i) > 0;
        }
        if !ok || src.get(i).is_some_and(|&b| is_scalar_byte(b)) {
            return self.fail("invalid number");
        }
        self.pos = i;
        Ok(&src[start..i])
    }

    fn opt_i32(&mut self) -> Parsed<Option<i32>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                let text = self.number()?;
                // Digits and a sign only: the grammar was checked, so this is ASCII.
                let parsed = std::str::from_utf8(text)
                    .ok()
                    .filter(|t| t.bytes().all(|b| b == b'-' || b.is_ascii_digit()))
                    .map(str::parse::<i32>);
                match parsed {
                    Some(Ok(v)) => Ok(Some(v)),
                    Some(Err(_)) => {
                        self.pos = start;
                        self.fail("integer out of range for a 32-bit integer")
                    }
                    None => {
                        self.pos = start;
                        self.fail("expected an integer, found a fractional number")
                    }
                }
            }
            _ => self.expected("an integer"),
        }
    }

    /// A quantity (`128Mi`), written as a string or a number: its text.
    fn quantity(&mut self) -> Parsed<Option<String>> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => {
                let text = self.number()?;
                Ok(Some(String::from_utf8_lossy(text).into_owned()))
            }
            _ => self.opt_string(),
        }
    }

    /// Skips one value of any kind.
    fn skip(&mut self) -> Parsed<()> {
        match self.peek()? {
            b'"' => self.raw_string().map(drop),
            b'{' | b'[' => self.skip_nested(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => self.expected("a value"),
        }
    }

    /// Skips an object or array (the reader is at its opening bracket), 64 bytes at a time:
    /// the block's quotes and brackets become bit masks (eight bytes per word), a prefix XOR of
    /// the unescaped quotes masks out what is inside strings, and the brackets left are
    /// counted. Only a block where the nesting may close is walked bracket by bracket.
    fn skip_nested(&mut self) -> Parsed<()> {
        let src = self.src;
        let mut i = self.pos;
        let mut depth: u32 = 0;
        // All ones while a block starts inside a string.
        let mut in_string: u64 = 0;
        // 1 when a block's first byte is escaped by the backslash that ended the block before.
        let mut escaped_carry: u64 = 0;
        loop {
            let mut padded = [b' '; 64];
            let full = src
                .get(i..i + 64)
                .and_then(|b| <&[u8; 64]>::try_from(b).ok());
            let (block, len) = if let Some(b) = full {
                (b, 64)
            } else {
                let rest = src.get(i..).unwrap_or_default();
                padded[..rest.len()].copy_from_slice(rest);
                (&padded, rest.len())
            };
            let m = Masks::of(block);
            let escaped = if m.backslash == 0 && escaped_carry == 0 {
                0
            } else {
                escapes(m.backslash, &mut escaped_carry)
            };
            let inside = prefix_xor(m.quote & !escaped) ^ in_string;
            in_string = (inside >> 63).wrapping_neg();
            let bad = m.control & inside;
            if bad != 0 {
                self.pos = i + bad.trailing_zeros() as usize;
                return self.fail("control character in a string");
            }
            let open = m.open & !inside;
            let close = m.close & !inside;
            let (opens, closes) = (open.count_ones(), close.count_ones());
            if depth > closes && depth + opens <= MAX_DEPTH {
                depth = depth + opens - closes;
            } else {
                let mut brackets = open | close;
                while brackets != 0 {
                    let at = brackets.trailing_zeros();
                    brackets &= brackets - 1;
                    if open & (1 << at) != 0 {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            self.pos = i + at as usize;
                            return self.fail("nesting too deep");
                        }
                    } else {
                        depth -= 1;
                        if depth == 0 {
                            self.pos = i + at as usize + 1;
                            return Ok(());
                        }
                    }
                }
            }
            if len < 64 {
                self.pos = src.len();
                return self.fail(if in_string == 0 {
                    "unexpected end of input"
                } else {
                    "unterminated string"
                });
            }
            i += 64;
        }
    }
}

/// A string's bytes between the quotes, and whether it has escapes to decode.
enum Raw<'a> {
    Plain(&'a [u8]),
    Escaped(&'a [u8]),
}

/// Decodes a JSON string body with escapes; on failure, the offset into `raw` and why.
fn unescape(raw: &[u8]) -> Result<String, (usize, &'static str)> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    let hex4 = |i: usize| -> Result<u32, (usize, &'static str)> {
        let digits = raw.get(i..i + 4).ok_or((i, "invalid \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| (i, "invalid \\u escape"))?;
        u32::from_str_radix(text, 16).map_err(|_| (i, "invalid \\u escape"))
    };
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else {
            return Err((i, "invalid escape"));
        };
        i += 2;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(i)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return Err((i, "unpaired surrogate in a \\u escape"));
                    }
                    let lo = hex4(i + 2)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err((i, "unpaired surrogate in a \\u escape"));
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(code).ok_or((i, "unpaired surrogate in a \\u escape"))?
            }
            _ => return Err((i - 1, "invalid escape")),
        };
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).map_err(|e| (e.utf8_error().valid_up_to(), "invalid UTF-8 in a string"))
}

/// The JSON path of the value at byte `pos` (`items[3].status.phase`), for error messages: a
/// tolerant walk of the document up to `pos`, run only when an error is reported.
fn path_at(json: &[u8], pos: usize) -> String {
    enum Frame {
        Object { key: Option<String>, want_key: bool },
        Array { index: usize },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < pos && i < json.len() {
        match json[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b'"' => {
                let mut r = Reader { src: json, pos: i };
                let Ok(raw) = r.raw_string() else { break };
                if let Some(Frame::Object { key, want_key }) = stack.last_mut()
                    && *want_key
                    && r.pos <= pos
                {
                    let text = match raw {
                        Raw::Plain(k) => String::from_utf8_lossy(k).into_owned(),
                        Raw::Escaped(k) => unescape(k).unwrap_or_default(),
                    };
                    *key = Some(text);
                    *want_key = false;
                }
                i = r.pos;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => {
                let _ = std::fmt::Write::write_fmt(&mut path, format_args!("[{index}]"));
            }
        }
    }
    path
}

// ---------------------------------------------------------------------------------------------
// A page of a paginated list, and the slim pod of a watch.
// ---------------------------------------------------------------------------------------------

/// One page of a paginated pod list (`GET /api/v1/namespaces/shop/pods?limit=500&continue=…`):
/// its pods' facts and the list metadata that says how to go on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodPage {
    /// The pods of this page, in order.
    pub items: Vec<PodFacts>,
    /// `metadata.continue`: the token that asks for the next page; `None` on the last page (the
    /// API server leaves it out or sends `""`).
    pub continue_token: Option<String>,
    /// `metadata.resourceVersion` (every page of one list carries the first page's).
    pub resource_version: Option<String>,
}

/// Parses one page of a pod list — [`pod_list_from_json`] plus the list's `metadata.continue`
/// and `metadata.resourceVersion` — so a paginated list can be read a page at a time, each
/// page's bytes dropped once decoded.
///
/// ```
/// let page = br#"{"kind":"PodList","apiVersion":"v1",
///   "metadata":{"resourceVersion":"4711","continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ","remainingItemCount":12},
///   "items":[{"metadata":{"name":"web-1"}}]}"#;
/// let page = sre_tools::k8s::facts::pod_page_from_json(page).unwrap();
/// assert_eq!(page.items[0].metadata.name, "web-1");
/// assert_eq!(page.continue_token.as_deref(), Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"));
/// assert_eq!(page.resource_version.as_deref(), Some("4711"));
/// ```
///
/// # Errors
/// As [`pod_list_from_json`]; an item that cannot be read is also named by its pod's name when
/// that can be read: `expected an integer, found a string at
/// items[3].status.containerStatuses[0].restartCount (line 1, column 1834), in pod "web-4"`.
pub fn pod_page_from_json(json: &[u8]) -> Result<PodPage, serde_json::Error> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    page(json, threads.min(8)).map_err(|fail| {
        let name = item_at(json, fail.pos).and_then(|start| name_of(json, start));
        let e = fail.into_error(json);
        match name {
            Some(name) => <serde_json::Error as serde::de::Error>::custom(format_args!(
                "{e}, in pod {name:?}"
            )),
            None => e,
        }
    })
}

fn page(json: &[u8], threads: usize) -> Parsed<PodPage> {
    let mut r = Reader::new(json);
    let mut out = PodPage::default();
    let mut pods = None;
    r.object(|r, key| match key {
        b"items" => {
            pods = Some(if r.null()? {
                Vec::new()
            } else {
                items(r, threads)?
            });
            Ok(())
        }
        b"metadata" => r.nullable(list_meta, &mut out),
        _ => r.skip(),
    })?;
    r.end()?;
    out.items = pods.ok_or(Fail {
        pos: 0,
        what: "expected a list of pods: an object with `items`".into(),
    })?;
    out.continue_token = out.continue_token.filter(|t| !t.is_empty());
    Ok(out)
}

fn list_meta(r: &mut Reader<'_>, page: &mut PodPage) -> Parsed<()> {
    r.object(|r, key| match key {
        b"continue" => {
            page.continue_token = r.opt_string()?;
            Ok(())
        }
        b"resourceVersion" => {
            page.resource_version = r.opt_string()?;
            Ok(())
        }
        _ => r.skip(),
    })
}

/// Where the item of the list's `items` that holds byte `pos` starts: a tolerant look, run only
/// when an error is reported. `None` when `pos` is outside every item.
fn item_at(json: &[u8], pos: usize) -> Option<usize> {
    let mut r = Reader::new(json);
    let mut items = None;
    // Stops (with an error that is thrown away) once at the items' value.
    let _ = r.object(|r, key| {
        if key == b"items" {
            items = Some(r.pos);
            return r.fail("");
        }
        r.skip()
    });
    let mut r = Reader {
        src: json,
        pos: items?,
    };
    if r.peek().ok()? != b'[' {
        return None;
    }
    r.pos += 1;
    loop {
        r.peek().ok()?;
        let start = r.pos;
        if start > pos {
            return None;
        }
        if r.skip().is_err() || r.pos > pos {
            return Some(start);
        }
        if r.peek().ok()? != b',' {
            return None;
        }
        r.pos += 1;
    }
}

/// The `metadata.name` of the object at `start`, when it comes before anything unreadable.
fn name_of(json: &[u8], start: usize) -> Option<String> {
    let mut r = Reader {
        src: json,
        pos: start,
    };
    let mut name = None;
    let _ = r.object(|r, key| {
        if key != b"metadata" {
            return r.skip();
        }
        r.object(|r, key| {
            if key != b"name" {
                return r.skip();
            }
            name = Some(r.string()?);
            // Found: stop reading.
            r.fail("")
        })
    });
    name
}

/// A pod as a watch stream delivers it to `serve`: the [`PodFacts`] triage reads, and the few
/// object-metadata fields kube's watcher and `ResourceExt` read — name, namespace, uid and
/// `resourceVersion`. It is the `v1` `Pod` resource for kube (`k8s_openapi::Resource` and
/// `Metadata`, hence `kube::Resource`), so an `Api<SlimPod>` lists and watches
/// `/api/v1/namespaces/{ns}/pods` — same requests, same RBAC — and decodes each object straight
/// into facts, skipping `managedFields`, annotations and the rest of the pod instead of building
/// a whole `Pod` first.
///
/// ```
/// use kube::ResourceExt as _;
/// let pod: sre_tools::k8s::facts::SlimPod = serde_json::from_str(r#"{"kind":"Pod","apiVersion":"v1",
///   "metadata":{"name":"web-1","namespace":"shop","uid":"4f6c","resourceVersion":"812",
///     "managedFields":[{"manager":"kubelet"}]},
///   "status":{"containerStatuses":[{"name":"web","restartCount":7}]}}"#).unwrap();
/// assert_eq!(pod.resource_version().as_deref(), Some("812"));
/// assert_eq!(pod.facts.metadata.name, "web-1");
/// assert_eq!(pod.facts.status.container_statuses[0].restart_count, 7);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlimPod {
    /// Only `name`, `namespace`, `uid` and `resourceVersion` are set.
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    /// What triage reads.
    pub facts: PodFacts,
}

impl k8s_openapi::Resource for SlimPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::ListableResource for SlimPod {
    const LIST_KIND: &'static str = <Pod as k8s_openapi::ListableResource>::LIST_KIND;
}

impl k8s_openapi::Metadata for SlimPod {
    type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn metadata(&self) -> &Self::Ty {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut Self::Ty {
        &mut self.metadata
    }
}

impl From<&Pod> for SlimPod {
    fn from(pod: &Pod) -> Self {
        let m = &pod.metadata;
        Self {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: m.name.clone(),
                namespace: m.namespace.clone(),
                uid: m.uid.clone(),
                resource_version: m.resource_version.clone(),
                ..Default::default()
            },
            facts: PodFacts::from(pod),
        }
    }
}

/// A pod's metadata as [`SlimPod`] reads it: [`MetaFacts`] and the watcher's fields.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SlimMeta {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    namespace: String,
    #[serde(rename = "labels", deserialize_with = "template_hash")]
    pod_template_hash: Option<String>,
    #[serde(deserialize_with = "nullable")]
    owner_references: Vec<OwnerFacts>,
    deletion_timestamp: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
}

impl<'de> Deserialize<'de> for SlimPod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Field {
            Metadata,
            Spec,
            Status,
            #[serde(other)]
            Other,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SlimPod;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a pod object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SlimPod, A::Error> {
                let mut pod = SlimPod::default();
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Metadata => {
                            let m: SlimMeta = map.next_value::<Option<_>>()?.unwrap_or_default();
                            let some = |s: &String| (!s.is_empty()).then(|| s.clone());
                            pod.metadata.name = some(&m.name);
                            pod.metadata.namespace = some(&m.namespace);
                            pod.metadata.uid = m.uid;
                            pod.metadata.resource_version = m.resource_version;
                            pod.facts.metadata = MetaFacts {
                                name: m.name,
                                namespace: m.namespace,
                                pod_template_hash: m.pod_template_hash,
                                owner_references: m.owner_references,
                                deletion_timestamp: m.deletion_timestamp,
                            };
                        }
                        Field::Spec => {
                            pod.facts.spec = map.next_value::<Option<_>>()?.unwrap_or_default();
                        }
                        Field::Status => {
                            pod.facts.status = map.next_value::<Option<_>>()?.unwrap_or_default();
                        }
                        Field::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(pod)
            }
        }
        d.deserialize_map(Visitor)
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PodPage>();
    assert_send_sync::<SlimPod>();
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The facts as the serde model reads them (the previous parser): the reference.
    fn try_by_serde(json: &[u8]) -> Option<Vec<PodFacts>> {
        #[derive(Deserialize)]
        struct List {
            items: Vec<PodFacts>,
        }
        serde_json::from_slice::<List>(json).ok().map(|l| l.items)
    }

    fn by_serde(json: &[u8]) -> Vec<PodFacts> {
        try_by_serde(json).unwrap()
    }

    const LISTS: [&str; 5] = [
        include_str!("../../tests/fixtures/k8s/podlist-crashloop-k3s.json"),
        include_str!("../../tests/fixtures/k8s/podlist-errimagepull.json"),
        include_str!("../../tests/fixtures/k8s/podlist-oomkilled-job.json"),
        include_str!("../../tests/fixtures/k8s/podlist-pending-insufficient-resources.json"),
        include_str!("../../tests/fixtures/k8s/list-two-running-pods.json"),
    ];

    fn err(json: &str) -> String {
        pod_list_from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn real_pod_lists_read_the_same_as_the_serde_model_and_the_typed_pod() {
        for list in LISTS {
            let fast = pod_list_from_json(list.as_bytes()).unwrap();
            assert!(!fast.is_empty());
            assert_eq!(fast, by_serde(list.as_bytes()));
            let value: serde_json::Value = serde_json::from_str(list).unwrap();
            let typed: Vec<Pod> = serde_json::from_value(value["items"].clone()).unwrap();
            let from_typed: Vec<PodFacts> = typed.iter().map(PodFacts::from).collect();
            assert_eq!(fast, from_typed);
        }
        let crash = &pod_list_from_json(LISTS[0].as_bytes()).unwrap()[0];
        assert_eq!(crash.metadata.name, "crash-loop-app-67586446fc-2w49s");
        assert_eq!(
            crash.metadata.pod_template_hash.as_deref(),
            Some("67586446fc")
        );
        let cs = &crash.status.container_statuses[0];
        assert_eq!(cs.restart_count, 22);
        assert_eq!(cs.last_state.terminated.as_ref().unwrap().exit_code, 1);
    }

    #[test]
    fn one_pod_reads_like_the_typed_pod() {
        let pod = include_str!("../../tests/fixtures/k8s/pod-running-healthy.json");
        let typed: Pod = serde_json::from_str(pod).unwrap();
        assert_eq!(
            PodFacts::from_json(pod.as_bytes()).unwrap(),
            PodFacts::from(&typed)
        );
        assert!(PodFacts::from_json(b"[]").is_err());
    }

    #[test]
    fn pretty_printed_escaped_and_null_fields_read_as_serde_does() {
        let list = r#"{
          "items": [
            {
              "metadata": {"n\u0061me": "caf\u00e9-\ud83d\ude80", "namespace": null,
                           "labels": null, "ownerReferences": null, "managedFields": [{"f:x": {}}]},
              "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": 1073741824}}}],
                       "initContainers": null},
              "status": {"phase": "Running", "conditions": null, "containerStatuses": [
                {"name": "app", "image": "a\/b:1", "ready": true, "restartCount": 0,
                 "state": {"running": {"startedAt": null}}, "lastState": null}]}
            },
            {}
          ]
        }"#;
        let pods = pod_list_from_json(list.as_bytes()).unwrap();
        assert_eq!(pods, by_serde(list.as_bytes()));
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0].metadata.name, "café-🚀");
        assert_eq!(pods[0].metadata.namespace, "");
        assert_eq!(
            pods[0].spec.containers[0].memory_limit.as_deref(),
            Some("1073741824")
        );
        assert_eq!(pods[0].status.container_statuses[0].image, "a/b:1");
        assert_eq!(
            pods[0].status.container_statuses[0].state.running,
            Some(RunningFacts { started_at: None })
        );
        assert_eq!(pods[1], PodFacts::default());
        assert_eq!(pod_list_from_json(br#"{"items":null}"#).unwrap(), vec![]);
        assert_eq!(
            pod_list_from_json(br#" {"kind":"PodList","items":[]} "#).unwrap(),
            vec![]
        );
    }

    #[test]
    fn a_wrong_type_is_named_with_its_path_line_and_column() {
        let bad = r#"{"items":[{},{"status":{"containerStatuses":[{"name":"a"},{"restartCount":"7"}]}}]}"#;
        let e = err(bad);
        let column = bad.find(r#""7""#).unwrap() + 1;
        assert_eq!(
            e,
            format!(
                "expected an integer, found a string at items[1].status.containerStatuses[1].restartCount (line 1, column {column})"
            )
        );
        let e = err("{\n  \"items\": [\n    {\"metadata\": {\"name\": 42}}\n  ]\n}");
        assert_eq!(
            e,
            "expected a string, found a number at items[0].metadata.name (line 3, column 27)"
        );
        assert!(
            err(r#"{"items":[{"status":{"containerStatuses":[{"restartCount":3000000000}]}}]}"#)
                .starts_with("integer out of range for a 32-bit integer at items[0].status.containerStatuses[0].restartCount")
        );
        assert!(
            err(r#"{"items":[{"status":{"containerStatuses":[{"ready":"yes"}]}}]}"#).starts_with(
                "expected a boolean, found a string at items[0].status.containerStatuses[0].ready"
            )
        );
        assert!(
            err(r#"{"items":{}}"#)
                .starts_with("expected an array, found an object at items (line 1, column 10)"),
            "{}",
            err(r#"{"items":{}}"#)
        );
    }

    #[test]
    fn broken_json_in_skipped_parts_is_still_an_error_with_its_path() {
        // A bracket missing in `managedFields`: its skip ends one bracket late.
        let e = err(r#"{"items":[{"metadata":{"managedFields":[{"f:spec":{}]}}]}"#);
        assert!(
            e.starts_with("expected `,` or `}`, found an invalid character at items[0]"),
            "{e}"
        );
        let e = err(r#"{"items":[{"metadata":{"managedFields":[{"f:spec":{}}"#);
        assert!(
            e.starts_with("unexpected end of input at items[0].metadata.managedFields"),
            "{e}"
        );
        let e = err(r#"{"items":[{"metadata":{"annotations":{"a":"unterminated}}]}"#);
        assert!(
            e.starts_with("unterminated string at items[0].metadata.annotations"),
            "{e}"
        );
        assert!(
            err(r#"{"items":[null]}"#).starts_with("expected an object, found null at items[0]")
        );
        let e = err("{\"items\":[{\"metadata\":{\"annotations\":{\"a\":\"x\ny\"}}}]}");
        assert!(
            e.starts_with("control character in a string at items[0].metadata.annotations.a"),
            "{e}"
        );
        assert!(err(r#"{"items":[{"spec":{"x":tru}}]}"#).starts_with("invalid literal"));
        assert!(err(r#"{"items":[{"spec":{"x":01}}]}"#).starts_with("invalid number"));
        assert!(err(r#"{"items":[]} x"#).starts_with("trailing characters"));
        assert!(err(r#"{"items":[{"metadata":{"name":"a\qb"}}]}"#).starts_with("invalid escape"));
        assert!(
            err(r#"{"items":[{"metadata":{"name":"\ud800"}}]}"#).starts_with("unpaired surrogate")
        );
        assert_eq!(
            err(r#"{"kind":"Pod","metadata":{}}"#),
            "expected a list of pods: an object with `items` (line 1, column 1)"
        );
        let deep = format!(
            r#"{{"items":[{{"spec":{{"x":{}{}}}}}]}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(err(&deep).starts_with("nesting too deep"), "{}", err(&deep));
    }

    #[test]
    fn invalid_utf8_in_a_field_read_is_an_error() {
        let mut bad = br#"{"items":[{"metadata":{"name":"ab"}}]}"#.to_vec();
        let at = bad.iter().position(|&b| b == b'b').unwrap();
        bad[at] = 0xff;
        let e = pod_list_from_json(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid UTF-8 in a string at items[0].metadata.name"),
            "{e}"
        );
    }

    /// A list of `n` copies of the crash-loop pod, each named `pod-<i>`, with `extra` spliced
    /// into each pod's spec.
    fn big_list(n: usize, extra: &str) -> String {
        use std::fmt::Write as _;
        let value: serde_json::Value = serde_json::from_str(LISTS[0]).unwrap();
        let pod = serde_json::to_string(&value["items"][0]).unwrap();
        let (head, tail) = pod.split_once(r#""spec":{"#).unwrap();
        let mut out = String::from(r#"{"kind":"PodList","items":["#);
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            let head = head.replace("crash-loop-app-67586446fc-2w49s", &format!("pod-{i}"));
            let _ = write!(out, r#"{head}"spec":{{{extra}{tail}"#);
        }
        out.push_str("]}");
        out
    }

    #[test]
    fn a_large_list_decoded_on_several_threads_keeps_every_pod_in_order() {
        let json = big_list(400, "");
        assert!(json.len() > 2 * SPLIT_MIN_BYTES);
        let expected = by_serde(json.as_bytes());
        for threads in [1, 2, 3, 8] {
            let pods = list(json.as_bytes(), threads).unwrap();
            assert_eq!(pods, expected, "{threads} threads");
        }
        assert_eq!(expected[399].metadata.name, "pod-399");
    }

    #[test]
    fn a_nested_object_that_looks_like_an_item_does_not_split_the_list() {
        // Every pod's spec holds objects that open like an item (`},{"apiVersion":`, the first
        // key of these pods): wherever the guesses land, decoys or items, the result is the same.
        let decoys = r#""volumes":[{"name":"a"},{"apiVersion":"decoy"},{"apiVersion":{}},{"apiVersion":[1]}],"#;
        let json = big_list(300, decoys);
        let expected = by_serde(json.as_bytes());
        assert_eq!(expected.len(), 300);
        let open = json.find('[').unwrap();
        let (mut decoy_guesses, mut item_guesses) = (0, 0);
        for threads in 2..=16 {
            assert_eq!(list(json.as_bytes(), threads).unwrap(), expected);
            for start in split_points(json.as_bytes(), open, threads) {
                if json[start..].starts_with(r#"{"apiVersion":"v1","kind":"Pod""#) {
                    item_guesses += 1;
                } else {
                    decoy_guesses += 1;
                }
            }
        }
        assert!(
            decoy_guesses > 0 && item_guesses > 0,
            "{decoy_guesses} {item_guesses}"
        );
    }

    #[test]
    fn an_error_in_the_part_another_thread_read_names_its_item() {
        let mut json = big_list(300, "");
        let at = json.rfind(r#""restartCount":22"#).unwrap();
        json.replace_range(at..at + 17, r#""restartCount":"x""#);
        for threads in [1, 2, 4] {
            let e = list(json.as_bytes(), threads)
                .map_err(|e| e.into_error(json.as_bytes()))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(
                    "expected an integer, found a string at items[299].status.containerStatuses[0].restartCount"
                ),
                "{threads} threads: {e}"
            );
        }
    }

    /// Wraps `value` where a skipped field goes and checks the reader resumes right after it.
    fn skips_exactly(value: &str) {
        let json =
            format!(r#"{{"items":[{{"metadata":{{"managedFields":{value},"name":"after"}}}}]}}"#);
        let pods = pod_list_from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e} in {json}"));
        assert_eq!(pods[0].metadata.name, "after", "{json}");
    }

    #[test]
    fn skipping_is_exact_at_every_block_boundary() {
        // Strings with escapes, backslash runs, quotes and brackets, shifted across the
        // 64-byte blocks of the skipper one byte at a time.
        let tricky = [
            r#""a\"b""#,
            r#""\\""#,
            r#""\\\"""#,
            r#""\\\\\\\\""#,
            r#""]}[{""#,
            r#""\u005c\u0022""#,
            r#""k:{\"name\":\"app\"}""#,
            r#""é🚀""#,
        ];
        for pad in 0..140 {
            let padding = " ".repeat(pad);
            for t in tricky {
                skips_exactly(&format!("[{padding}{t},{{{t}:[{t}]}}]"));
                skips_exactly(&format!(r#"{{"x":"{}","y":{t}}}"#, "ab".repeat(pad)));
            }
        }
        // Deep but allowed nesting, and long runs of brackets inside a string.
        skips_exactly(&format!("{}{}", "[".repeat(120), "]".repeat(120)));
        skips_exactly(&format!(r#"["{}"]"#, "[{".repeat(200)));
    }

    #[test]
    fn every_truncation_and_byte_flip_of_a_real_list_fails_cleanly() {
        let list = LISTS[0].as_bytes();
        // Compact, so that most cuts land inside a value.
        let compact =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(list).unwrap())
                .unwrap();
        for cut in 0..compact.len() {
            assert!(
                pod_list_from_json(&compact[..cut]).is_err(),
                "a list cut at byte {cut} parsed"
            );
        }
        // Flips never panic, and whenever both parsers accept the bytes they read the same facts.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..3000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = compact.clone();
            let at = usize::try_from(seed % bytes.len() as u64).unwrap();
            bytes[at] = b"{}[]\",:\\0a-n"[usize::try_from((seed >> 32) % 12).unwrap()];
            let fast = pod_list_from_json(&bytes);
            if let (Ok(fast), Some(slow)) = (fast, try_by_serde(&bytes)) {
                assert_eq!(fast, slow, "byte {at} flipped");
            }
        }
    }

    #[test]
    fn a_page_reads_its_items_continue_token_and_resource_version() {
        for list in LISTS {
            let page = pod_page_from_json(list.as_bytes()).unwrap();
            assert_eq!(page.items, pod_list_from_json(list.as_bytes()).unwrap());
            assert_eq!(page.continue_token, None);
        }
        let page = pod_page_from_json(
            br#"{"kind":"PodList","apiVersion":"v1","metadata":{"selfLink":"","resourceVersion":"4711",
                "continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ","remainingItemCount":1200},"items":[{},{}]}"#,
        )
        .unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            page.continue_token.as_deref(),
            Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ")
        );
        assert_eq!(page.resource_version.as_deref(), Some("4711"));
        // The last page: no token, an empty one, or null metadata.
        for last in [
            &br#"{"metadata":{"resourceVersion":"9"},"items":[]}"#[..],
            br#"{"metadata":{"continue":""},"items":[]}"#,
            br#"{"metadata":{"continue":null},"items":null}"#,
            br#"{"metadata":null,"items":[]}"#,
            br#"{"items":[]}"#,
        ] {
            assert_eq!(pod_page_from_json(last).unwrap().continue_token, None);
        }
        let e = pod_page_from_json(br#"{"metadata":{"continue":7},"items":[]}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("expected a string, found a number at metadata.continue"),
            "{e}"
        );
        assert!(pod_page_from_json(br#"{"metadata":{}}"#).is_err());
    }

    #[test]
    fn an_unreadable_item_of_a_page_is_named_by_its_pod() {
        let page = |items: &str| format!(r#"{{"metadata":{{"continue":"x"}},"items":[{items}]}}"#);
        let e = pod_page_from_json(
            page(r#"{"metadata":{"name":"web-1"}},
                {"metadata":{"name":"web-2","namespace":"shop"},"status":{"containerStatuses":[{"restartCount":"7"}]}}"#)
                .as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "expected an integer, found a string at items[1].status.containerStatuses[0].restartCount (line 2, column"
            ) && e.ends_with(r#"), in pod "web-2""#),
            "{e}"
        );
        // Broken JSON inside the item, before its name: named by its index only.
        let e = pod_page_from_json(
            page("{},{\"spec\":{\"x\":\"a\u{1}b\"},\"metadata\":{\"name\":\"web-2\"}}").as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("items[1].spec.x") && !e.contains("in pod"),
            "{e}"
        );
        // A name with control characters is quoted, not printed raw.
        let e = pod_page_from_json(
            page(r#"{"metadata":{"name":"evil\u001b[2J"},"status":{"phase":1}}"#).as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.ends_with(r#"in pod "evil\u{1b}[2J""#), "{e}");
        // A truncated page names the last item it reached.
        let whole =
            page(r#"{"metadata":{"name":"web-1"}},{"metadata":{"name":"web-2"},"spec":{}}"#);
        let e = pod_page_from_json(&whole.as_bytes()[..whole.len() - 8])
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(r#"in pod "web-2""#), "{e}");
        // An error outside every item names no pod.
        let e = pod_page_from_json(br#"{"metadata":[],"items":[{"metadata":{"name":"a"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("in pod"), "{e}");
    }

    #[test]
    fn slim_pods_read_like_the_facts_of_real_pods() {
        for list in LISTS {
            let value: serde_json::Value = serde_json::from_str(list).unwrap();
            for item in value["items"].as_array().unwrap() {
                let bytes = serde_json::to_vec(item).unwrap();
                let slim: SlimPod = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(slim.facts, PodFacts::from_json(&bytes).unwrap());
                let typed: Pod = serde_json::from_value(item.clone()).unwrap();
                assert_eq!(slim, SlimPod::from(&typed));
                let m = &slim.metadata;
                assert_eq!(m.name, typed.metadata.name);
                assert_eq!(m.namespace, typed.metadata.namespace);
                assert_eq!(m.uid, typed.metadata.uid);
                assert_eq!(m.resource_version, typed.metadata.resource_version);
                assert!(m.labels.is_none() && m.managed_fields.is_none());
            }
        }
        // A list and a watch event decode through kube's own types.
        let list: kube::core::ObjectList<SlimPod> = serde_json::from_str(LISTS[0]).unwrap();
        assert_eq!(list.items.len(), 2);
        let event: kube::core::WatchEvent<SlimPod> = serde_json::from_str(&format!(
            r#"{{"type":"MODIFIED","object":{}}}"#,
            include_str!("../../tests/fixtures/k8s/pod-running-healthy.json")
        ))
        .unwrap();
        assert!(
            matches!(event, kube::core::WatchEvent::Modified(p) if p.facts.status.phase.as_deref() == Some("Running"))
        );
        let null: SlimPod =
            serde_json::from_str(r#"{"metadata":null,"spec":null,"status":null}"#).unwrap();
        assert_eq!(null, SlimPod::default());
        assert!(serde_json::from_str::<SlimPod>("[]").is_err());
        let e = serde_json::from_str::<SlimPod>(
            r#"{"status":{"containerStatuses":[{"restartCount":"x"}]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("expected i32"), "{e}");
    }

    #[test]
    fn a_slim_pod_is_the_v1_pod_resource_for_kube() {
        use kube::Resource as _;
        assert_eq!(
            SlimPod::url_path(&(), Some("shop")),
            "/api/v1/namespaces/shop/pods"
        );
        assert_eq!(SlimPod::url_path(&(), None), "/api/v1/pods");
        assert_eq!(
            (SlimPod::kind(&()), SlimPod::api_version(&())),
            ("Pod".into(), "v1".into())
        );
        let mut pod = SlimPod::default();
        pod.meta_mut().resource_version = Some("12".into());
        assert_eq!(pod.meta().resource_version.as_deref(), Some("12"));
    }
}
