//! `aisle kg import|export|stats|resolve`: the curated layer between `knowledge/graph/` and
//! Postgres, and a look at the built graph.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::batch::{Catalog, CatalogArgs};
use crate::config::Settings;
use crate::graph::{GraphService, curated, repo};

#[derive(Subcommand)]
pub enum KgCommand {
    /// Replace the stored curated layer with the files in DIR (validated first; nothing changes on error).
    Import {
        /// Directory of *.toml files (default: graph.dir).
        dir: Option<PathBuf>,
    },
    /// Write the stored curated layer as *.toml files into DIR.
    Export { dir: PathBuf },
    /// Node and edge counts of the built graph (JSON).
    Stats {
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// Resolve a shopper phrase to graph nodes and show what it expands to (JSON).
    Resolve {
        phrase: String,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
}

pub async fn run(settings: Settings, cmd: KgCommand) -> anyhow::Result<()> {
    match cmd {
        KgCommand::Import { dir } => {
            let dir = dir.unwrap_or_else(|| settings.graph.dir.clone());
            let curated = curated::read_dir(&dir)?;
            let (nodes, edges) = (curated.nodes.len(), curated.edges.len());
            let db = crate::db::Database::open(&settings)
                .await
                .context("opening the database")?;
            let result = GraphService::new().import(&db.pool, curated, "cli").await;
            db.close().await?;
            let version = result.with_context(|| format!("importing {}", dir.display()))?;
            println!(
                "imported {nodes} curated nodes and {edges} edges from {}; graph version {version}",
                dir.display()
            );
            Ok(())
        }
        KgCommand::Export { dir } => {
            let db = crate::db::Database::open(&settings)
                .await
                .context("opening the database")?;
            let loaded = repo::load(&db.pool).await;
            db.close().await?;
            let (curated, version) = loaded?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in curated::render(&curated)? {
                std::fs::write(dir.join(&name), text).with_context(|| format!("writing {name}"))?;
            }
            println!(
                "exported {} nodes and {} edges (version {version}) to {}",
                curated.nodes.len(),
                curated.edges.len(),
                dir.display()
            );
            Ok(())
        }
        KgCommand::Stats { catalog } => {
            let (cat, graph) = open(&settings, catalog).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&graph.current().stats())?
            );
            cat.close().await
        }
        KgCommand::Resolve { phrase, catalog } => {
            let (cat, graph) = open(&settings, catalog).await?;
            let g = graph.current();
            let matches = g.resolve(&phrase);
            let expansions: Vec<_> = matches
                .iter()
                .flat_map(|m| m.nodes.first())
                .flat_map(|n| g.expand(&n.id))
                .collect();
            let products = g.products_reached(&expansions, 20);
            let out = serde_json::json!({"phrase": phrase, "matches": matches, "expansions": expansions, "products": products});
            println!("{}", serde_json::to_string_pretty(&out)?);
            cat.close().await
        }
    }
}

/// Opens the catalog (temporary with `--catalog`), seeds the curated layer if empty, builds the graph.
async fn open(settings: &Settings, args: CatalogArgs) -> anyhow::Result<(Catalog, GraphService)> {
    let catalog = Catalog::open(settings, args.catalog.as_deref()).await?;
    let graph = GraphService::new();
    let result = async {
        graph
            .seed_if_empty(&catalog.db.pool, &settings.graph.dir)
            .await?;
        graph.refresh(&catalog.db.pool).await
    }
    .await;
    if let Err(e) = result {
        catalog.close().await?;
        return Err(e).context("building the knowledge graph");
    }
    Ok((catalog, graph))
}
