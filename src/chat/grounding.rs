//! The check after generation: every product and number in a reply must be one of the facts the
//! model was handed.
//!
//! The composer already constrains the model, but a small model still strays, and a remote model
//! may not honour a grammar at all. This check is the last word. A reply is split into sentences;
//! a sentence is dropped when, after the facts it may name are masked out, it still
//!
//! - names a product or brand of the catalog that is not among the facts (a product the shopper was
//!   not shown, or one the ranking left out),
//! - contains a model-number-like token (letters and digits mixed: "X200", "3089SL01") that is not
//!   part of an allowed name, the usual shape of an invented product,
//! - states a number (a price in any notation, Chinese numerals included) that is not one of the
//!   facts' numbers.
//!
//! What was dropped, and why, is returned for the turn's trace.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;
use std::sync::LazyLock;

use crate::intent::slots::normalise_numbers;

/// A product the reply may name.
#[derive(Debug, Clone, Default)]
pub struct ProductFact {
    pub name: String,
    pub name_zh: Option<String>,
    pub brand: Option<String>,
    pub price: f64,
}

/// What one reply may say.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub products: Vec<ProductFact>,
    /// Other numbers the reply may state: policy figures (days, fees), an order's total, counts.
    pub numbers: Vec<f64>,
}

/// Why a sentence was dropped.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "reason", content = "found", rename_all = "snake_case")]
pub enum Violation {
    /// A catalog product or brand that is not among the facts.
    UnlistedProduct(String),
    /// A model-number-like token not in any allowed name.
    ModelNumber(String),
    /// A number (price, figure) that is not among the facts.
    Number(String),
}

/// A dropped sentence.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dropped {
    pub sentence: String,
    pub violation: Violation,
}

/// The reply after the check.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub text: String,
    pub dropped: Vec<Dropped>,
}

/// Names of everything the catalog sells (product names, Chinese names, brands), to recognise a
/// product the reply was not given. Built once per catalog version.
pub struct CatalogNames {
    names: Vec<String>,
    matcher: Option<AhoCorasick>,
}

/// Names shorter than this are not matched (they collide with ordinary words).
const MIN_NAME_CHARS: usize = 3;

impl CatalogNames {
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|n| n.as_ref().trim().to_lowercase())
            .filter(|n| n.chars().count() >= MIN_NAME_CHARS)
            .collect();
        names.sort();
        names.dedup();
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&names)
            .ok();
        Self { names, matcher }
    }

    /// Catalog names in `lower` (already lower-case), whole words only for Latin names.
    fn find<'a>(&'a self, lower: &str) -> Vec<&'a str> {
        let Some(m) = &self.matcher else {
            return Vec::new();
        };
        m.find_iter(lower)
            .filter(|hit| word_bounded(lower, hit.start(), hit.end()))
            .map(|hit| self.names[hit.pattern().as_usize()].as_str())
            .collect()
    }
}

/// Whether `text[start..end]` stands as whole words (CJK text has no word boundaries to check).
fn word_bounded(text: &str, start: usize, end: usize) -> bool {
    let latin = |c: char| c.is_alphanumeric() && !is_cjk(c);
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let first = text[start..end].chars().next();
    let last = text[start..end].chars().next_back();
    let joins_before = before.is_some_and(latin) && first.is_some_and(latin);
    let joins_after = after.is_some_and(latin) && last.is_some_and(latin);
    !(joins_before || joins_after)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3040..=0x30FF)
}

static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d[\d,]*(?:\.\d+)?").expect("number pattern compiles"));
static MODEL_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    // A word with both letters and digits, at least 3 characters: "X200", "3089SL01", "A52s".
    Regex::new(r"\b(?:[A-Za-z]+\d|\d+[A-Za-z])[A-Za-z0-9-]*\b").expect("model pattern compiles")
});
static ORDINAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d+(?:st|nd|rd|th)$").expect("ordinal pattern compiles"));
/// Sentence ends: Latin punctuation followed by space (so "Rs. 499" and "4.5" stay whole), CJK
/// punctuation and line breaks anywhere.
static SENTENCE_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[.!?]+\s+|[。！？!?]+|\n+").expect("sentence pattern compiles"));

