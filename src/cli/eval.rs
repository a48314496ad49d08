//! `aisle eval ranking FILE [--catalog PATH]`: nDCG@10, Recall@50 and MRR of the search stack on a
//! labelled file (`{"id","query","relevant":{"<product id>": grade}}` per line).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde::Deserialize;
use serde_json::{Value, json};

use super::batch::{Catalog, CatalogArgs};
use crate::config::Settings;
use crate::ranking::Ranker;
use crate::ranking::metrics::{QueryMetrics, mean};

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Ranking quality on labelled queries for the BM25 baseline, the hybrid fusion and the learned
    /// ranker; the last line is a JSON summary (per-query lines with --verbose).
    Ranking {
        /// The labelled JSON Lines file.
        file: PathBuf,
        #[command(flatten)]
        catalog: CatalogArgs,
        /// Also load the demo store into the temporary catalog (for demo-store query files).
        #[arg(long)]
        with_demo: bool,
        /// Also print each query's metrics.
        #[arg(long)]
        verbose: bool,
    },
    /// Intent accuracy, slot F1 and per-path latency (fast path, LLM path, both mixed) on a
    /// labelled file; the last line is a JSON summary.
    Intents(super::intents::EvalIntentsArgs),
    /// Dialogues through the whole chat pipeline, checking each one's "must" list
    /// (../shared/eval-samples/README.md); the last line is a JSON summary.
    Dialogues(super::chat::EvalDialoguesArgs),
}

/// One labelled query.
#[derive(Deserialize)]
pub struct Labelled {
    pub id: String,
    pub query: String,
    pub relevant: HashMap<String, u8>,
}

/// Reads a labelled JSON Lines file; a bad line is an error naming the file and line.
pub fn read_labelled(file: &std::path::Path) -> anyhow::Result<Vec<Labelled>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", file.display(), i + 1))
        })
        .collect()
}

pub async fn run(settings: Settings, cmd: EvalCommand) -> anyhow::Result<()> {
    let (file, catalog, with_demo, verbose) = match cmd {
        EvalCommand::Ranking {
            file,
            catalog,
            with_demo,
            verbose,
        } => (file, catalog, with_demo, verbose),
        EvalCommand::Intents(args) => return super::intents::eval(settings, args).await,
        EvalCommand::Dialogues(args) => return super::chat::eval(settings, args).await,
    };
    let queries = read_labelled(&file)?;
    let catalog = Catalog::open_with(&settings, catalog.catalog.as_deref(), with_demo).await?;
    let graph = catalog.graph.current();
    let mut summary = serde_json::Map::new();
    summary.insert("file".into(), json!(file.display().to_string()));
    summary.insert("queries".into(), json!(queries.len()));
    if let Some(m) = catalog.search.model() {
        summary.insert(
            "model".into(),
            json!({"version": m.info.version, "path": m.path.display().to_string()}),
        );
    }
    for ranker in [Ranker::Bm25, Ranker::Hybrid, Ranker::Learned] {
        let name = ranker.name();
        let mut all = Vec::new();
        for q in &queries {
            let ranked: Vec<String> = match catalog.search.search_with(ranker, &graph, &q.query, 50)
            {
                Ok(results) => results.into_iter().map(|r| r.id).collect(),
                Err(_) => Vec::new(),
            };
            let m = QueryMetrics::compute(&ranked, &q.relevant);
            if verbose {
                println!(
                    "{}",
                    json!({"ranker": name, "id": q.id, "query": q.query, "ndcg@10": m.ndcg10, "recall@50": m.recall50, "mrr": m.mrr})
                );
            }
            all.push(m);
        }
        summary.insert(
            name.into(),
            json!({
                "ndcg@10": mean(all.iter().map(|m| m.ndcg10)),
                "recall@50": mean(all.iter().map(|m| m.recall50)),
                "mrr": mean(all.iter().map(|m| m.mrr)),
            }),
        );
    }
    catalog.close().await?;
    println!("{}", Value::Object(summary));
    Ok(())
}
