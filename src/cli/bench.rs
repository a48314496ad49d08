//! `aisle bench kg`: timings of the knowledge graph's hot queries (phrase resolution, concept
//! expansion) and of its build, at the catalog's size and at a synthetic multiple of it, printed
//! side by side in one run.

use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::TryStreamExt;
use serde_json::json;

use super::batch::{Catalog, CatalogArgs};
use crate::catalog::Product;
use crate::config::Settings;
use crate::graph::{self, KnowledgeGraph, curated};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Knowledge-graph build, phrase resolution and concept expansion timings.
    Kg(KgBenchArgs),
    /// Search latency (p50/p95) and throughput for BM25, hybrid and the learned pipeline.
    Search(SearchBenchArgs),
    /// Embedding model: one-query latency (uncached) and batch throughput.
    Embed(EmbedBenchArgs),
    /// The local LLM: prefill and decode speed on a fixed synthetic prompt, time to first token,
    /// and peak RSS (scripts/bench-llm.sh runs llama.cpp on the same prompt for the ratios).
    Llm(LlmBenchArgs),
    /// The model's quantized matmuls on the CPU (one decoded token, one prompt): candle's upstream
    /// loop against the tiled kernels of aisle's candle-core patch, in one run.
    Kernels(super::kernels::KernelBenchArgs),
    /// Chat turns: time to the `cards` event, to the first text and to the LLM's first sentence
    /// (p50/p95), templated replies and LLM replies in one run.
    Chat(super::chat::ChatBenchArgs),
    /// Agent-to-shopper delivery latency (p50/p95): both on one server instance, then on two
    /// instances relaying through Postgres LISTEN/NOTIFY, in one run.
    Handoff(super::handoff::HandoffBenchArgs),
}

#[derive(Args)]
pub struct LlmBenchArgs {
    /// Prompt length in tokens (bench/llm-prompt.txt, tokenized and repeated to this length).
    #[arg(long, default_value_t = 256)]
    prompt_tokens: usize,
    /// Tokens to generate (end-of-sequence is suppressed).
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// CPU threads (default: llm.threads, or every core when that is 0).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print only the JSON line (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Requests generating at once in each timed run (the engine batches them); time to first
    /// token is then reported per request (p50/p95) and decode speed for all of them together.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Also print the greedy reply to a fixed chat prompt (`greedy_text`), to compare builds
    /// (CPU vs CUDA) token for token.
    #[arg(long)]
    greedy_check: bool,
}

#[derive(Args)]
pub struct EmbedBenchArgs {
    /// JSON Lines with a "query" field per line.
    #[arg(long)]
    queries: std::path::PathBuf,
    /// Texts per batch for the throughput run.
    #[arg(long, default_value_t = 32)]
    batch: usize,
}

#[derive(Args)]
pub struct SearchBenchArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// JSON Lines with a "query" field per line (e.g. eval/queries/flipkart-train.jsonl).
    #[arg(long)]
    queries: std::path::PathBuf,
    /// Passes over the query list (the first is reported separately as cold).
    #[arg(long, default_value_t = 20)]
    passes: usize,
}

#[derive(Args)]
pub struct KgBenchArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Also measure a synthetic catalog of this many products (copies of the real ones).
    #[arg(long, default_value_t = 100_000)]
    scale_to: usize,
    /// Repetitions of each query.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
}

/// Shopper phrases in both languages, colloquial and precise.
const PHRASES: &[&str] = &[
    "red flats for my wife under 800 rupees",
    "男士袜子",
    "gift for a newborn",
    "保温杯",
    "analog wrist watch for men",
    "dog shampoo",
    "party wear dress for girls",
    "给宝宝的礼物",
    "cotton kurta for women",
    "不锈钢 保温瓶 500毫升",
];

