//! Reading the tools' compact outputs back. The formats are this crate's own (see
//! `k8s::analyze::Triage::render`, the deployment, report and recommendation renderers), and the
//! tests here pin them, so a change to a renderer that would blind the playbook fails a test.

/// A workload of a triage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Workload {
    pub(crate) namespace: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) findings: Vec<Finding>,
}

/// A finding line of a triage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) kind: String,
    pub(crate) container: Option<String>,
    pub(crate) image: Option<String>,
    pub(crate) pods: Vec<String>,
    pub(crate) memory_limit: Option<String>,
    pub(crate) message: String,
}

impl Workload {
    /// The workload with the finding that decides the runbook first: an OOM kill explains a crash
    /// loop, and a scheduling or pull problem comes before anything the container does.
    pub(crate) fn primary_first(&self) -> Self {
        const ORDER: [&str; 5] = [
            "OOMKilled",
            "Unschedulable",
            "ImagePull",
            "CreateContainerConfigError",
            "CrashLoopBackOff",
        ];
        let rank = |f: &Finding| {
            ORDER
                .iter()
                .position(|k| *k == f.kind)
                .unwrap_or(ORDER.len())
        };
        let mut w = self.clone();
        w.findings.sort_by_key(rank);
        w
    }
}

fn capitalized_kind(lower: &str) -> String {
    match lower {
        "deployment" => "Deployment".into(),
        "replicaset" => "ReplicaSet".into(),
        "statefulset" => "StatefulSet".into(),
        "daemonset" => "DaemonSet".into(),
        "job" => "Job".into(),
        "pod" => "Pod".into(),
        other => other.to_owned(),
    }
}

fn parse_finding(line: &str) -> Finding {
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    let mut f = Finding {
        kind: kind.trim_end_matches(':').to_owned(),
        container: None,
        image: None,
        pods: Vec::new(),
        memory_limit: None,
        message: String::new(),
    };
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix("container ") {
        let (name, after) = r.split_once(' ').unwrap_or((r, ""));
        f.container = Some(name.trim_end_matches(':').to_owned());
        rest = after;
    }
    if let Some(r) = rest.strip_prefix('(')
        && let Some(end) = r.find(')')
    {
        f.image = Some(r[..end].to_owned());
        rest = &r[end + 1..];
    }
    let (body, pods) = match rest.rfind("; pods ") {
        Some(i) => (&rest[..i], &rest[i + 7..]),
        None => (rest, ""),
    };
    f.pods = pods
        .split(" +")
        .next()
        .unwrap_or_default()
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(i) = body.find("memory limit ") {
        let limit: String = body[i + 13..]
            .chars()
            .take_while(|c| !matches!(c, ',' | ' ' | ';'))
            .collect();
        if limit != "none" {
            f.memory_limit = Some(limit);
        }
    }
    let body = format!(" {}", body.trim_start());
    f.message = body.split_once(" — ").map_or_else(
        || body.trim_start_matches([' ', ':']).trim().to_owned(),
        |(_, m)| m.to_owned(),
    );
    f
}

/// The workloads of `k8s_find_unhealthy`'s output.
pub(crate) fn parse_triage(text: &str) -> Vec<Workload> {
    let mut out: Vec<Workload> = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("  - ") {
            if let Some(w) = out.last_mut() {
                w.findings.push(parse_finding(f));
            }
            continue;
        }
        // "<ns>/<kind> <name>: u/t pods unhealthy"
        let Some((head, _)) = line.split_once(": ") else {
            continue;
        };
        if !line.ends_with("pods unhealthy") {
            continue;
        }
        let Some((ns_kind, name)) = head.split_once(' ') else {
            continue;
        };
        let Some((ns, kind)) = ns_kind.split_once('/') else {
            continue;
        };
        out.push(Workload {
            namespace: ns.to_owned(),
            kind: capitalized_kind(kind),
            name: name.to_owned(),
            findings: Vec::new(),
        });
    }
    out
}

/// A revision line of `k8s_get_deployment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revision {
    pub(crate) number: u64,
    pub(crate) current: bool,
    pub(crate) images: String,
}

/// The revisions of `k8s_get_deployment`'s output, newest first.
pub(crate) fn deployment_revisions(text: &str) -> Vec<Revision> {
    text.lines()
        .skip_while(|l| !l.starts_with("revisions"))
        .skip(1)
        .filter_map(|l| {
            let l = l.trim();
            let (head, rest) = l.split_once(": ")?;
            let current = head.ends_with("(current)");
            let number = head.split_whitespace().next()?.parse().ok()?;
            let images = rest.rsplit_once(" (").map_or(rest, |(i, _)| i).to_owned();
            Some(Revision {
                number,
                current,
                images,
            })
        })
        .collect()
}

