//! The Flipkart export (`../shared/data/flipkart_sample/products.csv`): id `uniq_id`, price
//! `discounted_price` (else `retail_price`), INR, the category tree and specifications as Python
//! literals. The tree's trailing segments often name the product or "<brand> <category>"; those are
//! dropped so the stored path is the shared taxonomy, and the brand is recovered from them when the
//! `brand` column is empty.

use std::io::Read;

use serde_json::Value;

use super::csvrows::{CsvRows, Row};
use super::{RowError, SourceRow, pylit};
use crate::catalog::model::ProductDraft;
use crate::catalog::price::parse_price;

struct Columns {
    id: Option<usize>,
    name: Option<usize>,
    tree: Option<usize>,
    retail: Option<usize>,
    discounted: Option<usize>,
    image: Option<usize>,
    description: Option<usize>,
    rating: Option<usize>,
    brand: Option<usize>,
    specs: Option<usize>,
    url: Option<usize>,
    pid: Option<usize>,
}

/// Reads a Flipkart CSV; fails only when the header is unusable.
pub fn rows<R: Read + Send + 'static>(
    input: R,
) -> Result<Box<dyn Iterator<Item = SourceRow> + Send>, String> {
    let mut csv = CsvRows::new(input)?;
    csv.require(&["uniq_id", "product_name", "product_category_tree"])?;
    let cols = Columns {
        id: csv.column(&["uniq_id"]),
        name: csv.column(&["product_name"]),
        tree: csv.column(&["product_category_tree"]),
        retail: csv.column(&["retail_price"]),
        discounted: csv.column(&["discounted_price"]),
        image: csv.column(&["image"]),
        description: csv.column(&["description"]),
        rating: csv.column(&["product_rating", "overall_rating"]),
        brand: csv.column(&["brand"]),
        specs: csv.column(&["product_specifications"]),
        url: csv.column(&["product_url"]),
        pid: csv.column(&["pid"]),
    };
    Ok(Box::new(std::iter::from_fn(move || {
        let (row, line, record) = csv.next_row()?;
        let draft = record
            .map_err(|reason| RowError { id: None, reason })
            .and_then(|r| {
                draft(&cols, &r).map_err(|reason| RowError {
                    id: r.at(cols.id).map(Into::into),
                    reason,
                })
            });
        Some(SourceRow { row, line, draft })
    })))
}

fn draft(c: &Columns, r: &Row) -> Result<ProductDraft, String> {
    let title = r.at(c.name).unwrap_or_default().to_owned();
    let mut brand = r.at(c.brand).map(str::to_owned);
    let category = match r.at(c.tree) {
        Some(tree) => category_path(tree, &title, &mut brand)?,
        None => Vec::new(),
    };
    let amount = |col| r.at(col).map(parse_price).transpose();
    let retail = amount(c.retail)?.map(|(p, _)| p);
    let discounted = amount(c.discounted)?.map(|(p, _)| p);
    let price = discounted.filter(|p| !p.is_zero()).or(retail);
    let mut attributes = std::collections::BTreeMap::new();
    if let Some(specs) = r.at(c.specs) {
        for (k, v) in specifications(specs)? {
            attributes.entry(k).or_insert(v);
        }
    }
    if let Some(pid) = r.at(c.pid) {
        attributes.insert("flipkart pid".into(), pid.to_owned());
    }
    let rating = match r.at(c.rating) {
        Some(s) => s.parse::<f64>().ok(), // "No rating available" means unrated
        None => None,
    };
    Ok(ProductDraft {
        id: r.at(c.id).unwrap_or_default().to_owned(),
        title,
        description: r.at(c.description).unwrap_or_default().to_owned(),
        brand,
        category,
        price,
        currency: Some("INR".into()),
        list_price: retail,
        attributes,
        image_urls: r.at(c.image).map(string_list).unwrap_or_default(),
        url: r.at(c.url).map(str::to_owned),
        rating,
        ..Default::default()
    })
}

