//! `aisle bench kernels`: the quantized matmuls of the configured GGUF's transformer on the CPU,
//! with candle's upstream loop and with the tiled kernels of aisle's candle-core patch
//! (patches/README.md), in one run on the same weights. One "forward" is every 2-D quantized
//! weight of the `blk.*` layers applied to `m` activation rows, plus the output head for one row
//! (the engine computes logits for the last position only): `m = 1` is one decoded token,
//! `m = --prompt-tokens` a prompt's prefill.
//!
//! It then times the model's attention (every layer's, at its head count and head size) with
//! mistral.rs's upstream CPU loops and with the two-pass kernel of aisle's mistralrs-core patch:
//! one decoded token attending to `--prompt-tokens` cached positions, and the causal prefill of a
//! `--prompt-tokens` prompt.

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use anyhow::Context;
use candle_core::quantized::gguf_file;
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{Device, Module, Tensor};
use clap::Args;
use serde_json::json;

use mistralrs::core::layers::{Sdpa, SdpaParams, set_upstream_cpu_attention};

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

/// The attention geometry of a transformer GGUF, from its metadata.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

fn geometry(content: &gguf_file::Content) -> anyhow::Result<Geometry> {
    let arch = content
        .metadata
        .get("general.architecture")
        .context("no general.architecture in the GGUF")?
        .to_string()?
        .clone();
    let get = |key: &str| -> anyhow::Result<usize> {
        let key = format!("{arch}.{key}");
        Ok(content
            .metadata
            .get(&key)
            .with_context(|| format!("no {key} in the GGUF"))?
            .to_u32()? as usize)
    };
    let heads = get("attention.head_count")?;
    anyhow::ensure!(heads > 0, "the GGUF has no attention heads");
    let head_dim = match get("attention.key_length") {
        Ok(d) => d,
        Err(_) => get("embedding_length")? / heads,
    };
    Ok(Geometry {
        layers: get("block_count")?,
        heads,
        kv_heads: get("attention.head_count_kv").unwrap_or(heads),
        head_dim,
    })
}

fn load_weights(path: &std::path::Path) -> anyhow::Result<(Vec<Weight>, Vec<String>, Geometry)> {
    let mut reader =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let content = gguf_file::Content::read(&mut reader)
        .with_context(|| format!("reading {}", path.display()))?;
    let geometry = geometry(&content)?;
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
    Ok((weights, types.into_iter().collect(), geometry))
}

/// Median milliseconds of `runs` calls of `forward`, after one warm-up call.
fn median_ms(runs: usize, forward: impl Fn() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    forward()?;
    let mut ms = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        forward()?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[ms.len() / 2])
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
    median_ms(runs, forward)
}

/// Median milliseconds of every layer's attention for `q_len` new positions over `kv_len` in all
/// (the last `q_len` of them new, masked causally), as mistral.rs's model calls it: (1, heads,
/// positions, head_dim) tensors in f32, keys and values read from a cache with room to spare.
fn time_attention(g: Geometry, q_len: usize, kv_len: usize, runs: usize) -> anyhow::Result<f64> {
    let dev = &Device::Cpu;
    let q = Tensor::randn(0f32, 1f32, (1, g.heads, q_len, g.head_dim), dev)?;
    let cache = |_| Tensor::randn(0f32, 1f32, (1, g.kv_heads, kv_len + 64, g.head_dim), dev);
    let (k, v) = (cache(0)?, cache(1)?);
    let (k, v) = (k.narrow(2, 0, kv_len)?, v.narrow(2, 0, kv_len)?);
    let past = kv_len - q_len;
    let mask = (q_len > 1)
        .then(|| {
            let bias: Vec<f32> = (0..q_len)
                .flat_map(|i| {
                    (0..kv_len).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            Tensor::from_vec(bias, (q_len, kv_len), dev)
        })
        .transpose()?;
    let params = SdpaParams {
        n_kv_groups: g.heads / g.kv_heads.max(1),
        softcap: None,
        softmax_scale: 1.0 / (g.head_dim as f32).sqrt(),
        sliding_window: None,
        sinks: None,
    };
    let forward = || -> anyhow::Result<()> {
        for _ in 0..g.layers {
            Sdpa.run_attention(&q, &k, &v, mask.as_ref(), None, &params)?;
        }
        Ok(())
    };
    median_ms(runs, forward)
}

pub fn bench(settings: Settings, args: KernelBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.prompt_tokens > 0, "--prompt-tokens must be positive");
    let threads = super::bench::cpu_threads(args.threads, &settings);
    let model = &settings.llm.model;
    let (weights, types, geometry) = load_weights(model)?;
    // The engine's setup: candle's global pool sized to the threads, products called from a
    // thread outside it (this one), as mistral.rs's engine thread calls them.
    crate::llm::set_cpu_threads(threads);
    anyhow::ensure!(
        rayon::current_num_threads() == threads,
        "the CPU thread pool was already started with {} threads",
        rayon::current_num_threads()
    );
    let kernel = transcode::tiled_kernels();
    let round = |x: f64| (x * 100.0).round() / 100.0;
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
    let mut attention = Vec::new();
    let n = args.prompt_tokens;
    for (case, q_len) in [("decode", 1), ("prefill", n)] {
        set_upstream_cpu_attention(true);
        let upstream = time_attention(geometry, q_len, n, args.runs);
        set_upstream_cpu_attention(false);
        let (upstream, patched) = (upstream?, time_attention(geometry, q_len, n, args.runs)?);
        let speedup = round(upstream / patched);
        if !args.json {
            eprintln!(
                "attention, {case} ({q_len} x {n} positions, {} layers): upstream {upstream:.3} ms, two-pass {patched:.3} ms (speedup {speedup:.2}x)",
                geometry.layers
            );
        }
        attention.push(json!({
            "case": case,
            "q_len": q_len,
            "kv_len": n,
            // Microseconds matter here: a short decode is well under a millisecond.
            "upstream_ms": (upstream * 1e3).round() / 1e3,
            "patched_ms": (patched * 1e3).round() / 1e3,
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
            "attention": {
                "layers": geometry.layers,
                "heads": geometry.heads,
                "kv_heads": geometry.kv_heads,
                "head_dim": geometry.head_dim,
                "runs": attention,
            },
        })
    );
    Ok(())
}
