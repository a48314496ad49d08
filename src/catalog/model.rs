//! Catalog types. Products enter through [`ProductDraft::validate`], so a [`NewProduct`] always
//! satisfies the limits below and the database constraints.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

/// Longest accepted product id.
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
pub const MAX_BRAND_CHARS: usize = 200;
pub const MAX_CATEGORY_DEPTH: usize = 10;
pub const MAX_CATEGORY_SEGMENT_CHARS: usize = 200;
pub const MAX_ATTRIBUTES: usize = 200;
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 100;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 10_000;
pub const MAX_URLS: usize = 20;
pub const MAX_URL_CHARS: usize = 2_048;
/// Prices above this are treated as feed errors (numeric(14,2) holds up to 10^12).
pub const MAX_PRICE: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// Stock state, normalised from the many spellings feeds use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    InStock,
    OutOfStock,
    Preorder,
    Backorder,
}

impl Availability {
    /// Parses `in stock`, `in_stock`, `In-Stock`, `out of stock`, `preorder`, `pre-order`,
    /// `backorder`, `available for order`, ...
    pub fn parse(raw: &str) -> Option<Self> {
        let key: String = raw
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        match key.as_str() {
            "instock"
            | "available"
            | "availablefororder"
            | "limitedavailability"
            | "onlineonly" => Some(Self::InStock),
            "outofstock" | "soldout" | "discontinued" | "unavailable" => Some(Self::OutOfStock),
            "preorder" => Some(Self::Preorder),
            "backorder" => Some(Self::Backorder),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InStock => "in_stock",
            Self::OutOfStock => "out_of_stock",
            Self::Preorder => "preorder",
            Self::Backorder => "backorder",
        }
    }
}

/// A product as an importer read it, before validation. Strings are raw (untrimmed).
#[derive(Debug, Default, Clone)]
pub struct ProductDraft {
    pub id: String,
    pub title: String,
    pub title_zh: Option<String>,
    pub description: String,
    pub brand: Option<String>,
    pub category: Vec<String>,
    pub price: Option<Decimal>,
    pub currency: Option<String>,
    pub list_price: Option<Decimal>,
    pub availability: Option<Availability>,
    pub stock: Option<i64>,
    pub attributes: BTreeMap<String, String>,
    pub image_urls: Vec<String>,
    pub url: Option<String>,
    pub gtin: Option<String>,
    pub rating: Option<f64>,
    pub rating_count: Option<i64>,
}

/// A validated product, ready to upsert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewProduct {
    pub id: String,
    pub title: String,
    pub title_zh: Option<String>,
    pub description: String,
    pub brand: Option<String>,
    /// Category path, root first; empty when the feed gave none.
    pub category: Vec<String>,
    pub price: Decimal,
    pub currency: String,
    pub list_price: Option<Decimal>,
    pub availability: Availability,
    pub stock: Option<i32>,
    pub attributes: BTreeMap<String, String>,
    pub image_urls: Vec<String>,
    pub url: Option<String>,
    pub gtin: Option<String>,
    pub rating: Option<f32>,
    pub rating_count: Option<i32>,
}

impl NewProduct {
    /// The category path joined as stored: `root > ... > leaf`.
    pub fn category_path(&self) -> Option<String> {
        (!self.category.is_empty()).then(|| self.category.join(" > "))
    }
}

fn clean(s: &str) -> String {
    // Collapse runs of whitespace (feeds are full of double spaces and stray newlines).
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| clean(&s)).filter(|s| !s.is_empty())
}

fn too_long(field: &str, value: &str, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max {
        return Err(format!("{field} is {n} characters long (limit {max})"));
    }
    Ok(())
}

