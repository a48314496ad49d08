//! The placeholder demo storefront: a page listing the catalog (by category, or by a search) and a
//! page per product, so a fresh `aisle serve` has a store to look at.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use serde::Deserialize;

use super::extract::AppQuery;
use super::{AppError, PageError};
use crate::catalog::{CatalogError, Product, repo};
use crate::ranking::Ranker;
use crate::state::AppState;

const PAGE_SIZE: i64 = 48;

/// A product as the templates show it: prices already formatted.
struct Card {
    id: String,
    title: String,
    title_zh: Option<String>,
    brand: Option<String>,
    category: String,
    price: String,
    list_price: Option<String>,
    in_stock: bool,
    image: Option<String>,
    initial: char,
}

fn money(amount: rust_decimal::Decimal, currency: &str) -> String {
    crate::catalog::price::format_money(amount.try_into().unwrap_or(0.0), currency)
}

impl From<&Product> for Card {
    fn from(p: &Product) -> Self {
        Self {
            id: p.id.clone(),
            title: p.title.clone(),
            title_zh: p.title_zh.clone(),
            brand: p.brand.clone(),
            category: p.category.clone().unwrap_or_default(),
            price: money(p.price, &p.currency),
            list_price: p.list_price.map(|lp| money(lp, &p.currency)),
            in_stock: p.in_stock(),
            image: p.image_urls.first().cloned(),
            initial: p
                .title
                .chars()
                .next()
                .unwrap_or('?')
                .to_uppercase()
                .next()
                .unwrap_or('?'),
        }
    }
}

#[derive(Template)]
#[template(path = "storefront.html")]
struct StorefrontPage {
    cards: Vec<Card>,
    categories: Vec<(String, i64)>,
    category: Option<String>,
    query: String,
    page: i64,
    has_more: bool,
    total: usize,
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    card: Card,
    description: String,
    attributes: Vec<(String, String)>,
    rating: Option<String>,
}

#[derive(Deserialize)]
pub struct ListParams {
    category: Option<String>,
    q: Option<String>,
    page: Option<i64>,
}

pub async fn index(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<ListParams>,
) -> Result<Html<String>, PageError> {
    let page = params.page.unwrap_or(1).max(1);
    let query = params.q.unwrap_or_default().trim().to_owned();
    let category = params.category.filter(|c| !c.is_empty());
    let (cards, has_more) = if query.is_empty() {
        let products = repo::list_products(
            &state.pool,
            category.as_deref(),
            PAGE_SIZE + 1,
            (page - 1) * PAGE_SIZE,
        )
        .await?;
        let more = products.len() as i64 > PAGE_SIZE;
        (
            products
                .iter()
                .take(PAGE_SIZE as usize)
                .map(Card::from)
                .collect(),
            more,
        )
    } else {
        // Embedding the query and scoring are CPU work (and may wait on the model thread): keep
        // them off the async workers, as the API does.
        let (search, graph, q) = (state.search.clone(), state.graph.current(), query.clone());
        let hits = tokio::task::spawn_blocking(move || {
            search.search_with(Ranker::default(), &graph, &q, PAGE_SIZE as usize)
        })
        .await
        .map_err(|e| AppError::Search(e.into()))?
        .map_err(AppError::from)?;
        let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        let mut products = repo::get_products(&state.pool, &ids).await?;
        products.sort_by_key(|p| ids.iter().position(|id| *id == p.id));
        (products.iter().map(Card::from).collect(), false)
    };
    let page = StorefrontPage {
        categories: repo::top_categories(&state.pool).await?,
        total: state.search.len(),
        cards,
        category,
        query,
        page,
        has_more,
    };
    Ok(Html(page.render()?))
}

pub async fn product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let p = repo::get_product(&state.pool, &id)
        .await?
        .ok_or_else(|| AppError::from(CatalogError::ProductNotFound(id)))?;
    let page = ProductPage {
        card: Card::from(&p),
        description: p.description.clone(),
        attributes: p
            .attributes
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        rating: p
            .rating
            .map(|r| format!("{r:.1} ★ ({} ratings)", p.rating_count.unwrap_or(0))),
    };
    Ok(Html(page.render()?))
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/aisle.css"),
    )
}

pub async fn editor_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../static/kg.js"),
    )
}