pub async fn run(settings: Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    let args = match cmd {
        BenchCommand::Kg(args) => args,
        BenchCommand::Search(args) => return search(settings, args).await,
        BenchCommand::Embed(args) => return embed(settings, args),
        BenchCommand::Llm(args) => return llm(settings, args).await,
        BenchCommand::Kernels(args) => return super::kernels::bench(settings, args),
        BenchCommand::Chat(args) => return super::chat::bench(settings, args).await,
        BenchCommand::Handoff(args) => return super::handoff::bench(settings, args).await,
    };
    let catalog = Catalog::open(&settings, args.catalog.catalog.as_deref()).await?;
    let products: Result<Vec<Product>, _> = crate::catalog::repo::all_products(&catalog.db.pool)
        .try_collect()
        .await;
    catalog.close().await?;
    let products = products.context("loading products")?;
    let curated = curated::read_dir(&settings.graph.dir)?;
    let mut rows = Vec::new();
    let mut sizes = vec![products.len()];
    if args.scale_to > products.len() {
        sizes.push(args.scale_to);
    }
    for size in sizes {
        let synthetic = scaled(&products, size);
        let started = Instant::now();
        let g = graph::build(&curated, &synthetic, 0)?;
        let build_ms = started.elapsed().as_secs_f64() * 1e3;
        let (resolve_us, expand_us) = time_queries(&g, args.iterations);
        let row = json!({
            "products": size, "build_ms": build_ms, "resolve_us": resolve_us, "expand_and_reach_us": expand_us,
            "nodes": g.stats().nodes.values().sum::<usize>(), "edges": g.stats().edges.values().sum::<usize>(),
            "rss_mb": crate::telemetry::peak_rss_mb(),
        });
        eprintln!(
            "{size:>8} products: build {build_ms:>8.1} ms, resolve {resolve_us:>7.1} µs/phrase, expand+reach {expand_us:>8.1} µs/phrase"
        );
        rows.push(row);
    }
    println!(
        "{}",
        json!({"bench": "kg", "phrases": PHRASES.len(), "runs": rows})
    );
    Ok(())
}

