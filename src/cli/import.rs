//! `aisle import FORMAT PATH` and `aisle seed`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::catalog::demo;
use crate::catalog::import::{Format, ImportOptions, import_file};
use crate::config::Settings;
use crate::db::Database;
use crate::embed::{EmbedError, Embedder, store};

#[derive(Args)]
pub struct ImportArgs {
    /// Feed layout.
    #[arg(value_enum)]
    format: Format,
    /// The feed file.
    path: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write every rejected row as a JSON line to this file.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Rows per database batch (overrides catalog.import_batch_rows).
    #[arg(long)]
    batch_rows: Option<usize>,
    /// Skip computing product embeddings (the server computes missing ones when it starts).
    #[arg(long)]
    no_embed: bool,
}

#[derive(Args)]
pub struct SeedArgs {
    /// Directory with products.jsonl, customers.jsonl and orders.jsonl (overrides catalog.demo_dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub async fn run(settings: Settings, args: ImportArgs) -> anyhow::Result<()> {
    if !args.path.is_file() {
        anyhow::bail!("{} is not a readable file", args.path.display());
    }
    let mut rejects_file = match &args.rejects {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let db = Database::open(&settings)
        .await
        .context("opening the database")?;
    let options = ImportOptions {
        batch_rows: args
            .batch_rows
            .unwrap_or(settings.catalog.import_batch_rows)
            .clamp(1, 10_000),
        progress: true,
    };
    let result = import_file(&db.pool, args.format, &args.path, &options, |r| {
        let id =
            r.id.as_deref()
                .map(|id| format!(", id {id:?}"))
                .unwrap_or_default();
        eprintln!("rejected row {} (line {}{id}): {}", r.row, r.line, r.reason);
        if let Some(f) = rejects_file.as_mut() {
            let _ = serde_json::to_writer(&mut *f, r).map(|_| f.write_all(b"\n"));
        }
    })
    .await;
    if let Some(mut f) = rejects_file {
        f.flush().context("writing the rejects file")?;
    }
    let embedded = match (&result, args.no_embed) {
        (Ok(_), false) => embed_catalog(&settings, &db.pool).await,
        _ => Ok(()),
    };
    db.close().await?;
    let report = result?;
    embedded?;
    let c = &report.counts;
    let peak_rss_mb = crate::telemetry::peak_rss_mb();
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["peak_rss_mb"] = peak_rss_mb.into();
        println!("{json}");
    } else {
        let rate = c.rows as f64 / report.seconds.max(1e-9);
        println!(
            "imported {} ({}): {} rows read, {} inserted, {} updated, {} unchanged, {} rejected in {:.1}s \
             ({rate:.0} rows/s, peak RSS {peak_rss_mb:.0} MiB)",
            report.source,
            report.format,
            c.rows,
            c.inserted,
            c.updated,
            c.unchanged,
            c.rejected,
            report.seconds
        );
    }
    Ok(())
}

pub async fn seed(settings: Settings, args: SeedArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .unwrap_or_else(|| settings.catalog.demo_dir.clone());
    let db = Database::open(&settings)
        .await
        .context("opening the database")?;
    let options = ImportOptions {
        batch_rows: settings.catalog.import_batch_rows,
        progress: true,
    };
    let result = demo::seed(&db.pool, &dir, &options).await;
    let embedded = match &result {
        Ok(_) => embed_catalog(&settings, &db.pool).await,
        Err(_) => Ok(()),
    };
    db.close().await?;
    embedded?;
    let report =
        result.with_context(|| format!("loading the demo store from {}", dir.display()))?;
    let c = &report.products.counts;
    println!(
        "demo store: {} products ({} inserted, {} updated, {} unchanged, {} rejected), {} customers, {} orders",
        c.rows, c.inserted, c.updated, c.unchanged, c.rejected, report.customers, report.orders
    );
    Ok(())
}

/// Computes embeddings for new and changed products, with a progress bar. A missing model is a
/// warning unless `embed.required` (the server embeds what is missing when it has the model).
async fn embed_catalog(settings: &Settings, pool: &sqlx::PgPool) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    let embedder = match Embedder::load(&settings.embed.model_dir) {
        Ok(e) => std::sync::Arc::new(e),
        Err(e @ EmbedError::Missing(_)) if !settings.embed.required => {
            eprintln!("warning: product embeddings not computed: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let products: Vec<_> = crate::catalog::repo::all_products(pool)
        .try_collect()
        .await?;
    let n = store::sync(pool, &embedder, &products, true)
        .await
        .context("computing product embeddings")?;
    eprintln!(
        "embeddings: {n} products embedded ({} in the catalog)",
        products.len()
    );
    Ok(())
}
