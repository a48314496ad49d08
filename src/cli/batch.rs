//! `aisle batch KIND [--catalog PATH]`: JSON Lines in on stdin, one JSON line out per line in, in
//! order. With `--catalog`, a throwaway database is created, the Flipkart CSV imported, and the
//! database dropped at the end; without it the configured catalog is used.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::catalog::import::{Format, ImportOptions, import_file};
use crate::config::Settings;
use crate::db::Database;
use crate::graph::GraphService;
use crate::ranking::{Ranker, SearchService};

#[derive(Subcommand)]
pub enum BatchCommand {
    /// Search: in `{"id","query","limit"?}`, out `{"id","results":[{"id","score"}]}` best first.
    Search {
        #[command(flatten)]
        catalog: CatalogArgs,
        /// Ranking stage (bm25 is the baseline).
        #[arg(long, value_enum, default_value_t = Ranker::Learned)]
        ranker: Ranker,
    },
    /// Dialogue understanding: in `{"id","history":[{"role","text"}],"text"}`, out
    /// `{"id","intent","slots"}`.
    Parse {
        #[command(flatten)]
        catalog: CatalogArgs,
        /// When the LLM path runs (default: intent.llm from the settings).
        #[arg(long, value_enum)]
        llm: Option<crate::intent::LlmMode>,
    },
    /// Conversations: in `{"id","turns":["..."]}` (one fresh conversation per line), out
    /// `{"id","replies":[{"text","kind","cards","escalated","intent"}]}`.
    Chat(super::chat::ChatArgs),
}

#[derive(Args)]
pub struct CatalogArgs {
    /// A Flipkart CSV to answer from, loaded into a temporary database.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1_000;

/// An open catalog with its search index and knowledge graph; `close` drops a temporary database.
pub struct Catalog {
    pub db: Database,
    pub search: SearchService,
    pub graph: GraphService,
}

impl Catalog {
    /// Opens the configured catalog, or a temporary one loaded from the Flipkart CSV at `path`.
    pub async fn open(settings: &Settings, path: Option<&Path>) -> anyhow::Result<Self> {
        Self::open_with(settings, path, false).await
    }

    /// As [`Catalog::open`]; with `with_demo` the demo store is loaded into the temporary
    /// database too (ignored for the configured catalog).
    pub async fn open_with(
        settings: &Settings,
        path: Option<&Path>,
        with_demo: bool,
    ) -> anyhow::Result<Self> {
        Self::open_inner(settings, path, with_demo, true).await
    }

    /// The catalog and its knowledge graph without the search index (dialogue understanding
    /// needs the graph only, and indexing embeds every product).
    pub async fn open_graph(
        settings: &Settings,
        path: Option<&Path>,
        with_demo: bool,
    ) -> anyhow::Result<Self> {
        Self::open_inner(settings, path, with_demo, false).await
    }

    async fn open_inner(
        settings: &Settings,
        path: Option<&Path>,
        with_demo: bool,
        index: bool,
    ) -> anyhow::Result<Self> {
        let db = match path {
            Some(path) => {
                if !path.is_file() {
                    anyhow::bail!("--catalog {} is not a readable file", path.display());
                }
                let db = Database::open_temporary(settings)
                    .await
                    .context("creating a temporary database")?;
                let options = ImportOptions {
                    batch_rows: settings.catalog.import_batch_rows,
                    progress: true,
                };
                let report = import_file(&db.pool, Format::Flipkart, path, &options, |r| {
                    eprintln!(
                        "catalog row {} (line {}) rejected: {}",
                        r.row, r.line, r.reason
                    );
                })
                .await;
                match report {
                    Ok(r) => eprintln!(
                        "catalog: {} products loaded from {}",
                        r.counts.inserted + r.counts.updated,
                        path.display()
                    ),
                    Err(e) => {
                        db.close().await?;
                        return Err(e).context("importing the catalog");
                    }
                }
                if with_demo {
                    let seeded =
                        crate::catalog::demo::seed(&db.pool, &settings.catalog.demo_dir, &options)
                            .await;
                    if let Err(e) = seeded {
                        db.close().await?;
                        return Err(e).context("loading the demo store");
                    }
                }
                db
            }
            None => Database::open(settings)
                .await
                .context("opening the database")?,
        };
        let search = SearchService::from_settings(settings)?.with_progress();
        let graph = GraphService::new();
        let built = async {
            if index {
                search
                    .refresh(&db.pool)
                    .await
                    .context("building the search index")?;
            }
            graph
                .seed_if_empty(&db.pool, &settings.graph.dir)
                .await
                .context("loading the curated graph")?;
            graph
                .refresh(&db.pool)
                .await
                .context("building the knowledge graph")
        }
        .await;
        if let Err(e) = built {
            db.close().await?;
            return Err(e);
        }
        Ok(Self { db, search, graph })
    }

