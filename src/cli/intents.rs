//! Dialogue understanding on the command line: `aisle batch parse`, `aisle train intents` and
//! `aisle eval intents`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};

use super::batch::{Catalog, CatalogArgs, error_line};
use crate::config::Settings;
use crate::graph::KnowledgeGraph;
use crate::intent::classifier::{ClassifierInfo, Example, IntentClassifier, TrainOptions};
use crate::intent::data::{self, Labelled, Split};
use crate::intent::{Intent, IntentParser, LlmMode, ParsePath, Slots, Turn};
use crate::llm::{LlmHandle, LlmMetrics};

/// Loads the language model when the mode may use it.
async fn llm_for(settings: &Settings, mode: LlmMode) -> anyhow::Result<Option<LlmHandle>> {
    if mode == LlmMode::Never {
        return Ok(None);
    }
    let handle = LlmHandle::from_settings(&settings.llm, LlmMetrics::default())
        .await
        .context("loading the language model (use --llm never to parse without it)")?;
    Ok(Some(handle))
}

/// The intent parser over an open catalog.
pub async fn parser(
    settings: &Settings,
    catalog: &Catalog,
    mode: Option<LlmMode>,
) -> anyhow::Result<IntentParser> {
    let mode = mode.unwrap_or(settings.intent.llm);
    let llm = llm_for(settings, mode).await?;
    let embedder = catalog.search.embedder().cloned();
    Ok(IntentParser::from_settings(
        &settings.intent,
        embedder,
        llm,
    )?)
}

#[derive(Deserialize)]
struct ParseLine {
    id: Value,
    #[serde(default)]
    history: Vec<Turn>,
    text: String,
}

/// One `aisle batch parse` answer.
pub async fn parse_line(
    parser: &IntentParser,
    graph: &KnowledgeGraph,
    line: &str,
    mode: Option<LlmMode>,
) -> Value {
    let input: ParseLine = match serde_json::from_str(line) {
        Ok(i) => i,
        Err(e) => {
            let id = error_line(line, "")["id"].clone();
            let mut v = unreadable(format!("invalid input line: {e}"));
            v["id"] = id;
            return v;
        }
    };
    match parser.parse(graph, &input.history, &input.text, mode).await {
        Ok(p) => json!({"id": input.id, "intent": p.intent, "slots": p.slots}),
        Err(e) => {
            json!({"id": input.id, "intent": Intent::OutOfScope, "slots": {}, "error": e.to_string()})
        }
    }
}

/// The answer to a line that cannot be read: no understanding, and why.
pub fn unreadable(error: String) -> Value {
    json!({"id": null, "intent": Intent::OutOfScope, "slots": {}, "error": error})
}

/// Where labelled rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceFormat {
    /// Our JSON Lines (`{"id","history","text","expected":{"intent","slots"}}`).
    Jsonl,
    /// The Bitext customer-support CSV, mapped onto our intents (held-out fifth only).
    Bitext,
    /// CLINC150's data_full.json, mapped (its test split).
    Clinc,
}

fn read_source(path: &Path, format: SourceFormat, split: Split) -> anyhow::Result<Vec<Labelled>> {
    anyhow::ensure!(
        path.is_file(),
        "{} is not a file (give the data file itself)",
        path.display()
    );
    let rows = match format {
        SourceFormat::Jsonl => data::read_jsonl(path)?,
        SourceFormat::Bitext => data::read_bitext(path, split, usize::MAX)?,
        SourceFormat::Clinc => data::read_clinc(path, split, usize::MAX)?,
    };
    anyhow::ensure!(
        !rows.is_empty(),
        "{}: no labelled rows read (is --format right?)",
        path.display()
    );
    Ok(rows)
}

#[derive(Args)]
pub struct TrainIntentsArgs {
    /// Our labelled JSON Lines files.
    #[arg(long = "data", default_value = "eval/intents/train.jsonl")]
    data: Vec<PathBuf>,
    /// The Bitext customer-support CSV (its training four-fifths are used); "" to skip.
    #[arg(
        long,
        default_value = "../shared/data/bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset_2023-08.csv"
    )]
    bitext: String,
    /// CLINC150 data_full.json (train split); "" to skip.
    #[arg(long, default_value = "../shared/data/clinc150/data_full.json")]
    clinc: String,
    /// Rows per mapped public intent.
    #[arg(long, default_value_t = 120)]
    per_intent: usize,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Where to write the model (default: intent.model_dir).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = TrainOptions::default().epochs)]
    epochs: usize,
    #[arg(long, default_value_t = TrainOptions::default().learning_rate)]
    learning_rate: f64,
}

