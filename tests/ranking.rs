//! The learned ranking pipeline with the real embedding model and a real Postgres: embeddings
//! behave like the model should, product vectors are stored and loaded, rankings (with their
//! explanations) are stable on the demo store, budgets and stock are never violated, diversity and
//! merchandising rules apply, and a newly written ranker version is picked up without a restart.
#![allow(clippy::unwrap_used)]

mod common;

use aisle::embed::cosine;
use aisle::ranking::learned::{self, ModelInfo, RankerModel};
use aisle::ranking::train::{ListExample, TrainOptions, train};
use aisle::ranking::{Ranker, RankingSettings, SearchService, features::FEATURES};
use proptest::prelude::*;
use sqlx::PgPool;

#[test]
fn paraphrases_are_closer_than_unrelated_texts() {
    let e = common::embedder();
    let v = e
        .embed(&[
            "red ballet flats for women",
            "women's red ballerina shoes",
            "stainless steel vacuum flask",
            "a thermos that keeps tea hot",
            "wireless bluetooth earphones",
        ])
        .unwrap();
    assert_eq!(e.dim(), 384);
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not unit length: {norm}");
    }
    let (flats, flats2, flask, flask2, phones) = (&v[0], &v[1], &v[2], &v[3], &v[4]);
    // Each paraphrase pair is closer than either side is to anything unrelated.
    for (a, b, others) in [
        (flats, flats2, [flask, flask2, phones]),
        (flask, flask2, [flats, flats2, phones]),
    ] {
        let pair = cosine(a, b);
        for o in others {
            assert!(pair > cosine(a, o) + 0.05 && pair > cosine(b, o) + 0.05);
        }
    }
    assert!(cosine(flats, flats2) > 0.6, "{}", cosine(flats, flats2));
    // The same numbers as an independent reference (a numpy implementation of the model run on
    // the same weights): the first components of one vector and two cosines.
    let reference = [0.03299f32, -0.0841, -0.06933, 0.07905, -0.07758];
    for (got, want) in flats.iter().zip(reference) {
        assert!((got - want).abs() < 1e-3, "{:?}", &flats[..5]);
    }
    assert!((cosine(flats, flats2) - 0.7211).abs() < 1e-3);
    assert!((cosine(flask, flask2) - 0.2349).abs() < 1e-3);
    // Batched and single embeddings agree (padding does not leak into the mean).
    let single = e.embed(&["women's red ballerina shoes"]).unwrap();
    let batched = e
        .embed_uncached(&[
            "women's red ballerina shoes",
            "a much longer text about something else entirely, to force padding",
        ])
        .unwrap();
    assert!(cosine(&single[0], &batched[0]) > 0.9999);
}

