//! The HTTP surface over a real Postgres: health, readiness, metrics, search in EN and ZH, the
//! storefront, body limits and error bodies.
#![allow(clippy::unwrap_used)]

mod common;

use aisle::web::app;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

async fn get_json(router: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(router, Request::get(uri).body(Body::empty()).unwrap()).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[sqlx::test]
async fn health_ready_and_metrics_answer(pool: PgPool) {
    let router = app(common::state(pool).await);
    let (status, body) = get_json(&router, "/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = get_json(&router, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["checks"]["database"], "ok");

    let (status, headers, body) = call(
        &router,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(
            "aisle_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE aisle_http_request_duration_seconds histogram"));
    assert!(text.contains("aisle_catalog_products"));
}

#[sqlx::test]
async fn readiness_fails_when_the_database_is_gone(pool: PgPool) {
    let state = common::state(pool.clone()).await;
    let router = app(state);
    pool.close().await;
    let (status, body) = get_json(&router, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["database"], "unreachable");
    // Liveness does not depend on the database.
    assert_eq!(get_json(&router, "/healthz").await.0, StatusCode::OK);
    // A page that needs the database says so with 503, not a crash.
    let (status, body) = get_json(&router, "/api/products/anything").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable");
}

#[sqlx::test]
async fn exact_titles_find_their_product_in_english_and_chinese(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let router = app(state);
    let products: Vec<(String, String, Option<String>)> =
        sqlx::query_as("select id, title, title_zh from products order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut checked_zh = 0;
    for (id, title, title_zh) in &products {
        for (lang, q) in [("en", Some(title)), ("zh", title_zh.as_ref())] {
            let Some(q) = q else { continue };
            let (status, body) =
                get_json(&router, &format!("/api/search?q={}&limit=5", encode(q))).await;
            assert_eq!(status, StatusCode::OK);
            let results = body["results"].as_array().unwrap();
            let top = results
                .first()
                .unwrap_or_else(|| panic!("no results for {lang} title {q:?}"));
            // Identical titles tie; the product must then share the top score.
            let ours = results.iter().find(|r| r["id"] == id.as_str());
            let tied = ours.is_some_and(|r| r["score"] == top["score"]);
            assert!(
                top["id"] == id.as_str() || tied,
                "{lang} title {q:?}: expected {id}, got {results:?}"
            );
            if lang == "zh" {
                checked_zh += 1;
            }
        }
    }
    assert!(checked_zh > 100, "only {checked_zh} Chinese titles checked");
}

#[sqlx::test]
async fn search_results_carry_price_and_why(pool: PgPool) {
    let router = app(common::demo_state(pool).await);
    let (status, body) = get_json(&router, "/api/search?q=vacuum%20flask&limit=3").await;
    assert_eq!(status, StatusCode::OK);
    let r = &body["results"][0];
    assert!(
        r["name"].as_str().unwrap().to_lowercase().contains("flask"),
        "{body}"
    );
    assert!(r["price"].as_f64().unwrap() > 0.0);
    assert_eq!(r["currency"], "INR");
    assert!(r["why"][0].as_str().unwrap().starts_with("learned "), "{r}");
    assert!(r["breakdown"]["bm25"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        r["why"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("title: ")),
        "{r}"
    );
    assert!(body["results"].as_array().unwrap().len() <= 3);
}

#[sqlx::test]
async fn bad_search_requests_get_clear_errors(pool: PgPool) {
    let router = app(common::demo_state(pool).await);
    let (status, body) = get_json(&router, "/api/search?q=%20%20").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty_query"))
    );
    let long = "a".repeat(600);
    let (status, body) = get_json(&router, &format!("/api/search?q={long}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("query_too_long"))
    );
    let (status, body) = get_json(&router, "/api/search?q=flask&limit=100000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));
    let (status, body) = get_json(&router, "/api/search?q=flask&limit=abc").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let (status, body) = get_json(&router, "/api/products/no-such-product").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("product_not_found"))
    );
    let (status, _) = get_json(&router, "/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn oversized_bodies_get_413_and_bad_json_400(pool: PgPool) {
    let state = common::state(pool).await;
    let limit = state.settings.server.max_body_bytes;
    let router = app(state);
    let big = json!({"session_id": uuid::Uuid::new_v4(), "kind": "up", "pad": "x".repeat(limit)})
        .to_string();
    let req = Request::post("/api/feedback")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big))
        .unwrap();
    let (status, _, body) = call(&router, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let req = Request::post("/api/feedback")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, _, body) = call(&router, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"],
        "bad_request"
    );
}

#[sqlx::test]
async fn feedback_for_unknown_sessions_is_404_and_known_ones_are_stored(pool: PgPool) {
    let router = app(common::demo_state(pool.clone()).await);
    let post = |body: Value| {
        Request::post("/api/feedback")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, _, _) = call(
        &router,
        post(json!({"session_id": uuid::Uuid::new_v4(), "kind": "up"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let session = common::new_session(&pool).await;
    let product: String = sqlx::query_scalar("select id from products limit 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (status, _, _) = call(
        &router,
        post(json!({"session_id": session, "kind": "click"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a click needs a product");
    let (status, _, _) = call(
        &router,
        post(json!({"session_id": session, "kind": "click", "product_id": "nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&router, post(json!({"session_id": session, "kind": "add_to_cart", "product_id": product, "position": 2}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from feedback_events where conversation_id = $1 and kind = 'add_to_cart'",
    )
    .bind(session)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);
}

#[sqlx::test]
async fn the_storefront_lists_the_demo_catalog(pool: PgPool) {
    let router = app(common::demo_state(pool.clone()).await);
    let (status, headers, body) =
        call(&router, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8(body).unwrap();
    assert_eq!(
        html.matches("data-product-id=").count(),
        48,
        "one page of cards"
    );
    let (id, title): (String, String) =
        sqlx::query_as("select id, title from products order by category, title limit 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(html.contains(&format!("data-product-id=\"{id}\"")));

    let (status, _, body) = call(
        &router,
        Request::get(format!("/products/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains(&format!(
            "<article class=\"product\" data-product-id=\"{id}\">"
        )),
        "{page}"
    );
    let first_word = title.split_whitespace().next().unwrap();
    assert!(
        page.contains(first_word),
        "the product page names {title:?}"
    );

    let (status, _, body) = call(
        &router,
        Request::get("/products/missing")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8(body).unwrap().contains("<h1>404"));
    let (status, _, body) = call(
        &router,
        Request::get("/?q=%E4%BF%9D%E6%B8%A9%E6%9D%AF")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("results for “保温杯”")
    );
}

#[sqlx::test]
async fn responses_carry_a_request_id(pool: PgPool) {
    let router = app(common::state(pool).await);
    let (_, headers, _) = call(
        &router,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(headers["x-request-id"].to_str().unwrap().len(), 36);
    let req = Request::get("/healthz")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = call(&router, req).await;
    assert_eq!(headers["x-request-id"], "abc-123");
}

#[sqlx::test]
async fn the_graph_api_resolves_chinese_to_demo_products_and_quotes_policies(pool: PgPool) {
    let router = app(common::demo_state(pool.clone()).await);
    let (status, body) =
        get_json(&router, &format!("/api/kg/resolve?q={}", encode("保温杯"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body["matches"].as_array().unwrap().is_empty(), "{body}");
    let ids: Vec<String> = body["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!ids.is_empty(), "{body}");
    let flasks: i64 = sqlx::query_scalar(
        "select count(*) from products where id = any($1) and category like 'Kitchen & Dining%'",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        flasks as usize,
        ids.len(),
        "保温杯 reaches kitchen products only: {ids:?}"
    );

    let (status, facts) = get_json(&router, &format!("/api/kg/facts/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        facts["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "shipping"),
        "{facts}"
    );
    assert_eq!(
        get_json(&router, "/api/kg/facts/nope").await.0,
        StatusCode::NOT_FOUND
    );

    let concept = body["matches"][0]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, node) = get_json(&router, &format!("/api/kg/nodes/{}", encode(&concept))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node["node"]["id"], concept.as_str());
    assert_eq!(
        get_json(&router, "/api/kg/nodes/concept%3Anope").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_json(&router, "/api/kg/resolve?q=%20").await.0,
        StatusCode::BAD_REQUEST
    );
}
