//! Building the in-memory graph from the catalog and the curated layer, with the checks that keep
//! it sound: unique ids, non-empty labels, no synonym shared by two nodes of one kind, no dangling
//! edge, no cycle in `subcategory_of`.

use std::collections::{HashMap, HashSet};

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use serde_json::{Value, json};

use super::curated::Curated;
use super::error::GraphError;
use super::knowledge::{Edge, KnowledgeGraph, Node};
use super::lexicon::{LexiconBuilder, fold};
use super::model::{EdgeKind, NodeKind, ids};
use crate::catalog::Product;

/// Attribute values longer than this are descriptions, not facets: no node.
const MAX_VALUE_CHARS: usize = 40;

/// Single-word brand names that are also everyday words: kept as nodes, left out of phrase matching.
const COMMON_WORDS: &[&str] = &[
    "a", "all", "and", "any", "art", "at", "baby", "best", "big", "black", "blue", "by", "can",
    "care", "city", "cool", "day", "dog", "easy", "fab", "fashion", "for", "free", "fun", "gift",
    "go", "gold", "good", "great", "green", "hot", "home", "in", "it", "kids", "life", "like",
    "little", "love", "me", "men", "my", "new", "next", "no", "now", "of", "on", "one", "or",
    "out", "party", "pink", "play", "pure", "red", "royal", "shop", "smart", "so", "star", "style",
    "the", "to", "top", "up", "urban", "way", "we", "white", "women", "world", "you", "your",
];

struct Builder {
    g: StableDiGraph<Node, Edge>,
    by_id: HashMap<String, NodeIndex>,
}

impl Builder {
    fn node(&mut self, id: &str, kind: NodeKind, label: &str) -> NodeIndex {
        if let Some(&ix) = self.by_id.get(id) {
            return ix;
        }
        let ix = self.g.add_node(Node {
            id: id.to_owned(),
            kind,
            label_en: label.to_owned(),
            label_zh: None,
            synonyms_en: Vec::new(),
            synonyms_zh: Vec::new(),
            data: json!({}),
            products: 0,
        });
        self.by_id.insert(id.to_owned(), ix);
        ix
    }

    fn edge(&mut self, from: NodeIndex, to: NodeIndex, kind: EdgeKind, weight: f32) {
        if !self
            .g
            .edges_connecting(from, to)
            .any(|e| e.weight().kind == kind)
        {
            self.g.add_edge(from, to, Edge { kind, weight });
        }
    }

    /// The category node for `path` and all its ancestors, linked by `subcategory_of`.
    fn category_chain(&mut self, segments: &[&str]) -> Option<NodeIndex> {
        let mut parent = None;
        for depth in 1..=segments.len() {
            let path = segments[..depth].join(" > ");
            let ix = self.node(
                &ids::category(&path),
                NodeKind::Category,
                segments[depth - 1],
            );
            self.g[ix].data = json!({"path": path});
            if let Some(p) = parent {
                self.edge(ix, p, EdgeKind::SubcategoryOf, 1.0);
            }
            parent = Some(ix);
        }
        parent
    }
}

/// Splits multi-valued facets ("boys, girls", "men & women") into values.
fn split_values(v: &str) -> Vec<String> {
    v.split([',', '&'])
        .flat_map(|p| p.split(" and "))
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty() && p.chars().count() <= MAX_VALUE_CHARS)
        .collect()
}

