//! One search, stage by stage:
//!
//! 1. **Candidates**: the union of BM25 (lexical), dense nearest neighbours (embeddings) and the
//!    products the query's graph nodes reach (categories, facets, concepts; EN and ZH synonyms).
//! 2. **Hard filters** from the query: budget and "in stock" always; colour and gender when the
//!    product states a conflicting one (relaxed, and said so, only when nothing would be left).
//! 3. **Features and score**: [`super::features`], scored by the learned model, or by the fixed
//!    fusion `bm25 + graph_weight × graph` (the hybrid baseline, and the fallback without a model).
//! 4. **Business rules** ([`super::rules`]): exact-name and configured pins, boosts, in-stock
//!    first, diversity.
//! 5. **Explanations** for the shown results: matched terms, facet agreement, the graph path.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::features::{
    Affinity, FEATURES, N_FEATURES, QueryContext, Retrieved, Signals, Understanding, agreement,
    features,
};
use super::learned::RankerModel;
use super::lexical::LexicalIndex;
use super::query::QuerySpec;
use super::rules::{self, Rules};
use crate::embed::{DenseIndex, index::Quantized};
use crate::graph::{KnowledgeGraph, NodeKind};

/// BM25 candidates considered.
pub const LEXICAL_CANDIDATES: usize = 300;
/// Dense nearest neighbours considered.
pub const DENSE_CANDIDATES: usize = 100;
/// Graph candidates considered.
pub const GRAPH_CANDIDATES: usize = 500;

/// How candidates are scored.
#[derive(Clone, Copy)]
pub enum Scorer<'a> {
    /// `bm25 + graph_weight × graph`.
    Fused {
        graph_weight: f32,
    },
    Learned(&'a RankerModel),
}

/// Everything one search reads; all of it immutable snapshots.
pub struct Inputs<'a> {
    pub lexical: &'a LexicalIndex,
    pub graph: &'a KnowledgeGraph,
    pub dense: &'a DenseIndex,
    /// The query's vector and nearest products, when dense retrieval is on; called once the
    /// lexical and graph stages are done (it may wait for the model and the scan).
    pub dense_hits: &'a (dyn Fn() -> Option<std::sync::Arc<DenseHits>> + Sync),
    pub signals: &'a Signals,
    pub affinity: &'a Affinity,
    pub rules: &'a Rules,
}

/// The dense stage's result: the query's quantised vector and its nearest products.
pub struct DenseHits {
    pub query: Quantized,
    /// Best first, with cosines.
    pub nearest: Vec<(String, f32)>,
}

/// Stages 1–2's output.
pub struct Candidates {
    pub list: Vec<Candidate>,
    /// Why filters were relaxed, if they were.
    pub notes: Vec<String>,
    /// The query's analysed terms (for explaining matches later).
    pub terms: super::lexical::QueryTerms,
}

/// A candidate after filtering, with its features.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub retrieved: Retrieved,
    pub features: [f32; N_FEATURES],
    pub in_stock: bool,
    /// The query is this product's exact name.
    pub named: bool,
}

/// One ranked product with its score breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub id: String,
    pub score: f32,
    pub in_stock: bool,
    /// Feature values and the score parts, by name.
    pub breakdown: BTreeMap<&'static str, f32>,
    pub why: Vec<String>,
}

/// Stages 1 and 2: the candidates that pass the query's hard filters, with their features.
pub fn candidates(inp: &Inputs<'_>, spec: &QuerySpec, u: &Understanding) -> Candidates {
    let terms = inp.lexical.query_terms(&spec.text);
    let hits = inp
        .lexical
        .search(&terms, LEXICAL_CANDIDATES)
        .unwrap_or_default();
    let best_bm25 = hits.first().map_or(1.0, |h| h.score.max(f32::EPSILON));

    let expansions: Vec<_> = u
        .nodes
        .iter()
        .flat_map(|n| inp.graph.expand(&n.id))
        .collect();
    let reached = inp.graph.products_reached(&expansions, GRAPH_CANDIDATES);
    let best_graph = reached.first().map_or(1.0, |(_, w)| w.max(f32::EPSILON));

    let mut found: HashMap<String, Retrieved> = HashMap::new();
    for (rank, h) in hits.into_iter().enumerate() {
        let r = found.entry(h.id).or_default();
        r.bm25 = h.score / best_bm25;
        r.bm25_present = true;
        r.bm25_rank = 1.0 / (1.0 + rank as f32);
    }
    for (id, w) in reached {
        found.entry(id).or_default().graph = w / best_graph;
    }
    let mut best_dense = 0f32;
    if let Some(hits) = (inp.dense_hits)() {
        for (rank, (id, cos)) in hits.nearest.iter().enumerate() {
            best_dense = best_dense.max(*cos);
            found.entry(id.clone()).or_default().dense_rank = 1.0 / (1.0 + rank as f32);
        }
        for (id, r) in found.iter_mut() {
            r.dense = inp.dense.cosine(&hits.query, id).unwrap_or(0.0);
        }
    }

    // Hard filters. Budget and stock are never relaxed; a stated colour or gender that a product
    // contradicts drops it unless that would leave nothing.
    let mut passed = Vec::new();
    let mut contradicting = Vec::new();
    for (id, r) in found {
        let Some(s) = inp.lexical.summary(&id) else {
            continue;
        };
        if !spec.admits(s.price) || (spec.in_stock && !s.in_stock) {
            continue;
        }
        let facets = inp.graph.facets(&id).unwrap_or_default();
        // A product named exactly is what the shopper wants, whatever its stated facets.
        let conflict = !is_named(s, spec)
            && ["color", "gender"]
                .iter()
                .any(|k| u.stated.contains(k) && agreement(k, u.slot(k), &facets) < 0.0);
        if conflict {
            contradicting.push((id, r, s, facets));
        } else {
            passed.push((id, r, s, facets));
        }
    }
    let mut notes = Vec::new();
    if passed.is_empty() && !contradicting.is_empty() {
        notes.push("relaxed: nothing matched the stated colour/gender".to_owned());
        passed = contradicting;
    }

    let log_prices: Vec<f32> = passed
        .iter()
        .map(|(_, _, s, _)| (s.price.max(0.0) as f32 + 1.0).ln())
        .collect();
    let ctx = QueryContext {
        spec,
        understanding: u,
        terms: &terms,
        best_dense,
        median_log_price: median(log_prices),
        signals: inp.signals,
        affinity: inp.affinity,
    };
    let out = passed
        .into_iter()
        .map(|(id, r, s, facets)| Candidate {
            features: features(&ctx, &r, s, &facets, &id),
            in_stock: s.in_stock,
            named: is_named(s, spec),
            retrieved: r,
            id,
        })
        .collect();
    Candidates {
        list: out,
        notes,
        terms,
    }
}