/// Splits `text` into sentences, each keeping its ending punctuation and spacing.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for m in SENTENCE_END.find_iter(text) {
        // "Rs. 499": an abbreviation before a number is not a sentence end.
        let word_before = text[start..m.start()]
            .rsplit(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("");
        let next_is_digit = text[m.end()..].starts_with(|c: char| c.is_ascii_digit());
        if m.as_str().starts_with('.')
            && next_is_digit
            && matches!(word_before.to_lowercase().as_str(), "rs" | "inr" | "no")
        {
            continue;
        }
        out.push(&text[start..m.end()]);
        start = m.end();
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn parse_number(s: &str) -> Option<f64> {
    s.replace(',', "").parse().ok()
}

/// Checks `text` against `facts`, dropping each sentence that says something else.
pub fn check(text: &str, facts: &Facts, catalog: &CatalogNames) -> Checked {
    // Allowed names, longest first so a name masks before a brand inside it.
    let mut allowed: Vec<String> = facts
        .products
        .iter()
        .flat_map(|p| {
            [Some(&p.name), p.name_zh.as_ref(), p.brand.as_ref()]
                .into_iter()
                .flatten()
                .map(|n| n.trim().to_lowercase())
        })
        .filter(|n| !n.is_empty())
        .collect();
    allowed.sort_by_key(|n| std::cmp::Reverse(n.len()));
    allowed.dedup();
    let numbers: Vec<f64> = facts
        .products
        .iter()
        .map(|p| p.price)
        .chain(facts.numbers.iter().copied())
        .collect();
    let number_ok = |v: f64| numbers.iter().any(|n| (n - v).abs() < 0.005);

    let mut checked = Checked::default();
    for sentence in sentences(text) {
        match violation(sentence, &allowed, catalog, &number_ok) {
            None => checked.text.push_str(sentence),
            Some(violation) => checked.dropped.push(Dropped {
                sentence: sentence.trim().to_owned(),
                violation,
            }),
        }
    }
    checked.text = checked.text.trim().to_owned();
    checked
}

fn violation(
    sentence: &str,
    allowed: &[String],
    catalog: &CatalogNames,
    number_ok: &dyn Fn(f64) -> bool,
) -> Option<Violation> {
    // Mask what the facts allow; what is left must name nothing else.
    let mut masked = sentence.to_lowercase();
    for name in allowed {
        if masked.contains(name.as_str()) {
            masked = masked.replace(name.as_str(), " \u{2022} ");
        }
    }
    if let Some(name) = catalog.find(&masked).first() {
        return Some(Violation::UnlistedProduct((*name).to_owned()));
    }
    if let Some(m) = MODEL_NUMBER
        .find_iter(&masked)
        .find(|m| !ORDINAL.is_match(m.as_str()))
    {
        return Some(Violation::ModelNumber(m.as_str().to_owned()));
    }
    let digits = normalise_numbers(&masked);
    for m in NUMBER.find_iter(&digits) {
        match parse_number(m.as_str()) {
            Some(v) if number_ok(v) => {}
            _ => return Some(Violation::Number(m.as_str().to_owned())),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            products: vec![
                ProductFact {
                    name: "Bata Red Ballet Flats".into(),
                    name_zh: Some("巴塔红色芭蕾平底鞋".into()),
                    brand: Some("Bata".into()),
                    price: 699.0,
                },
                ProductFact {
                    name: "Fastrack 3089SL01 Analog Watch".into(),
                    name_zh: None,
                    brand: Some("Fastrack".into()),
                    price: 1_299.0,
                },
            ],
            numbers: vec![30.0],
        }
    }

    fn catalog() -> CatalogNames {
        CatalogNames::new([
            "Bata Red Ballet Flats",
            "Bata",
            "Fastrack 3089SL01 Analog Watch",
            "Fastrack",
            "Titan Neo Watch",
            "Titan",
            "Puma",
            "HP",
        ])
    }

    #[test]
    fn allowed_names_and_prices_pass_untouched() {
        let text = "The Bata Red Ballet Flats cost ₹699. The Fastrack 3089SL01 Analog Watch is Rs. 1,299! Returns within 30 days.";
        let out = check(text, &facts(), &catalog());
        assert_eq!(out.text, text);
        assert!(out.dropped.is_empty(), "{:?}", out.dropped);
    }

    #[test]
    fn an_unlisted_catalog_product_or_brand_is_dropped() {
        let out = check(
            "Bata flats are comfy. You may also like the Titan Neo Watch. Puma makes good shoes.",
            &facts(),
            &catalog(),
        );
        assert_eq!(out.text, "Bata flats are comfy.");
        assert_eq!(
            out.dropped[0].violation,
            Violation::UnlistedProduct("titan neo watch".into())
        );
        assert_eq!(
            out.dropped[1].violation,
            Violation::UnlistedProduct("puma".into())
        );
    }

    #[test]
    fn invented_model_numbers_and_prices_are_dropped() {
        let out = check(
            "Try the Zoomster X200 sneakers. They cost 499 rupees. The flats are ₹699.",
            &facts(),
            &catalog(),
        );
        assert_eq!(out.text, "The flats are ₹699.");
        assert_eq!(
            out.dropped[0].violation,
            Violation::ModelNumber("x200".into())
        );
        assert_eq!(out.dropped[1].violation, Violation::Number("499".into()));
    }

    #[test]
    fn chinese_sentences_and_numerals_are_checked() {
        let out = check(
            "巴塔红色芭蕾平底鞋售价699元。另一双只要五百元！三十天内可以退货。",
            &facts(),
            &catalog(),
        );
        assert_eq!(out.text, "巴塔红色芭蕾平底鞋售价699元。三十天内可以退货。");
        assert_eq!(out.dropped.len(), 1);
        assert_eq!(out.dropped[0].violation, Violation::Number("500".into()));
    }

    #[test]
    fn short_names_and_word_parts_do_not_trigger() {
        // "HP" is below the minimum length; "Batasa" is not the brand "Bata".
        let out = check(
            "Shop smart. Batasa is a word. The 2nd pair is red.",
            &Facts {
                numbers: vec![2.0],
                ..facts()
            },
            &CatalogNames::new(["HP", "Bata"]),
        );
        assert!(out.dropped.is_empty(), "{:?}", out.dropped);
    }

    #[test]
    fn sentences_keep_abbreviations_and_decimals_whole() {
        assert_eq!(
            sentences("It is Rs. 499 today. Rated 4.5 stars!  Nice。好的"),
            vec![
                "It is Rs. 499 today. ",
                "Rated 4.5 stars!  ",
                "Nice。",
                "好的"
            ]
        );
    }
}
