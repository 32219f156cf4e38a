//! Watches as the API server serves them: a `200` whose chunked body is one JSON event per line,
//! `{"type":"ADDED"|"MODIFIED"|"DELETED","object":{…}}`. Without `resourceVersion` (or with
//! `0`) the watch starts with an `ADDED` for every selected object; from a resourceVersion it
//! replays the changes after it, or, when that is older than the simulator's history, sends one
//! `ERROR` event with a `410 Expired` `Status` (the client lists again). With a selector, an
//! object that stops matching is `DELETED` for the watcher and one that starts matching `ADDED`,
//! as the API server's watch cache reports them. The watch ends after `timeoutSeconds` (1800 by
//! default) or when the simulator stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::Shared;
use super::objects::{Change, ChangeKind, Stored};
use super::select::Selectors;
use super::store::{Key, ResourceType};

/// How long a watch lasts without `timeoutSeconds` (the API server's `--min-request-timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// About how many bytes of events one chunk of the body carries.
const CHUNK: usize = 64 * 1024;

/// What to watch.
pub(crate) struct Request {
    pub(crate) t: &'static ResourceType,
    /// The namespace, or `None` for every namespace (and for cluster-scoped types).
    pub(crate) ns: Option<String>,
    pub(crate) selectors: Selectors,
    /// The resourceVersion to start after; `None` to start with the current objects.
    pub(crate) from: Option<u64>,
    pub(crate) timeout: Option<Duration>,
}

/// One event waiting to be sent.
type Pending = (ChangeKind, Arc<Stored>);

struct Watch {
    store: Shared,
    request: Request,
    changed: tokio::sync::watch::Receiver<u64>,
    /// The resourceVersion the watcher has seen everything up to.
    last: u64,
    pending: VecDeque<Pending>,
    deadline: tokio::time::Instant,
    done: bool,
}

fn event(t: &ResourceType, kind: &str, object: &Stored, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    object.write_object(Some(t), out);
    out.extend_from_slice(b"}\n");
}

/// The `ERROR` event for a resourceVersion older than the history.
fn expired(rv: u64, oldest: u64) -> Bytes {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {rv} ({oldest})"),
        "reason": "Expired", "code": 410
    });
    Bytes::from(format!(
        "{{\"type\":\"ERROR\",\"object\":{}}}\n",
        serde_json::to_string(&status).unwrap_or_default()
    ))
}

impl Watch {
    fn in_scope(&self, plural: &str, ns: &str) -> bool {
        plural == self.request.t.plural && self.request.ns.as_deref().is_none_or(|n| n == ns)
    }

    /// What a change is for this watcher, if anything.
    fn translate(&self, c: &Change) -> Option<Pending> {
        if !self.in_scope(c.plural, &c.namespace) {
            return None;
        }
        let key: Key = (c.plural, c.namespace.clone(), c.name.clone());
        let sel = &self.request.selectors;
        let before = c.previous.as_ref().is_some_and(|p| sel.matches(&key, p));
        let kind = match c.kind {
            ChangeKind::Deleted => before.then_some(ChangeKind::Deleted)?,
            ChangeKind::Added | ChangeKind::Modified => {
                match (before, sel.matches(&key, &c.object)) {
                    (true, true) => ChangeKind::Modified,
                    (false, true) => ChangeKind::Added,
                    (true, false) => ChangeKind::Deleted,
                    (false, false) => return None,
                }
            }
        };
        Some((kind, Arc::clone(&c.object)))
    }

    /// The next chunk of the body, or `None` when the watch ends.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            if !self.pending.is_empty() {
                let mut out = Vec::with_capacity(CHUNK + 4096);
                while out.len() < CHUNK
                    && let Some((kind, object)) = self.pending.pop_front()
                {
                    event(self.request.t, kind.as_str(), &object, &mut out);
                }
                return Some(Bytes::from(out));
            }
            // Seen before reading, so that a change made after the read wakes the wait below.
            self.changed.borrow_and_update();
            {
                let s = self
                    .store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if s.closed {
                    return None;
                }
                match s.changes_after(self.last) {
                    Err(oldest) => {
                        self.done = true;
                        return Some(expired(self.last, oldest));
                    }
                    Ok(changes) => {
                        let events: Vec<Pending> =
                            changes.filter_map(|c| self.translate(c)).collect();
                        self.pending.extend(events);
                    }
                }
                self.last = self.last.max(s.rv);
            }
            if !self.pending.is_empty() {
                continue;
            }
            tokio::select! {
                r = self.changed.changed() => if r.is_err() { return None },
                () = tokio::time::sleep_until(self.deadline) => return None,
            }
        }
    }
}

/// Serves a watch.
pub(crate) fn serve(store: Shared, request: Request) -> Response {
    let s = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let changed = s.subscribe();
    let mut pending = VecDeque::new();
    let last = match request.from {
        None => {
            let t = request.t;
            let ns = request.ns.as_deref();
            pending.extend(
                s.range(t.plural, ns, (ns.unwrap_or_default(), ""))
                    .filter(|(key, obj)| request.selectors.matches(key, obj))
                    .map(|(_, obj)| (ChangeKind::Added, Arc::clone(obj))),
            );
            s.rv
        }
        Some(rv) => {
            if let Err(oldest) = s.changes_after(rv) {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    expired(rv, oldest),
                )
                    .into_response();
            }
            rv
        }
    };
    drop(s);
    let deadline = tokio::time::Instant::now() + request.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let watch = Watch {
        store,
        request,
        changed,
        last,
        pending,
        deadline,
        done: false,
    };
    let body = futures::stream::unfold(watch, |mut w| async move {
        w.next().await.map(|chunk| (Ok::<_, Infallible>(chunk), w))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}
