//! `aisle train ranker`: builds listwise training data from labelled query files (and logged
//! feedback), trains the ranker, and writes the next version into the model folder, where a
//! running server picks it up.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::batch::{Catalog, CatalogArgs};
use super::eval::read_labelled;
use crate::config::Settings;
use crate::ranking::learned::{self, ModelInfo};
use crate::ranking::train::{ListExample, TrainOptions, train};
use crate::ranking::{features::FEATURES, feedback};

#[derive(Subcommand)]
pub enum TrainCommand {
    /// Train the learned ranker; prints a JSON summary as the last line.
    Ranker(RankerArgs),
    /// Train the intent classifier on our labelled messages and the mapped public sets; prints
    /// a JSON summary as the last line.
    Intents(super::intents::TrainIntentsArgs),
}

#[derive(Args)]
pub struct RankerArgs {
    /// Labelled JSON Lines files (`{"id","query","relevant":{"<product id>": grade}}`).
    #[arg(long = "queries", required_unless_present = "feedback")]
    queries: Vec<PathBuf>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Also load the demo store into the (temporary) catalog, for demo-store query files.
    #[arg(long)]
    with_demo: bool,
    /// Also learn from logged feedback (clicks, add-to-cart, thumbs) in the database, with
    /// position-bias correction.
    #[arg(long)]
    feedback: bool,
    /// Where to write the model (default: ranking.model_dir).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = TrainOptions::default().max_epochs)]
    epochs: usize,
    #[arg(long, default_value_t = TrainOptions::default().learning_rate)]
    learning_rate: f64,
}

/// Candidates per list kept for training (the best by the fused score, plus every relevant one).
const LIST_CANDIDATES: usize = 400;

pub async fn run(settings: Settings, cmd: TrainCommand) -> anyhow::Result<()> {
    let args = match cmd {
        TrainCommand::Ranker(args) => args,
        TrainCommand::Intents(args) => return super::intents::train(settings, args).await,
    };
    let mut labelled = Vec::new();
    for file in &args.queries {
        labelled.extend(read_labelled(file)?);
    }
    let catalog =
        Catalog::open_with(&settings, args.catalog.catalog.as_deref(), args.with_demo).await?;
    let result = build_and_train(&settings, &catalog, &args, labelled).await;
    catalog.close().await?;
    let (path, summary) = result?;
    eprintln!("ranker written to {}", path.display());
    println!("{summary}");
    Ok(())
}

async fn build_and_train(
    settings: &Settings,
    catalog: &Catalog,
    args: &RankerArgs,
    mut labelled: Vec<super::eval::Labelled>,
) -> anyhow::Result<(PathBuf, serde_json::Value)> {
    if catalog.search.embedder().is_none() {
        anyhow::bail!(
            "the embedding model is missing (run scripts/models.sh): the ranker must be trained with the features it will see"
        );
    }
    let from_files = labelled.len();
    if args.feedback {
        for (q, relevant) in feedback::labels(&catalog.db.pool).await? {
            labelled.push(super::eval::Labelled {
                id: format!("feedback:{q}"),
                query: q,
                relevant,
            });
        }
    }
    let graph = catalog.graph.current();
    let mut lists = Vec::new();
    let mut skipped = 0;
    for q in &labelled {
        let mut candidates = match catalog.search.candidates(&graph, &q.query) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipping {} ({:?}): {e}", q.id, q.query);
                skipped += 1;
                continue;
            }
        };
        // Keep the relevant ones and the strongest others.
        candidates.sort_by(|a, b| {
            let key = |c: &crate::ranking::pipeline::Candidate| {
                (
                    q.relevant.contains_key(&c.id),
                    c.retrieved.bm25 + c.retrieved.graph + c.retrieved.dense,
                )
            };
            let (ka, kb) = (key(a), key(b));
            kb.0.cmp(&ka.0).then(kb.1.total_cmp(&ka.1))
        });
        candidates.truncate(LIST_CANDIDATES);
        let list = ListExample {
            id: q.id.clone(),
            grades: candidates
                .iter()
                .map(|c| q.relevant.get(&c.id).copied().unwrap_or(0))
                .collect(),
            features: candidates.iter().map(|c| c.features).collect(),
            all_grades: q.relevant.values().copied().collect(),
        };
        if list.has_relevant() {
            lists.push(list);
        } else {
            skipped += 1;
        }
    }
    eprintln!(
        "training on {} queries ({} from files, {} from feedback; {skipped} without a relevant candidate skipped)",
        lists.len(),
        from_files,
        labelled.len() - from_files
    );
    let opts = TrainOptions {
        max_epochs: args.epochs.max(1),
        learning_rate: args.learning_rate,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let lists_for_training = lists.clone();
    let (varmap, mlp, report) = tokio::task::spawn_blocking(move || {
        train(&lists_for_training, &opts, |run, epoch, loss, ndcg| {
            if epoch % 25 == 0 {
                eprintln!("run {run} epoch {epoch}: loss {loss:.4}, validation nDCG@10 {ndcg:.4}");
            }
        })
    })
    .await??;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| settings.ranking.model_dir.clone());
    let version = learned::versions(&dir).first().map_or(1, |(v, _)| v + 1);
    let training = json!({
        "report": report,
        "files": args.queries.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "feedback": args.feedback,
        "seconds": started.elapsed().as_secs_f32(),
    });
    let info = ModelInfo {
        version,
        features: FEATURES.iter().map(|s| (*s).to_owned()).collect(),
        trained_at: chrono::Utc::now().to_rfc3339(),
        training: training.clone(),
    };
    let path = learned::save(&dir, &varmap, &mlp, &info)
        .with_context(|| format!("writing the model to {}", dir.display()))?;
    Ok((
        path.clone(),
        json!({"version": version, "path": path.display().to_string(), "training": training}),
    ))
}
