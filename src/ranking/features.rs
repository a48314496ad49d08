//! What the ranker knows about a query and each candidate.
//!
//! [`Understanding`] is the query read through the knowledge graph: the nodes its phrases name,
//! the facets it asks for (brand, colour, gender, material, occasion), and an English rendering
//! for the embedding model when the shopper wrote Chinese. [`features`] turns one candidate into
//! the fixed-length vector [`FEATURES`] names; the learned ranker is trained on exactly this list,
//! and a model file records it so that a model and a binary that disagree are refused.

use std::collections::{HashMap, HashSet};

use super::lexical::{QueryTerms, Summary};
use super::query::QuerySpec;
use crate::graph::{Facets, KnowledgeGraph, NodeKind, NodeRef};

/// Feature names, in vector order.
pub const FEATURES: &[&str] = &[
    "bm25",
    "bm25_present",
    "bm25_rank",
    "dense",
    "dense_gap",
    "dense_rank",
    "graph",
    "category_hit",
    "leaf_hit",
    "concept_hit",
    "attribute_hits",
    "title_coverage",
    "brand_agree",
    "color_agree",
    "gender_agree",
    "material_agree",
    "occasion_agree",
    "price_fit",
    "price_rel",
    "rating",
    "rating_count",
    "popularity",
    "affinity",
    "in_stock",
    "chinese_query",
];
pub const N_FEATURES: usize = FEATURES.len();

/// Facet keys whose agreement with the query is a feature (and, for colour and gender, a filter).
pub const SLOT_KEYS: [&str; 4] = ["color", "gender", "material", "occasion"];

/// The query read through the graph.
#[derive(Debug, Clone, Default)]
pub struct Understanding {
    /// The best node of each phrase.
    pub nodes: Vec<NodeRef>,
    /// Requested attribute node ids by facet key (`color` → {`attr:color=red`}).
    pub slots: HashMap<&'static str, HashSet<String>>,
    /// The facet keys stated on their own, not only inside a longer phrase that names a category
    /// ("宝宝" inside "宝宝浴巾", baby bath towels): only these are hard filters.
    pub stated: HashSet<&'static str>,
    /// Requested brands (node ids).
    pub brands: HashSet<String>,
    /// Categories the query names, directly or through a concept (node ids).
    pub categories: HashSet<String>,
    /// Categories reached through a concept only.
    pub concept_categories: HashSet<String>,
    /// The query has Chinese characters.
    pub chinese: bool,
    /// What the embedding model reads: the query, or for Chinese the English labels of its nodes
    /// with any Latin words the shopper typed.
    pub dense_text: String,
}

pub fn has_cjk(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}'))
}

impl Understanding {
    pub fn new(graph: &KnowledgeGraph, spec: &QuerySpec) -> Self {
        let matches = graph.resolve(&spec.text);
        let mut u = Understanding {
            chinese: has_cjk(&spec.text),
            ..Default::default()
        };
        for m in &matches {
            let inside_category = matches.iter().any(|o| {
                o.start <= m.start
                    && m.end <= o.end
                    && (o.start, o.end) != (m.start, m.end)
                    && o.nodes
                        .first()
                        .is_some_and(|n| n.kind == NodeKind::Category)
            });
            // Every attribute value the phrase names counts ("男士" is a gender inside "男士袜子").
            for n in m.nodes.iter().filter(|n| n.kind == NodeKind::Attribute) {
                if let Some(key) = attribute_key(&n.id)
                    && let Some(slot) = SLOT_KEYS.iter().find(|k| **k == key)
                {
                    u.slots.entry(slot).or_default().insert(n.id.clone());
                    if !inside_category {
                        u.stated.insert(slot);
                    }
                }
            }
            let Some(best) = m.nodes.first() else {
                continue;
            };
            match best.kind {
                NodeKind::Brand => {
                    u.brands.insert(best.id.clone());
                }
                NodeKind::Category => {
                    u.categories.insert(best.id.clone());
                }
                NodeKind::Concept => {
                    for x in graph.expand(&best.id) {
                        if x.node.kind == NodeKind::Category {
                            u.concept_categories.insert(x.node.id.clone());
                        }
                    }
                }
                _ => {}
            }
            u.nodes.push(best.clone());
        }
        u.dense_text = if u.chinese {
            let mut words: Vec<String> = u.nodes.iter().map(|n| n.label_en.clone()).collect();
            words.extend(
                spec.text
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| w.len() > 1)
                    .map(str::to_owned),
            );
            words.join(" ")
        } else {
            spec.text.clone()
        };
        u
    }

    /// The requested values of one facet.
    pub fn slot(&self, key: &str) -> Option<&HashSet<String>> {
        self.slots.get(key).filter(|s| !s.is_empty())
    }
}