    pub async fn close(self) -> anyhow::Result<()> {
        self.db.close().await.context("closing the database")
    }
}

pub async fn run(settings: Settings, cmd: BatchCommand) -> anyhow::Result<()> {
    match cmd {
        BatchCommand::Search { catalog, ranker } => {
            let catalog = Catalog::open(&settings, catalog.catalog.as_deref()).await?;
            let graph = catalog.graph.current();
            let result = answer_lines(
                async |line: &str| search_line(&catalog.search, ranker, &graph, line),
                |error| json!({"id": null, "results": [], "error": error}),
            )
            .await;
            catalog.close().await?;
            result
        }
        BatchCommand::Parse { catalog, llm } => {
            let catalog = Catalog::open_graph(&settings, catalog.catalog.as_deref(), false).await?;
            let parser = super::intents::parser(&settings, &catalog, llm).await;
            let result = match parser {
                Ok(parser) => {
                    let graph = catalog.graph.current();
                    answer_lines(
                        async |line: &str| {
                            super::intents::parse_line(&parser, &graph, line, llm).await
                        },
                        super::intents::unreadable,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            catalog.close().await?;
            result
        }
        BatchCommand::Chat(args) => super::chat::batch(settings, args).await,
    }
}

#[derive(Deserialize)]
struct SearchLine {
    id: Value,
    query: String,
    limit: Option<usize>,
}

fn search_line(
    search: &SearchService,
    ranker: Ranker,
    graph: &crate::graph::KnowledgeGraph,
    line: &str,
) -> Value {
    let input: SearchLine = match serde_json::from_str(line) {
        Ok(i) => i,
        Err(e) => return error_line(line, &format!("invalid input line: {e}")),
    };
    let limit = input.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    match search.search_with(ranker, graph, &input.query, limit) {
        Ok(results) => json!({
            "id": input.id,
            "results": results.iter().map(|r| json!({"id": r.id, "score": r.score})).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"id": input.id, "results": [], "error": e.to_string()}),
    }
}

/// An output line for an input that could not be understood: its id if one can be read.
pub(super) fn error_line(line: &str, message: &str) -> Value {
    let id = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Value::Null);
    json!({"id": id, "results": [], "error": message})
}

/// Reads stdin line by line (invalid UTF-8 and blank lines included: each gets an answer, blank
/// lines excepted) and writes `answer(line)` for each.
pub(super) async fn answer_lines(
    mut answer: impl AsyncFnMut(&str) -> Value,
    unreadable: impl Fn(String) -> Value,
) -> anyhow::Result<()> {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input
            .read_until(b'\n', &mut buf)
            .await
            .context("reading stdin")?
            == 0
        {
            break;
        }
        let value = match std::str::from_utf8(&buf) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => answer(line.trim()).await,
            Err(e) => unreadable(format!(
                "input line is not valid UTF-8 (byte {})",
                e.valid_up_to()
            )),
        };
        let mut text = serde_json::to_string(&value)?;
        text.push('\n');
        out.write_all(text.as_bytes())
            .await
            .context("writing stdout")?;
    }
    out.flush().await.context("writing stdout")?;
    Ok(())
}