pub async fn train(settings: Settings, args: TrainIntentsArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for file in &args.data {
        rows.extend(data::read_jsonl(file)?);
    }
    let own = rows.len();
    if !args.bitext.is_empty() {
        rows.extend(data::read_bitext(
            Path::new(&args.bitext),
            Split::Train,
            args.per_intent,
        )?);
    }
    if !args.clinc.is_empty() {
        // Three per off-topic CLINC intent, sixty out-of-scope rows.
        rows.extend(data::read_clinc(Path::new(&args.clinc), Split::Train, 3)?);
    }
    eprintln!("intents: {} labelled messages ({own} ours)", rows.len());
    let catalog = Catalog::open_graph(&settings, args.catalog.catalog.as_deref(), true).await?;
    let result = train_on(&settings, &catalog, &args, &rows);
    catalog.close().await?;
    let (path, summary) = result?;
    eprintln!("intents: model written to {}", path.display());
    println!("{summary}");
    Ok(())
}

fn train_on(
    settings: &Settings,
    catalog: &Catalog,
    args: &TrainIntentsArgs,
    rows: &[Labelled],
) -> anyhow::Result<(PathBuf, Value)> {
    let embedder = catalog
        .search
        .embedder()
        .cloned()
        .context("training intents needs the embedding model (run scripts/models.sh)")?;
    let graph = catalog.graph.current();
    let parser = IntentParser::new(
        Some(Arc::clone(&embedder)),
        None,
        None,
        settings.intent.clone(),
    );
    let progress = indicatif::ProgressBar::new(rows.len() as u64).with_message("embedding");
    let mut examples = Vec::with_capacity(rows.len());
    for row in rows {
        progress.inc(1);
        let Some(label) = Intent::parse(&row.expected.intent) else {
            continue;
        };
        let state = parser.state_of(&graph, &row.history)?;
        let stated = crate::intent::slots::extract(&graph, &row.text);
        let ctx = crate::intent::parser::context(&state);
        examples.push(Example {
            input: parser.input(&row.text, &stated, ctx)?,
            label,
            key: format!("{}:{}", row.id, row.text),
        });
    }
    progress.finish_and_clear();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| settings.intent.model_dir.clone());
    let version = crate::modelfile::versions(&out, "intent")
        .first()
        .map_or(1, |(v, _)| v + 1);
    let info = ClassifierInfo {
        version,
        embedding_model: embedder.name().to_owned(),
        embedding_dim: embedder.dim(),
        cues: crate::intent::cues::names(),
        intents: Intent::ALL.iter().map(|i| i.as_str().to_owned()).collect(),
        trained_at: chrono::Utc::now().to_rfc3339(),
        training: Value::Null,
    };
    let opts = TrainOptions {
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        ..TrainOptions::default()
    };
    let started = Instant::now();
    let (mut model, varmap, report) = IntentClassifier::train(&examples, &opts, info)?;
    let mut training = serde_json::to_value(&report)?;
    training["data"] = json!(
        args.data
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    );
    training["bitext"] = json!(args.bitext);
    training["clinc"] = json!(args.clinc);
    training["seconds"] = json!(started.elapsed().as_secs_f64());
    model.info.training = training.clone();
    let path = model.save(&out, &varmap)?;
    Ok((
        path.clone(),
        json!({"model": path.display().to_string(), "version": version, "training": training}),
    ))
}

#[derive(Args)]
pub struct EvalIntentsArgs {
    /// The labelled file.
    file: PathBuf,
    #[arg(long, value_enum, default_value_t = SourceFormat::Jsonl)]
    format: SourceFormat,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Paths to measure: the fast path alone, the LLM path on every message, the configured
    /// mix (LLM when unsure), or all three in one run.
    #[arg(long, value_enum, default_value_t = EvalPaths::All)]
    paths: EvalPaths,
    /// Evaluate at most this many rows (spread evenly over the file).
    #[arg(long)]
    limit: Option<usize>,
    /// Print each row's result.
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalPaths {
    Fast,
    Llm,
    Auto,
    All,
}

/// Slot counts for precision and recall.
#[derive(Default)]
struct SlotCounts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl SlotCounts {
    fn add(&mut self, predicted: &Slots, expected: &Slots) {
        let p = predicted.pairs();
        let e = expected.pairs();
        let tp = p.iter().filter(|x| e.contains(x)).count();
        self.tp += tp;
        self.fp += p.len() - tp;
        self.fn_ += e.len() - tp;
    }