/// `attr:color=red` → `color`.
pub fn attribute_key(id: &str) -> Option<&str> {
    id.strip_prefix("attr:")?.split_once('=').map(|(k, _)| k)
}

fn attribute_value(id: &str) -> Option<&str> {
    id.strip_prefix("attr:")?.split_once('=').map(|(_, v)| v)
}

/// Whether a product's facet values agree with the requested ones: +1 yes, −1 no, 0 unknown (the
/// query or the product says nothing about this facet).
pub fn agreement(key: &str, wanted: Option<&HashSet<String>>, facets: &Facets<'_>) -> f32 {
    let Some(wanted) = wanted else { return 0.0 };
    let have: Vec<&str> = facets
        .attributes
        .iter()
        .copied()
        .filter(|a| attribute_key(a) == Some(key))
        .collect();
    if have.is_empty() {
        return 0.0;
    }
    let ok = have.iter().any(|h| {
        wanted.contains(*h)
            || wanted.iter().any(|w| {
                compatible(
                    key,
                    attribute_value(w).unwrap_or_default(),
                    attribute_value(h).unwrap_or_default(),
                )
            })
    });
    if ok { 1.0 } else { -1.0 }
}

/// Values that satisfy a request without being equal: a unisex product suits anyone, a kids'
/// product suits boys and girls, a multicolour one any colour.
fn compatible(key: &str, wanted: &str, have: &str) -> bool {
    match key {
        "gender" => matches!(
            (wanted, have),
            (_, "unisex")
                | ("boys" | "girls", "kids")
                | ("kids", "boys" | "girls" | "baby")
                | ("baby", "kids" | "boys" | "girls")
        ),
        "color" => have.starts_with("multi"),
        _ => false,
    }
}

/// Per-product signals from outside the catalog text.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Position-debiased engagement (clicks, carts, thumbs) per product, log-scaled.
    pub popularity: HashMap<String, f32>,
}

/// What this shopper engaged with (categories and brands of products they clicked or bought).
#[derive(Debug, Clone, Default)]
pub struct Affinity {
    pub categories: HashSet<String>,
    pub brands: HashSet<String>,
}

impl Affinity {
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty() && self.brands.is_empty()
    }
}

/// One candidate's raw retrieval scores.
#[derive(Debug, Clone, Default)]
pub struct Retrieved {
    /// BM25 divided by the best BM25 of the query (0 when BM25 did not retrieve it).
    pub bm25: f32,
    pub bm25_present: bool,
    /// `1 / (1 + rank)` in the BM25 list (0 when not retrieved by BM25).
    pub bm25_rank: f32,
    /// Cosine with the query (0 without a vector).
    pub dense: f32,
    /// `1 / (1 + rank)` among the dense nearest neighbours (0 when not among them).
    pub dense_rank: f32,
    /// Graph weight divided by the query's best.
    pub graph: f32,
}

/// Query-level values the features of every candidate are relative to.
pub struct QueryContext<'a> {
    pub spec: &'a QuerySpec,
    pub understanding: &'a Understanding,
    pub terms: &'a QueryTerms,
    pub best_dense: f32,
    pub median_log_price: f32,
    pub signals: &'a Signals,
    pub affinity: &'a Affinity,
}

