//! The lexical BM25 baseline: an in-memory tantivy index over title (EN and ZH), brand, category,
//! attributes and description, analyzed with [`super::tokenizer`]. Queries are built from analyzed
//! terms (never parsed as query syntax), one boosted term query per field, summed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jieba_rs::Jieba;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use super::tokenizer::{ANALYZER, analyzer, terms};
use crate::catalog::Product;

/// Field weights: what a match in each field is worth relative to the description.
const FIELDS: &[(&str, f32)] = &[
    ("title", 3.0),
    ("title_zh", 3.0),
    ("brand", 2.0),
    ("category", 2.0),
    ("attributes", 1.0),
    ("description", 0.5),
];
/// Queries are cut to this many distinct terms.
const MAX_QUERY_TERMS: usize = 32;

/// What a result shows without a database round trip.
#[derive(Debug, Clone)]
pub struct Summary {
    pub title: String,
    pub title_zh: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub price: f64,
    pub currency: String,
    pub in_stock: bool,
    pub rating: Option<f32>,
    pub rating_count: Option<i32>,
    /// The analysed terms of the English and Chinese titles, hashed: how much of a query the
    /// title covers is a ranking feature.
    pub title_terms: Box<[u64]>,
}

/// One lexical match.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub score: f32,
}

/// A query's analysed terms, distinct, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryTerms {
    pub terms: Vec<String>,
    hashes: Vec<u64>,
}

impl QueryTerms {
    /// The share of the query's terms found in a product's titles (0 for an empty query).
    pub fn coverage(&self, s: &Summary) -> f32 {
        if self.hashes.is_empty() {
            return 0.0;
        }
        let found = self
            .hashes
            .iter()
            .filter(|h| s.title_terms.contains(h))
            .count();
        found as f32 / self.hashes.len() as f32
    }
}

fn term_hash(t: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(t)
}

