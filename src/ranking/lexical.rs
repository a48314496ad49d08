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
}

/// One lexical match.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    /// Fields and terms that matched, e.g. `title: ballerina`.
    pub matched: Vec<String>,
}

/// An immutable index over one snapshot of the catalog.
pub struct LexicalIndex {
    reader: IndexReader,
    id_field: Field,
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
                },
            );
        }
        writer.commit()?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            reader,
            id_field,
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

    /// The best `limit` products for `query` by BM25, best first. An empty or all-punctuation
    /// query matches nothing.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, IndexError> {
        let mut analyzer = self.analyzer.clone();
        let mut query_terms = terms(&mut analyzer, query);
        let mut seen = std::collections::HashSet::new();
        query_terms.retain(|t| seen.insert(t.clone()));
        query_terms.truncate(MAX_QUERY_TERMS);
        if query_terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in &query_terms {
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
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let Some(id) = doc
                .get_first(self.id_field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
            else {
                continue;
            };
            let matched = self.matched_terms(&id, &query_terms, &mut analyzer);
            hits.push(Hit { id, score, matched });
        }
        Ok(hits)
    }

    /// Which query terms occur in which short field of a product, for the "why" of a result.
    fn matched_terms(
        &self,
        id: &str,
        query_terms: &[String],
        analyzer: &mut TextAnalyzer,
    ) -> Vec<String> {
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
