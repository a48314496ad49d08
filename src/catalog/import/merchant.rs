//! Google Merchant Center style feeds (TSV or CSV with a header; `g:` prefixes accepted):
//! `id, title, description, link, image_link, additional_image_link, price ("12.99 USD"),
//! sale_price, availability, brand, gtin, google_product_category, product_type, color, size,
//! gender, age_group, material` and optionally `title_zh`, `stock`/`quantity`, `rating`.

use std::collections::BTreeMap;
use std::io::Read;

use super::csvrows::{CsvRows, Row};
use super::{RowError, SourceRow};
use crate::catalog::model::{Availability, ProductDraft};
use crate::catalog::price::parse_price;

/// Columns copied into `attributes` under their own names.
const ATTRIBUTE_COLUMNS: &[&str] = &[
    "color",
    "size",
    "gender",
    "age_group",
    "material",
    "pattern",
    "condition",
];

struct Columns {
    id: Option<usize>,
    title: Option<usize>,
    title_zh: Option<usize>,
    description: Option<usize>,
    link: Option<usize>,
    image: Option<usize>,
    more_images: Option<usize>,
    price: Option<usize>,
    sale_price: Option<usize>,
    availability: Option<usize>,
    brand: Option<usize>,
    gtin: Option<usize>,
    google_category: Option<usize>,
    product_type: Option<usize>,
    stock: Option<usize>,
    rating: Option<usize>,
    attributes: Vec<(&'static str, usize)>,
}

/// Reads a Merchant feed; fails only when the header is unusable.
pub fn rows<R: Read + Send + 'static>(
    input: R,
) -> Result<Box<dyn Iterator<Item = SourceRow> + Send>, String> {
    let mut csv = CsvRows::new(input)?;
    csv.require(&["id", "title", "price"])?;
    let cols = Columns {
        id: csv.column(&["id"]),
        title: csv.column(&["title"]),
        title_zh: csv.column(&["title_zh"]),
        description: csv.column(&["description"]),
        link: csv.column(&["link"]),
        image: csv.column(&["image_link"]),
        more_images: csv.column(&["additional_image_link"]),
        price: csv.column(&["price"]),
        sale_price: csv.column(&["sale_price"]),
        availability: csv.column(&["availability"]),
        brand: csv.column(&["brand"]),
        gtin: csv.column(&["gtin"]),
        google_category: csv.column(&["google_product_category"]),
        product_type: csv.column(&["product_type"]),
        stock: csv.column(&["stock", "quantity", "sell_on_google_quantity"]),
        rating: csv.column(&["rating", "product_rating"]),
        attributes: ATTRIBUTE_COLUMNS
            .iter()
            .filter_map(|n| Some((*n, csv.column(&[n])?)))
            .collect(),
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
    let (price, currency) = match r.at(c.price) {
        Some(raw) => parse_price(raw)?,
        None => return Err("missing price".into()),
    };
    let sale = r
        .at(c.sale_price)
        .map(parse_price)
        .transpose()
        .map_err(|e| format!("sale_price: {e}"))?;
    if let Some((_, Some(sale_currency))) = &sale
        && currency.as_ref().is_some_and(|c| c != sale_currency)
    {
        return Err(format!(
            "sale_price currency {sale_currency} differs from the price's"
        ));
    }
    let (price, list_price) = match sale {
        Some((s, _)) if s < price => (s, Some(price)),
        _ => (price, None),
    };
    let availability = match r.at(c.availability) {
        Some(raw) => {
            Some(Availability::parse(raw).ok_or_else(|| format!("unknown availability {raw:?}"))?)
        }
        None => return Err("missing availability".into()),
    };
    let stock = match r.at(c.stock) {
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| format!("stock {raw:?} is not a whole number"))?,
        ),
        None => None,
    };
    let rating = match r.at(c.rating) {
        Some(raw) => Some(
            raw.parse::<f64>()
                .map_err(|_| format!("rating {raw:?} is not a number"))?,
        ),
        None => None,
    };
    let mut attributes: BTreeMap<String, String> = c
        .attributes
        .iter()
        .filter_map(|(name, i)| Some((name.replace('_', " "), r.at(Some(*i))?.to_owned())))
        .collect();
    // product_type is the merchant's own taxonomy ("Home > Kitchen > Flasks"); Google's may be an id.
    let taxonomy = r.at(c.product_type).or(r
        .at(c.google_category)
        .filter(|s| !s.chars().all(|c| c.is_ascii_digit())));
    if let Some(gpc) = r.at(c.google_category) {
        attributes.insert("google product category".into(), gpc.to_owned());
    }
    let mut image_urls: Vec<String> = r
        .at(c.image)
        .map(|s| vec![s.to_owned()])
        .unwrap_or_default();
    if let Some(more) = r.at(c.more_images) {
        image_urls.extend(
            more.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        );
    }
    Ok(ProductDraft {
        id: r.at(c.id).unwrap_or_default().to_owned(),
        title: r.at(c.title).unwrap_or_default().to_owned(),
        title_zh: r.at(c.title_zh).map(str::to_owned),
        description: r.at(c.description).unwrap_or_default().to_owned(),
        brand: r.at(c.brand).map(str::to_owned),
        category: taxonomy.map(split_taxonomy).unwrap_or_default(),
        price: Some(price),
        currency: Some(currency.ok_or("price has no currency (write it like \"12.99 USD\")")?),
        list_price,
        availability,
        stock,
        attributes,
        image_urls,
        url: r.at(c.link).map(str::to_owned),
        gtin: r.at(c.gtin).map(str::to_owned),
        rating,
        rating_count: None,
    })
}

/// "Home & Garden > Kitchen > Flasks" → segments.
pub fn split_taxonomy(s: &str) -> Vec<String> {
    s.split('>')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}