impl ProductDraft {
    /// Checks every field and normalises whitespace; the error is a reason fit for a reject report.
    pub fn validate(self) -> Result<NewProduct, String> {
        let id = self.id.trim().to_owned();
        if id.is_empty() {
            return Err("missing id".into());
        }
        too_long("id", &id, MAX_ID_CHARS)?;
        if id.chars().any(char::is_control) {
            return Err("id contains control characters".into());
        }
        let title = clean(&self.title);
        if title.is_empty() {
            return Err("missing title".into());
        }
        too_long("title", &title, MAX_TITLE_CHARS)?;
        let title_zh = non_empty(self.title_zh);
        if let Some(t) = &title_zh {
            too_long("title_zh", t, MAX_TITLE_CHARS)?;
        }
        let description = clean(&self.description);
        too_long("description", &description, MAX_DESCRIPTION_CHARS)?;
        let brand = non_empty(self.brand);
        if let Some(b) = &brand {
            too_long("brand", b, MAX_BRAND_CHARS)?;
        }
        let category: Vec<String> = self
            .category
            .iter()
            .map(|c| clean(c))
            .filter(|c| !c.is_empty())
            .collect();
        if category.len() > MAX_CATEGORY_DEPTH {
            return Err(format!(
                "category path has {} levels (limit {MAX_CATEGORY_DEPTH})",
                category.len()
            ));
        }
        for c in &category {
            too_long("category segment", c, MAX_CATEGORY_SEGMENT_CHARS)?;
            if c.contains(" > ") {
                return Err(format!(
                    "category segment {c:?} contains the separator \" > \""
                ));
            }
        }
        let price = self.price.ok_or("missing price")?;
        check_price("price", price)?;
        if let Some(lp) = self.list_price {
            check_price("list price", lp)?;
        }
        let list_price = self.list_price.filter(|lp| *lp > price);
        let currency = self
            .currency
            .map(|c| c.trim().to_uppercase())
            .ok_or("missing currency")?;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("currency {currency:?} is not an ISO 4217 code"));
        }
        let stock = match self.stock {
            Some(s) if s < 0 => return Err(format!("stock {s} is negative")),
            Some(s) => Some(i32::try_from(s).map_err(|_| format!("stock {s} is too large"))?),
            None => None,
        };
        let availability = self.availability.unwrap_or(match stock {
            Some(0) => Availability::OutOfStock,
            _ => Availability::InStock,
        });
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(format!(
                "{} attributes (limit {MAX_ATTRIBUTES})",
                self.attributes.len()
            ));
        }
        let mut attributes = BTreeMap::new();
        for (k, v) in self.attributes {
            let (k, v) = (clean(&k).to_lowercase(), clean(&v));
            if k.is_empty() || v.is_empty() {
                continue;
            }
            too_long("attribute name", &k, MAX_ATTRIBUTE_KEY_CHARS)?;
            too_long(&format!("attribute {k:?}"), &v, MAX_ATTRIBUTE_VALUE_CHARS)?;
            attributes.insert(k, v);
        }
        let image_urls: Vec<String> = self
            .image_urls
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if image_urls.len() > MAX_URLS {
            return Err(format!(
                "{} image urls (limit {MAX_URLS})",
                image_urls.len()
            ));
        }
        for u in image_urls.iter().chain(self.url.iter()) {
            too_long("url", u, MAX_URL_CHARS)?;
        }
        let rating = match self.rating {
            Some(r) if !(0.0..=5.0).contains(&r) => {
                return Err(format!("rating {r} is outside 0..5"));
            }
            // Feeds write 0 for "no rating yet".
            Some(0.0) => None,
            r => r.map(|r| r as f32),
        };
        let rating_count = match self.rating_count {
            Some(n) if n < 0 => return Err(format!("rating count {n} is negative")),
            n => n.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        };
        Ok(NewProduct {
            id,
            title,
            title_zh,
            description,
            brand,
            category,
            price,
            currency,
            list_price,
            availability,
            stock,
            attributes,
            image_urls,
            url: non_empty(self.url),
            gtin: non_empty(self.gtin),
            rating,
            rating_count,
        })
    }
}

fn check_price(field: &str, p: Decimal) -> Result<(), String> {
    if p.is_sign_negative() && !p.is_zero() {
        return Err(format!("{field} {p} is negative"));
    }
    if p > MAX_PRICE {
        return Err(format!("{field} {p} is implausibly large"));
    }
    Ok(())
}

/// A product as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Product {
    pub id: String,
    pub title: String,
    pub title_zh: Option<String>,
    pub description: String,
    pub brand: Option<String>,
    pub category: Option<String>,
    #[serde(with = "rust_decimal::serde::float")]
    pub price: Decimal,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::float_option")]
    pub list_price: Option<Decimal>,
    pub availability: String,
    pub stock: Option<i32>,
    pub attributes: sqlx::types::Json<BTreeMap<String, String>>,
    pub image_urls: Vec<String>,
    pub url: Option<String>,
    pub gtin: Option<String>,
    pub rating: Option<f32>,
    pub rating_count: Option<i32>,
}

impl Product {
    pub fn in_stock(&self) -> bool {
        self.availability != "out_of_stock"
    }
}

/// Counts from one import run.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ImportCounts {
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

/// One rejected feed row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reject {
    /// 1-based data row (the header is row 0).
    pub row: u64,
    /// 1-based line in the file where the row starts.
    pub line: u64,
    pub id: Option<String>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ProductDraft {
        ProductDraft {
            id: " p1 ".into(),
            title: "  Red   flats ".into(),
            price: Some(Decimal::new(49900, 2)),
            currency: Some("inr".into()),
            ..Default::default()
        }
    }

    #[test]
    fn whitespace_is_normalised_and_currency_upper_cased() {
        let p = draft().validate().unwrap();
        assert_eq!(p.id, "p1");
        assert_eq!(p.title, "Red flats");
        assert_eq!(p.currency, "INR");
        assert_eq!(p.availability, Availability::InStock);
    }

    #[test]
    fn bad_rows_say_why() {
        let mut d = draft();
        d.price = Some(Decimal::new(-1, 0));
        assert_eq!(d.validate().unwrap_err(), "price -1 is negative");
        let mut d = draft();
        d.id = "  ".into();
        assert_eq!(d.validate().unwrap_err(), "missing id");
        let mut d = draft();
        d.title = "x".repeat(MAX_TITLE_CHARS + 1);
        assert!(
            d.validate()
                .unwrap_err()
                .starts_with("title is 501 characters")
        );
        let mut d = draft();
        d.price = None;
        assert_eq!(d.validate().unwrap_err(), "missing price");
    }

    #[test]
    fn list_price_below_price_is_dropped_and_zero_rating_means_unrated() {
        let mut d = draft();
        d.list_price = Some(Decimal::new(100, 0));
        d.rating = Some(0.0);
        let p = d.validate().unwrap();
        assert_eq!(p.list_price, None);
        assert_eq!(p.rating, None);
    }

    #[test]
    fn availability_spellings() {
        assert_eq!(Availability::parse("In Stock"), Some(Availability::InStock));
        assert_eq!(
            Availability::parse("out_of_stock"),
            Some(Availability::OutOfStock)
        );
        assert_eq!(
            Availability::parse("pre-order"),
            Some(Availability::Preorder)
        );
        assert_eq!(Availability::parse("maybe"), None);
    }
}
