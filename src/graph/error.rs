//! Knowledge-graph failures in domain terms.

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The curated data breaks a rule (dangling edge, duplicate synonym, empty label, ...).
    #[error("{0}")]
    Invalid(String),
    #[error("node {0:?} not found")]
    NodeNotFound(String),
    #[error("product {0:?} not found")]
    ProductNotFound(String),
    #[error(
        "node {id:?} was changed by someone else (now version {current}, you edited version {expected}); reload and reapply your edit"
    )]
    Conflict {
        id: String,
        expected: i32,
        current: i32,
    },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the graph build task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}
