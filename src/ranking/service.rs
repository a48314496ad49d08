//! The live search service: a snapshot of the catalog's indexes (lexical, dense vectors,
//! feedback signals) and the current ranker model, each behind an `ArcSwap`, rebuilt or reloaded
//! off the request path and swapped atomically so queries never wait.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use jieba_rs::Jieba;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::RankingSettings;
use super::features::{Affinity, Signals, Understanding};
use super::learned::{ModelError, RankerModel};
use super::lexical::{IndexError, LexicalIndex, Summary};
use super::pipeline::{self, DenseHits, Inputs, Scorer};
use super::query::QuerySpec;
use super::rules::Rules;
use crate::catalog::repo;
use crate::embed::{DenseIndex, EmbedError, Embedder, Quantized, store};
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
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
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
    /// Feature values and score parts by name (empty for the BM25 baseline).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub breakdown: std::collections::BTreeMap<&'static str, f32>,
    /// Why this product: the scores, what matched, the filters, the graph path.
    pub why: Vec<String>,
}

type Fingerprint = (i64, Option<DateTime<Utc>>);

/// The indexes of one catalog state.
struct Snapshot {
    lexical: LexicalIndex,
    dense: DenseIndex,
}

/// Cloneable handle to the live indexes and model.
#[derive(Clone)]
pub struct SearchService {
    jieba: Arc<Jieba>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    signals: Arc<ArcSwap<Signals>>,
    model: Arc<ArcSwapOption<RankerModel>>,
    embedder: Option<Arc<Embedder>>,
    /// The catalog state the current snapshot was built from; the lock also serialises rebuilds.
    built_from: Arc<Mutex<Option<Fingerprint>>>,
    graph_weight: f32,
    /// How long a search waits for the query's vector and nearest products.
    dense_wait: std::time::Duration,
    rules: Arc<Rules>,
    model_dir: PathBuf,
    /// Embed products with a progress bar (CLI imports), not in the server's log.
    progress: bool,
}

impl SearchService {
    /// Empty indexes; call [`SearchService::refresh`] to load the catalog. Loading jieba's
    /// dictionary takes a moment, so build this once. Without an `embedder` dense retrieval is off.
    pub fn new(
        graph_weight: f32,
        ranking: &RankingSettings,
        embedder: Option<Arc<Embedder>>,
    ) -> Result<Self, SearchError> {
        let jieba = Arc::new(Jieba::new());
        let lexical = LexicalIndex::build(jieba.clone(), [])?;
        let service = Self {
            jieba,
            snapshot: Arc::new(ArcSwap::from_pointee(Snapshot {
                lexical,
                dense: DenseIndex::empty(),
            })),
            signals: Arc::new(ArcSwap::from_pointee(Signals::default())),
            model: Arc::new(ArcSwapOption::empty()),
            embedder,
            built_from: Arc::new(Mutex::new(None)),
            graph_weight,
            dense_wait: std::time::Duration::from_millis(ranking.dense_wait_ms),
            rules: Arc::new(ranking.rules.clone()),
            model_dir: ranking.model_dir.clone(),
            progress: false,
        };
        service.reload_model()?;
        Ok(service)
    }

    /// The service as configured: the embedding model from `embed.model_dir` (dense retrieval is
    /// off, with a warning, when it is missing and not `embed.required`), the ranker from
    /// `ranking.model_dir`.
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Self, SearchError> {
        let embedder = match Embedder::load(&settings.embed.model_dir) {
            Ok(e) => Some(Arc::new(e)),
            Err(e @ EmbedError::Missing(_)) if !settings.embed.required => {
                tracing::warn!(error = %e, "dense retrieval is off");
                None
            }
            Err(e) => return Err(e.into()),
        };
        Self::new(settings.search.graph_weight, &settings.ranking, embedder)
    }

    /// Draw a progress bar while embedding products (for the CLI).
    pub fn with_progress(mut self) -> Self {
        self.progress = true;
        self
    }

    /// Rebuilds the indexes when the catalog changed since the last build (embedding new or
    /// changed products first) and refreshes feedback signals; returns whether it rebuilt.
    pub async fn refresh(&self, pool: &PgPool) -> Result<bool, SearchError> {
        let mut built_from = self.built_from.lock().await;
        self.signals.store(Arc::new(Signals {
            popularity: super::feedback::popularity(pool).await?,
        }));
        let now = repo::fingerprint(pool).await?;
        if built_from.as_ref() == Some(&now) {
            return Ok(false);
        }
        let products: Vec<_> = repo::all_products(pool).try_collect().await?;
        let started = std::time::Instant::now();
        let dense = match &self.embedder {
            Some(e) => {
                store::sync(pool, e, &products, self.progress).await?;
                store::load(pool, e.name(), e.dim()).await?
            }
            None => DenseIndex::empty(),
        };
        let jieba = self.jieba.clone();
        let lexical =
            tokio::task::spawn_blocking(move || LexicalIndex::build(jieba, &products)).await??;
        tracing::info!(
            products = lexical.len(),
            vectors = dense.len(),
            ms = started.elapsed().as_millis() as u64,
            "search indexes rebuilt"
        );
        self.snapshot.store(Arc::new(Snapshot { lexical, dense }));
        *built_from = Some(now);
        Ok(true)
    }

