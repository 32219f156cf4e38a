//! The incident queue between the triggers and the runner: see [`Queue`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::store::{Incident, Trigger};

/// What [`Queue::offer`] did with an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offer {
    /// Queued as a new incident.
    Queued,
    /// Merged into the incident already queued under the same key (its first-seen time kept,
    /// its summary and trigger replaced).
    Merged,
    /// The queue is full (or closed): the incident was dropped and counted.
    Full,
}

impl Offer {
    /// The name used in metrics, logs and the webhook's answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Merged => "merged",
            Self::Full => "full",
        }
    }
}

#[derive(Debug)]
struct Entry {
    incident: Incident,
    first_seen: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// Queued incidents by arrival sequence: the first entry is the oldest.
    entries: BTreeMap<u64, Entry>,
    /// Key → sequence in `entries`.
    keys: HashMap<String, u64>,
    next_seq: u64,
    closed: bool,
}

impl Inner {
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let seq = self.keys.remove(key)?;
        self.entries.remove(&seq)
    }
}

/// The incident queue: bounded, debounced and de-duplicating, between the triggers (watcher,
/// Alertmanager, Trivy sweep) and the runner.
///
/// - **De-duplicated**: one queued incident per key; offering a key that is already queued merges
///   into it ([`Offer::Merged`]: the first-seen time stays, the summary and trigger are the
///   latest).
/// - **Debounced**: [`next`](Self::next) hands an incident out only once it has been queued for at
///   least the debounce, so a burst of events about one workload becomes one run, and a resolved
///   alert can still [`cancel`](Self::cancel) it.
/// - **Bounded**: never more than `capacity` incidents are held; an offer of a new key to a full
///   queue is dropped and counted ([`dropped`](Self::dropped)) — the watcher offers still-unhealthy
///   workloads again later, so a dropped incident comes back once there is room.
/// - **FIFO** by first-seen time.
///
/// ```
/// use std::time::Duration;
/// use sre_tools::serve::{Incident, Offer, Queue, Trigger};
///
/// let q = Queue::new(8, Duration::ZERO);
/// let incident = |summary: &str| Incident {
///     key: "shop/web/health".into(),
///     trigger: Trigger::Watcher,
///     namespace: "shop".into(),
///     workload: "web".into(),
///     summary: summary.into(),
/// };
/// assert_eq!(q.offer(incident("pod web-1 crash-loops")), Offer::Queued);
/// assert_eq!(q.offer(incident("pods web-1, web-2 crash-loop")), Offer::Merged);
/// assert_eq!(q.depth(), 1);
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let next = q.next().await.unwrap();
/// assert_eq!(next.summary, "pods web-1, web-2 crash-loop");
/// q.close();
/// assert!(q.next().await.is_none());
/// # });
/// ```
///
/// Share it behind an [`Arc`](std::sync::Arc): every method takes `&self`.
#[derive(Debug)]
pub struct Queue {
    inner: Mutex<Inner>,
    changed: Notify,
    capacity: usize,
    debounce: Duration,
    dropped: AtomicU64,
}

