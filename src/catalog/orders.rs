//! Orders as customer service reads them. Every lookup is scoped to a customer, or to an order id
//! together with the email on the order's account: nothing here answers "does this order exist"
//! for someone who cannot show they own it.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgPool};

/// One order with its lines and status history.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub placed_at: DateTime<Utc>,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::float")]
    pub total: Decimal,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub expected_delivery: Option<NaiveDate>,
    pub lines: Vec<OrderLine>,
    /// Oldest first.
    pub history: Vec<StatusChange>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OrderLine {
    pub product_id: Option<String>,
    pub title: String,
    pub quantity: i32,
    #[serde(with = "rust_decimal::serde::float")]
    pub unit_price: Decimal,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StatusChange {
    pub status: String,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    customer_id: String,
    status: String,
    placed_at: DateTime<Utc>,
    currency: String,
    total: Decimal,
    carrier: Option<String>,
    tracking_number: Option<String>,
    expected_delivery: Option<NaiveDate>,
}

const ORDER_COLUMNS: &str = "o.id, o.customer_id, o.status, o.placed_at, o.currency::text as currency, o.total, \
     o.carrier, o.tracking_number, o.expected_delivery";

/// The order of `row`, with its lines and history.
async fn completed(pool: &PgPool, row: Option<OrderRow>) -> Result<Option<OrderView>, sqlx::Error> {
    match row {
        Some(r) => Ok(Some(complete(pool, r).await?)),
        None => Ok(None),
    }
}

async fn complete(pool: &PgPool, row: OrderRow) -> Result<OrderView, sqlx::Error> {
    let lines = sqlx::query_as::<_, OrderLine>(
        "select product_id, title, quantity, unit_price from order_lines
         where order_id = $1 order by line_no",
    )
    .bind(&row.id)
    .fetch_all(pool)
    .await?;
    let history = sqlx::query_as::<_, StatusChange>(
        "select status, note, at from order_status_history where order_id = $1 order by at, id",
    )
    .bind(&row.id)
    .fetch_all(pool)
    .await?;
    Ok(OrderView {
        id: row.id,
        customer_id: row.customer_id,
        status: row.status,
        placed_at: row.placed_at,
        currency: row.currency,
        total: row.total,
        carrier: row.carrier,
        tracking_number: row.tracking_number,
        expected_delivery: row.expected_delivery,
        lines,
        history,
    })
}

/// The order `order_id` when it belongs to `customer_id`; `None` otherwise (whether or not it
/// exists).
pub async fn order_of_customer(
    pool: &PgPool,
    customer_id: &str,
    order_id: &str,
) -> Result<Option<OrderView>, sqlx::Error> {
    let row = sqlx::query_as::<_, OrderRow>(AssertSqlSafe(format!(
        "select {ORDER_COLUMNS} from orders o where upper(o.id) = upper($1) and o.customer_id = $2"
    )))
    .bind(order_id.trim())
    .bind(customer_id)
    .fetch_optional(pool)
    .await?;
    completed(pool, row).await
}

/// The order `order_id` when the email on its customer's account is `email` (case-insensitive);
/// `None` otherwise.
pub async fn order_by_email(
    pool: &PgPool,
    order_id: &str,
    email: &str,
) -> Result<Option<OrderView>, sqlx::Error> {
    let row = sqlx::query_as::<_, OrderRow>(AssertSqlSafe(format!(
        "select {ORDER_COLUMNS} from orders o join customers c on c.id = o.customer_id
         where upper(o.id) = upper($1) and lower(c.email) = lower($2)"
    )))
    .bind(order_id.trim())
    .bind(email.trim())
    .fetch_optional(pool)
    .await?;
    completed(pool, row).await
}

/// A customer's most recent orders, newest first.
pub async fn recent_orders(
    pool: &PgPool,
    customer_id: &str,
    limit: i64,
) -> Result<Vec<OrderView>, sqlx::Error> {
    let rows = sqlx::query_as::<_, OrderRow>(AssertSqlSafe(format!(
        "select {ORDER_COLUMNS} from orders o where o.customer_id = $1
         order by o.placed_at desc limit $2"
    )))
    .bind(customer_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(complete(pool, r).await?);
    }
    Ok(out)
}

/// Whether a customer with this id exists.
pub async fn customer_exists(pool: &PgPool, customer_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists(select 1 from customers where id = $1)")
        .bind(customer_id)
        .fetch_one(pool)
        .await
}

/// A customer's display name.
pub async fn customer_name(
    pool: &PgPool,
    customer_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("select name from customers where id = $1")
        .bind(customer_id)
        .fetch_optional(pool)
        .await
}

/// The order `order_id`, for a conversation that has already proved it owns it (an order id and
/// the account's email matched earlier). Callers must have checked that proof.
pub async fn order_by_verified_id(
    pool: &PgPool,
    order_id: &str,
) -> Result<Option<OrderView>, sqlx::Error> {
    let row = sqlx::query_as::<_, OrderRow>(AssertSqlSafe(format!(
        "select {ORDER_COLUMNS} from orders o where upper(o.id) = upper($1)"
    )))
    .bind(order_id.trim())
    .fetch_optional(pool)
    .await?;
    completed(pool, row).await
}
