//! Retrieval and ranking: the lexical BM25 baseline ([`LexicalIndex`]), dense vectors
//! ([`crate::embed`]), knowledge-graph expansion, the learned ranker and the business rules, run
//! as one [`pipeline`] over live catalog snapshots held by the [`SearchService`].

pub mod features;
pub mod feedback;
pub mod learned;
mod lexical;
pub mod metrics;
pub mod pipeline;
pub mod query;
pub mod rules;
mod service;
pub mod tokenizer;
pub mod train;

use std::path::PathBuf;

use serde::Deserialize;

pub use lexical::{Hit, IndexError, LexicalIndex, QueryTerms, Summary};
pub use service::{MAX_QUERY_CHARS, Ranker, SearchError, SearchResult, SearchService};

/// `[ranking]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct RankingSettings {
    /// Where trained ranker versions are written and loaded from.
    pub model_dir: PathBuf,
    /// Longest wait, in milliseconds, for the query's vector before a search goes on without
    /// dense candidates.
    pub dense_wait_ms: u64,
    #[serde(flatten)]
    pub rules: rules::Rules,
}
