//! Catalog failures in domain terms.

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("product {0:?} not found")]
    ProductNotFound(String),
    #[error("{0}")]
    Feed(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}
