//! `aisle bench kernels`: the quantized matmuls of the configured GGUF's transformer on the CPU,
//! with candle's upstream loop and with the tiled kernels of aisle's candle-core patch
//! (patches/README.md), in one run on the same weights. One "forward" is every 2-D quantized
//! weight of the `blk.*` layers applied to `m` activation rows, plus the output head for one row
//! (the engine computes logits for the last position only): `m = 1` is one decoded token,
//! `m = --prompt-tokens` a prompt's prefill.

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use anyhow::Context;
use candle_core::quantized::gguf_file;
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{Device, Module, Tensor};
use clap::Args;
use serde_json::json;

use crate::config::Settings;
use crate::llm::transcode;

#[derive(Args)]
pub struct KernelBenchArgs {
    /// Activation rows of the prefill case (the decode case is always 1).
    #[arg(long, default_value_t = 256)]
    prompt_tokens: usize,
    /// CPU threads (default: llm.threads, or every core when that is 0).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed forwards per case; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
}

/// One weight of the model, ready to multiply.
struct Weight {
    matmul: QMatMul,
    k: usize,
    head: bool,
}

fn load_weights(path: &std::path::Path) -> anyhow::Result<(Vec<Weight>, Vec<String>)> {
    let mut reader =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let content = gguf_file::Content::read(&mut reader)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let head_name = if content.tensor_infos.contains_key("output.weight") {
        "output.weight"
    } else {
        "token_embd.weight" // tied embeddings (SmolLM2)
    };
    let mut weights = Vec::new();
    let mut types = std::collections::BTreeSet::new();
    for name in names {
        let info = &content.tensor_infos[name];
        let quantized = !matches!(
            info.ggml_dtype,
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16
        );
        let head = name == head_name;
        if info.shape.rank() != 2 || !quantized || !(name.starts_with("blk.") || head) {
            continue;
        }
        let k = info.shape.dims()[1];
        types.insert(format!("{:?}", info.ggml_dtype));
        let tensor = content
            .tensor(&mut reader, name, &Device::Cpu)
            .with_context(|| format!("loading {name}"))?;
        weights.push(Weight {
            matmul: QMatMul::from_qtensor(tensor)?,
            k,
            head,
        });
    }
    anyhow::ensure!(
        !weights.is_empty(),
        "{} has no quantized layer weights to measure",
        path.display()
    );
    Ok((weights, types.into_iter().collect()))
}

/// Median milliseconds of one forward with `m` rows (the head always gets one row).
fn time_forward(weights: &[Weight], m: usize, runs: usize) -> anyhow::Result<f64> {
    let mut inputs = std::collections::HashMap::new();
    for w in weights {
        let rows = if w.head { 1 } else { m };
        if let std::collections::hash_map::Entry::Vacant(e) = inputs.entry((rows, w.k)) {
            e.insert(Tensor::randn(0f32, 1f32, (1, rows, w.k), &Device::Cpu)?);
        }
    }
    let forward = || -> anyhow::Result<()> {
        for w in weights {
            let rows = if w.head { 1 } else { m };
            w.matmul.forward(&inputs[&(rows, w.k)])?;
        }
        Ok(())
    };
    forward()?; // warm-up
    let mut ms = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        forward()?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[ms.len() / 2])
}

pub fn bench(settings: Settings, args: KernelBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.prompt_tokens > 0, "--prompt-tokens must be positive");
    let threads = super::bench::cpu_threads(args.threads, &settings);
    let model = &settings.llm.model;
    let (weights, types) = load_weights(model)?;
    // The engine's setup: candle's global pool sized to the threads, products called from a
    // thread outside it (this one), as mistral.rs's engine thread calls them.
    crate::llm::set_cpu_threads(threads);
    anyhow::ensure!(
        rayon::current_num_threads() == threads,
        "the CPU thread pool was already started with {} threads",
        rayon::current_num_threads()
    );
    let kernel = transcode::tiled_kernels();
    let mut rows = Vec::new();
    for m in [1, args.prompt_tokens] {
        transcode::set_tiled_kernels(false);
        let upstream = time_forward(&weights, m, args.runs);
        transcode::set_tiled_kernels(true);
        let upstream = upstream?;
        let tiled = match kernel {
            Some(_) => Some(time_forward(&weights, m, args.runs)?),
            None => None,
        };
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let speedup = tiled.map(|t| round(upstream / t));
        if !args.json {
            eprintln!(
                "m = {m:>4}: upstream {upstream:>9.2} ms ({:>7.1} rows/s), tiled {} (speedup {})",
                m as f64 / upstream * 1e3,
                tiled.map_or("n/a".into(), |t| format!(
                    "{t:.2} ms ({:.1} rows/s)",
                    m as f64 / t * 1e3
                )),
                speedup.map_or("n/a".into(), |s| format!("{s:.2}x")),
            );
        }
        rows.push(json!({
            "m": m,
            "upstream_ms": round(upstream),
            "tiled_ms": tiled.map(round),
            "speedup": speedup,
        }));
    }
    println!(
        "{}",
        json!({
            "bench": "kernels",
            "model": model.display().to_string(),
            "weight_types": types,
            "weights": weights.len(),
            "threads": threads,
            "tiled_kernel": kernel,
            "runs": rows,
        })
    );
    Ok(())
}
