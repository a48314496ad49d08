//! The product knowledge graph (petgraph): categories, brands, attribute values, concepts,
//! policies and products, with EN/ZH labels and synonyms. Built from the catalog plus the curated
//! layer (`knowledge/graph/`, stored in Postgres), queried for phrase resolution, concept
//! expansion, product facts, complements/substitutes and explanation paths. Node ids are domain
//! strings; `NodeIndex` never leaves this module.

mod build;
pub mod curated;
mod edit;
mod error;
mod knowledge;
pub mod lexicon;
mod model;
pub mod repo;
mod service;

pub use build::build;
pub use curated::Curated;
pub use edit::{Applied, Edit, NodeState};
pub use error::GraphError;
pub use knowledge::{
    Expansion, Facets, KnowledgeGraph, NodeRef, PhraseMatch, PolicyFact, ProductFacts, Stats, Step,
};
pub use model::{EdgeKind, EdgeRecord, NodeKind, NodeRecord, ids};
pub use repo::HistoryEntry;
pub use service::GraphService;