/// The feature vector of one candidate, in [`FEATURES`] order.
pub fn features(
    q: &QueryContext<'_>,
    r: &Retrieved,
    s: &Summary,
    facets: &Facets<'_>,
    id: &str,
) -> [f32; N_FEATURES] {
    let u = q.understanding;
    let in_any = |set: &HashSet<String>| facets.categories.iter().any(|c| set.contains(*c));
    let requested_attrs: usize = u.slots.values().map(HashSet::len).sum();
    let attr_hits = if requested_attrs == 0 {
        0.0
    } else {
        facets
            .attributes
            .iter()
            .filter(|a| u.slots.values().any(|set| set.contains(**a)))
            .count() as f32
            / requested_attrs as f32
    };
    let brand_agree = match (u.brands.is_empty(), facets.brand) {
        (true, _) | (false, None) => 0.0,
        (false, Some(b)) if u.brands.contains(b) => 1.0,
        _ => -1.0,
    };
    let price = s.price.max(0.0) as f32;
    let price_fit = q.spec.max_price.map_or(0.0, |max| {
        if max > 0.0 {
            1.0 - (price / max as f32).min(1.0)
        } else {
            0.0
        }
    });
    let price_rel = ((price + 1.0).ln() - q.median_log_price).clamp(-3.0, 3.0);
    let affinity = q.affinity.categories.iter().any(|c| {
        facets.categories.contains(&c.as_str()) || s.category.as_deref() == Some(c.as_str())
    }) || facets.brand.is_some_and(|b| q.affinity.brands.contains(b));
    [
        r.bm25,
        f32::from(u8::from(r.bm25_present)),
        r.bm25_rank,
        r.dense,
        if r.dense != 0.0 {
            r.dense - q.best_dense
        } else {
            -1.0
        },
        r.dense_rank,
        r.graph,
        f32::from(u8::from(in_any(&u.categories))),
        f32::from(u8::from(
            facets
                .categories
                .first()
                .is_some_and(|leaf| u.categories.contains(*leaf)),
        )),
        f32::from(u8::from(in_any(&u.concept_categories))),
        attr_hits,
        q.terms.coverage(s),
        brand_agree,
        agreement("color", u.slot("color"), facets),
        agreement("gender", u.slot("gender"), facets),
        agreement("material", u.slot("material"), facets),
        agreement("occasion", u.slot("occasion"), facets),
        price_fit,
        price_rel,
        s.rating.map_or(0.0, |r| r / 5.0),
        s.rating_count
            .map_or(0.0, |c| ((c.max(0) as f32) + 1.0).ln() / 10.0),
        q.signals.popularity.get(id).copied().unwrap_or(0.0),
        f32::from(u8::from(affinity)),
        f32::from(u8::from(s.in_stock)),
        f32::from(u8::from(u.chinese)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facets(attrs: &[&'static str]) -> Facets<'static> {
        Facets {
            brand: Some("brand:aurelle"),
            attributes: attrs.to_vec(),
            categories: vec![
                "category:Footwear > Women's Footwear > Flats",
                "category:Footwear",
            ],
        }
    }

    fn wanted(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn facet_agreement_is_yes_no_or_unknown() {
        let red = wanted(&["attr:color=red"]);
        assert_eq!(
            agreement("color", Some(&red), &facets(&["attr:color=red"])),
            1.0
        );
        assert_eq!(
            agreement("color", Some(&red), &facets(&["attr:color=blue"])),
            -1.0
        );
        // The product states no colour, or the query asks for none: unknown.
        assert_eq!(
            agreement("color", Some(&red), &facets(&["attr:gender=women"])),
            0.0
        );
        assert_eq!(agreement("color", None, &facets(&["attr:color=blue"])), 0.0);
        // Any one of several values is enough; multicolour suits any colour.
        assert_eq!(
            agreement(
                "color",
                Some(&red),
                &facets(&["attr:color=blue", "attr:color=red"])
            ),
            1.0
        );
        assert_eq!(
            agreement("color", Some(&red), &facets(&["attr:color=multicolor"])),
            1.0
        );
    }

    #[test]
    fn unisex_and_kids_products_suit_compatible_requests() {
        let women = wanted(&["attr:gender=women"]);
        assert_eq!(
            agreement("gender", Some(&women), &facets(&["attr:gender=unisex"])),
            1.0
        );
        assert_eq!(
            agreement("gender", Some(&women), &facets(&["attr:gender=men"])),
            -1.0
        );
        // "Girls" is not "women".
        assert_eq!(
            agreement("gender", Some(&women), &facets(&["attr:gender=girls"])),
            -1.0
        );
        let kids = wanted(&["attr:gender=kids"]);
        assert_eq!(
            agreement("gender", Some(&kids), &facets(&["attr:gender=boys"])),
            1.0
        );
    }

    #[test]
    fn attribute_ids_split_into_key_and_value() {
        assert_eq!(attribute_key("attr:dial color=black"), Some("dial color"));
        assert_eq!(attribute_value("attr:color=red"), Some("red"));
        assert_eq!(attribute_key("brand:aurelle"), None);
        assert!(has_cjk("红色平底鞋") && !has_cjk("red flats"));
    }
}
