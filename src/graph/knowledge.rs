//! The in-memory knowledge graph and its queries: phrase resolution, concept expansion, product
//! facts, complements/substitutes, and explanation paths. Immutable once built; edits build a new
//! one and swap it in.

use std::collections::{HashMap, HashSet, VecDeque};

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use serde::Serialize;
use serde_json::Value;

use super::lexicon::Lexicon;
use super::model::{EdgeKind, NodeKind, ids};

pub(super) struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub label_en: String,
    pub label_zh: Option<String>,
    pub synonyms_en: Vec<String>,
    pub synonyms_zh: Vec<String>,
    pub data: Value,
    /// Products this node reaches (category subtree, attribute, brand); 0 for the rest.
    pub products: u32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Edge {
    pub kind: EdgeKind,
    pub weight: f32,
}

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRef {
    pub id: String,
    pub kind: NodeKind,
    pub label_en: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_zh: Option<String>,
    pub products: u32,
}

/// A phrase of the text that names graph nodes.
#[derive(Debug, Clone, Serialize)]
pub struct PhraseMatch {
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// Best first: concepts and policies, then by how many products a node reaches.
    pub nodes: Vec<NodeRef>,
}

/// A category, attribute or brand that a node expands to, with how strongly.
#[derive(Debug, Clone, Serialize)]
pub struct Expansion {
    pub node: NodeRef,
    pub weight: f32,
}

/// A policy as quoted to shoppers.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyFact {
    pub id: String,
    pub kind: String,
    pub label_en: String,
    pub label_zh: Option<String>,
    pub text_en: String,
    pub text_zh: Option<String>,
    pub facts: Value,
}

/// What the graph knows about one product.
#[derive(Debug, Clone, Serialize)]
pub struct ProductFacts {
    pub id: String,
    pub title: String,
    /// Root first.
    pub category_path: Vec<NodeRef>,
    pub brand: Option<NodeRef>,
    pub attributes: Vec<NodeRef>,
    pub policies: Vec<PolicyFact>,
}

/// One step of an explanation: a node, and the edge that led to it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub node: NodeRef,
    pub via: Option<EdgeKind>,
}

/// Counts of nodes and edges by kind.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub version: i64,
    pub nodes: std::collections::BTreeMap<&'static str, usize>,
    pub edges: std::collections::BTreeMap<&'static str, usize>,
    pub lexicon_phrases: usize,
}

/// What a product links to in the graph, by node id.
#[derive(Debug, Clone, Default)]
pub struct Facets<'a> {
    pub brand: Option<&'a str>,
    pub attributes: Vec<&'a str>,
    /// Leaf first.
    pub categories: Vec<&'a str>,
}

/// The knowledge graph.
pub struct KnowledgeGraph {
    g: StableDiGraph<Node, Edge>,
    by_id: HashMap<String, NodeIndex>,
    lexicon: Lexicon,
    version: i64,
}

/// Kinds that explanation paths walk through (products only at the end).
fn walkable(kind: NodeKind) -> bool {
    !matches!(
        kind,
        NodeKind::Product | NodeKind::Policy | NodeKind::AttributeKey
    )
}

impl KnowledgeGraph {
    pub(super) fn new(
        g: StableDiGraph<Node, Edge>,
        by_id: HashMap<String, NodeIndex>,
        lexicon: Lexicon,
        version: i64,
    ) -> Self {
        Self {
            g,
            by_id,
            lexicon,
            version,
        }
    }

    /// An empty graph (before the first load).
    pub fn empty() -> Self {
        Self::new(
            StableDiGraph::default(),
            HashMap::new(),
            super::lexicon::LexiconBuilder::default().build(),
            0,
        )
    }

    /// The curated version this graph was built from.
    pub fn version(&self) -> i64 {
        self.version
    }

    pub(super) fn set_version(&mut self, version: i64) {
        self.version = version;
    }

