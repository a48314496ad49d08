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
type BuiltFrom = (i64, Option<chrono::DateTime<chrono::Utc>>, i64);

/// Cloneable handle to the live graph.
#[derive(Clone)]
pub struct GraphService {
    live: Arc<ArcSwap<KnowledgeGraph>>,
    built_from: Arc<Mutex<Option<BuiltFrom>>>,
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
        let (curated, _) = tokio::task::spawn_blocking(move || {
            build::build(&curated, &products, 0).map(|_| curated)
        })
        .await?
        .map(|c| (c, ()))?;
        let version = repo::replace_all(pool, &curated, actor).await?;
        self.refresh(pool).await?;
        Ok(version)
    }

    /// Imports `knowledge/graph` when Postgres holds no curated layer yet.
    pub async fn seed_if_empty(&self, pool: &PgPool, dir: &Path) -> Result<bool, GraphError> {
        if !repo::is_empty(pool).await? || !dir.is_dir() {
            return Ok(false);
        }
        let curated = curated::read_dir(dir)?;
        self.import(pool, curated, "seed").await?;
        Ok(true)
    }
}
