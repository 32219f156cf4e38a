//! The leader's loop ([`Service`]) on a real SQLite store, with scripted brains: a stop parks
//! the runs in flight and another service (a new process, or the next leader) resumes them; a
//! flood of incidents yields bounded runs, at most `max_runs` at once; a decided approval is
//! applied exactly once even when two services race for it.

#![cfg(feature = "serve")]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail loudly"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sre_core::park::now_unix_ms;
use sre_core::testing::{ScaleTool, ScriptedProvider, answer, call, tool_turn};
use sre_core::{
    Agent, Answer, ChatRequest, ChatResponse, Decision, LlmError, LlmProvider, Park, ParkReason,
    Rules, Stop,
};
use sre_tools::serve::channel::{Ask, Channel, ChannelError, Channels, Ending, Settled};
use sre_tools::serve::metrics::Metrics;
use sre_tools::serve::{
    AgentFactory, Incident, IncidentState, Offer, Queue, RunStore, Service, ServiceConfig,
    SqliteStore, Trigger, Triggers,
};
use tokio::sync::{Notify, watch};

fn db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sre-service-{name}-{}-{}",
        std::process::id(),
        now_unix_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("runs.db")
}

fn incident(workload: &str) -> Incident {
    Incident {
        key: format!("shop/{workload}/health"),
        trigger: Trigger::Watcher,
        namespace: "shop".into(),
        workload: workload.into(),
        summary: format!("deployment shop/{workload}: pod is in CrashLoopBackOff"),
    }
}

fn no_triggers() -> Triggers {
    Arc::new(|_stop: Stop| {})
}

struct Running {
    service: Arc<Service>,
    stop: Stop,
    task: tokio::task::JoinHandle<()>,
    queue: Arc<Queue>,
    decided: Arc<Notify>,
    _leading: watch::Sender<bool>,
}

