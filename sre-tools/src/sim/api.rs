//! The HTTP face of the simulator: Kubernetes REST paths, label and field selectors, lists built
//! from the stored bytes (paginated with `limit`/`continue`), watches, patches with dry run and
//! resourceVersion preconditions, pod logs, SelfSubjectAccessReview, RBAC (403) and `Status`
//! error bodies shaped like the real API server's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::page::Continue;
use super::patch::strategic_merge;
use super::scenario::{Access, Rule};
use super::select::Selectors;
use super::store::{ResourceType, Store, resource_type};

pub(crate) type Shared = Arc<Mutex<Store>>;

#[expect(
    clippy::needless_pass_by_value,
    reason = "call sites build the details inline with json!"
)]
fn status(code: StatusCode, reason: &str, message: &str, details: Value) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": details, "code": code.as_u16()
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

fn not_found(t: &ResourceType, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(t.group, t.plural)),
        json!({"name": name, "group": t.group, "kind": t.plural}),
    )
}

fn no_such_path() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        json!({}),
    )
}

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

fn rule_allows(rule: &Rule, verb: &str, group: &str, resource: &str) -> bool {
    matches(&rule.verbs, verb)
        && matches(&rule.api_groups, group)
        && matches(&rule.resources, resource)
}

/// RBAC as the API server evaluates it: cluster-wide rules anywhere, namespaced rules only in
/// their namespaces (and never for cluster-scoped or all-namespace requests).
pub(crate) fn allowed(
    access: &Access,
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
) -> bool {
    if access
        .cluster_rules
        .iter()
        .any(|r| rule_allows(r, verb, group, resource))
    {
        return true;
    }
    match ns {
        Some(ns) if access.namespaces.iter().any(|n| n == ns) => access
            .rules
            .iter()
            .any(|r| rule_allows(r, verb, group, resource)),
        _ => false,
    }
}

fn forbidden(
    access: &Access,
    verb: &str,
    group: &str,
    plural: &str,
    resource: &str,
    name: Option<&str>,
    ns: Option<&str>,
) -> Response {
    let subject = match name {
        Some(n) => format!("{} \"{n}\"", qualified(group, plural)),
        None => qualified(group, plural),
    };
    let scope = match ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let mut details = json!({"kind": plural});
    if let Some(n) = name {
        details["name"] = json!(n);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!(
            "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
            access.user, group
        ),
        details,
    )
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn api_version(t: &ResourceType) -> String {
    if t.group.is_empty() {
        t.version.to_owned()
    } else {
        format!("{}/{}", t.group, t.version)
    }
}

struct Target<'a> {
    t: &'static ResourceType,
    ns: Option<&'a str>,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

fn discovery(segs: &[&str]) -> Option<Value> {
    match segs {
        ["version"] => Some(
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-sre-agent-sim",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "sim", "compiler": "sim", "platform": "linux/amd64"}),
        ),
        ["api"] => Some(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})),
        ["apis"] => {
            let group = |g: &str, v: &str| {
                json!({"name": g, "versions": [{"groupVersion": format!("{g}/{v}"), "version": v}],
                "preferredVersion": {"groupVersion": format!("{g}/{v}"), "version": v}})
            };
            Some(
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                group("apps", "v1"), group("authorization.k8s.io", "v1"), group("aquasecurity.github.io", "v1alpha1")]}),
            )
        }
        ["api", v] | ["apis", _, v] => {
            let group = if segs[0] == "api" { "" } else { segs[1] };
            let resources: Vec<Value> = super::store::TYPES
                .iter()
                .filter(|t| t.group == group && t.version == *v)
                .map(|t| json!({"name": t.plural, "singularName": "", "namespaced": t.namespaced, "kind": t.kind,
                                "verbs": ["get", "list", "patch", "watch"]}))
                .collect();
            if resources.is_empty() && group != "authorization.k8s.io" {
                return None;
            }
            let gv = if group.is_empty() {
                (*v).to_owned()
            } else {
                format!("{group}/{v}")
            };
            Some(
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            )
        }
        _ => None,
    }
}

