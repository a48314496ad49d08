//! Product vectors in Postgres: computed for products whose embedding text (or the model) changed,
//! in batches with a progress bar, and loaded into a [`DenseIndex`].

use std::collections::HashMap;

use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;

use super::{DenseIndex, EmbedError, Embedder};
use crate::catalog::Product;

/// Texts embedded per model call.
const BATCH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("product embeddings: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the embedding task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What a product's vector is computed from: its name, brand, the end of its category path and
/// the facets shoppers ask for. The description is left out: it is long, often boilerplate, and
/// the lexical index already covers it.
pub fn product_text(p: &Product) -> String {
    let mut parts = vec![p.title.clone()];
    if let Some(b) = &p.brand {
        parts.push(b.clone());
    }
    if let Some(c) = &p.category {
        let tail: Vec<&str> = c.split('>').map(str::trim).rev().take(2).collect();
        parts.push(tail.into_iter().rev().collect::<Vec<_>>().join(" "));
    }
    for key in [
        "color",
        "gender",
        "ideal for",
        "material",
        "occasion",
        "type",
    ] {
        if let Some(v) = p.attributes.0.get(key) {
            parts.push(v.clone());
        }
    }
    parts.join(". ")
}

/// Embeds every product whose stored vector is missing or stale; returns how many were embedded.
/// A progress bar is drawn when `progress` is set and stderr is a terminal.
pub async fn sync(
    pool: &PgPool,
    embedder: &std::sync::Arc<Embedder>,
    products: &[Product],
    progress: bool,
) -> Result<usize, StoreError> {
    let stored: HashMap<String, (String, String)> = sqlx::query_as::<_, (String, String, String)>(
        "select product_id, model, source_text from product_embeddings",
    )
    .fetch(pool)
    .map_ok(|(id, model, text)| (id, (model, text)))
    .try_collect()
    .await?;
    let todo: Vec<(String, String)> = products
        .iter()
        .map(|p| (p.id.clone(), product_text(p)))
        .filter(|(id, text)| {
            stored
                .get(id)
                .is_none_or(|(m, t)| m != embedder.name() || t != text)
        })
        .collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let bar = if progress {
        ProgressBar::new(todo.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("embedding {bar:40} {pos}/{len} products ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    // Embed and write in slices so that an interrupted run keeps what it finished.
    for slice in todo.chunks(BATCH * 8) {
        let texts: Vec<String> = slice.iter().map(|(_, t)| t.clone()).collect();
        let e = embedder.clone();
        let b = bar.clone();
        let vectors =
            tokio::task::spawn_blocking(move || e.embed_all(&texts, BATCH, |n| b.inc(n as u64)))
                .await??;
        let ids: Vec<&str> = slice.iter().map(|(id, _)| id.as_str()).collect();
        let texts: Vec<&str> = slice.iter().map(|(_, t)| t.as_str()).collect();
        let vectors: Vec<String> = vectors.iter().map(|v| pg_array(v)).collect();
        sqlx::query(
            "insert into product_embeddings (product_id, model, source_text, vector)
             select id, $4, text, vec::real[]
             from unnest($1::text[], $2::text[], $3::text[]) as u(id, text, vec)
             where exists (select 1 from products p where p.id = u.id)
             on conflict (product_id) do update
               set model = excluded.model, source_text = excluded.source_text,
                   vector = excluded.vector, updated_at = now()",
        )
        .bind(&ids)
        .bind(&texts)
        .bind(&vectors)
        .bind(embedder.name())
        .execute(pool)
        .await?;
    }
    bar.finish_and_clear();
    tracing::info!(
        products = todo.len(),
        ms = started.elapsed().as_millis() as u64,
        model = embedder.name(),
        "product embeddings updated"
    );
    Ok(todo.len())
}

/// Postgres array text for a vector (`{0.1,-0.2,...}`).
fn pg_array(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 11 + 2);
    s.push('{');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push('}');
    s
}

/// Loads the stored vectors of `model` into an index.
pub async fn load(pool: &PgPool, model: &str, dim: usize) -> Result<DenseIndex, StoreError> {
    let rows: Vec<(String, Vec<f32>)> =
        sqlx::query_as("select product_id, vector from product_embeddings where model = $1")
            .bind(model)
            .fetch_all(pool)
            .await?;
    Ok(DenseIndex::build(dim, rows))
}
