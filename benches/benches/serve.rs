//! `serve`: how fast `sre-agent serve` turns a watcher event into a run, and what a flood of
//! events costs the queue.
//!
//! - `event_to_first_model_call/{bare_agent,serve_agent}`: from an incident offered to the
//!   [`Queue`] (as the workload watcher offers it) to the first model call of the run the
//!   [`Service`] started for it: the queue hands it out (debounce 0), the run is opened in an
//!   in-memory [`SqliteStore`] (one leader, no election), the agent is built by the
//!   [`AgentFactory`] and starts. The brain is a provider that records when it is called and
//!   answers at once, so each run ends after one model call; the next event is offered only once
//!   the previous run is closed in the store (that wait is not timed), and every event is about
//!   another workload, so no de-duplication, cooldown or one-run-per-workload rule skips it.
//!   `bare_agent` runs an agent with no tools; `serve_agent` one built as `serve` builds its
//!   namespace's agent (the Kubernetes and Trivy tools over a kube client — here the
//!   simulator's — the `--approve api` rules, the metrics and tracing observers). As in `serve`,
//!   the agent is built once and every run is a clone of it. JSON logs go to a sink at `info`, as `serve`
//!   writes them to stdout. Before criterion's runs each variant also times 1,000 single events
//!   and prints their median, p90, p99 and maximum (criterion's figures are means over batches).
//! - `queue_flood/offer_500_distinct_into_64`: 500 incidents about 500 distinct workloads
//!   offered to a capacity-64 queue (64 queued, 436 dropped and counted), as a flood of
//!   crash-looping deployments reaches the watcher.
//!
//! ```sh
//! cargo bench -p sre-benches --bench serve
//! ```
//! About 20 s in all on a 2-core machine.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up must stop"
)]
#![expect(
    clippy::cast_precision_loss,
    reason = "latencies printed in microseconds"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sre_core::testing::answer;
use sre_core::{
    Agent, ChatRequest, ChatResponse, LlmError, LlmProvider, Park, Rules, Stop, TracingObserver,
};
use sre_tools::k8s::{Limits, Scope};
use sre_tools::serve::metrics::Metrics;
use sre_tools::serve::watch::WorkloadRef;
use sre_tools::serve::{
    AgentFactory, Incident, IncidentState, Offer, Queue, RunStore, Service, ServiceConfig,
    SqliteStore, Trigger, Triggers,
};
use sre_tools::sim::Simulator;
use sre_tools::trivy::registry::{RegistryClient, TagLister};
use sre_tools::trivy::scanner::{ImageScanner, TrivyCli};
use tokio::sync::{Mutex, Notify, mpsc};

/// The namespace of every benchmark incident (the simulator's `healthy` scenario has it).
const NAMESPACE: &str = "shop";
/// Events timed one by one for the printed percentiles.
const SINGLE_EVENTS: usize = 1_000;
/// How long the untimed wait for a run to close may take before the bench gives up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The brain: records when it is called, then answers at once (the run ends after one call).
struct Signal {
    called: mpsc::UnboundedSender<Instant>,
}

#[async_trait]
impl LlmProvider for Signal {
    async fn chat(&self, _request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let _ = self.called.send(Instant::now());
        Ok(answer("deployment is healthy again; nothing to change"))
    }

    fn name(&self) -> String {
        "bench/signal".into()
    }
}

/// What the agent factory builds besides the brain.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    /// No tools, no policy, no observers.
    Bare,
    /// As `serve_cmd.rs` builds it for `--approve api`.
    Serve,
}

/// One `Service` leading alone over an in-memory store, with its queue and the brain's signal.
struct Harness {
    queue: Arc<Queue>,
    store: Arc<SqliteStore>,
    called: Mutex<mpsc::UnboundedReceiver<Instant>>,
    next: AtomicU64,
    stop: Stop,
    task: tokio::task::JoinHandle<()>,
}

/// As `serve_cmd.rs` does: the namespace's agent is built once; every run is a clone.
fn factory(build: Build, brain: Arc<dyn LlmProvider>, sim: &Simulator) -> AgentFactory {
    let metrics = Arc::new(Metrics::new());
    let client = sim.client().expect("simulator client");
    let builder = Agent::builder_arc(brain).max_steps(20);
    let builder = match build {
        Build::Bare => builder,
        Build::Serve => {
            let scanner: Arc<dyn ImageScanner> = Arc::new(TrivyCli::default());
            let tags: Arc<dyn TagLister> = Arc::new(RegistryClient::new());
            let scope = Scope::namespaces([NAMESPACE]);
            let tools = sre_tools::toolset(client, scope, Limits::default(), scanner, tags);
            builder
                .tools(tools)
                .policy(
                    Rules::new(Park)
                        .namespaces([NAMESPACE])
                        .max_writes_per_run(usize::MAX),
                )
                .approval_ttl(Duration::from_secs(3600))
                .observer_arc(metrics.observer())
                .observer(TracingObserver)
        }
    };
    let agent = builder.build().expect("the agent");
    Arc::new(move |_incident: &Incident| Ok(agent.clone()))
}