/// A resource the simulator does not serve: RBAC is checked before the resource is looked up, as
/// on the real API server, so an ungranted one is a 403 and a granted one a 404.
fn unknown_resource(
    store: &Shared,
    method: &Method,
    group: &str,
    plural: &str,
    rest: &[&str],
    ns: Option<&str>,
) -> Response {
    let s = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let verb = if *method == Method::GET {
        if rest.len() % 2 == 1 { "list" } else { "get" }
    } else {
        "create"
    };
    let ns = ns.filter(|_| rest.first() == Some(&"namespaces"));
    if !allowed(&s.access, verb, group, plural, ns) {
        let name = rest.get(if ns.is_some() { 3 } else { 1 }).copied();
        return forbidden(&s.access, verb, group, plural, plural, name, ns);
    }
    no_such_path()
}

/// The one handler behind every path.
pub(crate) async fn handle(
    State(store): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_matches('/').to_owned();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if method == Method::GET
        && let Some(v) = discovery(&segs)
    {
        return json_response(StatusCode::OK, v.to_string().into_bytes());
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return no_such_path(),
    };
    if group == "authorization.k8s.io" && method == Method::POST {
        return self_subject_review(&store, rest, &body);
    }
    let (ns, plural, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] => (Some(*ns), *plural, tail),
        [plural, tail @ ..] => (None, *plural, tail),
        [] => return no_such_path(),
    };
    let Some(t) = resource_type(group, plural).filter(|t| t.version == version) else {
        return unknown_resource(&store, &method, group, plural, rest, ns);
    };
    let target = Target {
        t,
        ns: if t.namespaced { ns } else { None },
        name: tail.first().copied(),
        sub: tail.get(1).copied(),
    };
    if tail.len() > 2 || (!t.namespaced && ns.is_some()) {
        return no_such_path();
    }
    let query = query_map(&uri);
    let verb = match (&method, target.name, target.sub) {
        (&Method::GET, None, _) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            "watch"
        }
        (&Method::GET, None, _) => "list",
        (&Method::GET, Some(_), _) => "get",
        (&Method::PATCH, Some(_), _) => "patch",
        (&Method::PUT, Some(_), _) => "update",
        (&Method::DELETE, Some(_), _) => "delete",
        (&Method::DELETE, None, _) => "deletecollection",
        (&Method::POST, _, _) => "create",
        _ => {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                json!({}),
            );
        }
    };
    let resource = match target.sub {
        Some(sub) => format!("{}/{sub}", t.plural),
        None => t.plural.to_owned(),
    };
    let store_ref = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The namespace of a namespace object is itself, for RBAC.
    let rbac_ns = if t.plural == "namespaces" {
        target.name.or(target.ns)
    } else {
        target.ns
    };
    if !allowed(&store_ref.access, verb, group, &resource, rbac_ns) {
        return forbidden(
            &store_ref.access,
            verb,
            t.group,
            t.plural,
            &resource,
            target.name,
            target.ns,
        );
    }
    drop(store_ref);
    match (verb, target.sub) {
        ("list", _) => list(&store, &target, &query),
        ("get", None) => get(&store, &target),
        ("get", Some("log")) if t.plural == "pods" => logs(&store, &target, &query),
        ("patch", None) => patch(&store, &target, &query, &headers, &body),
        ("watch", _) => watch(store, &target, &query),
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{verb} of {resource} is not supported by the sre-agent simulator"),
            json!({}),
        ),
    }
}

fn bad_request(message: &str) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, json!({}))
}