    fn node_ref(&self, ix: NodeIndex) -> NodeRef {
        let n = &self.g[ix];
        NodeRef {
            id: n.id.clone(),
            kind: n.kind,
            label_en: n.label_en.clone(),
            label_zh: n.label_zh.clone(),
            products: n.products,
        }
    }

    pub fn node(&self, id: &str) -> Option<NodeRef> {
        self.by_id.get(id).map(|&ix| self.node_ref(ix))
    }

    /// A node's synonyms and data, for the editor and exports.
    pub fn node_detail(&self, id: &str) -> Option<(NodeRef, Vec<String>, Vec<String>, Value)> {
        let &ix = self.by_id.get(id)?;
        let n = &self.g[ix];
        Some((
            self.node_ref(ix),
            n.synonyms_en.clone(),
            n.synonyms_zh.clone(),
            n.data.clone(),
        ))
    }

    /// Edges touching a node: `(other node, kind, weight, outgoing)`.
    pub fn edges_of(&self, id: &str) -> Vec<(NodeRef, EdgeKind, f32, bool)> {
        let Some(&ix) = self.by_id.get(id) else {
            return Vec::new();
        };
        let out = self.g.edges_directed(ix, Direction::Outgoing).map(|e| {
            (
                self.node_ref(e.target()),
                e.weight().kind,
                e.weight().weight,
                true,
            )
        });
        let inc = self.g.edges_directed(ix, Direction::Incoming).map(|e| {
            (
                self.node_ref(e.source()),
                e.weight().kind,
                e.weight().weight,
                false,
            )
        });
        out.chain(inc).collect()
    }

    pub fn stats(&self) -> Stats {
        let mut nodes = std::collections::BTreeMap::new();
        for ix in self.g.node_indices() {
            *nodes.entry(self.g[ix].kind.as_str()).or_default() += 1;
        }
        let mut edges = std::collections::BTreeMap::new();
        for e in self.g.edge_indices() {
            *edges.entry(self.g[e].kind.as_str()).or_default() += 1;
        }
        Stats {
            version: self.version,
            nodes,
            edges,
            lexicon_phrases: self.lexicon.len(),
        }
    }

    /// The phrases of `text` that name nodes. Category and brand nodes that reach no product are
    /// left out (they belong to a catalog that is not loaded); attribute values stay, since some
    /// (a currency, a gender) describe the request rather than a product facet.
    ///
    /// A phrase inside a longer one ("男士" in "男士袜子") is kept only for the facet values it
    /// names (the gender), since the longer phrase already stands for the rest.
    pub fn resolve(&self, text: &str) -> Vec<PhraseMatch> {
        self.resolve_phrases(text, true)
    }

    /// As [`KnowledgeGraph::resolve`], but categories and brands of any catalog count, stocked
    /// or not: understanding "a saree" does not depend on the store selling sarees.
    pub fn resolve_any(&self, text: &str) -> Vec<PhraseMatch> {
        self.resolve_phrases(text, false)
    }

