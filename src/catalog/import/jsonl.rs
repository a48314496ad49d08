//! JSON Lines product feeds: one object per line with the Merchant fields JSON-typed, plus
//! `title_zh`, `currency`, `list_price`, `stock`, `category` (string "a > b" or array),
//! `attributes` (object), `image_links`, `rating`, `rating_count`. Unknown fields are ignored.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::merchant::split_taxonomy;
use super::{RowError, SourceRow};
use crate::catalog::model::{Availability, ProductDraft};
use crate::catalog::price::parse_price;

/// Lines longer than this are rejected unread (the reader skips to the next newline).
const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
struct Line {
    id: Value,
    title: Option<String>,
    title_zh: Option<String>,
    description: Option<String>,
    brand: Option<String>,
    category: Option<Value>,
    product_type: Option<String>,
    price: Option<Value>,
    sale_price: Option<Value>,
    currency: Option<String>,
    list_price: Option<Value>,
    availability: Option<String>,
    stock: Option<i64>,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
    color: Option<String>,
    size: Option<String>,
    gender: Option<String>,
    age_group: Option<String>,
    material: Option<String>,
    link: Option<String>,
    image_link: Option<String>,
    #[serde(default)]
    image_links: Vec<String>,
    gtin: Option<Value>,
    rating: Option<f64>,
    rating_count: Option<i64>,
}

/// Reads a JSON Lines feed. Blank lines are skipped but still counted for line numbers.
pub fn rows<R: Read + Send + 'static>(
    input: R,
) -> Result<Box<dyn Iterator<Item = SourceRow> + Send>, String> {
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut line_no = 0u64;
    let mut row = 0u64;
    let mut buf = Vec::new();
    Ok(Box::new(std::iter::from_fn(move || {
        loop {
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf);
            line_no += 1;
            row += 1;
            let failed = |reason: String| {
                Some(SourceRow {
                    row,
                    line: line_no,
                    draft: Err(RowError { id: None, reason }),
                })
            };
            match read {
                Ok(0) => return None,
                Err(e) => return failed(format!("reading stopped: {e}")),
                Ok(_) => {}
            }
            if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
                // Skip the rest of the oversized line.
                let mut sink = Vec::new();
                let _ = reader.read_until(b'\n', &mut sink);
                return failed(format!("line is longer than {MAX_LINE_BYTES} bytes"));
            }
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim(),
                Err(e) => {
                    return failed(format!(
                        "line is not valid UTF-8 (byte {})",
                        e.valid_up_to()
                    ));
                }
            };
            if text.is_empty() {
                row -= 1;
                continue;
            }
            let draft = serde_json::from_str::<Line>(text)
                .map_err(|e| RowError {
                    id: None,
                    reason: format!("invalid JSON: {e}"),
                })
                .and_then(|l| {
                    let id = scalar(&l.id);
                    draft(l).map_err(|reason| RowError { id, reason })
                });
            return Some(SourceRow {
                row,
                line: line_no,
                draft,
            });
        }
    })))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number, or a string like "12.99 USD".
fn amount(v: &Value, field: &str) -> Result<(Decimal, Option<String>), String> {
    match v {
        Value::Number(n) => parse_price(&n.to_string()).map_err(|e| format!("{field}: {e}")),
        Value::String(s) => parse_price(s).map_err(|e| format!("{field}: {e}")),
        _ => Err(format!("{field} must be a number or a string")),
    }
}

fn draft(l: Line) -> Result<ProductDraft, String> {
    let id = scalar(&l.id).ok_or("id must be a string or a number")?;
    let (price, price_currency) = match &l.price {
        Some(v) => amount(v, "price")?,
        None => return Err("missing price".into()),
    };
    let sale = l
        .sale_price
        .as_ref()
        .map(|v| amount(v, "sale_price"))
        .transpose()?;
    let list = l
        .list_price
        .as_ref()
        .map(|v| amount(v, "list_price"))
        .transpose()?;
    let (price, list_price) = match sale {
        Some((s, _)) if s < price => (s, Some(price)),
        _ => (price, list.map(|(p, _)| p)),
    };
    let availability = l
        .availability
        .as_deref()
        .map(|a| Availability::parse(a).ok_or_else(|| format!("unknown availability {a:?}")))
        .transpose()?;
    let category = match l.category {
        Some(Value::String(s)) => split_taxonomy(&s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::Null) | None => l
            .product_type
            .as_deref()
            .map(split_taxonomy)
            .unwrap_or_default(),
        Some(_) => return Err("category must be a string or a list of strings".into()),
    };
    let mut attributes = BTreeMap::new();
    for (k, v) in l.attributes {
        let v = match v {
            Value::String(s) => s,
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            Value::Null => continue,
            _ => {
                return Err(format!(
                    "attribute {k:?} must be a string, number or boolean"
                ));
            }
        };
        attributes.insert(k, v);
    }
    let named = [
        ("color", l.color),
        ("size", l.size),
        ("gender", l.gender),
        ("age group", l.age_group),
        ("material", l.material),
    ];
    for (k, v) in named {
        if let Some(v) = v {
            attributes.insert(k.to_owned(), v);
        }
    }
    let mut image_urls: Vec<String> = l.image_link.into_iter().collect();
    image_urls.extend(l.image_links);
    Ok(ProductDraft {
        id,
        title: l.title.unwrap_or_default(),
        title_zh: l.title_zh,
        description: l.description.unwrap_or_default(),
        brand: l.brand,
        category,
        price: Some(price),
        currency: l.currency.or(price_currency),
        list_price,
        availability,
        stock: l.stock,
        attributes,
        image_urls,
        url: l.link,
        gtin: l.gtin.as_ref().and_then(scalar),
        rating: l.rating,
        rating_count: l.rating_count,
    })
}