/// A list: the stored bytes of the selected objects, one page of them when `limit` is given.
fn list(store: &Shared, target: &Target<'_>, query: &HashMap<String, String>) -> Response {
    let t = target.t;
    let selectors = match Selectors::from_query(t, query) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => None,
        Some(Ok(n)) => usize::try_from(n).ok().filter(|n| *n > 0),
        Some(Err(_)) => {
            return bad_request(&format!(
                "limit: Invalid value: {:?}: must be an integer",
                query.get("limit").map_or("", String::as_str)
            ));
        }
    };
    let token = match query
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(|c| Continue::decode(c))
        .transpose()
    {
        Ok(c) => c,
        Err(e) => return bad_request(&e),
    };
    let s = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (from_ns, from_name) = token.as_ref().map_or_else(
        || (target.ns.unwrap_or_default().to_owned(), String::new()),
        |c| c.start_at(target.ns, t.namespaced),
    );
    let rv = token.as_ref().map_or(s.rv, |c| c.rv);
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    let mut remaining: u64 = 0;
    for (key, obj) in s.range(t.plural, target.ns, (&from_ns, &from_name)) {
        if !selectors.matches(key, obj) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            remaining += 1;
            if !selectors.is_empty() {
                break;
            }
            continue;
        }
        items.push(Arc::clone(obj));
        last = Some(key);
    }
    let next = last.filter(|_| more).map(|(_, ns, name)| {
        let key = if target.ns.is_none() && t.namespaced {
            format!("{ns}/{name}")
        } else {
            name.clone()
        };
        Continue::after(&key, rv).encode()
    });
    drop(s);
    let meta = match next {
        // The API server counts what is left only when it does not filter.
        Some(token) if selectors.is_empty() => format!(
            "{{\"resourceVersion\":\"{rv}\",\"continue\":\"{token}\",\"remainingItemCount\":{remaining}}}"
        ),
        Some(token) => format!("{{\"resourceVersion\":\"{rv}\",\"continue\":\"{token}\"}}"),
        None => format!("{{\"resourceVersion\":\"{rv}\"}}"),
    };
    let head = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{meta},\"items\":[",
        t.kind,
        api_version(t)
    );
    let size = head.len() + items.iter().map(|o| o.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    for (i, obj) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(obj.item());
    }
    body.extend_from_slice(b"]}");
    json_response(StatusCode::OK, body)
}

fn watch(store: Shared, target: &Target<'_>, query: &HashMap<String, String>) -> Response {
    let selectors = match Selectors::from_query(target.t, query) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let from = match query.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => return bad_request(&format!("invalid resource version: {rv:?}")),
        },
    };
    let timeout = match query.get("timeoutSeconds").map(|t| t.parse::<u64>()) {
        None => None,
        Some(Ok(secs)) => Some(std::time::Duration::from_secs(secs)),
        Some(Err(_)) => {
            return bad_request(&format!(
                "timeoutSeconds: Invalid value: {:?}: must be a non-negative integer",
                query.get("timeoutSeconds").map_or("", String::as_str)
            ));
        }
    };
    super::watch::serve(
        store,
        super::watch::Request {
            t: target.t,
            ns: target.ns.map(str::to_owned),
            selectors,
            from,
            timeout,
        },
    )
}

/// An object that is not stored (a dry run's answer) as the API server writes it: `kind` and
/// `apiVersion` first.
fn object_bytes(t: &ResourceType, obj: &Value) -> Vec<u8> {
    match super::objects::Stored::encode(Some(t), t.plural, obj, 0) {
        Ok(s) => s.object_bytes(Some(t)),
        Err(_) => obj.to_string().into_bytes(),
    }
}

fn get(store: &Shared, target: &Target<'_>) -> Response {
    let s = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let name = target.name.unwrap_or_default();
    match s.stored(target.t.plural, target.ns.unwrap_or_default(), name) {
        Some(obj) => json_response(StatusCode::OK, obj.object_bytes(Some(target.t))),
        None => not_found(target.t, name),
    }
}

