//! The embedded Kubernetes API simulator (feature `sim`): an HTTP server on 127.0.0.1 that the real
//! kube [`Client`](kube::Client) talks to, seeded from a [`Scenario`]. It is a stand-in for the API
//! server, speaking its protocol — paths, selectors, paginated lists, watches, patches, dry run,
//! 409/403/404 `Status` bodies — not a mock of this crate's functions. It stores each object once,
//! as the JSON bytes a list returns for it, beside the few fields lists and watches filter on.
//! Patching a deployment rolls it out: a new ReplicaSet and pods whose health, logs and events
//! come from the scenario's image catalogue.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sre_tools::Error> {
//! use k8s_openapi::api::core::v1::Pod;
//! use sre_tools::sim::Simulator;
//!
//! let sim = Simulator::start_named("bad-release").await?;
//! let pods: kube::Api<Pod> = kube::Api::namespaced(sim.client()?, "shop");
//! println!("{} pods", pods.list(&Default::default()).await?.items.len());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
pub mod kubelet;
mod objects;
mod page;
mod patch;
pub mod scenario;
mod select;
mod store;
pub mod trivy;
mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use scenario::Scenario;

use crate::error::{Error, Result};

/// A running simulator. Dropping it stops the server too; [`Simulator::shutdown`] waits for it.
pub struct Simulator {
    addr: SocketAddr,
    scenario: Scenario,
    store: api::Shared,
    catalogue: trivy::Catalogue,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .field("scenario", &self.scenario.name)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Starts a simulator for `scenario` on an ephemeral port of 127.0.0.1.
    ///
    /// # Errors
    /// A scenario over the simulator's size limits, or no port to bind.
    pub async fn start(scenario: Scenario) -> Result<Self> {
        // Scenarios built in code get the same size limits as files, before anything is allocated.
        scenario.validate(&scenario.name)?;
        let catalogue = trivy::Catalogue::from_images(&scenario.images);
        let store = Arc::new(Mutex::new(store::Store::new(&scenario, catalogue.clone())));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::Simulator(format!("cannot bind 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Simulator(e.to_string()))?;
        let app = axum::Router::new()
            .fallback(api::handle)
            .with_state(Arc::clone(&store));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "simulator server failed");
            }
        });
        Ok(Self {
            addr,
            scenario,
            store,
            catalogue,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Starts a built-in scenario by name, or a scenario file by path.
    ///
    /// # Errors
    /// An unknown scenario or an invalid file.
    pub async fn start_named(name_or_path: &str) -> Result<Self> {
        Self::start(Scenario::load(name_or_path)?).await
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The scenario it was seeded from.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The live image catalogue (shared: a [`trivy::Catalogue::push`] moves a tag for the
    /// simulator's kubelet, scanner and tag lister at once). It starts as the scenario's `images`.
    pub fn catalogue(&self) -> trivy::Catalogue {
        self.catalogue.clone()
    }

    /// A kube client configured for this simulator, with no kubeconfig on disk.
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn client(&self) -> Result<kube::Client> {
        let uri = self
            .url()
            .parse()
            .map_err(|e| Error::Config(format!("simulator url: {e}")))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = self
            .scenario
            .deployments
            .first()
            .map_or_else(|| "default".into(), |d| d.namespace.clone());
        kube::Client::try_from(config).map_err(Error::Kube)
    }

    /// Every tool, wired to this simulator ([`crate::toolset`]): the Kubernetes tools scoped to
    /// the scenario's namespaces, and the Trivy tools, with the scenario's live image catalogue
    /// standing in for Trivy and the registry (labelled simulated in their outputs) — image
    /// patches pin digests and re-scan what runs against it too.
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn tools(
        &self,
        limits: crate::k8s::Limits,
    ) -> Result<Vec<std::sync::Arc<dyn sre_core::Tool>>> {
        Ok(crate::toolset(
            self.client()?,
            crate::k8s::Scope::namespaces(self.scenario.all_namespaces()),
            limits,
            std::sync::Arc::new(trivy::CatalogueScanner::from(self.catalogue.clone())),
            std::sync::Arc::new(trivy::CatalogueTags::from(self.catalogue.clone())),
        ))
    }

    /// The stored object, read directly (for tests and the demo's "after" view).
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let s = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = store::TYPES.iter().find(|t| t.plural == plural)?;
        s.get(t.plural, namespace, name)
    }

    /// Number of stored objects of a resource type.
    pub fn count(&self, plural: &str) -> usize {
        let s = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.keys().filter(|(p, _, _)| *p == plural).count()
    }

    /// The bytes of JSON the simulator stores for its objects (each once, as a list item).
    pub fn stored_bytes(&self) -> usize {
        let s = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.stored_bytes()
    }

    /// Ends every open watch, so that the server can stop.
    fn close_watches(&self) {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .close();
    }

    /// Stops the server and waits until its task has ended (the port is free afterwards).
    pub async fn shutdown(mut self) {
        self.close_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.close_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