/// Builds the graph. Catalog-derived nodes come first; curated nodes overlay their labels and
/// synonyms and add concepts, policies and relations.
pub fn build(
    curated: &Curated,
    products: &[Product],
    version: i64,
) -> Result<KnowledgeGraph, GraphError> {
    check_records(curated)?;
    let mut b = Builder {
        g: StableDiGraph::default(),
        by_id: HashMap::new(),
    };

    // Attribute keys and their aliases decide which product attributes become facet nodes.
    let mut canonical_key: HashMap<String, String> = HashMap::new();
    for n in curated.nodes.iter().filter(|n| n.kind == "attribute_key") {
        let name = n.label_en.trim().to_lowercase();
        canonical_key.insert(name.clone(), name.clone());
        for alias in n
            .data
            .0
            .get("aliases")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(a) = alias.as_str() {
                canonical_key.insert(a.trim().to_lowercase(), name.clone());
            }
        }
    }

    // Catalog values meet curated ones by their folded form: "girl's" and "Girls" are one node.
    let curated_value: HashMap<(String, String), String> = curated
        .nodes
        .iter()
        .filter(|n| n.kind == "attribute")
        .filter_map(|n| {
            let key = n.data.0.get("key")?.as_str()?.to_lowercase();
            let value = n.data.0.get("value")?.as_str()?;
            Some(((key, fold(value)), value.to_lowercase()))
        })
        .collect();

    for p in products {
        let pix = b.node(&ids::product(&p.id), NodeKind::Product, &p.title);
        b.g[pix].data =
            json!({"price": p.price.to_string(), "currency": p.currency, "in_stock": p.in_stock()});
        if let Some(path) = &p.category {
            let segments: Vec<&str> = path.split(" > ").collect();
            if let Some(leaf) = b.category_chain(&segments) {
                b.edge(pix, leaf, EdgeKind::InCategory, 1.0);
            }
        }
        if let Some(brand) = &p.brand {
            let bix = b.node(&ids::brand(brand), NodeKind::Brand, brand);
            b.g[bix].data = json!({"name": brand});
            b.edge(pix, bix, EdgeKind::MadeBy, 1.0);
        }
        for (key, value) in p.attributes.0.iter() {
            let Some(canon) = canonical_key.get(&key.to_lowercase()) else {
                continue;
            };
            for v in split_values(value) {
                let v = curated_value
                    .get(&(canon.clone(), fold(&v)))
                    .cloned()
                    .unwrap_or(v);
                let aix = b.node(&ids::attribute(canon, &v), NodeKind::Attribute, &v);
                b.g[aix].data = json!({"key": canon, "value": v});
                b.edge(pix, aix, EdgeKind::HasAttribute, 1.0);
            }
        }
    }

    for n in &curated.nodes {
        let kind = NodeKind::parse(&n.kind).ok_or_else(|| {
            GraphError::Invalid(format!("node {}: unknown kind {:?}", n.id, n.kind))
        })?;
        let ix = match kind {
            NodeKind::Category => {
                let path = n.id.trim_start_matches("category:").to_owned();
                let segments: Vec<&str> = path.split(" > ").collect();
                b.category_chain(&segments)
                    .unwrap_or_else(|| b.node(&n.id, kind, &n.label_en))
            }
            _ => b.node(&n.id, kind, &n.label_en),
        };
        let node = &mut b.g[ix];
        node.label_en = n.label_en.trim().to_owned();
        node.label_zh = n.label_zh.clone().filter(|z| !z.trim().is_empty());
        node.synonyms_en = n.synonyms_en.clone();
        node.synonyms_zh = n.synonyms_zh.clone();
        let mut data = n.data.0.clone();
        if let (Some(obj), Some(old)) = (data.as_object_mut(), node.data.as_object()) {
            for (k, v) in old {
                obj.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        node.data = data;
    }

    for e in &curated.edges {
        let kind = EdgeKind::parse(&e.kind).ok_or_else(|| {
            GraphError::Invalid(format!(
                "edge {} → {}: unknown kind {:?}",
                e.from_id, e.to_id, e.kind
            ))
        })?;
        let (Some(&from), Some(&to)) = (b.by_id.get(&e.from_id), b.by_id.get(&e.to_id)) else {
            let missing = if b.by_id.contains_key(&e.from_id) {
                &e.to_id
            } else {
                &e.from_id
            };
            return Err(GraphError::Invalid(format!(
                "edge {} --{}--> {} is dangling: no node {missing:?} in the catalog or the curated layer",
                e.from_id, e.kind, e.to_id
            )));
        };
        b.edge(from, to, kind, e.weight);
    }
    check_no_category_cycle(&b.g)?;
    count_products(&mut b.g);
    let lexicon = lexicon(&b.g);
    Ok(KnowledgeGraph::new(b.g, b.by_id, lexicon, version))
}

fn check_records(curated: &Curated) -> Result<(), GraphError> {
    let mut seen = HashSet::new();
    // (scope, folded synonym) → node id. The scope is the kind, and for categories also the
    // root of their tree: two catalogs' taxonomies may each have their own "flats".
    let mut synonyms: HashMap<(String, String), String> = HashMap::new();
    let scope = |n: &super::model::NodeRecord| match n.id.strip_prefix("category:") {
        Some(path) => format!("category:{}", path.split(" > ").next().unwrap_or_default()),
        None => n.kind.clone(),
    };
    for n in &curated.nodes {
        if NodeKind::of_id(&n.id).is_none_or(|k| k.as_str() != n.kind) {
            return Err(GraphError::Invalid(format!(
                "node id {:?} does not match its kind {:?}",
                n.id, n.kind
            )));
        }
        if !seen.insert(n.id.as_str()) {
            return Err(GraphError::Invalid(format!(
                "node {:?} is defined twice",
                n.id
            )));
        }
        if n.label_en.trim().is_empty() {
            return Err(GraphError::Invalid(format!(
                "node {:?} has an empty English label",
                n.id
            )));
        }
        for s in n.synonyms_en.iter().chain(&n.synonyms_zh) {
            let folded = fold(s);
            if folded.is_empty() {
                return Err(GraphError::Invalid(format!(
                    "node {:?} has an empty synonym",
                    n.id
                )));
            }
            if let Some(other) = synonyms.insert((scope(n), folded), n.id.clone())
                && other != n.id
            {
                return Err(GraphError::Invalid(format!(
                    "synonym {s:?} is on both {other:?} and {:?}",
                    n.id
                )));
            }
        }
    }
    Ok(())
}

fn check_no_category_cycle(g: &StableDiGraph<Node, Edge>) -> Result<(), GraphError> {
    let sub =
        petgraph::visit::EdgeFiltered::from_fn(g, |e| e.weight().kind == EdgeKind::SubcategoryOf);
    match petgraph::algo::toposort(&sub, None) {
        Ok(_) => Ok(()),
        Err(cycle) => Err(GraphError::Invalid(format!(
            "subcategory_of has a cycle through {:?}",
            g[cycle.node_id()].id
        ))),
    }
}

/// How many products sit under each category (whole subtree), have each attribute, or each brand.
fn count_products(g: &mut StableDiGraph<Node, Edge>) {
    let products: Vec<NodeIndex> = g
        .node_indices()
        .filter(|&i| g[i].kind == NodeKind::Product)
        .collect();
    let mut counts: HashMap<NodeIndex, u32> = HashMap::new();
    for p in products {
        let mut stack: Vec<NodeIndex> = g.neighbors(p).collect();
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            *counts.entry(n).or_default() += 1;
            stack.extend(
                g.edges(n)
                    .filter(|e| e.weight().kind == EdgeKind::SubcategoryOf)
                    .map(|e| e.target()),
            );
        }
    }
    for (n, c) in counts {
        g[n].products = c;
    }
}

fn lexicon(g: &StableDiGraph<Node, Edge>) -> super::lexicon::Lexicon {
    let mut lb = LexiconBuilder::default();
    for ix in g.node_indices() {
        let n = &g[ix];
        let slot = ix.index() as u32;
        match n.kind {
            NodeKind::Product | NodeKind::AttributeKey => continue,
            NodeKind::Brand if COMMON_WORDS.contains(&n.label_en.to_lowercase().as_str()) => {}
            NodeKind::Brand if n.label_en.chars().count() < 2 => {}
            _ => lb.add(&n.label_en, slot),
        }
        for s in n
            .label_zh
            .iter()
            .chain(&n.synonyms_en)
            .chain(&n.synonyms_zh)
        {
            lb.add(s, slot);
        }
    }
    lb.build()
}