    fn resolve_phrases(&self, text: &str, stocked_only: bool) -> Vec<PhraseMatch> {
        let hits = self.lexicon.find(text);
        // First the nodes each phrase names in this catalog; a phrase naming none (another
        // catalog's category) does not hide the phrases inside it.
        let named: Vec<(&super::lexicon::Hit<'_>, Vec<NodeRef>)> = hits
            .iter()
            .filter_map(|hit| {
                let nodes: Vec<NodeRef> = hit
                    .targets
                    .iter()
                    .map(|&slot| self.node_ref(NodeIndex::new(slot as usize)))
                    .filter(|n| {
                        !stocked_only
                            || n.products > 0
                            || !matches!(n.kind, NodeKind::Category | NodeKind::Brand)
                    })
                    .collect();
                (!nodes.is_empty()).then_some((hit, nodes))
            })
            .collect();
        let live: Vec<super::lexicon::Hit<'_>> = named.iter().map(|(h, _)| (*h).clone()).collect();
        named
            .into_iter()
            .filter_map(|(hit, mut nodes)| {
                if hit.nested(&live) {
                    nodes.retain(|n| n.kind == NodeKind::Attribute);
                }
                nodes.sort_by_key(|n| {
                    (
                        !matches!(n.kind, NodeKind::Concept | NodeKind::Policy),
                        std::cmp::Reverse(n.products),
                        n.id.clone(),
                    )
                });
                (!nodes.is_empty()).then(|| PhraseMatch {
                    text: text[hit.start..hit.end].to_owned(),
                    start: hit.start,
                    end: hit.end,
                    nodes,
                })
            })
            .collect()
    }

    /// What a node stands for in the catalog: a concept's suited categories and attributes, a
    /// category with its subcategories, or the attribute or brand itself. Heaviest first.
    pub fn expand(&self, id: &str) -> Vec<Expansion> {
        let Some(&start) = self.by_id.get(id) else {
            return Vec::new();
        };
        let mut weights: HashMap<NodeIndex, f32> = HashMap::new();
        let seeds: Vec<(NodeIndex, f32)> = match self.g[start].kind {
            NodeKind::Concept => self
                .g
                .edges(start)
                .filter(|e| e.weight().kind == EdgeKind::Suits)
                .map(|e| (e.target(), e.weight().weight))
                .collect(),
            NodeKind::Category | NodeKind::Attribute | NodeKind::Brand => vec![(start, 1.0)],
            _ => Vec::new(),
        };
        for (seed, w) in seeds {
            let entry = weights.entry(seed).or_default();
            *entry = entry.max(w);
            if self.g[seed].kind == NodeKind::Category {
                for (sub, depth) in self.descendants(seed) {
                    let e = weights.entry(sub).or_default();
                    *e = e.max(w * 0.9f32.powi(depth as i32));
                }
            }
        }
        self.ranked(
            weights
                .into_iter()
                .filter(|(ix, _)| self.g[*ix].products > 0),
        )
    }

    /// Subcategories of a category, with their depth below it.
    fn descendants(&self, ix: NodeIndex) -> Vec<(NodeIndex, u32)> {
        let mut out = Vec::new();
        let mut queue = VecDeque::from([(ix, 0u32)]);
        while let Some((n, d)) = queue.pop_front() {
            for e in self
                .g
                .edges_directed(n, Direction::Incoming)
                .filter(|e| e.weight().kind == EdgeKind::SubcategoryOf)
            {
                out.push((e.source(), d + 1));
                queue.push_back((e.source(), d + 1));
            }
        }
        out
    }

    /// Products reached by a set of expansions, heaviest first. Categories say what the product
    /// is; when any category is among the expansions, attributes and brands only add weight to
    /// the products those categories reach (half their own weight), so "keep drinks hot" means
    /// flasks that are steel, not everything steel. Without a category they reach products alone,
    /// their weights summed.
    pub fn products_reached(&self, expansions: &[Expansion], limit: usize) -> Vec<(String, f32)> {
        let reach = |x: &Expansion| -> Vec<NodeIndex> {
            let Some(&ix) = self.by_id.get(&x.node.id) else {
                return Vec::new();
            };
            let kind = match x.node.kind {
                NodeKind::Category => EdgeKind::InCategory,
                NodeKind::Attribute => EdgeKind::HasAttribute,
                NodeKind::Brand => EdgeKind::MadeBy,
                _ => return Vec::new(),
            };
            self.g
                .edges_directed(ix, Direction::Incoming)
                .filter(|e| e.weight().kind == kind)
                .map(|e| e.source())
                .collect()
        };
        // One entry per node (two phrases may name the same one), at its best weight.
        let mut unique: Vec<&Expansion> = Vec::new();
        for x in expansions {
            match unique.iter_mut().find(|u| u.node.id == x.node.id) {
                Some(u) if u.weight < x.weight => *u = x,
                Some(_) => {}
                None => unique.push(x),
            }
        }
        let (categories, modifiers): (Vec<&Expansion>, Vec<&Expansion>) = unique
            .into_iter()
            .partition(|x| x.node.kind == NodeKind::Category);
        let mut best: HashMap<NodeIndex, f32> = HashMap::new();
        let base = if categories.is_empty() {
            &modifiers
        } else {
            &categories
        };
        // Categories are alternatives (best one counts); facets without a category add up, so a
        // product that is both "women" and "tan" outranks one that is only "tan".
        let additive = categories.is_empty();
        for x in base {
            for p in reach(x) {
                let w = best.entry(p).or_default();
                *w = if additive {
                    *w + x.weight
                } else {
                    w.max(x.weight)
                };
            }
        }
        if !categories.is_empty() {
            for x in &modifiers {
                let mut seen = HashSet::new();
                for p in reach(x) {
                    if seen.insert(p)
                        && let Some(w) = best.get_mut(&p)
                    {
                        *w += 0.5 * x.weight;
                    }
                }
            }
        }
        // Rank by weight, ties by id; only the top `limit` are sorted and turned into strings.
        let mut ranked: Vec<(NodeIndex, f32)> = best.into_iter().collect();
        let order = |a: &(NodeIndex, f32), b: &(NodeIndex, f32)| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.g[a.0].id.cmp(&self.g[b.0].id))
        };
        if limit == 0 {
            return Vec::new();
        }
        if ranked.len() > limit {
            ranked.select_nth_unstable_by(limit - 1, order);
            ranked.truncate(limit);
        }
        ranked.sort_by(order);
        ranked
            .into_iter()
            .filter_map(|(ix, w)| {
                self.g[ix]
                    .id
                    .strip_prefix("product:")
                    .map(|id| (id.to_owned(), w))
            })
            .collect()
    }

    /// The category chain of a product, leaf first.
    /// The node ids a product links to, for matching the query's facets against it: its brand,
    /// its attribute values, and its category chain (leaf first). `None` for an unknown product.
    pub fn facets(&self, product_id: &str) -> Option<Facets<'_>> {
        let &p = self.by_id.get(&ids::product(product_id))?;
        let mut f = Facets::default();
        for e in self.g.edges(p) {
            let id = self.g[e.target()].id.as_str();
            match e.weight().kind {
                EdgeKind::MadeBy => f.brand = Some(id),
                EdgeKind::HasAttribute => f.attributes.push(id),
                _ => {}
            }
        }
        f.categories = self
            .category_chain(p)
            .into_iter()
            .map(|c| self.g[c].id.as_str())
            .collect();
        Some(f)
    }

    fn category_chain(&self, product: NodeIndex) -> Vec<NodeIndex> {
        let mut chain = Vec::new();
        let mut cur = self
            .g
            .edges(product)
            .find(|e| e.weight().kind == EdgeKind::InCategory)
            .map(|e| e.target());
        while let Some(c) = cur {
            if chain.contains(&c) {
                break;
            }
            chain.push(c);
            cur = self
                .g
                .edges(c)
                .find(|e| e.weight().kind == EdgeKind::SubcategoryOf)
                .map(|e| e.target());
        }
        chain
    }

    fn policy_fact(&self, ix: NodeIndex) -> PolicyFact {
        let n = &self.g[ix];
        let s = |k: &str| n.data.get(k).and_then(Value::as_str).map(str::to_owned);
        PolicyFact {
            id: n.id.clone(),
            kind: s("policy_kind").unwrap_or_default(),
            label_en: n.label_en.clone(),
            label_zh: n.label_zh.clone(),
            text_en: s("text_en").unwrap_or_default(),
            text_zh: s("text_zh"),
            facts: n.data.get("facts").cloned().unwrap_or(Value::Null),
        }
    }

    /// Every policy in the graph, by id.
    pub fn policies(&self) -> Vec<PolicyFact> {
        let mut out: Vec<PolicyFact> = self
            .g
            .node_indices()
            .filter(|&ix| self.g[ix].kind == NodeKind::Policy)
            .map(|ix| self.policy_fact(ix))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The policy with this node id.
    pub fn policy(&self, id: &str) -> Option<PolicyFact> {
        let &ix = self.by_id.get(id)?;
        (self.g[ix].kind == NodeKind::Policy).then(|| self.policy_fact(ix))
    }

    /// Store-wide policies.
    pub fn store_policies(&self) -> Vec<PolicyFact> {
        let mut out: Vec<PolicyFact> = self
            .g
            .node_indices()
            .filter(|&ix| {
                self.g[ix].kind == NodeKind::Policy
                    && self.g[ix].data.get("store_wide") == Some(&Value::Bool(true))
            })
            .map(|ix| self.policy_fact(ix))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Facts for a product: its category path, brand, facet attributes and the policies that
    /// apply (to its category or any ancestor, or store-wide).
    pub fn facts(&self, product_id: &str) -> Option<ProductFacts> {
        let &p = self.by_id.get(&ids::product(product_id))?;
        let chain = self.category_chain(p);
        let mut policies: Vec<PolicyFact> = chain
            .iter()
            .flat_map(|&c| {
                self.g
                    .edges_directed(c, Direction::Incoming)
                    .filter(|e| e.weight().kind == EdgeKind::AppliesTo)
                    .map(|e| e.source())
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|ix| self.policy_fact(ix))
            .collect();
        policies.sort_by(|a, b| a.id.cmp(&b.id));
        policies.extend(self.store_policies());
        let neighbours = |kind: EdgeKind| {
            self.g
                .edges(p)
                .filter(move |e| e.weight().kind == kind)
                .map(|e| self.node_ref(e.target()))
        };
        let mut attributes: Vec<NodeRef> = neighbours(EdgeKind::HasAttribute).collect();
        attributes.sort_by(|a, b| a.id.cmp(&b.id));
        Some(ProductFacts {
            id: product_id.to_owned(),
            title: self.g[p].label_en.clone(),
            category_path: chain.iter().rev().map(|&c| self.node_ref(c)).collect(),
            brand: neighbours(EdgeKind::MadeBy).next(),
            attributes,
            policies,
        })
    }

    /// Categories related to a product's by `kind` (complements or substitutes), in either
    /// direction, from its most specific category up; heaviest first.
    pub fn related(&self, product_id: &str, kind: EdgeKind) -> Vec<Expansion> {
        let Some(&p) = self.by_id.get(&ids::product(product_id)) else {
            return Vec::new();
        };
        let chain = self.category_chain(p);
        let mut best: HashMap<NodeIndex, f32> = HashMap::new();
        for (level, &c) in chain.iter().enumerate() {
            let decay = 0.8f32.powi(level as i32);
            let out = self
                .g
                .edges_directed(c, Direction::Outgoing)
                .map(|e| (e.target(), e.weight()));
            let inc = self
                .g
                .edges_directed(c, Direction::Incoming)
                .map(|e| (e.source(), e.weight()));
            for (other, e) in out.chain(inc).filter(|(_, e)| e.kind == kind) {
                if chain.contains(&other) || self.g[other].products == 0 {
                    continue;
                }
                let w = best.entry(other).or_default();
                *w = w.max(e.weight * decay);
            }
        }
        self.ranked(best)
    }

    /// Expansions heaviest first; ties by products reached, then id, so results are stable.
    fn ranked(&self, weights: impl IntoIterator<Item = (NodeIndex, f32)>) -> Vec<Expansion> {
        let mut out: Vec<Expansion> = weights
            .into_iter()
            .map(|(ix, weight)| Expansion {
                node: self.node_ref(ix),
                weight,
            })
            .collect();
        out.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then(b.node.products.cmp(&a.node.products))
                .then(a.node.id.cmp(&b.node.id))
        });
        out
    }

    /// The shortest path from a query node (concept, category, attribute, brand) to a product,
    /// through categories, attributes and concepts only; `None` when there is none within 5 steps.
    pub fn explain(&self, from_id: &str, product_id: &str) -> Option<Vec<Step>> {
        let &from = self.by_id.get(from_id)?;
        let &product = self.by_id.get(&ids::product(product_id))?;
        let anchors: HashMap<NodeIndex, EdgeKind> = self
            .g
            .edges(product)
            .map(|e| (e.target(), e.weight().kind))
            .collect();
        let mut prev: HashMap<NodeIndex, (NodeIndex, EdgeKind)> = HashMap::new();
        let mut queue = VecDeque::from([(from, 0)]);
        let mut seen = HashSet::from([from]);
        let mut found = None;
        while let Some((n, depth)) = queue.pop_front() {
            if anchors.contains_key(&n) {
                found = Some(n);
                break;
            }
            if depth >= 5 {
                continue;
            }
            let out = self
                .g
                .edges_directed(n, Direction::Outgoing)
                .map(|e| (e.target(), e.weight().kind));
            // Down the taxonomy: from a category to its subcategories.
            let down = self
                .g
                .edges_directed(n, Direction::Incoming)
                .filter(|e| e.weight().kind == EdgeKind::SubcategoryOf)
                .map(|e| (e.source(), e.weight().kind));
            for (next, kind) in out.chain(down) {
                let upward = kind == EdgeKind::SubcategoryOf && self.g.find_edge(n, next).is_some();
                if upward || !walkable(self.g[next].kind) || !seen.insert(next) {
                    continue;
                }
                prev.insert(next, (n, kind));
                queue.push_back((next, depth + 1));
            }
        }
        let anchor = found?;
        let mut steps = vec![Step {
            node: self.node_ref(product),
            via: anchors.get(&anchor).copied(),
        }];
        let mut cur = anchor;
        loop {
            match prev.get(&cur) {
                Some(&(p, kind)) => {
                    steps.push(Step {
                        node: self.node_ref(cur),
                        via: Some(kind),
                    });
                    cur = p;
                }
                None => {
                    steps.push(Step {
                        node: self.node_ref(cur),
                        via: None,
                    });
                    break;
                }
            }
        }
        steps.reverse();
        // Each step's `via` names the edge into it from the previous step.
        Some(steps)
    }
}

