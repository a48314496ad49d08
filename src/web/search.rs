//! `GET /api/search` and `GET /api/products/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::AppError;
use super::extract::AppQuery;
use crate::catalog::{CatalogError, Product, repo};
use crate::ranking::{Ranker, SearchResult};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    limit: Option<usize>,
    /// `learned` (default), `hybrid` or `bm25`.
    ranker: Option<Ranker>,
    /// A chat session: its shopper's clicks and carts personalise the ranking.
    session: Option<uuid::Uuid>,
}

#[derive(Serialize)]
pub struct SearchResponse {
    query: String,
    results: Vec<SearchResult>,
}

pub async fn search(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Json<SearchResponse>, AppError> {
    let query = params.q.unwrap_or_default();
    let s = &state.settings.search;
    let limit = params.limit.unwrap_or(s.default_limit);
    if limit == 0 || limit > s.max_limit {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {}",
            s.max_limit
        )));
    }
    state.metrics.search_requests.inc();
    let search = state.search.clone();
    let graph = state.graph.current();
    let ranker = params.ranker.unwrap_or_default();
    let affinity = match params.session {
        Some(id) => crate::ranking::feedback::affinity(&state.pool, id).await?,
        None => Default::default(),
    };
    let q = query.clone();
    // Embedding the query and scoring the candidates is CPU work: keep it off the async workers.
    let results = tokio::task::spawn_blocking(move || {
        search.search_for(ranker, &graph, &q, limit, &affinity)
    })
    .await
    .map_err(|e| AppError::Search(e.into()))??;
    Ok(Json(SearchResponse { query, results }))
}

pub async fn product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Product>, AppError> {
    repo::get_product(&state.pool, &id)
        .await?
        .map(Json)
        .ok_or_else(|| CatalogError::ProductNotFound(id).into())
}
