//! Logged feedback (clicks, add-to-cart, thumbs) as ranking signals and as training labels, with
//! position-bias correction.
//!
//! A shopper sees the first results more, so a click at rank 1 says less than a click at rank 8.
//! Each event is weighted by the inverse of the probability that its position was examined,
//! `p(k) = k^-η` with η = 1 (the usual click-model prior), clipped at [`MAX_IPS`] so that one click
//! far down cannot dominate.

use std::collections::HashMap;

use sqlx::PgPool;

use super::features::Affinity;

/// Examination-probability exponent.
const ETA: f32 = 1.0;
/// Largest inverse-propensity weight.
const MAX_IPS: f32 = 10.0;

/// The inverse-propensity weight of an event at 1-based `position` (unknown: 1).
pub fn ips(position: Option<i32>) -> f32 {
    let k = position.unwrap_or(1).max(1) as f32;
    k.powf(ETA).min(MAX_IPS)
}

/// What one event says about the product: add-to-cart most, a thumbs-down against.
pub fn utility(kind: &str) -> f32 {
    match kind {
        "add_to_cart" => 3.0,
        "up" => 2.0,
        "click" => 1.0,
        "down" => -2.0,
        _ => 0.0,
    }
}

/// Position-debiased engagement per product, `ln(1 + max(0, Σ utility × ips))`.
pub async fn popularity(pool: &PgPool) -> Result<HashMap<String, f32>, sqlx::Error> {
    // One row per (product, kind, position): the log can be long, its distinct keys are few.
    let rows: Vec<(String, String, Option<i32>, i64)> = sqlx::query_as(
        "select product_id, kind, position, count(*) from feedback_events
         where product_id is not null group by 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    let mut sums: HashMap<String, f32> = HashMap::new();
    for (id, kind, pos, n) in rows {
        *sums.entry(id).or_default() += utility(&kind) * ips(pos) * n as f32;
    }
    Ok(sums
        .into_iter()
        .map(|(id, u)| (id, u.max(0.0).ln_1p()))
        .collect())
}

/// Graded labels from feedback: per logged query, products with debiased utility ≥ 3 get 2,
/// ≥ 1 get 1. Queries are compared case-folded.
pub async fn labels(pool: &PgPool) -> Result<Vec<(String, HashMap<String, u8>)>, sqlx::Error> {
    let rows: Vec<(String, String, String, Option<i32>, i64)> = sqlx::query_as(
        "select lower(btrim(query)), product_id, kind, position, count(*) from feedback_events
         where query is not null and product_id is not null group by 1, 2, 3, 4",
    )
    .fetch_all(pool)
    .await?;
    let mut by_query: HashMap<String, HashMap<String, f32>> = HashMap::new();
    for (q, id, kind, pos, n) in rows {
        *by_query.entry(q).or_default().entry(id).or_default() +=
            utility(&kind) * ips(pos) * n as f32;
    }
    let mut out: Vec<(String, HashMap<String, u8>)> = by_query
        .into_iter()
        .map(|(q, products)| {
            let graded = products
                .into_iter()
                .filter_map(|(id, u)| match u {
                    u if u >= 3.0 => Some((id, 2)),
                    u if u >= 1.0 => Some((id, 1)),
                    _ => None,
                })
                .collect::<HashMap<_, _>>();
            (q, graded)
        })
        .filter(|(_, g)| !g.is_empty())
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The categories and brands of products a conversation's shopper clicked, carted or liked.
pub async fn affinity(pool: &PgPool, session: uuid::Uuid) -> Result<Affinity, sqlx::Error> {
    let rows: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "select distinct p.category, p.brand from feedback_events f
         join products p on p.id = f.product_id
         where f.conversation_id = $1 and f.kind in ('click', 'add_to_cart', 'up')",
    )
    .bind(session)
    .fetch_all(pool)
    .await?;
    let mut a = Affinity::default();
    for (category, brand) in rows {
        if let Some(c) = category {
            a.categories.insert(c);
        }
        if let Some(b) = brand {
            a.brands.insert(crate::graph::ids::brand(&b));
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_positions_weigh_more_up_to_a_cap() {
        assert_eq!(ips(None), 1.0);
        assert_eq!(ips(Some(0)), 1.0);
        assert!(ips(Some(5)) > ips(Some(2)));
        assert_eq!(ips(Some(500)), MAX_IPS);
    }
}
