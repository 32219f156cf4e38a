//! The security side of an image patch: before approval, pin the new image to the digest the
//! registry serves and scan the running and the candidate image for the approver
//! ([`plan_patch`]); after the rollout, scan the digest the pods *run* and check it against what
//! was approved ([`verify_patch`]). A rollback changes images too: its plan scans what runs and
//! what the revision it returns to runs ([`plan_rollback`]), so a rollback to a release with
//! CRITICALs the current one fixed carries the evidence that vetoes it.
//!
//! Only pods of the deployment's own newest ReplicaSet count (owner references checked by uid, not
//! labels: a pod anyone planted with matching labels cannot speak for the deployment).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use sre_core::evidence::{ImageScan, ScanSource, SecurityCheck, Severities, VulnerabilityEvidence};

use super::read::revisions;
use super::{Inner, Security};
use crate::trivy::evidence::{check, compare, image_scan};
use crate::trivy::registry::ImageRef;

/// What the plan of an image patch gets from the scanner and the registry.
pub(crate) struct PatchSecurity {
    /// The image to apply: `image` pinned as `image@sha256:…` when the registry gave its digest.
    pub(crate) image: String,
    /// The scans of the running and the candidate image.
    pub(crate) evidence: Option<VulnerabilityEvidence>,
    /// Why something is missing (no digest, a scan failed), for the plan's summary.
    pub(crate) notes: Vec<String>,
}

fn source(sec: &Security) -> ScanSource {
    if sec.scanner.simulated() {
        ScanSource::Simulated
    } else {
        ScanSource::TrivyCli
    }
}

/// Pins `image` and gathers the evidence for patching `container` of `dep` from `old` to it.
/// Best effort: a registry or scanner failure leaves the image as given and the evidence out,
/// and says so in `notes` (the approver sees it; nothing is blocked).
pub(crate) async fn plan_patch(
    inner: &Inner,
    sec: &Security,
    dep: &Deployment,
    container: &str,
    old: &str,
    image: &str,
) -> PatchSecurity {
    let mut notes = Vec::new();
    let mut pinned = image.to_owned();
    match ImageRef::parse(image) {
        Ok(r) if r.digest.is_some() => {}
        Ok(r) => match sec.tags.digest(&r).await {
            Ok(Some(d)) => pinned = format!("{image}@{d}"),
            Ok(None) => notes.push("the registry gave no digest: patching by tag".into()),
            Err(e) => notes.push(format!(
                "no digest from the registry ({e}): patching by tag"
            )),
        },
        Err(e) => notes.push(format!("cannot resolve {image}: {e}")),
    }
    let running = running_images(inner, dep, container, None)
        .await
        .ok()
        .and_then(|ids| most_common(&ids));
    let current_ref = running.clone().unwrap_or_else(|| old.to_owned());
    let current = sec.scanner.scan(&current_ref).await;
    let candidate = sec.scanner.scan(&pinned).await;
    let evidence = match (current, candidate) {
        (Ok(cur), Ok(cand)) => {
            let digest_of = |r: &str| r.rsplit_once('@').map(|(_, d)| d.to_owned());
            let cur = image_scan(
                &cur,
                old,
                running.as_deref().and_then(digest_of),
                source(sec),
            );
            let cand = image_scan(&cand, image, digest_of(&pinned), source(sec));
            Some(compare(container, cur, cand))
        }
        (Err(e), _) => {
            notes.push(format!("the running image was not scanned: {e}"));
            None
        }
        (_, Err(e)) => {
            notes.push(format!("the candidate image was not scanned: {e}"));
            None
        }
    };
    PatchSecurity {
        image: pinned,
        evidence,
        notes,
    }
}

