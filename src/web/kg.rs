//! Read-only knowledge-graph API: phrase resolution with its expansion (the editor's preview),
//! a node with its edges, and the facts for a product.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppError;
use super::extract::AppQuery;
use crate::graph::ProductFacts;
use crate::state::AppState;

/// Longest phrase accepted for resolution, in characters.
const MAX_PHRASE_CHARS: usize = 500;

#[derive(Deserialize)]
pub struct ResolveParams {
    q: String,
    limit: Option<usize>,
}

/// `GET /api/kg/resolve?q=`: the nodes a phrase names, what the best of each expands to, and the
/// products that expansion reaches.
pub async fn resolve(
    State(state): State<AppState>,
    AppQuery(p): AppQuery<ResolveParams>,
) -> Result<Json<Value>, AppError> {
    let q = p.q.trim();
    if q.is_empty() {
        return Err(AppError::BadRequest("q is empty".into()));
    }
    if q.chars().count() > MAX_PHRASE_CHARS {
        return Err(AppError::BadRequest(format!(
            "q is longer than {MAX_PHRASE_CHARS} characters"
        )));
    }
    let g = state.graph.current();
    let matches = g.resolve(q);
    let expansions: Vec<_> = matches
        .iter()
        .filter_map(|m| m.nodes.first())
        .flat_map(|n| g.expand(&n.id))
        .collect();
    let products = g.products_reached(&expansions, p.limit.unwrap_or(20).clamp(1, 100));
    Ok(Json(json!({
        "query": q,
        "graph_version": g.version(),
        "matches": matches,
        "expansions": expansions,
        "products": products.into_iter().map(|(id, weight)| json!({"id": id, "weight": weight})).collect::<Vec<_>>(),
    })))
}

/// `GET /api/kg/nodes/{id}`: a node, its synonyms and data, and its edges.
pub async fn node(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let g = state.graph.current();
    let (node, synonyms_en, synonyms_zh, data) = g
        .node_detail(&id)
        .ok_or_else(|| AppError::NotFound(format!("node {id:?} not found")))?;
    let edges: Vec<Value> = g
        .edges_of(&id)
        .into_iter()
        .filter(|(other, ..)| other.kind != crate::graph::NodeKind::Product)
        .map(|(other, kind, weight, outgoing)| json!({"node": other, "kind": kind, "weight": weight, "outgoing": outgoing}))
        .collect();
    Ok(Json(
        json!({"node": node, "synonyms_en": synonyms_en, "synonyms_zh": synonyms_zh, "data": data, "edges": edges}),
    ))
}

/// `GET /api/kg/facts/{product_id}`: category path, brand, attributes and applicable policies.
pub async fn facts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProductFacts>, AppError> {
    state
        .graph
        .current()
        .facts(&id)
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("product {id:?} not found")))
}