fn logs(store: &Shared, target: &Target<'_>, query: &HashMap<String, String>) -> Response {
    let s = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ns = target.ns.unwrap_or_default();
    let pod_name = target.name.unwrap_or_default();
    let Some(pod) = s.get("pods", ns, pod_name) else {
        return not_found(target.t, pod_name);
    };
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let container = match query.get("container") {
        Some(c) => c.clone(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    containers.join(" ")
                ),
                json!({}),
            );
        }
    };
    if !containers.contains(&container) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("container {container} is not valid for pod {pod_name}"),
            json!({}),
        );
    }
    let previous = query.get("previous").is_some_and(|p| p == "true");
    let Some((current, prev)) =
        s.logs
            .get(&(ns.to_owned(), pod_name.to_owned(), container.clone()))
    else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
            ),
            json!({}),
        );
    };
    let text = match if previous { prev } else { current } {
        Ok(t) => t.clone(),
        Err(msg) => return status(StatusCode::BAD_REQUEST, "BadRequest", msg, json!({})),
    };
    let mut text = text;
    if let Some(n) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(n);
        text = lines[start..].iter().fold(String::new(), |mut acc, l| {
            acc.push_str(l);
            acc.push('\n');
            acc
        });
    }
    if let Some(n) = query
        .get("limitBytes")
        .and_then(|n| n.parse::<usize>().ok())
        && text.len() > n
    {
        let mut cut = n;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

fn invalid(t: &ResourceType, name: &str, message: &str) -> Response {
    status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &format!(
            "{}.{} \"{name}\" is invalid: {message}",
            t.kind,
            if t.group.is_empty() { "core" } else { t.group }
        ),
        json!({"name": name, "group": t.group, "kind": t.kind}),
    )
}

fn validate(t: &ResourceType, obj: &Value) -> Result<(), String> {
    if t.plural != "deployments" {
        return Ok(());
    }
    let dep: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(obj.clone())
        .map_err(|e| format!("the object is not a valid Deployment: {e}"))?;
    let spec = dep.spec.ok_or("spec: Required value")?;
    if let Some(r) = spec.replicas
        && r < 0
    {
        return Err(format!(
            "spec.replicas: Invalid value: {r}: must be greater than or equal to 0"
        ));
    }
    // The simulator's own limit (not the API server's): every replica is a pod in memory.
    if let Some(r) = spec.replicas
        && r > super::scenario::limits::MAX_REPLICAS
    {
        return Err(format!(
            "spec.replicas: Invalid value: {r}: the sre-agent simulator allows at most {} replicas per deployment",
            super::scenario::limits::MAX_REPLICAS
        ));
    }
    let pod_spec = spec
        .template
        .spec
        .ok_or("spec.template.spec: Required value")?;
    if pod_spec.containers.is_empty() {
        return Err("spec.template.spec.containers: Required value".into());
    }
    for (i, c) in pod_spec.containers.iter().enumerate() {
        if c.image.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(format!(
                "spec.template.spec.containers[{i}].image: Required value"
            ));
        }
        if c.image
            .as_deref()
            .is_some_and(|s| s != s.trim() || s.contains(char::is_whitespace))
        {
            return Err(format!(
                "spec.template.spec.containers[{i}].image: Invalid value: {:?}: must not have leading or trailing whitespace",
                c.image.as_deref().unwrap_or_default()
            ));
        }
    }
    let labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    if let Some(sel) = spec.selector.match_labels {
        for (k, v) in sel {
            if labels.get(&k) != Some(&v) {
                return Err("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`".into());
            }
        }
    }
    Ok(())
}