/// The scans for a rollback to `target` (the ReplicaSet of the revision it returns to), one per
/// container whose image changes, as for a patch: what runs now (by the digest the newest
/// revision's pods report, else the image its template names) against what the target revision
/// runs (by the digest its own pods report while it still has some, else its template's image).
/// `changes` are `(container, image now, image after)`. Of several containers, the evidence kept
/// is the first whose candidate brings in a CRITICAL/HIGH finding (what an unattended approval
/// must see), else the first scanned. A scan that cannot be made is a note, as for a patch.
pub(crate) async fn plan_rollback(
    inner: &Inner,
    sec: &Security,
    dep: &Deployment,
    target: &ReplicaSet,
    changes: &[(String, String, String)],
) -> RollbackSecurity {
    let ns = dep.metadata.namespace.clone().unwrap_or_default();
    let mut notes = Vec::new();
    let mut kept: Option<VulnerabilityEvidence> = None;
    for (container, old, image) in changes {
        // Only pods whose spec asks for the template's image speak for it, and only a digest of
        // that image's repository: a pod planted with the set's owner reference running other
        // content cannot choose what is scanned.
        let of_repository = |wanted: &str, ids: BTreeMap<String, usize>| {
            let repo = sre_core::image::ImageRef::parse(wanted)
                .map(|r| r.repository())
                .ok();
            let ids: BTreeMap<String, usize> = ids
                .into_iter()
                .filter(|(r, _)| {
                    repo.is_some()
                        && sre_core::image::ImageRef::parse(r)
                            .ok()
                            .map(|r| r.repository())
                            == repo
                })
                .collect();
            most_common(&ids)
        };
        let running = running_images(inner, dep, container, Some(old))
            .await
            .ok()
            .and_then(|ids| of_repository(old, ids));
        let target_runs = images_run_by(inner, &ns, target, container, Some(image))
            .await
            .ok()
            .and_then(|ids| of_repository(image, ids));
        let current_ref = running.clone().unwrap_or_else(|| old.clone());
        let candidate_ref = target_runs.clone().unwrap_or_else(|| image.clone());
        let (current, candidate) = futures::join!(
            sec.scanner.scan(&current_ref),
            sec.scanner.scan(&candidate_ref)
        );
        let digest_of = |r: &str| r.rsplit_once('@').map(|(_, d)| d.to_owned());
        let cand = match candidate {
            Ok(cand) => image_scan(
                &cand,
                image,
                target_runs
                    .as_deref()
                    .and_then(digest_of)
                    .or_else(|| digest_of(image)),
                source(sec),
            ),
            // As for a patch, a scanner that cannot scan (none installed, a registry down)
            // blocks nothing: the approver sees why there is no scan. The revision ran here
            // before; a scan that is made can veto it.
            Err(e) => {
                notes.push(format!(
                    "container {container}: the image it returns to ({image}) was not scanned: {e}"
                ));
                continue;
            }
        };
        // What runs now may not be scannable (an image that cannot be pulled is a reason to
        // roll back): then every CRITICAL/HIGH of the image it returns to counts as brought in.
        let cur = match current {
            Ok(cur) => image_scan(
                &cur,
                old,
                running.as_deref().and_then(digest_of),
                source(sec),
            ),
            Err(e) => {
                notes.push(format!(
                    "container {container}: the running image was not scanned ({e}): every CRITICAL/HIGH finding of the image it returns to counts as new"
                ));
                ImageScan {
                    image: old.clone(),
                    digest: None,
                    counts: Severities::default(),
                    findings: Vec::new(),
                    source: source(sec),
                }
            }
        };
        let evidence = compare(container, cur, cand);
        let introduces = !evidence.introduces.is_empty();
        if kept.is_none() || introduces {
            kept = Some(evidence);
        }
        if introduces {
            break;
        }
    }
    RollbackSecurity {
        evidence: kept,
        notes,
    }
}

/// What the plan of a rollback gets from the scanner ([`plan_rollback`]).
pub(crate) struct RollbackSecurity {
    /// The scan of what runs now against what the revision it returns to runs.
    pub(crate) evidence: Option<VulnerabilityEvidence>,
    /// What the approver should know (a side compared against nothing).
    pub(crate) notes: Vec<String>,
}

/// Scans what the deployment's newest ReplicaSet runs in `evidence.container` (by the digest its
/// pods report) and checks it against the approved evidence. `Err`: nothing could be checked.
pub(crate) async fn verify_patch(
    inner: &Inner,
    sec: &Security,
    dep: &Deployment,
    applied: &str,
    evidence: &VulnerabilityEvidence,
) -> Result<SecurityCheck, String> {
    let ids = running_images(inner, dep, &evidence.container, Some(applied)).await?;
    if ids.is_empty() {
        return Err(format!(
            "no running pod of the new revision reports the image digest of container {}",
            evidence.container
        ));
    }
    // The image that ran before, scanned afresh too: a finding disclosed since the approval that
    // it has as well does not count against the patch. Best effort.
    let old_ref = match (
        &evidence.current.digest,
        ImageRef::parse(&evidence.current.image),
    ) {
        (Some(d), Ok(r)) => format!("{}@{d}", r.name),
        _ => evidence.current.image.clone(),
    };
    let old_now = match sec.scanner.scan_fresh(&old_ref).await {
        Ok(report) => Some(image_scan(&report, &old_ref, None, source(sec))),
        Err(e) => {
            tracing::debug!(image = %old_ref, error = %e, "the old image was not re-scanned");
            None
        }
    };
    let mut worst: Option<SecurityCheck> = None;
    for running in ids.keys() {
        let report = sec
            .scanner
            .scan_fresh(running)
            .await
            .map_err(|e| format!("the re-scan of {running} failed: {e}"))?;
        let digest = running.rsplit_once('@').map(|(_, d)| d.to_owned());
        let fresh = image_scan(&report, running, digest, source(sec));
        let c = check(evidence, running, &fresh, old_now.as_ref());
        let replace = worst.as_ref().is_none_or(|w| w.passed && !c.passed);
        if replace {
            worst = Some(c);
        }
    }
    worst.ok_or_else(|| "nothing was scanned".into())
}

