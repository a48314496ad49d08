//! `aisle serve`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::catalog::demo;
use crate::catalog::import::ImportOptions;
use crate::config::Settings;
use crate::db::Database;
use crate::ranking::SearchService;
use crate::state::AppState;
use crate::telemetry::Metrics;

#[derive(Args)]
pub struct ServeArgs {
    /// Listen address (overrides server.bind).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Do not load the demo store into an empty catalog.
    #[arg(long)]
    no_demo: bool,
}

pub async fn run(mut settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(bind) = args.bind {
        settings.server.bind = bind;
    }
    let db = Database::open(&settings)
        .await
        .context("opening the database")?;
    if db.is_embedded() {
        tracing::info!(state_dir = %settings.database.state_dir.display(), "using the embedded Postgres cluster");
    }
    let result = serve(&settings, &db, args.no_demo).await;
    db.close().await.context("closing the database")?;
    result
}

async fn serve(settings: &Settings, db: &Database, no_demo: bool) -> anyhow::Result<()> {
    let pool = db.pool.clone();
    let (products, _) = crate::catalog::repo::fingerprint(&pool).await?;
    if products == 0 && settings.catalog.seed_demo && !no_demo {
        let options = ImportOptions {
            batch_rows: settings.catalog.import_batch_rows,
            progress: false,
        };
        let report = demo::seed(&pool, &settings.catalog.demo_dir, &options)
            .await
            .with_context(|| {
                format!(
                    "loading the demo store from {}",
                    settings.catalog.demo_dir.display()
                )
            })?;
        tracing::info!(
            products = report.products.counts.inserted,
            customers = report.customers,
            orders = report.orders,
            "demo store loaded"
        );
    }
    let search = SearchService::new()?;
    search.refresh(&pool).await?;
    let metrics = Metrics::new();
    metrics.catalog_products.set(search.len() as i64);
    let state = AppState {
        pool: pool.clone(),
        settings: Arc::new(settings.clone()),
        search: search.clone(),
        metrics,
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let index_metrics = state.metrics.clone();
    let refresher = search.spawn_refresher(
        pool,
        Duration::from_secs(settings.search.refresh_secs.max(1)),
        move |n| {
            index_metrics.index_rebuilds.inc();
            index_metrics.catalog_products.set(n as i64);
        },
        stop_rx,
    );
    let listener = tokio::net::TcpListener::bind(settings.server.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another server using it? set --bind)",
                settings.server.bind
            )
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, products = search.len(), "aisle is serving on http://{addr}/");
    eprintln!("aisle is serving on http://{addr}/ (Ctrl-C stops it)");
    crate::web::serve(
        listener,
        crate::web::app(state),
        super::shutdown_signal(),
        Duration::from_secs(settings.server.shutdown_grace_secs),
    )
    .await?;
    let _ = stop_tx.send(true);
    let _ = refresher.await;
    Ok(())
}