    /// Loads the newest model in the model folder when it is newer than the current one (the
    /// built-in model when the folder has none). A file that fails to load is skipped with a
    /// warning and the current model kept. Returns the version now in use.
    pub fn reload_model(&self) -> Result<Option<u64>, SearchError> {
        let current = self.model.load().as_ref().map(|m| m.info.version);
        for (version, path) in super::learned::versions(&self.model_dir) {
            if current.is_some_and(|c| c >= version) {
                return Ok(current);
            }
            match RankerModel::load(&path) {
                Ok(m) => {
                    tracing::info!(version, path = %path.display(), "ranker model loaded");
                    self.model.store(Some(Arc::new(m)));
                    return Ok(Some(version));
                }
                Err(e) => tracing::warn!(error = %e, "skipping a ranker model"),
            }
        }
        if current.is_none()
            && let Some(m) = RankerModel::builtin()?
        {
            let version = m.info.version;
            self.model.store(Some(Arc::new(m)));
            return Ok(Some(version));
        }
        Ok(current)
    }

    /// The model in use, if any.
    pub fn model(&self) -> Option<Arc<RankerModel>> {
        self.model.load_full()
    }

    /// Products in the current index.
    pub fn len(&self) -> usize {
        self.snapshot.load().lexical.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Products with a vector.
    pub fn vectors(&self) -> usize {
        self.snapshot.load().dense.len()
    }

    pub fn embedder(&self) -> Option<&Arc<Embedder>> {
        self.embedder.as_ref()
    }

    /// Searches with `ranker` and no shopper context.
    pub fn search_with(
        &self,
        ranker: Ranker,
        graph: &KnowledgeGraph,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchResult>, SearchError> {
        self.search_for(ranker, graph, query, limit, &Affinity::default())
    }

    /// Searches with `ranker` for a shopper whose engagement is `affinity`.
    pub fn search_for(
        &self,
        ranker: Ranker,
        graph: &KnowledgeGraph,
        query: &str,
        limit: usize,
        affinity: &Affinity,
    ) -> Result<Vec<SearchResult>, SearchError> {
        if ranker == Ranker::Bm25 {
            return self.search(query, limit);
        }
        let model = self.model.load_full();
        let scorer = match (ranker, &model) {
            (Ranker::Learned, Some(m)) => Scorer::Learned(m),
            _ => Scorer::Fused {
                graph_weight: self.graph_weight,
            },
        };
        // The hybrid baseline stays as it was measured: no dense stage, no business rules beyond
        // the exact-name pin.
        let learned = ranker == Ranker::Learned;
        let no_rules = Rules::default();
        let rules = if learned { &*self.rules } else { &no_rules };
        self.run(graph, query, learned, rules, affinity, |inputs, spec, u| {
            results_of(inputs, pipeline::rank(inputs, spec, u, scorer, limit))
        })
    }

    /// A search in a conversation: the learned ranker and business rules as in
    /// [`SearchService::search_for`], with the budget the dialogue has established replacing any
    /// budget the text states, when it has one (a refinement's "under 500" and an earlier turn's
    /// budget both arrive here as `min_price`/`max_price`).
    pub fn search_in_dialogue(
        &self,
        graph: &KnowledgeGraph,
        query: &str,
        limit: usize,
        affinity: &Affinity,
        min_price: Option<f64>,
        max_price: Option<f64>,
    ) -> Result<Vec<SearchResult>, SearchError> {
        let model = self.model.load_full();
        let scorer = match &model {
            Some(m) => Scorer::Learned(m),
            None => Scorer::Fused {
                graph_weight: self.graph_weight,
            },
        };
        let rules = &*self.rules;
        self.run_adjusted(
            graph,
            query,
            true,
            rules,
            affinity,
            |spec| {
                spec.min_price = min_price.or(spec.min_price);
                spec.max_price = max_price.or(spec.max_price);
            },
            |inputs, spec, u| results_of(inputs, pipeline::rank(inputs, spec, u, scorer, limit)),
        )
    }

    /// The candidates of a query with their features, for training: the same stages 1–2 as a
    /// search, without scoring or rules.
    pub fn candidates(
        &self,
        graph: &KnowledgeGraph,
        query: &str,
    ) -> Result<Vec<pipeline::Candidate>, SearchError> {
        let (rules, affinity) = (Rules::default(), Affinity::default());
        self.run(graph, query, true, &rules, &affinity, |inputs, spec, u| {
            pipeline::candidates(inputs, spec, u).list
        })
    }

    /// Parses and understands `query` and runs `f` over the current snapshot (with the query's
    /// vector when `dense`).
    fn run<T>(
        &self,
        graph: &KnowledgeGraph,
        query: &str,
        dense: bool,
        rules: &Rules,
        affinity: &Affinity,
        f: impl FnOnce(&Inputs<'_>, &QuerySpec, &Understanding) -> T,
    ) -> Result<T, SearchError> {
        self.run_adjusted(graph, query, dense, rules, affinity, |_| {}, f)
    }

    /// As `run`, with `adjust` applied to the parsed query before it is understood.
    #[allow(clippy::too_many_arguments)]
    fn run_adjusted<T>(
        &self,
        graph: &KnowledgeGraph,
        query: &str,
        dense: bool,
        rules: &Rules,
        affinity: &Affinity,
        adjust: impl FnOnce(&mut QuerySpec),
        f: impl FnOnce(&Inputs<'_>, &QuerySpec, &Understanding) -> T,
    ) -> Result<T, SearchError> {
        let query = check(query)?;
        let snapshot = self.snapshot.load_full();
        let signals = self.signals.load();
        let mut spec = QuerySpec::parse(query);
        adjust(&mut spec);
        let understanding = Understanding::new(graph, &spec);
        let dense_text = dense.then_some(understanding.dense_text.as_str());
        Ok(self.with_dense_hits(&snapshot, dense_text, |dense_hits| {
            let inputs = Inputs {
                lexical: &snapshot.lexical,
                graph,
                dense: &snapshot.dense,
                dense_hits,
                signals: &signals,
                affinity,
                rules,
            };
            f(&inputs, &spec, &understanding)
        }))
    }

    /// Runs `f` with a way to get the query's dense hits (its vector and nearest products). The
    /// embedding (when not cached) and the nearest-neighbour scan run on another thread while `f`
    /// runs its lexical and graph stages; the dense stage then waits for them, at most
    /// `ranking.dense_wait_ms`. A model that fails or is stuck means no dense candidates for this
    /// search (logged), never a failed or hung search; a late vector still lands in the cache.
    fn with_dense_hits<T>(
        &self,
        snapshot: &Arc<Snapshot>,
        text: Option<&str>,
        f: impl FnOnce(&(dyn Fn() -> Option<Arc<DenseHits>> + Sync)) -> T,
    ) -> T {
        let (Some(e), Some(text)) = (&self.embedder, text.filter(|t| !t.trim().is_empty())) else {
            return f(&|| None);
        };
        let (e, snapshot, owned) = (e.clone(), snapshot.clone(), text.to_owned());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let hits = match e.embed(&[owned.as_str()]) {
                Ok(mut v) => v.pop().map(|v| {
                    let query = Quantized::new(&v);
                    let nearest = snapshot
                        .dense
                        .nearest(&query, pipeline::DENSE_CANDIDATES)
                        .into_iter()
                        .map(|(id, cos)| (id.to_owned(), cos))
                        .collect();
                    Arc::new(DenseHits { query, nearest })
                }),
                Err(err) => {
                    tracing::warn!(error = %err, "query embedding failed; searching without dense candidates");
                    None
                }
            };
            // The search may have stopped waiting; then nobody receives this.
            let _ = tx.send(hits);
        });
        let wait = self.dense_wait;
        let rx = std::sync::Mutex::new(rx);
        let got: std::sync::OnceLock<Option<Arc<DenseHits>>> = std::sync::OnceLock::new();
        f(&|| {
            got.get_or_init(|| {
                let rx = rx.lock().ok()?;
                match rx.recv_timeout(wait) {
                    Ok(hits) => hits,
                    Err(_) => {
                        tracing::warn!(
                            query = text,
                            wait_ms = wait.as_millis() as u64,
                            "query vector not ready in time; searching without dense candidates"
                        );
                        None
                    }
                }
            })
            .clone()
        })
    }

    /// BM25 search over the current snapshot: the baseline, without filters.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchResult>, SearchError> {
        let query = check(query)?;
        let snapshot = self.snapshot.load();
        let index = &snapshot.lexical;
        let terms = index.query_terms(query);
        let hits = index.search(&terms, limit)?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let s = index.summary(&h.id)?;
                let mut why = vec![format!("bm25 {:.2}", h.score)];
                why.extend(index.matched(&h.id, &terms));
                Some(result(&h.id, s, h.score, why))
            })
            .collect())
    }
}

/// Ranked products as search results with their score breakdowns.
fn results_of(inputs: &Inputs<'_>, ranked: Vec<pipeline::Ranked>) -> Vec<SearchResult> {
    ranked
        .into_iter()
        .filter_map(|r| {
            let s = inputs.lexical.summary(&r.id)?;
            let mut out = result(&r.id, s, r.score, r.why);
            out.breakdown = r.breakdown;
            Some(out)
        })
        .collect()
}

/// Which ranking stage answers a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranker {
    /// BM25 only: the baseline evaluations compare against.
    Bm25,
    /// BM25 + knowledge-graph candidates, budget filters, the fixed fused score.
    Hybrid,
    /// BM25 + dense + graph candidates, hard filters, the learned model, business rules.
    #[default]
    Learned,
}

impl Ranker {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bm25 => "bm25",
            Self::Hybrid => "hybrid",
            Self::Learned => "learned",
        }
    }
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
        breakdown: Default::default(),
        why,
    }
}