fn most_common(ids: &BTreeMap<String, usize>) -> Option<String> {
    ids.iter().max_by_key(|(_, n)| **n).map(|(i, _)| i.clone())
}

/// The references (`repo@sha256:…`) that the running pods of `dep`'s newest ReplicaSet report
/// for `container`, with how many pods run each. With `spec_image`, only pods whose spec asks
/// for that image count (the new revision after a patch).
async fn running_images(
    inner: &Inner,
    dep: &Deployment,
    container: &str,
    spec_image: Option<&str>,
) -> Result<BTreeMap<String, usize>, String> {
    let ns = dep.metadata.namespace.clone().unwrap_or_default();
    let sets = revisions(inner, dep).await.map_err(|e| e.to_string())?;
    let Some(rs) = sets.values().next_back() else {
        return Ok(BTreeMap::new());
    };
    images_run_by(inner, &ns, rs, container, spec_image).await
}

/// The references (`repo@sha256:…`) that the running pods of ReplicaSet `rs` report for
/// `container`, with how many pods run each; with `spec_image`, only pods whose spec asks for it.
async fn images_run_by(
    inner: &Inner,
    ns: &str,
    rs: &ReplicaSet,
    container: &str,
    spec_image: Option<&str>,
) -> Result<BTreeMap<String, usize>, String> {
    let pods = pods_of(inner, ns, [rs]).await.map_err(|e| {
        format!(
            "pods of replicaset {ns}/{}: {e}",
            rs.metadata.name.as_deref().unwrap_or_default()
        )
    })?;
    let mut out = BTreeMap::new();
    // Terminating pods are on their way out (and a pod that ignores SIGTERM can linger there).
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let asked = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .find(|c| c.name == container)
            .and_then(|c| c.image.as_deref());
        if spec_image.is_some_and(|want| asked != Some(want)) {
            continue;
        }
        let Some(status) = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .find(|s| {
                s.name == container && s.state.as_ref().is_some_and(|st| st.running.is_some())
            })
        else {
            continue;
        };
        if let Some(r) = running_ref(&status.image_id) {
            *out.entry(r).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// How many pages of pods [`pods_of`] reads per ReplicaSet at most.
const MAX_PAGES: usize = 20;

/// The pods each of `sets` controls (controller owner reference by uid — a pod anyone planted
/// with the right labels and name is not one of them), listed by the ReplicaSet's own selector
/// (with its `pod-template-hash`), page by page (`limit`/`continue`), so that pods carrying the
/// labels cannot push the real ones off the first page. At most `max_pods_listed` per set.
pub(crate) async fn pods_of<'a>(
    inner: &Inner,
    ns: &str,
    sets: impl IntoIterator<Item = &'a ReplicaSet>,
) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), ns);
    let max = inner.limits.max_pods_listed.max(1);
    let mut out = Vec::new();
    for rs in sets {
        let Some(uid) = rs.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
            continue;
        };
        let selector = rs
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        if selector.is_empty() {
            continue;
        }
        let mut token: Option<String> = None;
        let mut kept = 0;
        for _ in 0..MAX_PAGES {
            let mut lp = ListParams::default()
                .labels(&selector)
                .limit(u32::try_from(max).unwrap_or(u32::MAX));
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = api.list(&lp).await?;
            for pod in page.items {
                if kept < max && owned_by(&pod, uid) {
                    kept += 1;
                    out.push(pod);
                }
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() || kept >= max {
                break;
            }
        }
    }
    Ok(out)
}

fn owned_by(pod: &Pod, rs_uid: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == rs_uid)
}

/// A scannable reference for what a container runs, from its status' `imageID`:
/// `docker.io/library/nginx@sha256:…` as it is (a `docker-pullable://` prefix removed); a bare
/// `sha256:…` (some runtimes report the config digest) is not a registry digest, so `None`.
pub(crate) fn running_ref(image_id: &str) -> Option<String> {
    let id = image_id
        .strip_prefix("docker-pullable://")
        .unwrap_or(image_id);
    let (repo, digest) = id.rsplit_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    (!repo.is_empty()
        && hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::running_ref;

    #[test]
    fn image_ids_are_scannable_only_as_repo_digests() {
        let d = "a".repeat(64);
        assert_eq!(
            running_ref(&format!("docker.io/library/nginx@sha256:{d}")).as_deref(),
            Some(format!("docker.io/library/nginx@sha256:{d}").as_str())
        );
        assert_eq!(
            running_ref(&format!("docker-pullable://nginx@sha256:{d}")).as_deref(),
            Some(format!("nginx@sha256:{d}").as_str())
        );
        assert_eq!(running_ref(&format!("sha256:{d}")), None);
        assert_eq!(running_ref(""), None);
        assert_eq!(running_ref("nginx@sha256:ABC"), None);
        assert_eq!(
            running_ref(&format!("nginx@sha256:{}", "A".repeat(64))),
            None
        );
    }
}