/// Lower-case words with punctuation deleted, as the export writes its category tree
/// ("women's" → "womens", "dumdaar.com" → "dumdaarcom", "q&q" → "qq").
fn norm(s: &str) -> String {
    let s: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn first_words(s: &str, n: usize) -> Option<String> {
    let words: Vec<&str> = s.split(' ').collect();
    (words.len() >= n).then(|| words[..n].join(" "))
}

/// Parses the tree and drops the product-specific tail. May fill `brand` from a
/// "<brand> <category>" segment.
fn category_path(
    tree: &str,
    title: &str,
    brand: &mut Option<String>,
) -> Result<Vec<String>, String> {
    let parsed = pylit::parse(tree).map_err(|e| format!("product_category_tree: {e}"))?;
    let mut path: Vec<String> = match parsed {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            // The original Kaggle layout is one string "a >> b >> c".
            .flat_map(|s| {
                s.split(">>")
                    .map(|p| p.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect(),
        _ => return Err("product_category_tree is not a list".into()),
    };
    let title = norm(title);
    while let Some(last) = path.last().map(|s| norm(s)) {
        let prev = path.len().checked_sub(2).map(|i| norm(&path[i]));
        let brand_n = brand.as_deref().map(norm).filter(|b| !b.is_empty());
        let names_product =
            !title.is_empty() && (title.starts_with(&last) || last.starts_with(&title));
        let shares_opening =
            matches!((first_words(&last, 2), first_words(&title, 2)), (Some(a), Some(b)) if a == b);
        let by_brand = brand_n
            .as_ref()
            .is_some_and(|b| last == *b || last.starts_with(&format!("{b} ")));
        let brand_prefix = prev
            .as_ref()
            .and_then(|p| last.strip_suffix(&format!(" {p}")).map(str::to_owned))
            // Only a prefix the title opens with is a brand: "wrist watches" under "watches" is a
            // real subcategory, "fastrack wrist watches" for a "fastrack ..." product is not.
            .filter(|b| !b.is_empty() && (title == *b || title.starts_with(&format!("{b} "))));
        if !(names_product || shares_opening || by_brand || brand_prefix.is_some()) {
            break;
        }
        if brand.is_none()
            && let Some(b) = brand_prefix
        {
            *brand = Some(b);
        }
        path.pop();
    }
    Ok(path)
}

/// `[{'key': 'Color', 'value': 'Red'}, {'value': 'no key'}]` → `[("color", "Red")]`.
fn specifications(src: &str) -> Result<Vec<(String, String)>, String> {
    let parsed = pylit::parse(src).map_err(|e| format!("product_specifications: {e}"))?;
    // The Kaggle original wraps the list: {"product_specification": [...]}.
    let list = match parsed {
        Value::Array(items) => items,
        Value::Object(mut m) => match m.remove("product_specification") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => return Err("product_specifications is not a list".into()),
    };
    Ok(list
        .iter()
        .filter_map(|item| {
            let key = item.get("key")?.as_str()?.trim().to_lowercase();
            let value = match item.get("value")? {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            };
            (!key.is_empty() && !value.is_empty()).then_some((key, value))
        })
        .collect())
}

/// A JSON list of URLs (or a Python one), or a single URL.
fn string_list(src: &str) -> Vec<String> {
    let parsed = serde_json::from_str::<Value>(src).or_else(|_| pylit::parse(src));
    match parsed {
        Ok(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ if src.starts_with("http") => vec![src.to_owned()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(tree: &str, title: &str, brand: Option<&str>) -> (Vec<String>, Option<String>) {
        let mut b = brand.map(str::to_owned);
        let p = category_path(tree, title, &mut b).unwrap();
        (p, b)
    }

    #[test]
    fn product_name_tail_is_dropped() {
        let (p, _) = path(
            "['footwear', 'womens footwear', 'ballerinas', 'aw bellies']",
            "aw bellies",
            Some("aw"),
        );
        assert_eq!(p, ["footwear", "womens footwear", "ballerinas"]);
    }

    #[test]
    fn brand_category_tail_is_dropped_and_recovers_the_brand() {
        let (p, b) = path(
            "['watches', 'wrist watches', 'fastrack wrist watches']",
            "fastrack 38015pl01 analog watch - for men",
            None,
        );
        assert_eq!(p, ["watches", "wrist watches"]);
        assert_eq!(b.as_deref(), Some("fastrack"));
    }

    #[test]
    fn real_leaf_categories_stay() {
        let (p, _) = path(
            "['footwear', 'womens footwear', 'casual shoes', 'boots']",
            "la briza ashley boots",
            None,
        );
        assert_eq!(p, ["footwear", "womens footwear", "casual shoes", "boots"]);
    }

    #[test]
    fn kaggle_arrow_layout_is_understood() {
        let (p, _) = path(
            r#"["Clothing >> Women's Clothing >> Shorts >> Alisha Shorts"]"#,
            "Alisha Solid Shorts",
            Some("Alisha"),
        );
        assert_eq!(p, ["Clothing", "Women's Clothing", "Shorts"]);
    }

    #[test]
    fn specifications_skip_keyless_entries() {
        let s = specifications(
            "[{'key': 'Ideal For', 'value': 'Women'}, {'value': 'One Pair Of Shoes'}]",
        )
        .unwrap();
        assert_eq!(s, [("ideal for".to_owned(), "Women".to_owned())]);
    }
}