impl Queue {
    /// A queue holding at most `capacity` incidents (at least one), each handed out once it has
    /// been queued for `debounce`.
    pub fn new(capacity: usize, debounce: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            capacity: capacity.max(1),
            debounce,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves `Inner` consistent, so a panic elsewhere while holding
        // the lock cannot have broken it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offers `incident`: merged into the queued incident with the same key, else queued, else
    /// (full or closed) dropped and counted.
    pub fn offer(&self, incident: Incident) -> Offer {
        let mut inner = self.lock();
        if inner.closed {
            drop(inner);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Offer::Full;
        }
        if let Some(seq) = inner.keys.get(&incident.key).copied()
            && let Some(entry) = inner.entries.get_mut(&seq)
        {
            entry.incident = incident;
            return Offer::Merged;
        }
        if inner.entries.len() >= self.capacity {
            drop(inner);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Offer::Full;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.keys.insert(incident.key.clone(), seq);
        inner.entries.insert(
            seq,
            Entry {
                incident,
                first_seen: Instant::now(),
            },
        );
        drop(inner);
        self.changed.notify_waiters();
        Offer::Queued
    }

    /// Removes the queued incident `key` (a resolved alert); true when one was queued.
    pub fn cancel(&self, key: &str) -> bool {
        let removed = self.lock().remove(key).is_some();
        if removed {
            self.changed.notify_waiters();
        }
        removed
    }

    /// Removes the queued incident `key` only when its latest offer came from `trigger`; true
    /// when one was removed. A trigger uses it to withdraw what it offered itself without
    /// cancelling what another trigger saw about the same workload.
    pub fn cancel_from(&self, key: &str, trigger: Trigger) -> bool {
        let mut inner = self.lock();
        let ours = inner
            .keys
            .get(key)
            .and_then(|seq| inner.entries.get(seq))
            .is_some_and(|e| e.incident.trigger == trigger);
        let removed = ours && inner.remove(key).is_some();
        drop(inner);
        if removed {
            self.changed.notify_waiters();
        }
        removed
    }

    /// The oldest incident, once it has been queued for the debounce; waits for one. `None` once
    /// the queue is [closed](Self::close) (incidents still queued then are discarded: the
    /// triggers find them again after a restart).
    pub async fn next(&self) -> Option<Incident> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read, so no offer, cancel or close is missed.
            changed.as_mut().enable();
            let due = {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                match inner.entries.first_key_value() {
                    None => None,
                    Some((&seq, entry)) => {
                        let due = entry.first_seen + self.debounce;
                        if due <= Instant::now() {
                            let entry = inner.entries.remove(&seq)?;
                            inner.keys.remove(&entry.incident.key);
                            return Some(entry.incident);
                        }
                        Some(due)
                    }
                }
            };
            match due {
                None => changed.await,
                Some(due) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
            }
        }
    }

    /// Closes the queue: [`next`](Self::next) returns `None` from now on, for every waiter, and
    /// offers are dropped.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.entries.clear();
        inner.keys.clear();
        drop(inner);
        self.changed.notify_waiters();
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// How many incidents are queued now.
    pub fn depth(&self) -> usize {
        self.lock().entries.len()
    }

    /// How many incidents were dropped because the queue was full (or closed), since it was
    /// made.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The most incidents it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long an incident waits before [`next`](Self::next) hands it out.
    pub fn debounce(&self) -> Duration {
        self.debounce
    }

    /// True when an incident with this key is queued.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().keys.contains_key(key)
    }

    /// A copy of the queued incidents, oldest first (at most `capacity` of them).
    pub fn queued(&self) -> Vec<Incident> {
        self.lock()
            .entries
            .values()
            .map(|e| e.incident.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(key: &str, summary: &str) -> Incident {
        Incident {
            key: key.into(),
            trigger: Trigger::Watcher,
            namespace: "shop".into(),
            workload: "web".into(),
            summary: summary.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fifo_by_first_seen_even_after_a_merge() {
        let q = Queue::new(4, Duration::from_secs(1));
        q.offer(incident("a", "1"));
        tokio::time::advance(Duration::from_millis(10)).await;
        q.offer(incident("b", "1"));
        assert_eq!(q.offer(incident("a", "2")), Offer::Merged);
        assert_eq!(q.next().await.unwrap().summary, "2");
        assert_eq!(q.next().await.unwrap().key, "b");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_oldest_lets_the_next_one_through() {
        let q = std::sync::Arc::new(Queue::new(4, Duration::from_secs(10)));
        q.offer(incident("a", "1"));
        tokio::time::advance(Duration::from_secs(5)).await;
        q.offer(incident("b", "1"));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        assert!(q.cancel("a"));
        assert!(!q.cancel("a"));
        assert_eq!(waiter.await.unwrap().unwrap().key, "b");
    }

    #[test]
    fn cancel_from_leaves_another_triggers_incident() {
        let q = Queue::new(4, Duration::ZERO);
        let mut i = incident("a", "alert");
        i.trigger = Trigger::Alertmanager;
        q.offer(i);
        assert!(!q.cancel_from("a", Trigger::Watcher));
        assert!(q.cancel_from("a", Trigger::Alertmanager));
        assert_eq!(q.depth(), 0);
    }
}