fn median(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// Scores of `candidates` under `scorer`.
pub fn score(candidates: &[Candidate], scorer: Scorer<'_>) -> Vec<f32> {
    match scorer {
        Scorer::Fused { graph_weight } => candidates
            .iter()
            .map(|c| c.retrieved.bm25 + graph_weight * c.retrieved.graph)
            .collect(),
        Scorer::Learned(model) => {
            let rows: Vec<[f32; N_FEATURES]> = candidates.iter().map(|c| c.features).collect();
            model.score(&rows).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ranker model failed; using the fused score");
                score(candidates, Scorer::Fused { graph_weight: 0.5 })
            })
        }
    }
}

/// The whole pipeline: `limit` results, best first, every one inside the query's hard filters.
pub fn rank(
    inp: &Inputs<'_>,
    spec: &QuerySpec,
    u: &Understanding,
    scorer: Scorer<'_>,
    limit: usize,
) -> Vec<Ranked> {
    let Candidates {
        list: candidates,
        notes,
        terms,
    } = candidates(inp, spec, u);
    let scores = score(&candidates, scorer);
    let order = rules::apply(inp, spec, &candidates, &scores, limit);

    // Explanations only for what is shown.
    let sources: Vec<&crate::graph::NodeRef> = u
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.kind,
                NodeKind::Concept | NodeKind::Category | NodeKind::Attribute
            )
        })
        .collect();
    let scorer_name = match scorer {
        Scorer::Fused { .. } => "fused",
        Scorer::Learned(_) => "learned",
    };
    let mut ranked: Vec<Ranked> = order
        .into_iter()
        .map(|placed| {
            let c = &candidates[placed.index];
            let mut breakdown: BTreeMap<&'static str, f32> =
                FEATURES.iter().copied().zip(c.features).collect();
            breakdown.insert(scorer_name, scores[placed.index]);
            if placed.boost != 0.0 {
                breakdown.insert("boost", placed.boost);
            }
            let mut why = vec![format!(
                "{scorer_name} {:.3}: bm25 {:.2}, dense {:.2}, graph {:.2}",
                scores[placed.index], c.retrieved.bm25, c.retrieved.dense, c.retrieved.graph
            )];
            why.extend(inp.lexical.matched(&c.id, &terms));
            let facets = inp.graph.facets(&c.id).unwrap_or_default();
            for key in super::features::SLOT_KEYS {
                let a = agreement(key, u.slot(key), &facets);
                if a != 0.0 {
                    why.push(format!(
                        "{key} {}",
                        if a > 0.0 { "matches" } else { "differs" }
                    ));
                }
            }
            if let Some(max) = spec.max_price {
                why.push(format!("price ≤ {max}"));
            }
            if let Some(min) = spec.min_price {
                why.push(format!("price ≥ {min}"));
            }
            if spec.in_stock {
                why.push("in stock".into());
            }
            why.extend(placed.notes);
            why.extend(notes.iter().cloned());
            if c.retrieved.graph > 0.0
                && let Some(path) = sources.iter().find_map(|n| inp.graph.explain(&n.id, &c.id))
            {
                let labels: Vec<&str> = path.iter().map(|s| s.node.label_en.as_str()).collect();
                why.push(format!("graph path: {}", labels.join(" → ")));
            }
            Ranked {
                id: c.id.clone(),
                score: scores[placed.index] + placed.boost,
                in_stock: c.in_stock,
                breakdown,
                why,
            }
        })
        .collect();
    // The reported score follows the final order: a result that rules moved up (a pin, diversity)
    // takes the best score below it, so scores never increase down the list. The model's own score
    // stays in the breakdown.
    for i in (0..ranked.len().saturating_sub(1)).rev() {
        if ranked[i].score < ranked[i + 1].score {
            ranked[i].score = ranked[i + 1].score;
        }
    }
    ranked
}

/// The query is the product's English or Chinese title.
fn is_named(s: &super::lexical::Summary, spec: &QuerySpec) -> bool {
    same_text(&s.title, &spec.text)
        || s.title_zh
            .as_deref()
            .is_some_and(|t| same_text(t, &spec.text))
}

/// Equal after case folding and whitespace collapsing (without allocating: this runs for every
/// candidate).
fn same_text(a: &str, b: &str) -> bool {
    let (mut wa, mut wb) = (a.split_whitespace(), b.split_whitespace());
    loop {
        match (wa.next(), wb.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if !x
                    .chars()
                    .flat_map(char::to_lowercase)
                    .eq(y.chars().flat_map(char::to_lowercase))
                {
                    return false;
                }
            }
            _ => return false,
        }
    }
}