/// CPU threads for an LLM benchmark: `--threads`, else `llm.threads`, else every core.
pub(super) fn cpu_threads(arg: Option<usize>, settings: &Settings) -> usize {
    arg.filter(|t| *t > 0)
        .or(Some(settings.llm.threads).filter(|t| *t > 0))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `n` products: the real ones, then copies with fresh ids.
fn scaled(products: &[Product], n: usize) -> Vec<Product> {
    (0..n)
        .filter_map(|i| {
            let base = products.get(i % products.len().max(1))?;
            let mut p = base.clone();
            if i >= products.len() {
                p.id = format!("{}-copy{}", base.id, i / products.len());
            }
            Some(p)
        })
        .collect()
}

/// Mean microseconds per phrase for resolution, and for expansion of every match plus the
/// products it reaches (top 50).
fn time_queries(g: &KnowledgeGraph, iterations: usize) -> (f64, f64) {
    let iterations = iterations.max(1);
    let started = Instant::now();
    let mut matched = 0usize;
    for _ in 0..iterations {
        for p in PHRASES {
            matched += g.resolve(p).len();
        }
    }
    let resolve = started.elapsed().as_secs_f64() * 1e6 / (iterations * PHRASES.len()) as f64;
    let started = Instant::now();
    for _ in 0..iterations {
        for p in PHRASES {
            let expansions: Vec<_> = g
                .resolve(p)
                .iter()
                .filter_map(|m| m.nodes.first())
                .flat_map(|n| g.expand(&n.id))
                .collect();
            matched += g.products_reached(&expansions, 50).len();
        }
    }
    let expand = started.elapsed().as_secs_f64() * 1e6 / (iterations * PHRASES.len()) as f64;
    std::hint::black_box(matched);
    (resolve, expand)
}

/// Latency percentiles in milliseconds.
pub(super) fn percentiles(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        ms.get(((ms.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let total: f64 = ms.iter().sum();
    json!({"n": ms.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": at(1.0),
           "qps": if total > 0.0 { ms.len() as f64 * 1e3 / total } else { 0.0 }})
}

fn read_queries(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let queries: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("query").and_then(|q| q.as_str()).map(str::to_owned))
        .collect();
    anyhow::ensure!(!queries.is_empty(), "{} has no queries", path.display());
    Ok(queries)
}

fn embed(settings: Settings, args: EmbedBenchArgs) -> anyhow::Result<()> {
    let queries = read_queries(&args.queries)?;
    let embedder = crate::embed::Embedder::load(&settings.embed.model_dir)?;
    let mut one = Vec::new();
    for q in &queries {
        let started = Instant::now();
        std::hint::black_box(embedder.embed_uncached(&[q.as_str()])?);
        one.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let started = Instant::now();
    for chunk in refs.chunks(args.batch.max(1)) {
        std::hint::black_box(embedder.embed_uncached(chunk)?);
    }
    let per_sec = queries.len() as f64 / started.elapsed().as_secs_f64();
    let single = percentiles(one);
    eprintln!(
        "one query: p50 {:.2} ms p95 {:.2} ms | batches of {}: {per_sec:.0} texts/s",
        single["p50_ms"].as_f64().unwrap_or(0.0),
        single["p95_ms"].as_f64().unwrap_or(0.0),
        args.batch
    );
    println!(
        "{}",
        json!({"single": single, "batch": args.batch, "texts_per_sec": per_sec})
    );
    Ok(())
}

async fn search(settings: Settings, args: SearchBenchArgs) -> anyhow::Result<()> {
    use crate::ranking::Ranker;
    let queries = read_queries(&args.queries)?;
    let catalog = Catalog::open(&settings, args.catalog.catalog.as_deref()).await?;
    let graph = catalog.graph.current();
    let mut out = serde_json::Map::new();
    out.insert("products".into(), json!(catalog.search.len()));
    out.insert("queries".into(), json!(queries.len()));
    out.insert("vectors".into(), json!(catalog.search.vectors()));
    for ranker in [Ranker::Bm25, Ranker::Hybrid, Ranker::Learned] {
        let name = ranker.name();
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for pass in 0..args.passes.max(2) {
            for q in &queries {
                let started = Instant::now();
                let results = catalog.search.search_with(ranker, &graph, q, 10);
                std::hint::black_box(results.map(|r| r.len()).unwrap_or(0));
                let ms = started.elapsed().as_secs_f64() * 1e3;
                if pass == 0 {
                    cold.push(ms)
                } else {
                    warm.push(ms)
                }
            }
        }
        let (c, w) = (percentiles(cold), percentiles(warm));
        eprintln!(
            "{name:>7}: cold p50 {:.2} ms p95 {:.2} ms | warm p50 {:.2} ms p95 {:.2} ms, {:.0} queries/s (one thread)",
            c["p50_ms"].as_f64().unwrap_or(0.0),
            c["p95_ms"].as_f64().unwrap_or(0.0),
            w["p50_ms"].as_f64().unwrap_or(0.0),
            w["p95_ms"].as_f64().unwrap_or(0.0),
            w["qps"].as_f64().unwrap_or(0.0)
        );
        out.insert(name.into(), json!({"cold": c, "warm": w}));
    }
    catalog.close().await?;
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// The synthetic prompt text both benchmarks tokenize (scripts/bench_llamacpp.py reads the same file).
const LLM_PROMPT: &str = include_str!("../../bench/llm-prompt.txt");

/// The greedy reply to a fixed chat prompt: the same weights must give the same tokens on any
/// device (up to floating-point ties).
async fn greedy_text(backend: &crate::llm::LocalBackend) -> anyhow::Result<String> {
    use crate::llm::{Backend, ChatMessage, GenerateRequest, Role};
    let request = GenerateRequest::new(vec![
        ChatMessage::new(Role::System, "You are a helpful shopping assistant."),
        ChatMessage::new(
            Role::User,
            "Suggest a gift for a friend who likes cooking, in one sentence.",
        ),
    ])
    .max_tokens(32);
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let completion = backend.generate(request, tx).await?;
    let _ = drain.await;
    Ok(completion.text)
}

async fn llm(settings: Settings, args: LlmBenchArgs) -> anyhow::Result<()> {
    use crate::llm::LocalBackend;
    anyhow::ensure!(
        args.prompt_tokens > 0 && args.gen_tokens > 1,
        "--prompt-tokens must be positive and --gen-tokens at least 2"
    );
    let threads = cpu_threads(args.threads, &settings);
    let mut llm_settings = settings.llm.clone();
    llm_settings.threads = threads;
    let concurrency = args.concurrency.max(1);
    llm_settings.max_concurrent = concurrency;
    let model = std::fs::canonicalize(&llm_settings.model)
        .with_context(|| format!("{} (run scripts/models.sh)", llm_settings.model.display()))?;
    llm_settings.model = model.clone();
    let started = Instant::now();
    let backend = LocalBackend::load(&llm_settings).await?;
    eprintln!(
        "llm: loaded {} in {:.1} s with {threads} threads ({} tensors rewritten as Q8_0 for the CPU, llm.cpu_weights = {:?}, tiled CPU kernels: {})",
        model.display(),
        started.elapsed().as_secs_f64(),
        backend.rewritten_tensors(),
        llm_settings.cpu_weights,
        crate::llm::transcode::tiled_kernels().unwrap_or("off"),
    );
    let pattern = backend.tokenize(LLM_PROMPT).await?;
    anyhow::ensure!(
        !pattern.is_empty(),
        "the benchmark prompt tokenizes to nothing"
    );
    let prompt: Vec<u32> = pattern
        .iter()
        .copied()
        .cycle()
        .take(args.prompt_tokens)
        .collect();
    // Warm-up: first-call allocations and kernel selection.
    backend
        .complete_tokens(prompt[..prompt.len().min(16)].to_vec(), 4)
        .await?;
    let mut runs = Vec::new();
    let mut ttfts = Vec::new();
    for run in 0..args.runs.max(1) {
        let started = Instant::now();
        let all = futures::future::join_all(
            (0..concurrency).map(|_| backend.complete_tokens(prompt.clone(), args.gen_tokens)),
        )
        .await;
        let wall = started.elapsed().as_secs_f64();
        let mut first = Vec::new();
        let mut generated = 0usize;
        for t in all {
            let t = t?;
            first.push(t.first_token.unwrap_or(t.last_token).as_secs_f64());
            generated += if t.completion_tokens > 0 {
                t.completion_tokens
            } else {
                t.chunks
            };
        }
        first.sort_by(f64::total_cmp);
        // Prefill: every prompt's tokens by the time the last first token arrived; decode: the
        // tokens after each first one, over the time after the first first token.
        let last_first = first.last().copied().unwrap_or(wall).max(1e-9);
        let prefill = (args.prompt_tokens * concurrency) as f64 / last_first;
        let dec = generated.saturating_sub(concurrency) as f64 / (wall - first[0]).max(1e-9);
        eprintln!(
            "run {}: ttft {:.1} ms (first of {concurrency}), prefill {prefill:.1} tok/s, decode {dec:.1} tok/s ({generated} tokens in {:.2} s)",
            run + 1,
            first[0] * 1e3,
            wall
        );
        runs.push((first[first.len() / 2], prefill, dec));
        ttfts.extend(first);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ttft = median(runs.iter().map(|r| r.0).collect());
    let prefill = median(runs.iter().map(|r| r.1).collect());
    let decode = median(runs.iter().map(|r| r.2).collect());
    ttfts.sort_by(f64::total_cmp);
    let p95 = ttfts[((ttfts.len() as f64 - 1.0) * 0.95).round() as usize];
    let greedy = if args.greedy_check {
        Some(greedy_text(&backend).await?)
    } else {
        None
    };
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let line = json!({
        "model": model.display().to_string(),
        "threads": threads,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "prefill_tok_s": round(prefill),
        "decode_tok_s": round(decode),
        "concurrency": concurrency,
        "ttft_ms": round(ttft * 1e3),
        "ttft_p95_ms": round(p95 * 1e3),
        "greedy_text": greedy,
        "rss_mb": round(crate::telemetry::peak_rss_mb()),
        "cpu_rewritten_tensors": backend.rewritten_tensors(),
        "cpu_kernels": crate::llm::transcode::tiled_kernels(),
    });
    if !args.json {
        eprintln!(
            "llm: prefill {prefill:.1} tok/s, decode {decode:.1} tok/s, ttft {:.1} ms, peak RSS {:.0} MB",
            ttft * 1e3,
            crate::telemetry::peak_rss_mb()
        );
    }
    println!("{line}");
    Ok(())
}
