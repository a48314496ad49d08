//! The hybrid retrieval stage: candidates from BM25 and from the knowledge graph (phrases →
//! categories, facets, concepts → products), budget filters from the query, a fused score with its
//! breakdown, stock ordering, and the graph path that justified each result.
//!
//! Fusion: each source's score is normalised to [0, 1] within the query (BM25 by the best BM25
//! score, the graph by the best graph weight) and added, the graph's scaled by `graph_weight`
//! (`search.graph_weight`, chosen on the training queries in eval/queries, never on held-out
//! ones). The learned ranker replaces this sum later; the breakdown keeps both inputs visible.

use std::collections::HashMap;

use serde::Serialize;

use super::lexical::LexicalIndex;
use super::query::QuerySpec;
use crate::graph::{KnowledgeGraph, NodeKind};

/// BM25 candidates considered.
const LEXICAL_CANDIDATES: usize = 300;
/// Graph candidates considered.
const GRAPH_CANDIDATES: usize = 1_000;

/// One ranked product with its score breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub id: String,
    pub score: f32,
    pub bm25: f32,
    pub graph: f32,
    pub in_stock: bool,
    /// The query is this product's exact name (a known-item search): pinned first.
    pub named: bool,
    pub why: Vec<String>,
}

/// Ranks products for `spec`; every result satisfies the budget.
pub fn rank(
    lexical: &LexicalIndex,
    graph: &KnowledgeGraph,
    spec: &QuerySpec,
    graph_weight: f32,
    limit: usize,
) -> Vec<Ranked> {
    let hits = if spec.text.trim().is_empty() {
        Vec::new()
    } else {
        lexical
            .search(&spec.text, LEXICAL_CANDIDATES)
            .unwrap_or_default()
    };
    let best_bm25 = hits.first().map_or(1.0, |h| h.score.max(f32::EPSILON));

    // The best node of each phrase; facet values named inside longer phrases come along.
    let matches = graph.resolve(&spec.text);
    let chosen: Vec<&crate::graph::NodeRef> =
        matches.iter().filter_map(|m| m.nodes.first()).collect();
    let expansions: Vec<_> = chosen.iter().flat_map(|n| graph.expand(&n.id)).collect();
    let reached = graph.products_reached(&expansions, GRAPH_CANDIDATES);
    let best_graph = reached.first().map_or(1.0, |(_, w)| w.max(f32::EPSILON));

    let mut candidates: HashMap<String, (f32, f32, Vec<String>)> = HashMap::new();
    for h in hits {
        let e = candidates.entry(h.id).or_default();
        e.0 = h.score / best_bm25;
        e.2.extend(h.matched);
    }
    for (id, w) in reached {
        candidates.entry(id).or_default().1 = graph_weight * w / best_graph;
    }

    let mut ranked: Vec<Ranked> = candidates
        .into_iter()
        .filter_map(|(id, (bm25, g, matched))| {
            let summary = lexical.summary(&id)?;
            if !spec.admits(summary.price) {
                return None;
            }
            let mut why = vec![format!("bm25 {bm25:.2}"), format!("graph {g:.2}")];
            why.extend(matched);
            // A shopper who types a product's exact name wants that product, in stock or not.
            let named = same_text(&summary.title, &spec.text)
                || summary
                    .title_zh
                    .as_deref()
                    .is_some_and(|t| same_text(t, &spec.text));
            if named {
                why.push("exact name".into());
            }
            Some(Ranked {
                id,
                score: bm25 + g,
                bm25,
                graph: g,
                in_stock: summary.in_stock,
                named,
                why,
            })
        })
        .collect();
    // A product named exactly is pinned first; then in-stock products; then by score; ties by
    // id so results are stable.
    ranked.sort_by(|a, b| {
        b.named
            .cmp(&a.named)
            .then(b.in_stock.cmp(&a.in_stock))
            .then(b.score.total_cmp(&a.score))
            .then(a.id.cmp(&b.id))
    });
    ranked.truncate(limit);

    // Explain the shown results by the graph path from the phrase's node to the product.
    let sources: Vec<&crate::graph::NodeRef> = chosen
        .iter()
        .copied()
        .filter(|n| {
            matches!(
                n.kind,
                NodeKind::Concept | NodeKind::Category | NodeKind::Attribute
            )
        })
        .collect();
    for r in &mut ranked {
        if let Some(max) = spec.max_price {
            r.why.push(format!("price ≤ {max}"));
        }
        if let Some(min) = spec.min_price {
            r.why.push(format!("price ≥ {min}"));
        }
        if r.graph > 0.0
            && let Some(path) = sources.iter().find_map(|n| graph.explain(&n.id, &r.id))
        {
            let labels: Vec<&str> = path.iter().map(|s| s.node.label_en.as_str()).collect();
            r.why.push(format!("graph path: {}", labels.join(" → ")));
        }
    }
    ranked
}

/// Equal after case folding and whitespace collapsing.
fn same_text(a: &str, b: &str) -> bool {
    let fold = |s: &str| {
        s.split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ")
    };
    fold(a) == fold(b)
}