#[expect(
    clippy::too_many_lines,
    reason = "the API server's patch steps in order: decode, apply, precondition, validate, dry run, store"
)]
fn patch(
    store: &Shared,
    target: &Target<'_>,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let t = target.t;
    let ns = target.ns.unwrap_or_default();
    let name = target.name.unwrap_or_default();
    if target.sub.is_some() {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "patching subresources is not supported by the sre-agent simulator",
            json!({}),
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let patch_doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("error decoding patch: {e}"),
                json!({}),
            );
        }
    };
    let mut s = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(current) = s.get(t.plural, ns, name) else {
        return not_found(t, name);
    };
    let mut next = current.clone();
    match content_type.as_str() {
        "application/strategic-merge-patch+json" => strategic_merge(&mut next, &patch_doc),
        "application/merge-patch+json" => json_patch::merge(&mut next, &patch_doc),
        "application/json-patch+json" => {
            let ops: json_patch::Patch = match serde_json::from_value(patch_doc) {
                Ok(p) => p,
                Err(e) => {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("error decoding patch: {e}"),
                        json!({}),
                    );
                }
            };
            if let Err(e) = json_patch::patch(&mut next, &ops) {
                return invalid(
                    t,
                    name,
                    &format!("the JSON patch could not be applied: {e}"),
                );
            }
        }
        other => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
                ),
                json!({}),
            );
        }
    }
    let current_rv = current.pointer("/metadata/resourceVersion").cloned();
    let requested_rv = next.pointer("/metadata/resourceVersion").cloned();
    if requested_rv.is_some() && requested_rv != current_rv {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(t.group, t.plural)
            ),
            json!({"name": name, "group": t.group, "kind": t.plural}),
        );
    }
    // Identity is immutable.
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        next["metadata"][field] = current["metadata"][field].clone();
    }
    next["status"] = current["status"].clone();
    if let Err(msg) = validate(t, &next) {
        return invalid(t, name, &msg);
    }
    let spec_changed = next.get("spec") != current.get("spec");
    if spec_changed {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        next["metadata"]["generation"] = json!(generation + 1);
    }
    let manager = query
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    if dry_run {
        next["metadata"]["resourceVersion"] = current_rv.unwrap_or(Value::Null);
        return json_response(StatusCode::OK, object_bytes(t, &next));
    }
    let entry = json!({"manager": manager, "operation": "Update", "apiVersion": api_version(t), "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()});
    match next["metadata"]
        .get_mut("managedFields")
        .and_then(Value::as_array_mut)
    {
        Some(fields) => {
            fields.retain(|f| f["manager"] != json!(manager));
            fields.push(entry);
        }
        None => next["metadata"]["managedFields"] = json!([entry]),
    }
    s.put(t.plural, next);
    // The answer is the object as stored by the patch, before the controllers act on it.
    let answer = s
        .stored(t.plural, ns, name)
        .map(|obj| obj.object_bytes(Some(t)));
    if t.plural == "deployments" && spec_changed {
        s.reconcile(ns, name, false);
    }
    match answer {
        Some(bytes) => json_response(StatusCode::OK, bytes),
        None => not_found(t, name),
    }
}

fn self_subject_review(store: &Shared, rest: &[&str], body: &Bytes) -> Response {
    let kind = match rest {
        ["selfsubjectaccessreviews"] => "SelfSubjectAccessReview",
        ["selfsubjectrulesreviews"] => "SelfSubjectRulesReview",
        _ => return no_such_path(),
    };
    let mut review: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("error decoding body: {e}"),
                json!({}),
            );
        }
    };
    let s = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if kind == "SelfSubjectRulesReview" {
        let ns = review
            .pointer("/spec/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut rules: Vec<Rule> = s.access.cluster_rules.clone();
        if s.access.namespaces.iter().any(|n| n == ns) {
            rules.extend(s.access.rules.iter().cloned());
        }
        let rules: Vec<Value> = rules
            .iter()
            .map(|r| json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources}))
            .collect();
        review["status"] =
            json!({"resourceRules": rules, "nonResourceRules": [], "incomplete": false});
    } else {
        let attrs = review
            .pointer("/spec/resourceAttributes")
            .cloned()
            .unwrap_or(Value::Null);
        let field = |k: &str| {
            attrs
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let resource = match field("subresource").as_str() {
            "" => field("resource"),
            sub => format!("{}/{sub}", field("resource")),
        };
        let ns = field("namespace");
        let ok = allowed(
            &s.access,
            &field("verb"),
            &field("group"),
            &resource,
            (!ns.is_empty()).then_some(ns.as_str()),
        );
        review["status"] = if ok {
            json!({"allowed": true, "reason": "allowed by the simulator's RBAC rules"})
        } else {
            json!({"allowed": false})
        };
    }
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!(kind);
    review["metadata"] = json!({"creationTimestamp": null});
    json_response(StatusCode::CREATED, review.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("app%3Dweb%2Ctier+in+%28a%29"),
            "app=web,tier in (a)"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
