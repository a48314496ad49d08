//! Catalog SQL. Batches go to Postgres as one JSON document each (`jsonb_to_recordset`), so an
//! upsert of 500 products is one round trip and one statement.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};

use super::model::{ImportCounts, NewProduct, Product, Reject};

const PRODUCT_COLUMNS: &str = "id, title, title_zh, description, brand, category, price, currency, list_price, \
     availability, stock, attributes, image_urls, url, gtin, rating, rating_count";

pub async fn start_import_run(
    pool: &PgPool,
    format: &str,
    source: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("insert into import_runs (format, source) values ($1, $2) returning id")
        .bind(format)
        .bind(source)
        .fetch_one(pool)
        .await
}

pub async fn finish_import_run(
    pool: &PgPool,
    run_id: i64,
    c: &ImportCounts,
    rejects: &[Reject],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update import_runs set finished_at = now(), rows_read = $2, inserted = $3, updated = $4, \
         unchanged = $5, rejected = $6, rejects = $7 where id = $1",
    )
    .bind(run_id)
    .bind(c.rows as i64)
    .bind(c.inserted as i64)
    .bind(c.updated as i64)
    .bind(c.unchanged as i64)
    .bind(c.rejected as i64)
    .bind(sqlx::types::Json(rejects))
    .execute(pool)
    .await?;
    Ok(())
}

/// Upserts a batch with distinct ids; returns `(inserted, updated)`. Rows identical to what is
/// stored are left alone (neither count), so a re-import reports them as unchanged.
pub async fn upsert_products(
    pool: &PgPool,
    batch: &[NewProduct],
    source: &str,
) -> Result<(u64, u64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    upsert_categories(&mut tx, batch).await?;
    let rows: Vec<Value> = batch.iter().map(product_json).collect();
    let (inserted, updated): (i64, i64) = sqlx::query_as(
        "with input as (
            select * from jsonb_to_recordset($1) as x(
                id text, title text, title_zh text, description text, brand text, category text,
                price numeric, currency text, list_price numeric, availability text, stock int,
                attributes jsonb, image_urls jsonb, url text, gtin text, rating real, rating_count int)
         ), up as (
            insert into products as p (id, title, title_zh, description, brand, category, price, currency,
                list_price, availability, stock, attributes, image_urls, url, gtin, rating, rating_count, source)
            select id, title, title_zh, description, brand, category, price, currency, list_price,
                availability, stock, attributes,
                array(select jsonb_array_elements_text(input.image_urls)), url, gtin, rating, rating_count, $2
            from input
            on conflict (id) do update set
                title = excluded.title, title_zh = excluded.title_zh, description = excluded.description,
                brand = excluded.brand, category = excluded.category, price = excluded.price,
                currency = excluded.currency, list_price = excluded.list_price,
                availability = excluded.availability, stock = excluded.stock,
                attributes = excluded.attributes, image_urls = excluded.image_urls, url = excluded.url,
                gtin = excluded.gtin, rating = excluded.rating, rating_count = excluded.rating_count,
                source = excluded.source, updated_at = now()
            where (p.title, p.title_zh, p.description, p.brand, p.category, p.price, p.currency,
                   p.list_price, p.availability, p.stock, p.attributes, p.image_urls, p.url, p.gtin,
                   p.rating, p.rating_count)
               is distinct from
                  (excluded.title, excluded.title_zh, excluded.description, excluded.brand,
                   excluded.category, excluded.price, excluded.currency, excluded.list_price,
                   excluded.availability, excluded.stock, excluded.attributes, excluded.image_urls,
                   excluded.url, excluded.gtin, excluded.rating, excluded.rating_count)
            returning (xmax = 0) as inserted
         )
         select count(*) filter (where inserted), count(*) filter (where not inserted) from up",
    )
    .bind(Value::Array(rows))
    .bind(source)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((inserted as u64, updated as u64))
}

fn product_json(p: &NewProduct) -> Value {
    json!({
        "id": p.id, "title": p.title, "title_zh": p.title_zh, "description": p.description,
        "brand": p.brand, "category": p.category_path(),
        // Decimal as a string keeps the exact value through JSON.
        "price": p.price.to_string(), "currency": p.currency,
        "list_price": p.list_price.map(|d| d.to_string()),
        "availability": p.availability.as_str(), "stock": p.stock, "attributes": p.attributes,
        "image_urls": p.image_urls, "url": p.url, "gtin": p.gtin, "rating": p.rating,
        "rating_count": p.rating_count,
    })
}

/// Inserts every prefix of every category path in the batch, parents first.
async fn upsert_categories(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[NewProduct],
) -> Result<(), sqlx::Error> {
    let mut prefixes: BTreeSet<(usize, String)> = BTreeSet::new();
    for p in batch {
        for depth in 1..=p.category.len() {
            prefixes.insert((depth, p.category[..depth].join(" > ")));
        }
    }
    if prefixes.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = prefixes
        .iter()
        .map(|(depth, path)| {
            let (parent, name) = match path.rsplit_once(" > ") {
                Some((parent, name)) => (Some(parent), name),
                None => (None, path.as_str()),
            };
            json!({"path": path, "name": name, "parent_path": parent, "depth": depth})
        })
        .collect();
    sqlx::query(
        "insert into categories (path, name, parent_path, depth)
         select path, name, parent_path, depth
         from jsonb_to_recordset($1) as x(path text, name text, parent_path text, depth int)
         order by depth
         on conflict (path) do nothing",
    )
    .bind(Value::Array(rows))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get_product(pool: &PgPool, id: &str) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {PRODUCT_COLUMNS} from products where id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Products with the given ids, in no particular order.
pub async fn get_products(pool: &PgPool, ids: &[String]) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {PRODUCT_COLUMNS} from products where id = any($1)"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// A page of products, optionally under a category path prefix, ordered by category then title.
pub async fn list_products(
    pool: &PgPool,
    category: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {PRODUCT_COLUMNS} from products
         where $1::text is null or category = $1 or category like $1 || ' > %'
         order by category nulls last, title limit $2 offset $3"
    )))
    .bind(category)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// Every product, streamed in id order, for building indexes.
pub fn all_products(pool: &PgPool) -> futures::stream::BoxStream<'_, Result<Product, sqlx::Error>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {PRODUCT_COLUMNS} from products order by id"
    )))
    .fetch(pool)
}

/// Top-level categories with their product counts.
pub async fn top_categories(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select split_part(category, ' > ', 1) as root, count(*) from products
         where category is not null group by root order by count(*) desc, root",
    )
    .fetch_all(pool)
    .await
}

/// `(product count, last change)`: changes when any product is written, for index refresh.
pub async fn fingerprint(pool: &PgPool) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    sqlx::query_as("select count(*), max(updated_at) from products")
        .fetch_one(pool)
        .await
}