    fn f1(&self) -> (f64, f64, f64) {
        let p = if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        };
        let r = if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        };
        let f = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        (p, r, f)
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub async fn eval(settings: Settings, args: EvalIntentsArgs) -> anyhow::Result<()> {
    let mut rows = read_source(&args.file, args.format, Split::Heldout)?;
    if let Some(limit) = args.limit.filter(|l| *l > 0 && *l < rows.len()) {
        let step = rows.len() as f64 / limit as f64;
        rows = (0..limit)
            .map(|i| rows[(i as f64 * step) as usize].clone())
            .collect();
    }
    let modes: Vec<LlmMode> = match args.paths {
        EvalPaths::Fast => vec![LlmMode::Never],
        EvalPaths::Llm => vec![LlmMode::Always],
        EvalPaths::Auto => vec![LlmMode::Auto],
        EvalPaths::All => vec![LlmMode::Never, LlmMode::Always, LlmMode::Auto],
    };
    let catalog = Catalog::open_graph(&settings, args.catalog.catalog.as_deref(), true).await?;
    let uses_llm = modes.iter().any(|m| *m != LlmMode::Never);
    let result = async {
        let parser = parser(&settings, &catalog, Some(if uses_llm { LlmMode::Auto } else { LlmMode::Never })).await?;
        let graph = catalog.graph.current();
        let mut summary = serde_json::Map::new();
        summary.insert("file".into(), json!(args.file.display().to_string()));
        summary.insert("rows".into(), json!(rows.len()));
        if let Some(c) = parser.classifier() {
            summary.insert("classifier".into(), json!({"version": c.info.version, "path": c.path.display().to_string()}));
        }
        for mode in modes {
            let name = match mode {
                LlmMode::Never => "fast",
                LlmMode::Always => "llm",
                LlmMode::Auto => "auto",
            };
            let mut correct = 0usize;
            let mut slots = SlotCounts::default();
            let mut slot_rows = 0usize;
            let mut latencies: HashMap<&str, Vec<Duration>> = HashMap::new();
            let mut per_intent: HashMap<String, (usize, usize)> = HashMap::new();
            let mut llm_errors = 0usize;
            for row in &rows {
                let started = Instant::now();
                let parse = parser.parse(&graph, &row.history, &row.text, Some(mode)).await;
                let took = started.elapsed();
                let (intent, predicted, path, note) = match parse {
                    Ok(p) => (p.intent, p.slots, p.path, p.llm_note),
                    Err(e) => (Intent::OutOfScope, Slots::default(), ParsePath::Fast, Some(e.to_string())),
                };
                if note.is_some() && mode != LlmMode::Never {
                    llm_errors += 1;
                }
                latencies
                    .entry(if path == ParsePath::Llm { "llm" } else { "fast" })
                    .or_default()
                    .push(took);
                let ok = intent.as_str() == row.expected.intent;
                correct += usize::from(ok);
                let e = per_intent.entry(row.expected.intent.clone()).or_default();
                e.0 += usize::from(ok);
                e.1 += 1;
                if let Some(expected) = &row.expected.slots {
                    slots.add(&predicted, expected);
                    slot_rows += 1;
                }
                if args.verbose {
                    println!(
                        "{}",
                        json!({"path": name, "id": row.id, "text": row.text, "expected": row.expected.intent,
                               "intent": intent, "slots": predicted, "expected_slots": row.expected.slots,
                               "ok": ok, "note": note, "ms": took.as_secs_f64() * 1000.0})
                    );
                }
            }
            let (p, r, f1) = slots.f1();
            let mut lat = serde_json::Map::new();
            for (path, mut l) in latencies {
                l.sort();
                lat.insert(
                    path.into(),
                    json!({"n": l.len(), "p50_ms": percentile(&l, 0.5), "p95_ms": percentile(&l, 0.95)}),
                );
            }
            let mut by_intent: Vec<(String, (usize, usize))> = per_intent.into_iter().collect();
            by_intent.sort();
            summary.insert(
                name.into(),
                json!({
                    "intent_accuracy": correct as f64 / rows.len().max(1) as f64,
                    "slot_precision": p, "slot_recall": r, "slot_f1": f1,
                    "slot_rows": slot_rows,
                    "llm_fallbacks": llm_errors,
                    "latency": lat,
                    "per_intent": by_intent.into_iter().map(|(k, (c, n))| (k, json!(format!("{c}/{n}")))).collect::<serde_json::Map<_, _>>(),
                }),
            );
        }
        anyhow::Ok(Value::Object(summary))
    }
    .await;
    catalog.close().await?;
    println!("{}", result?);
    Ok(())
}