impl Harness {
    fn start(build: Build, sim: &Simulator) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let brain: Arc<dyn LlmProvider> = Arc::new(Signal { called: tx });
        let queue = Arc::new(Queue::new(64, Duration::ZERO));
        let store = Arc::new(SqliteStore::in_memory().expect("in-memory store"));
        let config = ServiceConfig {
            cooldown: Duration::ZERO,
            ..ServiceConfig::new("bench-0")
        };
        // The triggers are this bench: nothing to start.
        let triggers: Triggers = Arc::new(|_term: Stop| {});
        let service = Service::new(
            config,
            Arc::clone(&store) as Arc<dyn RunStore>,
            Arc::clone(&queue),
            Arc::new(Metrics::new()),
            factory(build, brain, sim),
            triggers,
            Arc::new(Notify::new()),
        );
        // One leader, no election: the sender is dropped, so the service leads for good.
        let (leading_tx, leading_rx) = tokio::sync::watch::channel(true);
        drop(leading_tx);
        let stop = Stop::new();
        let task = tokio::spawn(service.run(leading_rx, stop.clone()));
        Self {
            queue,
            store,
            called: Mutex::new(rx),
            next: AtomicU64::new(0),
            stop,
            task,
        }
    }

    /// A new incident about a workload no earlier event named, as the watcher builds it.
    fn incident(&self) -> Incident {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let workload = WorkloadRef::new(NAMESPACE, &format!("web-{n}")).expect("valid names");
        workload.health_incident(
            Trigger::Watcher,
            format!(
                "deployment {NAMESPACE}/web-{n}: pod web-{n}-67586446fc-x2x9q is in \
                 CrashLoopBackOff (container web restarted 5 times, last exit 1 (Error))"
            ),
        )
    }

    /// Offers one event and returns the time to the run's first model call; then waits
    /// (untimed) until the run is closed in the store.
    async fn one(&self, called: &mut mpsc::UnboundedReceiver<Instant>) -> Duration {
        let incident = self.incident();
        let key = incident.key.clone();
        let offered = Instant::now();
        assert_eq!(self.queue.offer(incident), Offer::Queued);
        let at = called.recv().await.expect("the brain is alive");
        let latency = at.duration_since(offered);
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        loop {
            let record = self.store.get(&key).await.expect("store");
            if record.is_some_and(|r| r.state == IncidentState::Closed) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the run for {key} did not close within {CLOSE_TIMEOUT:?}"
            );
            tokio::task::yield_now().await;
        }
        latency
    }

    async fn shutdown(self) {
        self.stop.stop();
        self.task.await.expect("service task");
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `SINGLE_EVENTS` events one by one (after 100 untimed ones) and prints percentiles.
async fn percentiles(name: &str, h: &Harness) {
    let mut called = h.called.lock().await;
    for _ in 0..100 {
        h.one(&mut called).await;
    }
    let mut all: Vec<Duration> = Vec::with_capacity(SINGLE_EVENTS);
    for _ in 0..SINGLE_EVENTS {
        all.push(h.one(&mut called).await);
    }
    all.sort_unstable();
    let at = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "an index into a vector of 1,000"
        )]
        let i = ((all.len() - 1) as f64 * q).round() as usize;
        micros(all[i])
    };
    eprintln!(
        "event_to_first_model_call/{name}: {SINGLE_EVENTS} single events: median {:.0} µs, \
         p90 {:.0} µs, p99 {:.0} µs, min {:.0} µs, max {:.0} µs",
        at(0.5),
        at(0.9),
        at(0.99),
        micros(all[0]),
        micros(all[all.len() - 1]),
    );
}

fn bench_latency(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let sim = rt
        .block_on(Simulator::start_named("healthy"))
        .expect("simulator");
    let mut group = c.benchmark_group("event_to_first_model_call");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, build) in [("bare_agent", Build::Bare), ("serve_agent", Build::Serve)] {
        let h = rt.block_on(async { Harness::start(build, &sim) });
        rt.block_on(percentiles(name, &h));
        group.bench_function(name, |b| {
            let h = &h;
            b.to_async(rt).iter_custom(|iters| async move {
                let mut called = h.called.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += h.one(&mut called).await;
                }
                total
            });
        });
        assert_eq!(h.queue.dropped(), 0, "no event may be dropped");
        rt.block_on(h.shutdown());
    }
    group.finish();
    rt.block_on(sim.shutdown());
}

fn bench_flood(c: &mut Criterion) {
    const WORKLOADS: usize = 500;
    const CAPACITY: usize = 64;
    let incidents: Vec<Incident> = (0..WORKLOADS)
        .map(|i| {
            WorkloadRef::new(&format!("bulk-{}", i % 10), &format!("svc-{i}"))
                .expect("valid names")
                .health_incident(
                    Trigger::Watcher,
                    format!(
                        "deployment bulk-{}/svc-{i}: pod svc-{i}-5d8f7c9b6-abcde is in \
                         CrashLoopBackOff (container app restarted 3 times, last exit 1 (Error))",
                        i % 10
                    ),
                )
        })
        .collect();
    let mut group = c.benchmark_group("queue_flood");
    group.throughput(Throughput::Elements(WORKLOADS as u64));
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("offer_500_distinct_into_64", |b| {
        b.iter_batched(
            || (Queue::new(CAPACITY, Duration::ZERO), incidents.clone()),
            |(queue, incidents)| {
                for incident in incidents {
                    queue.offer(incident);
                }
                assert_eq!(queue.depth(), CAPACITY);
                assert_eq!(queue.dropped(), (WORKLOADS - CAPACITY) as u64);
                queue
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    // As `serve` runs: JSON logs at `info` (written to a sink here instead of stdout).
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .try_init()
        .expect("the only subscriber");
    // The runtime `sre-agent` builds: multi-threaded, two workers.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    bench_latency(c, &rt);
    bench_flood(c);
}

criterion_group!(benches, bench);
criterion_main!(benches);