/// The `container=image` pairs of `k8s_get_deployment`'s `images:` line.
pub(crate) fn deployment_images(text: &str) -> Vec<(String, String)> {
    text.lines()
        .find_map(|l| l.strip_prefix("images: "))
        .map(|l| {
            l.split(", ")
                .filter_map(|p| p.split_once('=').map(|(c, i)| (c.to_owned(), i.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A workload line of `trivy_vulnerability_reports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportLine {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) container: String,
    pub(crate) image: String,
    pub(crate) critical: u64,
}

/// The workload lines of `trivy_vulnerability_reports`' output.
pub(crate) fn parse_vulnerability_reports(text: &str) -> Vec<ReportLine> {
    text.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| {
            // "<ns>/<kind> <name> container <c> (<image>): N CRITICAL, ..."
            let (head, counts) = l.split_once("): ")?;
            let (left, image) = head.split_once(" (")?;
            let mut parts = left.split_whitespace();
            let kind = parts.next()?.split_once('/')?.1;
            let name = parts.next()?;
            let container = if parts.next()? == "container" {
                parts.next()?
            } else {
                return None;
            };
            let critical = counts.split(" CRITICAL").next()?.trim().parse().ok()?;
            Some(ReportLine {
                kind: capitalized_kind(kind),
                name: name.to_owned(),
                container: container.to_owned(),
                image: image.to_owned(),
                critical,
            })
        })
        .collect()
}

/// The image of `image_recommend`'s `RECOMMENDED` line.
pub(crate) fn recommended_image(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("RECOMMENDED "))
        .and_then(|l| l.split_once(": ").map(|(i, _)| i.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triage_lines() {
        let text = "2 unhealthy workload(s) (5 pods, 2 deployments checked):\n\
            shop/deployment web: 1/3 pods unhealthy\n\
            \x20 - CrashLoopBackOff container web (ghcr.io/acme/shop-web:1.5.0): last exit 1 (Error), 7 restarts; pods web-abc-1, web-abc-2 +3 more\n\
            \x20 - ProgressDeadlineExceeded — ReplicaSet \"web-abc\" has timed out progressing.\n\
            jobs/deployment worker: 1/1 pods unhealthy\n\
            \x20 - OOMKilled container worker (ghcr.io/acme/worker:3.1.0): exit 137, memory limit 128Mi, 6 restarts; pods worker-x";
        let w = parse_triage(text);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (
                w[0].namespace.as_str(),
                w[0].kind.as_str(),
                w[0].name.as_str()
            ),
            ("shop", "Deployment", "web")
        );
        let f = &w[0].findings[0];
        assert_eq!(f.kind, "CrashLoopBackOff");
        assert_eq!(f.container.as_deref(), Some("web"));
        assert_eq!(f.image.as_deref(), Some("ghcr.io/acme/shop-web:1.5.0"));
        assert_eq!(f.pods, ["web-abc-1", "web-abc-2"]);
        assert_eq!(
            w[0].findings[1].message,
            "ReplicaSet \"web-abc\" has timed out progressing."
        );
        assert_eq!(w[1].findings[0].memory_limit.as_deref(), Some("128Mi"));
        let u = parse_triage(
            "ml/deployment trainer: 1/1 pods unhealthy\n  - Unschedulable — 0/3 nodes are available; pods t-1",
        );
        assert_eq!(u[0].findings[0].message, "0/3 nodes are available");
        assert_eq!(u[0].findings[0].pods, ["t-1"]);
        assert!(
            parse_triage("healthy: 4 pods and 2 deployments checked, no problems found").is_empty()
        );
    }

    #[test]
    fn deployment_lines() {
        let text = "deployment shop/web: 2 desired, ...\nimages: web=ghcr.io/acme/shop-web:1.5.0, side=envoy:1\nrevisions (newest first):\n  2 (current): web=ghcr.io/acme/shop-web:1.5.0 (1 pods, 0 ready)\n  1: web=ghcr.io/acme/shop-web:1.4.2 (2 pods, 2 ready)";
        let r = deployment_revisions(text);
        assert_eq!(r.len(), 2);
        assert!(r[0].current && !r[1].current);
        assert_eq!(r[1].number, 1);
        assert_eq!(r[1].images, "web=ghcr.io/acme/shop-web:1.4.2");
        assert_eq!(
            deployment_images(text)[1],
            ("side".to_owned(), "envoy:1".to_owned())
        );
    }

    #[test]
    fn report_and_recommendation_lines() {
        let text = "shop/deployment frontend container nginx (nginx:1.25.3-alpine): 2 CRITICAL, 6 HIGH, 11 MEDIUM, 3 LOW, 0 UNKNOWN\n  SIM-CRITICAL-0001 CRITICAL 9.8 sim-lib0 1.0.0 -> 1.0.1";
        let r = parse_vulnerability_reports(text);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].name.as_str(), r[0].container.as_str(), r[0].critical),
            ("frontend", "nginx", 2)
        );
        assert_eq!(
            recommended_image(
                "current x: 2 CRITICAL\nRECOMMENDED nginx:1.25.5-alpine: 4 MEDIUM (clears…)"
            )
            .as_deref(),
            Some("nginx:1.25.5-alpine")
        );
        assert_eq!(recommended_image("no candidate clears"), None);
    }
}
