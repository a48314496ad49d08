//! The demo store in `knowledge/demo/`: products (through the `jsonl` importer), customers and
//! orders with their status history. Loading is idempotent: re-running it leaves the same rows.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use sqlx::PgPool;

use super::error::CatalogError;
use super::import::{Format, ImportOptions, ImportReport, import_file};

#[derive(Deserialize)]
struct Customer {
    id: String,
    email: String,
    name: String,
    phone: Option<String>,
    city: Option<String>,
}

#[derive(Deserialize)]
struct Order {
    id: String,
    customer_id: String,
    status: String,
    placed_at: DateTime<Utc>,
    currency: String,
    lines: Vec<OrderLine>,
    #[serde(default)]
    shipping: serde_json::Value,
    carrier: Option<String>,
    tracking_number: Option<String>,
    expected_delivery: Option<NaiveDate>,
    #[serde(default)]
    history: Vec<StatusChange>,
}

#[derive(Deserialize)]
struct OrderLine {
    product_id: String,
    quantity: i32,
    unit_price: Decimal,
}

#[derive(Deserialize)]
struct StatusChange {
    status: String,
    at: DateTime<Utc>,
    note: Option<String>,
}

/// What seeding loaded.
#[derive(Debug, serde::Serialize)]
pub struct DemoReport {
    pub products: ImportReport,
    pub customers: usize,
    pub orders: usize,
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, CatalogError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CatalogError::Feed(format!("cannot read {}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| CatalogError::Feed(format!("{} line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Loads products, customers and orders from `dir`.
pub async fn seed(
    pool: &PgPool,
    dir: &Path,
    options: &ImportOptions,
) -> Result<DemoReport, CatalogError> {
    let products = import_file(
        pool,
        Format::Jsonl,
        &dir.join("products.jsonl"),
        options,
        |r| {
            tracing::warn!(row = r.row, reason = %r.reason, "demo product rejected");
        },
    )
    .await?;
    let customers: Vec<Customer> = read_lines(&dir.join("customers.jsonl"))?;
    let orders: Vec<Order> = read_lines(&dir.join("orders.jsonl"))?;
    let mut tx = pool.begin().await?;
    for c in &customers {
        sqlx::query(
            "insert into customers (id, email, name, phone, city) values ($1, $2, $3, $4, $5)
             on conflict (id) do update set email = excluded.email, name = excluded.name,
                 phone = excluded.phone, city = excluded.city",
        )
        .bind(&c.id)
        .bind(&c.email)
        .bind(&c.name)
        .bind(&c.phone)
        .bind(&c.city)
        .execute(&mut *tx)
        .await?;
    }
    for o in &orders {
        let total: Decimal = o
            .lines
            .iter()
            .map(|l| l.unit_price * Decimal::from(l.quantity))
            .sum();
        sqlx::query(
            "insert into orders (id, customer_id, status, placed_at, currency, total, shipping, carrier,
                 tracking_number, expected_delivery)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             on conflict (id) do update set customer_id = excluded.customer_id, status = excluded.status,
                 placed_at = excluded.placed_at, currency = excluded.currency, total = excluded.total,
                 shipping = excluded.shipping, carrier = excluded.carrier,
                 tracking_number = excluded.tracking_number, expected_delivery = excluded.expected_delivery,
                 updated_at = now()",
        )
        .bind(&o.id)
        .bind(&o.customer_id)
        .bind(&o.status)
        .bind(o.placed_at)
        .bind(&o.currency)
        .bind(total)
        .bind(&o.shipping)
        .bind(&o.carrier)
        .bind(&o.tracking_number)
        .bind(o.expected_delivery)
        .execute(&mut *tx)
        .await?;
        sqlx::query("delete from order_lines where order_id = $1")
            .bind(&o.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("delete from order_status_history where order_id = $1")
            .bind(&o.id)
            .execute(&mut *tx)
            .await?;
        for (i, l) in o.lines.iter().enumerate() {
            sqlx::query(
                "insert into order_lines (order_id, line_no, product_id, title, quantity, unit_price)
                 select $1, $2, p.id, p.title, $4, $5 from products p where p.id = $3",
            )
            .bind(&o.id)
            .bind(i as i32 + 1)
            .bind(&l.product_id)
            .bind(l.quantity)
            .bind(l.unit_price)
            .execute(&mut *tx)
            .await?;
        }
        for h in &o.history {
            sqlx::query("insert into order_status_history (order_id, status, note, at) values ($1, $2, $3, $4)")
                .bind(&o.id)
                .bind(&h.status)
                .bind(&h.note)
                .bind(h.at)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(DemoReport {
        products,
        customers: customers.len(),
        orders: orders.len(),
    })
}