#[sqlx::test]
async fn product_vectors_are_stored_and_only_recomputed_when_the_text_changes(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let stored: i64 = sqlx::query_scalar("select count(*) from product_embeddings")
        .fetch_one(&pool)
        .await
        .unwrap();
    let products: i64 = sqlx::query_scalar("select count(*) from products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, products);
    assert_eq!(state.search.vectors() as i64, products);
    let dim: i32 =
        sqlx::query_scalar("select max(array_length(vector, 1)) from product_embeddings")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(dim, 384);

    let all: Vec<aisle::catalog::Product> =
        futures::TryStreamExt::try_collect(aisle::catalog::repo::all_products(&pool))
            .await
            .unwrap();
    let e = common::embedder();
    assert_eq!(
        aisle::embed::store::sync(&pool, &e, &all, false)
            .await
            .unwrap(),
        0
    );
    sqlx::query("update products set title = 'Aurelle Women''s Navy Ballet Flats', updated_at = now() where id = 'AD-FW-0001'")
        .execute(&pool)
        .await
        .unwrap();
    let all: Vec<aisle::catalog::Product> =
        futures::TryStreamExt::try_collect(aisle::catalog::repo::all_products(&pool))
            .await
            .unwrap();
    assert_eq!(
        aisle::embed::store::sync(&pool, &e, &all, false)
            .await
            .unwrap(),
        1
    );
}

/// The first results for a few shopper queries, with their explanations, on the demo store.
#[sqlx::test]
async fn demo_store_rankings_with_explanations(pool: PgPool) {
    let state = common::demo_state(pool).await;
    let g = state.graph.current();
    let mut out = String::new();
    for q in [
        "red flats for my wife under 800 rupees",
        "保温杯",
        "something to keep tea hot",
        "dog shampoo",
        "men's watch in stock",
    ] {
        out.push_str(&format!("## {q}\n"));
        for r in state.search.search_with(Ranker::Learned, &g, q, 3).unwrap() {
            out.push_str(&format!("- {} | {} | ₹{}\n", r.id, r.name, r.price));
            for w in &r.why {
                out.push_str(&format!("    {w}\n"));
            }
        }
    }
    insta::assert_snapshot!(out);
}

/// Queries of product words, budgets and "in stock": no result ever breaks them.
#[sqlx::test]
async fn budgets_and_stock_are_never_violated(pool: PgPool) {
    let state = common::demo_state(pool).await;
    let g = state.graph.current();
    let words = prop::sample::select(vec![
        "flats",
        "kurta",
        "watch",
        "bottle",
        "保温杯",
        "shoes",
        "bag",
        "dress",
        "toy",
        "phone case",
        "earrings",
        "手表",
        "连衣裙",
        "shampoo",
        "gift",
    ]);
    let budget = prop_oneof![
        Just(None),
        (50u32..5000).prop_map(|n| Some(format!("under {n}"))),
        (50u32..5000).prop_map(|n| Some(format!("below ₹{n}"))),
        (50u32..5000).prop_map(|n| Some(format!("{n}卢比以内"))),
        (50u32..2000, 100u32..3000).prop_map(|(a, b)| Some(format!("between {a} and {}", a + b))),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 120,
        ..ProptestConfig::default()
    });
    runner
        .run(&(words, budget, any::<bool>()), |(word, budget, stock)| {
            let mut q = word.to_owned();
            if let Some(b) = &budget {
                q = format!("{q} {b}");
            }
            if stock {
                q.push_str(" in stock");
            }
            let spec = aisle::ranking::query::QuerySpec::parse(&q);
            for ranker in [Ranker::Learned, Ranker::Hybrid] {
                for r in state.search.search_with(ranker, &g, &q, 50).unwrap() {
                    prop_assert!(spec.admits(r.price), "{q:?}: {} at {}", r.id, r.price);
                    prop_assert!(!stock || r.in_stock, "{q:?}: {} is out of stock", r.id);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[sqlx::test]
async fn brand_cap_and_merchandising_rules_apply(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let g = state.graph.current();
    let s = common::settings();
    let plain = state
        .search
        .search_with(Ranker::Learned, &g, "watch", 20)
        .unwrap();
    assert!(plain.len() >= 10);
    // No brand fills more than max_per_brand of the first page.
    let mut counts = std::collections::HashMap::new();
    for r in plain.iter().take(10) {
        if let Some(b) = &r.brand {
            *counts.entry(b.clone()).or_insert(0) += 1;
        }
    }
    assert!(
        counts.values().all(|&n| n <= s.ranking.rules.max_per_brand),
        "{counts:?}"
    );

    // A pin puts its product first; a negative boost pushes a product down.
    let last = plain.last().unwrap().id.clone();
    let first = plain[0].id.clone();
    let mut rules = s.ranking.rules.clone();
    rules.pins.push(aisle::ranking::rules::Pin {
        query: "Watch".into(),
        product: last.clone(),
    });
    rules.boosts.push(aisle::ranking::rules::Boost {
        product: Some(first.clone()),
        brand: None,
        category: None,
        by: -100.0,
    });
    let ranking = RankingSettings {
        model_dir: "/nonexistent/aisle-ranker".into(),
        rules,
        ..s.ranking.clone()
    };
    let service =
        SearchService::new(s.search.graph_weight, &ranking, Some(common::embedder())).unwrap();
    service.refresh(&pool).await.unwrap();
    let ruled = service
        .search_with(Ranker::Learned, &g, "watch", 20)
        .unwrap();
    assert_eq!(ruled[0].id, last);
    assert!(ruled[0].why.iter().any(|w| w == "pinned"));
    let pos = ruled.iter().position(|r| r.id == first);
    assert!(pos.is_none_or(|p| p > 5), "{pos:?}");
}

fn tiny_model(dir: &std::path::Path, version: u64, signal: usize) {
    // One list where relevance follows one feature: enough to produce a valid model file.
    let mut features = Vec::new();
    let mut grades = Vec::new();
    for i in 0..20 {
        let mut row = [0f32; FEATURES.len()];
        row[signal] = i as f32 / 20.0;
        features.push(row);
        grades.push(u8::from(i > 15));
    }
    let lists = vec![ListExample {
        id: "q".into(),
        all_grades: grades.clone(),
        features,
        grades,
    }];
    let opts = TrainOptions {
        max_epochs: 30,
        restarts: 1,
        ..Default::default()
    };
    let (varmap, mlp, report) = train(&lists, &opts, |_, _, _, _| {}).unwrap();
    let info = ModelInfo {
        version,
        features: FEATURES.iter().map(|s| (*s).to_owned()).collect(),
        trained_at: "2026-01-01T00:00:00Z".into(),
        training: serde_json::to_value(report).unwrap(),
    };
    learned::save(dir, &varmap, &mlp, &info).unwrap();
}

#[sqlx::test]
async fn a_new_ranker_version_is_hot_loaded(pool: PgPool) {
    common::demo_state(pool.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let service = common::search_service(dir.path());
    service.refresh(&pool).await.unwrap();
    let builtin = service.model().unwrap();
    assert_eq!(
        (builtin.info.version, builtin.path.to_str()),
        (0, Some("(built in)"))
    );

    tiny_model(dir.path(), 1, 0);
    assert_eq!(service.reload_model().unwrap(), Some(1));
    assert_eq!(
        service.model().unwrap().path,
        dir.path().join("ranker-v1.safetensors")
    );
    let graph = aisle::graph::GraphService::new();
    graph.refresh(&pool).await.unwrap();
    let g = graph.current();
    let first = service
        .search_with(Ranker::Learned, &g, "flats", 5)
        .unwrap();
    assert!(first[0].why[0].starts_with("learned"), "{:?}", first[0].why);

    // A newer file replaces it; a corrupt newer one is skipped and the last good one kept.
    tiny_model(dir.path(), 2, 2);
    assert_eq!(service.reload_model().unwrap(), Some(2));
    std::fs::write(dir.path().join("ranker-v3.safetensors"), b"not a model").unwrap();
    assert_eq!(service.reload_model().unwrap(), Some(2));
    assert!(RankerModel::load(&dir.path().join("ranker-v3.safetensors")).is_err());
}

/// Clicks and carts logged through the API become position-debiased popularity (a feature the
/// next refresh sees), per-session affinity, and graded training labels.
#[sqlx::test]
async fn feedback_becomes_signals_affinity_and_labels(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let router = aisle::web::app(state.clone());
    let session = common::new_session(&pool).await;
    // A click at rank 6 says more than a click at rank 1; a cart more than a click.
    for (kind, product, position) in [
        ("click", "AD-KD-0001", 1),
        ("click", "AD-KD-0002", 6),
        ("add_to_cart", "AD-KD-0003", 1),
    ] {
        let body = serde_json::json!({
            "session_id": session, "kind": kind, "product_id": product,
            "position": position, "query": "  Vacuum Flask ",
        });
        let status = common::post_json(&router, "/api/feedback", &body).await;
        assert_eq!(status, axum::http::StatusCode::CREATED);
    }
    let bad = serde_json::json!({"session_id": session, "kind": "click", "product_id": "AD-KD-0001", "position": 0});
    let status = common::post_json(&router, "/api/feedback", &bad).await;
    assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);

    let labels = aisle::ranking::feedback::labels(&pool).await.unwrap();
    assert_eq!(labels.len(), 1);
    let (query, grades) = &labels[0];
    assert_eq!(query, "vacuum flask");
    assert_eq!(grades.get("AD-KD-0001"), Some(&1));
    assert_eq!(grades.get("AD-KD-0002"), Some(&2));
    assert_eq!(grades.get("AD-KD-0003"), Some(&2));

    state.search.refresh(&pool).await.unwrap();
    let g = state.graph.current();
    let results = state
        .search
        .search_with(Ranker::Learned, &g, "vacuum flask", 10)
        .unwrap();
    let pop = |id: &str| {
        results
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.breakdown["popularity"])
            .unwrap()
    };
    assert!(pop("AD-KD-0002") > pop("AD-KD-0001") && pop("AD-KD-0001") > 0.0);

    let affinity = aisle::ranking::feedback::affinity(&pool, session)
        .await
        .unwrap();
    assert!(affinity.brands.contains("brand:thermanest"), "{affinity:?}");
    let personal = state
        .search
        .search_for(Ranker::Learned, &g, "tea", 20, &affinity)
        .unwrap();
    assert!(personal.iter().any(|r| r.breakdown["affinity"] == 1.0));
}

/// A search never waits on the embedding model longer than `ranking.dense_wait_ms`. With no wait
/// at all, first-seen queries are answered from BM25 and the graph alone (if searches waited for
/// the model, every one of them would carry dense features), and the vector computed meanwhile is
/// cached for the next search of the same query.
#[sqlx::test]
async fn a_slow_model_never_holds_up_search(pool: PgPool) {
    common::demo_state(pool.clone()).await;
    let s = common::settings();
    let ranking = RankingSettings {
        model_dir: "/nonexistent/aisle-ranker".into(),
        dense_wait_ms: 0,
        ..s.ranking.clone()
    };
    let service =
        SearchService::new(s.search.graph_weight, &ranking, Some(common::embedder())).unwrap();
    service.refresh(&pool).await.unwrap();
    let graph = aisle::graph::GraphService::new();
    graph.refresh(&pool).await.unwrap();
    let g = graph.current();
    // Queries no other test embeds, so the shared embedder has not cached them.
    let queries = [
        "insulated steel bottle for a long trek",
        "quiet table fan for a study room",
        "sturdy school bag for a ten year old",
        "gift hamper for a housewarming",
        "waterproof phone pouch for the beach",
    ];
    let mut without_dense = 0;
    for q in queries {
        let results = service.search_with(Ranker::Learned, &g, q, 10).unwrap();
        assert!(!results.is_empty(), "{q}");
        if results.iter().all(|r| r.breakdown["dense"] == 0.0) {
            without_dense += 1;
        }
    }
    assert!(without_dense > 0, "every search waited for the model");
    // The workers finish anyway and cache the vectors.
    let started = std::time::Instant::now();
    while !queries.iter().all(|q| common::embedder().is_cached(q)) {
        assert!(
            started.elapsed().as_secs() < 60,
            "the vectors never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
