//! Retrieval and ranking. For now the lexical BM25 baseline ([`LexicalIndex`]) over a live catalog
//! snapshot ([`SearchService`]); later stages (embeddings, graph expansion, the learned ranker) add
//! to it, and this baseline stays for evaluations to compare against.

pub mod hybrid;
mod lexical;
pub mod metrics;
pub mod query;
mod service;
pub mod tokenizer;

pub use lexical::{Hit, IndexError, LexicalIndex, Summary};
pub use service::{Ranker, SearchError, SearchResult, SearchService};