/// An immutable index over one snapshot of the catalog.
pub struct LexicalIndex {
    reader: IndexReader,
    /// Product id of each document, by segment and document number (no doc-store reads).
    doc_ids: Vec<Vec<Arc<str>>>,
    fields: Vec<(Field, &'static str, f32)>,
    analyzer: TextAnalyzer,
    summaries: HashMap<String, Summary>,
}

#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct IndexError(#[from] tantivy::TantivyError);

fn field_text(p: &Product, name: &str) -> String {
    match name {
        "title" => p.title.clone(),
        "title_zh" => p.title_zh.clone().unwrap_or_default(),
        "brand" => p.brand.clone().unwrap_or_default(),
        "category" => p.category.clone().unwrap_or_default(),
        "attributes" => attribute_text(&p.attributes.0),
        _ => p.description.clone(),
    }
}

fn attribute_text(a: &BTreeMap<String, String>) -> String {
    a.iter()
        .filter(|(k, _)| !k.contains("pid") && !k.contains("model number"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" ; ")
}

impl LexicalIndex {
    /// Indexes `products`. CPU-bound: call from a blocking task.
    pub fn build<'a>(
        jieba: Arc<Jieba>,
        products: impl IntoIterator<Item = &'a Product>,
    ) -> Result<Self, IndexError> {
        let mut builder = Schema::builder();
        let id_field = builder.add_text_field("id", STRING | STORED);
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields: Vec<(Field, &'static str, f32)> = FIELDS
            .iter()
            .map(|(name, boost)| (builder.add_text_field(name, text.clone()), *name, *boost))
            .collect();
        let index = Index::create_in_ram(builder.build());
        let analyzer = analyzer(jieba);
        index.tokenizers().register(ANALYZER, analyzer.clone());
        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 64 << 20)?;
        let mut summaries = HashMap::new();
        for p in products {
            let mut doc = TantivyDocument::new();
            doc.add_text(id_field, &p.id);
            for (field, name, _) in &fields {
                doc.add_text(*field, field_text(p, name));
            }
            writer.add_document(doc)?;
            let mut title_terms: Vec<u64> = terms(&mut analyzer.clone(), &p.title)
                .iter()
                .chain(&terms(
                    &mut analyzer.clone(),
                    p.title_zh.as_deref().unwrap_or_default(),
                ))
                .map(|t| term_hash(t))
                .collect();
            title_terms.sort_unstable();
            title_terms.dedup();
            summaries.insert(
                p.id.clone(),
                Summary {
                    title: p.title.clone(),
                    title_zh: p.title_zh.clone(),
                    brand: p.brand.clone(),
                    category: p.category.clone(),
                    price: p.price.try_into().unwrap_or(f64::NAN),
                    currency: p.currency.clone(),
                    in_stock: p.in_stock(),
                    rating: p.rating,
                    rating_count: p.rating_count,
                    title_terms: title_terms.into(),
                },
            );
        }
        writer.commit()?;
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = reader.searcher();
        let mut doc_ids = Vec::new();
        for segment in searcher.segment_readers() {
            let store = segment
                .get_store_reader(1)
                .map_err(tantivy::TantivyError::from)?;
            let mut ids = Vec::with_capacity(segment.max_doc() as usize);
            for doc in 0..segment.max_doc() {
                let d: TantivyDocument = store.get(doc)?;
                let id = d
                    .get_first(id_field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                ids.push(Arc::<str>::from(id));
            }
            doc_ids.push(ids);
        }
        Ok(Self {
            reader,
            doc_ids,
            fields,
            analyzer,
            summaries,
        })
    }

    pub fn len(&self) -> usize {
        self.summaries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.summaries.is_empty()
    }

    pub fn summary(&self, id: &str) -> Option<&Summary> {
        self.summaries.get(id)
    }

    /// A query's distinct analysed terms (at most 32).
    pub fn query_terms(&self, query: &str) -> QueryTerms {
        let mut analyzer = self.analyzer.clone();
        let mut list = terms(&mut analyzer, query);
        let mut seen = std::collections::HashSet::new();
        list.retain(|t| seen.insert(t.clone()));
        list.truncate(MAX_QUERY_TERMS);
        QueryTerms {
            hashes: list.iter().map(|t| term_hash(t)).collect(),
            terms: list,
        }
    }

    /// The best `limit` products for `query` by BM25, best first. An empty or all-punctuation
    /// query matches nothing.
    pub fn search(&self, query: &QueryTerms, limit: usize) -> Result<Vec<Hit>, IndexError> {
        if query.terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in &query.terms {
            for (field, _, boost) in &self.fields {
                let term = TermQuery::new(
                    Term::from_field_text(*field, t),
                    IndexRecordOption::WithFreqs,
                );
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(term), *boost)),
                ));
            }
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &BooleanQuery::new(clauses),
            &TopDocs::with_limit(limit).order_by_score(),
        )?;
        Ok(top
            .into_iter()
            .filter_map(|(score, address)| {
                let id = self
                    .doc_ids
                    .get(address.segment_ord as usize)?
                    .get(address.doc_id as usize)?;
                Some(Hit {
                    id: id.to_string(),
                    score,
                })
            })
            .collect())
    }

    /// Which query terms occur in which short field of a product, for the "why" of a result.
    pub fn matched(&self, id: &str, query: &QueryTerms) -> Vec<String> {
        let query_terms = &query.terms;
        let analyzer = &mut self.analyzer.clone();
        let Some(s) = self.summaries.get(id) else {
            return Vec::new();
        };
        let short_fields = [
            ("title", Some(s.title.as_str())),
            ("title_zh", s.title_zh.as_deref()),
            ("brand", s.brand.as_deref()),
            ("category", s.category.as_deref()),
        ];
        let mut out = Vec::new();
        for (name, text) in short_fields {
            let Some(text) = text else { continue };
            let field_terms = terms(analyzer, text);
            let hits: Vec<&str> = query_terms
                .iter()
                .filter(|t| field_terms.contains(t))
                .map(String::as_str)
                .collect();
            if !hits.is_empty() {
                out.push(format!("{name}: {}", hits.join(" ")));
            }
        }
        out
    }
}