impl KnowledgeGraph {
    /// Non-product nodes whose label or synonyms contain `q` (case-insensitive, EN or ZH): exact
    /// matches first, then by products reached. For the editor's search.
    pub fn search_nodes(&self, q: &str, limit: usize) -> Vec<NodeRef> {
        let q = q.trim().to_lowercase();
        if q.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<(bool, NodeIndex)> = self
            .g
            .node_indices()
            .filter(|&ix| self.g[ix].kind != NodeKind::Product)
            .filter_map(|ix| {
                let n = &self.g[ix];
                let names = std::iter::once(&n.label_en)
                    .chain(&n.label_zh)
                    .chain(&n.synonyms_en)
                    .chain(&n.synonyms_zh);
                let mut exact = false;
                let mut any = false;
                for name in names.chain(std::iter::once(&n.id)) {
                    let name = name.to_lowercase();
                    exact |= name == q;
                    any |= name.contains(&q);
                }
                any.then_some((exact, ix))
            })
            .collect();
        hits.sort_by_key(|&(exact, ix)| {
            (
                !exact,
                std::cmp::Reverse(self.g[ix].products),
                self.g[ix].id.clone(),
            )
        });
        hits.into_iter()
            .take(limit)
            .map(|(_, ix)| self.node_ref(ix))
            .collect()
    }
}