fn start(
    store: Arc<dyn RunStore>,
    factory: AgentFactory,
    identity: &str,
    max_runs: usize,
) -> Running {
    let queue = Arc::new(Queue::new(16, Duration::ZERO));
    let decided = Arc::new(Notify::new());
    let config = ServiceConfig {
        max_runs,
        claim_every: Duration::from_millis(100),
        grace: Duration::from_secs(5),
        ..ServiceConfig::new(identity)
    };
    let service = Service::new(
        config,
        store,
        Arc::clone(&queue),
        Arc::new(Metrics::new()),
        factory,
        no_triggers(),
        Arc::clone(&decided),
    );
    let (tx, rx) = watch::channel(true);
    let stop = Stop::new();
    let task = tokio::spawn(Arc::clone(&service).run(rx, stop.clone()));
    Running {
        service,
        stop,
        task,
        queue,
        decided,
        _leading: tx,
    }
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn wait_state(
    store: &dyn RunStore,
    key: &str,
    state: IncidentState,
) -> sre_tools::serve::IncidentRecord {
    for _ in 0..200 {
        if let Some(r) = store.get(key).await.unwrap()
            && r.state == state
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{key} never became {state:?}: {:?}",
        store.get(key).await.unwrap()
    );
}

/// A brain that never answers: the run is in flight until it is stopped.
struct Hangs {
    called: Arc<Notify>,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl LlmProvider for Hangs {
    async fn chat(&self, _request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.called.notify_one();
        std::future::pending().await
    }

    fn name(&self) -> String {
        "hangs/test".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_parks_the_run_in_flight_and_the_next_service_finishes_it() {
    let path = db("stop");
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let called = Arc::new(Notify::new());
    let factory: AgentFactory = {
        let called = Arc::clone(&called);
        Arc::new(move |_i: &Incident| {
            Agent::builder(Hangs {
                called: Arc::clone(&called),
                calls: Arc::new(AtomicUsize::new(0)),
            })
            .build()
            .map_err(|e| e.to_string())
        })
    };
    let first = start(Arc::clone(&store), factory, "one", 2);
    first.queue.offer(incident("web"));
    called.notified().await;
    first.stop.stop();
    first.task.await.unwrap();
    let parked = store.get("shop/web/health").await.unwrap().unwrap();
    assert_eq!(parked.state, IncidentState::Parked);
    let run = parked.run.unwrap();
    assert_eq!(run.reason, ParkReason::Shutdown);
    assert_eq!(run.steps, 0, "the cut-short model call is not counted");

    // A new process on the same file goes on with it.
    drop(store);
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let model = Arc::new(ScriptedProvider::new([answer("web is fine now")]));
    let factory: AgentFactory = {
        let model = Arc::clone(&model);
        Arc::new(move |_i: &Incident| {
            Agent::builder_arc(Arc::clone(&model) as Arc<dyn LlmProvider>)
                .build()
                .map_err(|e| e.to_string())
        })
    };
    let second = start(Arc::clone(&store), factory, "two", 2);
    let closed = wait_state(store.as_ref(), "shop/web/health", IncidentState::Closed).await;
    assert!(closed.outcome.unwrap().starts_with("completed"));
    assert_eq!(model.calls(), 1);
    second.stop.stop();
    second.task.await.unwrap();
}

/// A brain that answers at once and counts how many runs are in flight together.
struct Counts {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
}

#[async_trait]
impl LlmProvider for Counts {
    async fn chat(&self, _request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(answer("nothing to do"))
    }

    fn name(&self) -> String {
        "counts/test".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_incidents_yields_bounded_runs_and_each_incident_once() {
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::in_memory().unwrap());
    let (now, most, runs) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let factory: AgentFactory = {
        let (now, most, runs) = (Arc::clone(&now), Arc::clone(&most), Arc::clone(&runs));
        Arc::new(move |_i: &Incident| {
            Agent::builder(Counts {
                now: Arc::clone(&now),
                most: Arc::clone(&most),
                runs: Arc::clone(&runs),
            })
            .build()
            .map_err(|e| e.to_string())
        })
    };
    let service = start(Arc::clone(&store), factory, "one", 2);
    // 500 crash-looping pods of one deployment, then 500 deployments at once: what the queue
    // admits is bounded by its capacity, and each admitted incident runs once.
    let mut admitted = std::collections::BTreeSet::new();
    let offers =
        std::iter::repeat_n("web".to_owned(), 500).chain((0..500).map(|i| format!("app-{i}")));
    for workload in offers {
        let i = incident(&workload);
        let key = i.key.clone();
        if service.queue.offer(i) == Offer::Queued {
            admitted.insert(key);
        }
        assert!(service.queue.depth() <= 16);
    }
    assert!(
        service.queue.dropped() >= 500 - 16 - 2,
        "{}",
        service.queue.dropped()
    );
    let keys = admitted;
    let admitted = keys.len();
    assert!(admitted <= 16 + 2 + 1, "{admitted}");
    wait_for("every admitted incident to run", || {
        runs.load(Ordering::SeqCst) >= admitted
    })
    .await;
    wait_for("the queue to drain", || service.queue.depth() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), admitted, "each incident once");
    assert!(most.load(Ordering::SeqCst) <= 2, "at most max_runs at once");
    // The same incidents again, within the cooldown: no new runs.
    for key in &keys {
        let workload = key.split('/').nth(1).unwrap();
        service.queue.offer(incident(workload));
    }
    wait_for("the queue to drain", || service.queue.depth() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), admitted);
    service.stop.stop();
    service.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_approval_is_applied_once_when_two_services_race_for_it() {
    let path = db("race");
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let tool = ScaleTool::default();
    let scale = json!({"namespace": "shop", "deployment": "web", "replicas": 3});
    // The first agent built asks for the write; agents built to resume give the final answer.
    let built = Arc::new(AtomicUsize::new(0));
    let factory = |tool: ScaleTool| -> AgentFactory {
        let scale = scale.clone();
        let built = Arc::clone(&built);
        Arc::new(move |_i: &Incident| {
            let script = if built.fetch_add(1, Ordering::SeqCst) == 0 {
                tool_turn(vec![call("w1", "scale", scale.clone())])
            } else {
                answer("scaled")
            };
            Agent::builder(ScriptedProvider::new([script]))
                .tool(tool.clone())
                .policy(Rules::new(Park))
                .build()
                .map_err(|e| e.to_string())
        })
    };
    let first = start(Arc::clone(&store), factory(tool.clone()), "one", 2);
    first.queue.offer(incident("web"));
    let parked = wait_state(store.as_ref(), "shop/web/health", IncidentState::Parked).await;
    let id = parked.run.unwrap().approval.unwrap().id;
    assert_eq!(tool.state().writes, 0);
    // A second service on the same store (another process that also believes it leads).
    let other: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let second = start(Arc::clone(&other), factory(tool.clone()), "two", 2);
    wait_for("both to lead", || {
        first.service.is_leading() && second.service.is_leading()
    })
    .await;
    store
        .decide(&id, None, &Answer::now(Decision::approve("api:alice")))
        .await
        .unwrap();
    first.decided.notify_one();
    second.decided.notify_one();
    let closed = wait_state(store.as_ref(), "shop/web/health", IncidentState::Closed).await;
    assert!(closed.outcome.unwrap().contains("scale applied"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tool.state().writes, 1, "applied exactly once");
    assert_eq!(tool.state().replicas, 3);
    assert_eq!(built.load(Ordering::SeqCst), 2, "one start, one resume");
    for s in [first, second] {
        s.stop.stop();
        s.task.await.unwrap();
    }
}

/// A channel that records what it was asked and told.
#[derive(Default)]
struct Recorder {
    asked: std::sync::Mutex<Vec<String>>,
    settled: std::sync::Mutex<Vec<(String, Ending)>>,
}

#[async_trait]
impl Channel for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn ask(&self, ask: &Ask) -> Result<(), ChannelError> {
        self.asked.lock().unwrap().push(ask.approval.id.clone());
        Ok(())
    }

    async fn settle(&self, settled: &Settled) -> Result<(), ChannelError> {
        self.settled
            .lock()
            .unwrap()
            .push((settled.approval.id.clone(), settled.ending.clone()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_asked_on_park_and_told_how_it_ended() {
    let store: Arc<dyn RunStore> = Arc::new(SqliteStore::in_memory().unwrap());
    let tool = ScaleTool::default();
    let built = Arc::new(AtomicUsize::new(0));
    let factory: AgentFactory = {
        let (tool, built) = (tool.clone(), Arc::clone(&built));
        Arc::new(move |_i: &Incident| {
            let script = match built.fetch_add(1, Ordering::SeqCst) {
                0 => tool_turn(vec![call(
                    "w1",
                    "scale",
                    json!({"namespace": "shop", "deployment": "web", "replicas": 3}),
                )]),
                _ => answer("done"),
            };
            Agent::builder(ScriptedProvider::new([script]))
                .tool(tool.clone())
                .policy(Rules::new(Park))
                .build()
                .map_err(|e| e.to_string())
        })
    };
    let recorder = Arc::new(Recorder::default());
    let queue = Arc::new(Queue::new(16, Duration::ZERO));
    let decided = Arc::new(Notify::new());
    let config = ServiceConfig {
        claim_every: Duration::from_millis(100),
        channels: Channels::new(vec![Arc::clone(&recorder) as Arc<dyn Channel>]),
        ..ServiceConfig::new("one")
    };
    let service = Service::new(
        config,
        Arc::clone(&store),
        Arc::clone(&queue),
        Arc::new(Metrics::new()),
        factory,
        no_triggers(),
        Arc::clone(&decided),
    );
    let (_tx, rx) = watch::channel(true);
    let stop = Stop::new();
    let task = tokio::spawn(service.run(rx, stop.clone()));

    queue.offer(incident("web"));
    let parked = wait_state(store.as_ref(), "shop/web/health", IncidentState::Parked).await;
    let first = parked.run.unwrap().approval.unwrap().id;
    wait_for("the channel to be asked", || {
        recorder.asked.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(recorder.asked.lock().unwrap()[0], first);

    // The target changes while the human decides: the approval is void, a new one is asked.
    tool.bump();
    store
        .decide(&first, None, &Answer::now(Decision::approve("slack:U1")))
        .await
        .unwrap();
    decided.notify_one();
    wait_for("the second question", || {
        recorder.asked.lock().unwrap().len() == 2
    })
    .await;
    let second = recorder.asked.lock().unwrap()[1].clone();
    assert_ne!(second, first);
    assert_eq!(tool.state().writes, 0, "nothing applied on a void approval");
    wait_for("the first to be settled", || {
        !recorder.settled.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        recorder.settled.lock().unwrap()[0],
        (
            first.clone(),
            Ending::AskedAgain {
                approval: second.clone()
            }
        )
    );

    // Approved again: applied, and the channel shows it.
    store
        .decide(&second, None, &Answer::now(Decision::approve("slack:U1")))
        .await
        .unwrap();
    decided.notify_one();
    wait_state(store.as_ref(), "shop/web/health", IncidentState::Closed).await;
    wait_for("the second to be settled", || {
        recorder.settled.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        recorder.settled.lock().unwrap()[1],
        (
            second,
            Ending::Applied {
                by: "slack:U1".into()
            }
        )
    );
    assert_eq!(tool.state().writes, 1);
    stop.stop();
    task.await.unwrap();
}
