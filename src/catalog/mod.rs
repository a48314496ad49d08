//! The catalog: products, prices, stock, categories, customers and orders — their types, their SQL
//! and the feed importers. Knows nothing about chat or HTTP.

pub mod demo;
mod error;
pub mod import;
mod model;
pub mod orders;
pub mod price;
pub mod repo;

pub use error::CatalogError;
pub use model::{Availability, ImportCounts, NewProduct, Product, ProductDraft, Reject};
