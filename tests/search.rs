//! The hybrid search pipeline on the Flipkart sample with a real Postgres: budgets are hard
//! filters, Chinese queries reach the English catalog through the graph, results explain
//! themselves, and the BM25 baseline stays available.
#![allow(clippy::unwrap_used)]

mod common;

use aisle::catalog::import::{Format, import_file};
use aisle::ranking::Ranker;
use aisle::state::AppState;
use sqlx::PgPool;

async fn flipkart(pool: &PgPool) -> AppState {
    let path = common::shared_data("flipkart_sample/products.csv");
    import_file(pool, Format::Flipkart, &path, &common::options(), |_| {})
        .await
        .unwrap();
    common::state(pool.clone()).await
}

#[sqlx::test]
async fn over_budget_products_are_never_returned(pool: PgPool) {
    let state = flipkart(&pool).await;
    let g = state.graph.current();
    let roots: Vec<String> =
        sqlx::query_scalar("select name from categories where depth <= 2 order by path")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut checked = 0;
    for root in &roots {
        for (template, budget) in [
            ("{} under 300", 300.0),
            ("{} below rs 800", 800.0),
            ("{} 2000卢比以内", 2000.0),
            ("{} between 500 and 1500", 1500.0),
        ] {
            let q = template.replace("{}", root);
            let results = state
                .search
                .search_with(Ranker::Hybrid, &g, &q, 50)
                .unwrap();
            for r in &results {
                assert!(r.price <= budget, "{q:?} returned {} at {}", r.id, r.price);
                if template.contains("between") {
                    assert!(r.price >= 500.0, "{q:?} returned {} at {}", r.id, r.price);
                }
            }
            checked += results.len();
        }
    }
    assert!(checked > 500, "only {checked} results checked");
}

#[sqlx::test]
async fn chinese_queries_reach_the_english_catalog(pool: PgPool) {
    let state = flipkart(&pool).await;
    let g = state.graph.current();
    assert!(
        state
            .search
            .search_with(Ranker::Bm25, &g, "男士手表", 10)
            .unwrap()
            .is_empty(),
        "BM25 alone cannot"
    );
    for (q, category) in [
        ("男士手表", "watches"),
        ("女士平底鞋", "footwear"),
        ("咖啡杯", "mug"),
        ("戒指", "rings"),
    ] {
        let results = state.search.search_with(Ranker::Hybrid, &g, q, 10).unwrap();
        assert!(!results.is_empty(), "{q}");
        let on_topic = results
            .iter()
            .filter(|r| r.category.as_deref().unwrap_or_default().contains(category))
            .count();
        assert!(
            on_topic * 10 >= results.len() * 8,
            "{q}: {on_topic} of {} in {category}: {results:?}",
            results.len()
        );
        assert!(
            results[0].why.iter().any(|w| w.starts_with("graph path: ")),
            "{:?}",
            results[0].why
        );
    }
}

#[sqlx::test]
async fn an_exact_title_still_comes_first(pool: PgPool) {
    let state = flipkart(&pool).await;
    let g = state.graph.current();
    let titles: Vec<(String, String)> =
        sqlx::query_as("select id, title from products order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut first = 0;
    for (id, title) in titles.iter().step_by(10) {
        let results = state
            .search
            .search_with(Ranker::Hybrid, &g, title, 5)
            .unwrap();
        let top = results[0].score;
        if results.iter().any(|r| r.id == *id && r.score == top) {
            first += 1;
        }
    }
    let n = titles.iter().step_by(10).count();
    assert!(
        first * 100 >= n * 95,
        "{first} of {n} exact titles ranked first"
    );
}
