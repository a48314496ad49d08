//! The live graph: the current [`KnowledgeGraph`] behind an `ArcSwap`, rebuilt off the request path
//! (from the catalog plus the curated layer in Postgres) and swapped atomically.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::TryStreamExt;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::curated::{self, Curated};
use super::error::GraphError;
use super::knowledge::KnowledgeGraph;
use super::{build, repo};
use crate::catalog::repo as catalog_repo;

/// The catalog and curated state a graph was built from.
pub(super) type BuiltFrom = (i64, Option<chrono::DateTime<chrono::Utc>>, i64);

/// Cloneable handle to the live graph.
#[derive(Clone)]
pub struct GraphService {
    pub(super) live: Arc<ArcSwap<KnowledgeGraph>>,
    pub(super) built_from: Arc<Mutex<Option<BuiltFrom>>>,
}

impl Default for GraphService {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphService {
    pub fn new() -> Self {
        Self {
            live: Arc::new(ArcSwap::from_pointee(KnowledgeGraph::empty())),
            built_from: Arc::new(Mutex::new(None)),
        }
    }

    /// The current graph; cheap, and never blocks on a rebuild.
    pub fn current(&self) -> Arc<KnowledgeGraph> {
        self.live.load_full()
    }

    /// Rebuilds when the catalog or the curated layer changed; returns whether it did.
    pub async fn refresh(&self, pool: &PgPool) -> Result<bool, GraphError> {
        let mut built_from = self.built_from.lock().await;
        let (count, changed) = catalog_repo::fingerprint(pool).await?;
        let version = repo::version(pool).await?;
        let now = (count, changed, version);
        if built_from.as_ref() == Some(&now) {
            return Ok(false);
        }
        let (curated, version) = repo::load(pool).await?;
        let products: Vec<_> = catalog_repo::all_products(pool).try_collect().await?;
        let started = std::time::Instant::now();
        let graph = tokio::task::spawn_blocking(move || build::build(&curated, &products, version))
            .await??;
        tracing::info!(
            version,
            ms = started.elapsed().as_millis() as u64,
            "knowledge graph rebuilt"
        );
        self.live.store(Arc::new(graph));
        *built_from = Some(now);
        Ok(true)
    }

    /// Validates `curated` against the current catalog, then replaces the stored curated layer
    /// with it and rebuilds. Invalid data changes nothing.
    pub async fn import(
        &self,
        pool: &PgPool,
        curated: Curated,
        actor: &str,
    ) -> Result<i64, GraphError> {
        let products: Vec<_> = catalog_repo::all_products(pool).try_collect().await?;
        let (curated, mut graph) = tokio::task::spawn_blocking(move || {
            build::build(&curated, &products, 0).map(|g| (curated, g))
        })
        .await??;
        let version = repo::replace_all(pool, &curated, actor).await?;
        graph.set_version(version);
        self.install(pool, graph, version).await?;
        Ok(version)
    }

    /// Makes `graph` (built from curated version `version` and the current catalog) the live one.
    pub(super) async fn install(
        &self,
        pool: &PgPool,
        graph: KnowledgeGraph,
        version: i64,
    ) -> Result<(), GraphError> {
        let mut built_from = self.built_from.lock().await;
        let (count, changed) = catalog_repo::fingerprint(pool).await?;
        self.live.store(Arc::new(graph));
        *built_from = Some((count, changed, version));
        Ok(())
    }

    /// Imports `dir` (or, when it does not exist, the copy built into the binary) when Postgres
    /// holds no curated layer yet.
    pub async fn seed_if_empty(&self, pool: &PgPool, dir: &Path) -> Result<bool, GraphError> {
        if !repo::is_empty(pool).await? {
            return Ok(false);
        }
        let curated = if dir.is_dir() {
            curated::read_dir(dir)?
        } else {
            tracing::info!(dir = %dir.display(), "no curated graph directory here; using the built-in copy");
            curated::builtin()?
        };
        self.import(pool, curated, "seed").await?;
        Ok(true)
    }
}

impl GraphService {
    /// Listens for `aisle_kg` notifications (sent by every edit and import, from any replica) and
    /// rebuilds on each, until `stop` fires. Reconnects after errors; the periodic refresh covers
    /// anything missed while disconnected.
    pub fn spawn_listener(
        &self,
        pool: PgPool,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "graph listener cannot connect; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => continue,
                            _ = stop.changed() => return,
                        }
                    }
                };
                if let Err(e) = listener.listen("aisle_kg").await {
                    tracing::warn!(error = %e, "graph listener cannot LISTEN; retrying");
                    continue;
                }
                // Catch up on anything missed while not listening.
                if let Err(e) = this.refresh(&pool).await {
                    tracing::warn!(error = %e, "graph refresh failed");
                }
                loop {
                    tokio::select! {
                        n = listener.recv() => match n {
                            Ok(_) => {
                                if let Err(e) = this.refresh(&pool).await {
                                    tracing::warn!(error = %e, "graph refresh after a change failed; keeping the old graph");
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "graph listener lost its connection; reconnecting");
                                break;
                            }
                        },
                        _ = stop.changed() => return,
                    }
                }
            }
        })
    }
}
