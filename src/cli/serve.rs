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
use crate::graph::GraphService;
use crate::ranking::SearchService;
use crate::state::AppState;
use crate::telemetry::Metrics;
use sqlx::PgPool;

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
    let demo_dir = &settings.catalog.demo_dir;
    if products == 0 && settings.catalog.seed_demo && !no_demo && !demo_dir.is_dir() {
        tracing::warn!(dir = %demo_dir.display(), "catalog is empty and the demo store directory is missing; serving an empty store");
    }
    if products == 0 && settings.catalog.seed_demo && !no_demo && demo_dir.is_dir() {
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
    let state = app_state(settings, pool.clone()).await?;
    let (search, graph) = (state.search.clone(), state.graph.clone());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener_task = graph.spawn_listener(pool.clone(), stop_rx.clone());
    let summariser = state
        .support
        .spawn_summariser(&state.relay, stop_rx.clone());
    let refresher = tokio::spawn(refresh_loop(
        state.clone(),
        Duration::from_secs(settings.search.refresh_secs.max(1)),
        stop_rx,
    ));
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
    crate::web::serve_live(
        listener,
        state,
        super::shutdown_signal(),
        Duration::from_secs(settings.server.shutdown_grace_secs),
    )
    .await?;
    let _ = stop_tx.send(true);
    let _ = summariser.await;
    let _ = refresher.await;
    let _ = listener_task.await;
    Ok(())
}

/// Everything one instance serves with, over `pool`: the search index, the knowledge graph, the
/// conversation service (with the LLM when configured), support, and a relay (not yet listening).
pub(super) async fn app_state(settings: &Settings, pool: PgPool) -> anyhow::Result<AppState> {
    let search = SearchService::from_settings(settings)?;
    search.refresh(&pool).await?;
    let graph = GraphService::new();
    if settings.graph.seed
        && graph
            .seed_if_empty(&pool, &settings.graph.dir)
            .await
            .context("loading the curated knowledge graph")?
    {
        tracing::info!(dir = %settings.graph.dir.display(), "curated knowledge graph imported");
    }
    graph
        .refresh(&pool)
        .await
        .context("building the knowledge graph")?;
    let metrics = Metrics::new();
    metrics.catalog_products.set(search.len() as i64);
    let chat = crate::chat::ChatService::from_settings(
        settings,
        pool.clone(),
        search.clone(),
        graph.clone(),
        metrics.llm.clone(),
    )
    .await
    .context("starting the conversation service")?;
    let support = crate::support::SupportService::new(
        pool.clone(),
        settings.support.clone(),
        chat.llm().cloned(),
    );
    let relay = crate::support::Relay::new();
    Ok(AppState {
        chat,
        support: support.clone(),
        relay: relay.clone(),
        chat_limits: crate::web::ChatLimits::new(&settings.chat),
        pool: pool.clone(),
        settings: Arc::new(settings.clone()),
        search: search.clone(),
        graph: graph.clone(),
        metrics,
        auth: crate::auth::AuthService::new(
            pool.clone(),
            Duration::from_secs(settings.auth.session_ttl_secs),
        ),
    })
}

/// Rebuilds the search index and the knowledge graph when the catalog or the curated layer
/// changes, checking every `every`, until `stop` fires. Failures keep the old snapshot.
async fn refresh_loop(
    state: AppState,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match state.search.refresh(&state.pool).await {
            Ok(true) => {
                state.metrics.index_rebuilds.inc();
                state
                    .metrics
                    .catalog_products
                    .set(state.search.len() as i64);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "search index refresh failed; keeping the old index")
            }
        }
        state.chat_limits.prune();
        if let Err(e) = state.graph.refresh(&state.pool).await {
            tracing::warn!(error = %e, "knowledge graph refresh failed; keeping the old graph");
        }
        // A newly trained ranker version is picked up here (a bad file is skipped and logged).
        if let Err(e) = state.search.reload_model() {
            tracing::warn!(error = %e, "ranker reload failed; keeping the current model");
        }
    }
}
