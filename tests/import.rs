//! Importers against a real Postgres: the Flipkart sample, Merchant feeds with bad rows, JSON Lines,
//! idempotent re-imports.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Cursor;

use aisle::catalog::import::{Format, import_file, import_reader};
use aisle::catalog::{ImportCounts, Reject, repo};
use rust_decimal::Decimal;
use sqlx::PgPool;

async fn import(
    pool: &PgPool,
    format: Format,
    path: &std::path::Path,
) -> (ImportCounts, Vec<Reject>) {
    let mut rejects = Vec::new();
    let report = import_file(pool, format, path, &common::options(), |r| {
        rejects.push(r.clone())
    })
    .await
    .unwrap();
    (report.counts, rejects)
}

async fn import_bytes(
    pool: &PgPool,
    format: Format,
    bytes: Vec<u8>,
) -> (ImportCounts, Vec<Reject>) {
    let mut rejects = Vec::new();
    let report = import_reader(
        pool,
        format,
        Cursor::new(bytes),
        "memory",
        &common::options(),
        |r| rejects.push(r.clone()),
        |_| {},
    )
    .await
    .unwrap();
    (report.counts, rejects)
}

#[sqlx::test]
async fn flipkart_sample_imports_every_row_with_parsed_fields(pool: PgPool) {
    let path = common::shared_data("flipkart_sample/products.csv");
    let (counts, rejects) = import(&pool, Format::Flipkart, &path).await;
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(
        counts,
        ImportCounts {
            rows: 1002,
            inserted: 1002,
            updated: 0,
            unchanged: 0,
            rejected: 0
        }
    );

    let p = repo::get_product(&pool, "f449ec65dcbc041b6ae5e6a32717d01b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.title, "aw bellies");
    assert_eq!(p.brand.as_deref(), Some("aw"));
    assert_eq!(
        p.category.as_deref(),
        Some("footwear > womens footwear > ballerinas")
    );
    assert_eq!(p.price, Decimal::new(499, 0));
    assert_eq!(p.list_price, Some(Decimal::new(999, 0)));
    assert_eq!(p.currency, "INR");
    assert_eq!(p.attributes.0.get("color").map(String::as_str), Some("Red"));
    assert_eq!(
        p.attributes.0.get("ideal for").map(String::as_str),
        Some("Women")
    );
    assert_eq!(
        p.attributes.0.get("outer material").map(String::as_str),
        Some("Patent Leather")
    );
    assert_eq!(p.rating, None, "0.0 in the export means unrated");
    assert!(p.image_urls[0].starts_with("http://img5a.flixcart.com/"));

    let dog = repo::get_product(&pool, "bc940ea42ee6bef5ac7cea3fb5cfbee7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dog.category.as_deref(),
        Some("pet supplies > grooming > skin coat care > shampoo")
    );
    assert_eq!(
        dog.attributes.0.get("pet type").map(String::as_str),
        Some("Dog")
    );

    let (categories, roots): (i64, i64) =
        sqlx::query_as("select count(*), count(*) filter (where depth = 1) from categories")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        categories > 100 && roots >= 10,
        "{categories} categories, {roots} roots"
    );
    let orphans: i64 = sqlx::query_scalar(
        "select count(*) from products p where category is not null and not exists (select 1 from categories c where c.path = p.category)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
}

#[sqlx::test]
async fn reimporting_the_same_feed_changes_nothing(pool: PgPool) {
    let path = common::shared_data("flipkart_sample/products.csv");
    import(&pool, Format::Flipkart, &path).await;
    let before: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("select id, updated_at from products order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let (counts, _) = import(&pool, Format::Flipkart, &path).await;
    assert_eq!(
        counts,
        ImportCounts {
            rows: 1002,
            inserted: 0,
            updated: 0,
            unchanged: 1002,
            rejected: 0
        }
    );
    let after: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("select id, updated_at from products order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(before, after);
}

#[sqlx::test]
async fn merchant_feed_bad_rows_are_reported_by_row_and_good_rows_land(pool: PgPool) {
    let (counts, rejects) = import(
        &pool,
        Format::Merchant,
        &common::fixture("merchant_mixed.tsv"),
    )
    .await;
    let by_row: Vec<(u64, &str)> = rejects.iter().map(|r| (r.row, r.reason.as_str())).collect();
    assert_eq!(
        by_row,
        [
            (3, "missing id"),
            (4, "price -5 is negative"),
            (5, "price \"call us\" is not a number"),
            (6, "unknown availability \"sometimes\""),
            (7, "expected 17 fields, found 19 (check the quoting)"),
            (9, "price has no currency (write it like \"12.99 USD\")"),
            (10, "title is 600 characters long (limit 500)"),
        ]
    );
    assert_eq!(rejects[1].id.as_deref(), Some("FL-4"));
    assert_eq!(rejects[1].line, 5, "row 4 is on line 5, after the header");
    // FL-1 appears twice: the later row wins and counts as an update.
    assert_eq!(
        counts,
        ImportCounts {
            rows: 11,
            inserted: 3,
            updated: 1,
            unchanged: 0,
            rejected: 7
        }
    );

    let fl1 = repo::get_product(&pool, "FL-1").await.unwrap().unwrap();
    assert_eq!(fl1.title, "Steel Vacuum Flask 750 ml (2026 edition)");
    assert_eq!(fl1.price, Decimal::new(94900, 2));
    let fl2 = repo::get_product(&pool, "FL-2").await.unwrap().unwrap();
    assert_eq!(fl2.availability, "out_of_stock");
    assert_eq!(fl2.category.as_deref(), Some("Kitchen > Bottles"));
    assert_eq!(
        fl2.attributes.0.get("age group").map(String::as_str),
        Some("kids")
    );
    let fl8 = repo::get_product(&pool, "FL-8").await.unwrap().unwrap();
    assert_eq!(
        (fl8.price, fl8.availability.as_str()),
        (Decimal::new(129900, 2), "preorder")
    );

    let (rejected, stored): (i64, i64) =
        sqlx::query_as("select rejected, jsonb_array_length(rejects)::bigint from import_runs order by id desc limit 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rejected, stored), (7, 7));
}

#[sqlx::test]
async fn sale_price_becomes_the_price_and_the_regular_price_the_list_price(pool: PgPool) {
    import(
        &pool,
        Format::Merchant,
        &common::fixture("merchant_mixed.tsv"),
    )
    .await;
    // The first FL-1 row had a sale price but was overwritten; check through a fresh feed.
    let feed = "id\ttitle\tprice\tsale_price\tavailability\nS-1\tMug\t500 INR\t399 INR\tin stock\n";
    let (counts, rejects) = import_bytes(&pool, Format::Merchant, feed.as_bytes().to_vec()).await;
    assert!(rejects.is_empty());
    assert_eq!(counts.inserted, 1);
    let p = repo::get_product(&pool, "S-1").await.unwrap().unwrap();
    assert_eq!(
        (p.price, p.list_price),
        (Decimal::new(399, 0), Some(Decimal::new(500, 0)))
    );
}

#[sqlx::test]
async fn a_broken_quote_rejects_its_row_and_keeps_the_rows_before_it(pool: PgPool) {
    let (counts, rejects) = import(
        &pool,
        Format::Merchant,
        &common::fixture("merchant_broken_quote.csv"),
    )
    .await;
    assert_eq!(counts.inserted, 2);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].row, 3);
    assert!(
        rejects[0].reason.contains("check the quoting"),
        "{}",
        rejects[0].reason
    );
    let q2 = repo::get_product(&pool, "Q-2").await.unwrap().unwrap();
    assert_eq!(q2.title, "Silk Saree \"Banarasi\"");
}

#[sqlx::test]
async fn invalid_utf8_rejects_only_its_row(pool: PgPool) {
    let mut feed = b"id,title,price,availability\nU-1,Good row,10 USD,in stock\nU-2,Bad \xff\xfe row,10 USD,in stock\nU-3,Also good,12 USD,in stock\n".to_vec();
    let (counts, rejects) = import_bytes(&pool, Format::Merchant, std::mem::take(&mut feed)).await;
    assert_eq!((counts.inserted, counts.rejected), (2, 1));
    assert_eq!(rejects[0].row, 2);
    assert_eq!(
        rejects[0].reason,
        "field \"title\" is not valid UTF-8 (byte 4)"
    );

    let jsonl = b"{\"id\":\"J-1\",\"title\":\"ok\",\"price\":\"5 USD\"}\n{\"id\":\"J-2\",\"title\":\"bad \xc3\x28\",\"price\":1}\n".to_vec();
    let (counts, rejects) = import_bytes(&pool, Format::Jsonl, jsonl).await;
    assert_eq!((counts.inserted, counts.rejected), (1, 1));
    assert!(
        rejects[0].reason.starts_with("line is not valid UTF-8"),
        "{}",
        rejects[0].reason
    );
}

#[sqlx::test]
async fn jsonl_rows_are_typed_and_bad_lines_say_why(pool: PgPool) {
    let feed = [
        r#"{"id": "J-1", "title": "Red Flats", "title_zh": "红色平底鞋", "price": 749, "currency": "INR", "category": "Footwear > Flats", "color": "red", "attributes": {"heel height": "flat", "size": 7}, "stock": 0}"#,
        r#"{"id": 42, "title": "Numeric id", "price": "12.5 USD", "availability": "backorder"}"#,
        r#"{"id": "J-3", "title": "No price"}"#,
        r#"{"id": "J-4", "title": "Broken JSON""#,
        "",
        r#"{"id": "J-5", "title": "Nested attribute", "price": 1, "currency": "INR", "attributes": {"a": {"b": 1}}}"#,
        r#"{"id": "J-6", "title": "Bad stock", "price": 1, "currency": "INR", "stock": -3}"#,
    ]
    .join("\n");
    let (counts, rejects) = import_bytes(&pool, Format::Jsonl, feed.into_bytes()).await;
    assert_eq!((counts.inserted, counts.rejected), (2, 4));
    let reasons: Vec<(u64, u64, &str)> = rejects
        .iter()
        .map(|r| (r.row, r.line, r.reason.as_str()))
        .collect();
    assert_eq!(reasons[0], (3, 3, "missing price"));
    assert!(reasons[1].2.starts_with("invalid JSON"), "{:?}", reasons[1]);
    assert_eq!(
        (reasons[2].0, reasons[2].1),
        (5, 6),
        "blank lines count for lines, not rows"
    );
    assert_eq!(reasons[3].2, "stock -3 is negative");

    let j1 = repo::get_product(&pool, "J-1").await.unwrap().unwrap();
    assert_eq!(j1.title_zh.as_deref(), Some("红色平底鞋"));
    assert_eq!(
        j1.availability, "out_of_stock",
        "stock 0 without an availability means out of stock"
    );
    assert_eq!(j1.attributes.0.get("size").map(String::as_str), Some("7"));
    let j2 = repo::get_product(&pool, "42").await.unwrap().unwrap();
    assert_eq!(
        (j2.currency.as_str(), j2.availability.as_str()),
        ("USD", "backorder")
    );
}

#[sqlx::test]
async fn the_demo_store_loads_with_customers_and_orders(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let (products, customers, orders, lines, history): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from products), (select count(*) from customers), (select count(*) from orders),
                (select count(*) from order_lines), (select count(*) from order_status_history)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((150..=300).contains(&products), "{products} products");
    assert!(
        customers >= 5 && orders >= 10,
        "{customers} customers, {orders} orders"
    );
    assert!(lines >= orders && history >= orders);
    let statuses: i64 = sqlx::query_scalar("select count(distinct status) from orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        statuses >= 5,
        "orders should cover several states, got {statuses}"
    );
    let zh: i64 = sqlx::query_scalar("select count(*) from products where title_zh is not null")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(zh * 2 > products, "most demo products have a Chinese name");
    assert_eq!(state.search.len() as i64, products);

    // Seeding again is idempotent.
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("knowledge/demo");
    let again = aisle::catalog::demo::seed(&pool, &dir, &common::options())
        .await
        .unwrap();
    assert_eq!(again.products.counts.unchanged as i64, products);
    let history_again: i64 = sqlx::query_scalar("select count(*) from order_status_history")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(history_again, history);
}
