//! The live search service: the current [`LexicalIndex`] behind an `ArcSwap`, rebuilt off the
//! request path when the catalog changes, and swapped atomically so queries never wait.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use jieba_rs::Jieba;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::hybrid;
use super::lexical::{IndexError, LexicalIndex, Summary};
use super::query::QuerySpec;
use crate::catalog::repo;
use crate::graph::KnowledgeGraph;

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the query is empty")]
    EmptyQuery,
    #[error("the query is {0} characters long (limit {MAX_QUERY_CHARS})")]
    QueryTooLong(usize),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("loading the catalog: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the index build task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// One search result with its score breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_zh: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub price: f64,
    pub currency: String,
    pub in_stock: bool,
    pub score: f32,
    /// Why this product: the stage that scored it and what matched.
    pub why: Vec<String>,
}

type Fingerprint = (i64, Option<DateTime<Utc>>);

/// Cloneable handle to the live index.
#[derive(Clone)]
pub struct SearchService {
    jieba: Arc<Jieba>,
    index: Arc<ArcSwap<LexicalIndex>>,
    /// The catalog state the current index was built from; the lock also serialises rebuilds.
    built_from: Arc<Mutex<Option<Fingerprint>>>,
    graph_weight: f32,
}

impl SearchService {
    /// An empty index; call [`SearchService::refresh`] to load the catalog. Loading jieba's
    /// dictionary takes a moment, so build this once. `graph_weight` is `search.graph_weight`.
    pub fn new(graph_weight: f32) -> Result<Self, SearchError> {
        let jieba = Arc::new(Jieba::new());
        let empty = LexicalIndex::build(jieba.clone(), [])?;
        Ok(Self {
            jieba,
            index: Arc::new(ArcSwap::from_pointee(empty)),
            built_from: Arc::new(Mutex::new(None)),
            graph_weight,
        })
    }

    /// Rebuilds the index when the catalog changed since the last build; returns whether it did.
    pub async fn refresh(&self, pool: &PgPool) -> Result<bool, SearchError> {
        let mut built_from = self.built_from.lock().await;
        let now = repo::fingerprint(pool).await?;
        if built_from.as_ref() == Some(&now) {
            return Ok(false);
        }
        let products: Vec<_> = repo::all_products(pool).try_collect().await?;
        let jieba = self.jieba.clone();
        let started = std::time::Instant::now();
        let index =
            tokio::task::spawn_blocking(move || LexicalIndex::build(jieba, &products)).await??;
        tracing::info!(
            products = index.len(),
            ms = started.elapsed().as_millis() as u64,
            "search index rebuilt"
        );
        self.index.store(Arc::new(index));
        *built_from = Some(now);
        Ok(true)
    }

    /// Products in the current index.
    pub fn len(&self) -> usize {
        self.index.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Searches with `ranker`; the hybrid ranker needs the knowledge graph.
    pub fn search_with(
        &self,
        ranker: Ranker,
        graph: &KnowledgeGraph,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchResult>, SearchError> {
        match ranker {
            Ranker::Bm25 => self.search(query, limit),
            Ranker::Hybrid => {
                let query = check(query)?;
                let index = self.index.load();
                let spec = QuerySpec::parse(query);
                Ok(hybrid::rank(&index, graph, &spec, self.graph_weight, limit)
                    .into_iter()
                    .filter_map(|r| {
                        let s = index.summary(&r.id)?;
                        Some(result(&r.id, s, r.score, r.why))
                    })
                    .collect())
            }
        }
    }

    /// BM25 search over the current snapshot: the baseline, without filters.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchResult>, SearchError> {
        let query = check(query)?;
        let index = self.index.load();
        let hits = index.search(query, limit)?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let s = index.summary(&h.id)?;
                let mut why = vec![format!("bm25 {:.2}", h.score)];
                why.extend(h.matched);
                Some(result(&h.id, s, h.score, why))
            })
            .collect())
    }
}

/// Which ranking stage answers a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranker {
    /// BM25 only: the baseline evaluations compare against.
    Bm25,
    /// BM25 + knowledge-graph candidates, budget filters, fused score.
    #[default]
    Hybrid,
}

fn check(query: &str) -> Result<&str, SearchError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(SearchError::EmptyQuery);
    }
    let chars = query.chars().count();
    if chars > MAX_QUERY_CHARS {
        return Err(SearchError::QueryTooLong(chars));
    }
    Ok(query)
}

fn result(id: &str, s: &Summary, score: f32, why: Vec<String>) -> SearchResult {
    SearchResult {
        id: id.to_owned(),
        name: s.title.clone(),
        name_zh: s.title_zh.clone(),
        brand: s.brand.clone(),
        category: s.category.clone(),
        price: s.price,
        currency: s.currency.clone(),
        in_stock: s.in_stock,
        score,
        why,
    }
}
