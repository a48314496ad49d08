//! The intent classifier: a softmax head over the message's sentence embedding (all-MiniLM-L6-v2)
//! and its lexical cues ([`super::cues`]). One hidden layer (ReLU, dropout while training),
//! trained with class-weighted cross-entropy, AdamW, and a learning rate that warms up and then
//! follows a cosine; the epoch with the best validation accuracy is kept.
//!
//! Files are versioned like the ranker's (`models/intent/intent-v<N>.safetensors`); a default
//! trained the same way is compiled in (`knowledge/intent/intent-default.safetensors`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{AdamW, Dropout, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap, linear};
use serde::{Deserialize, Serialize};

use super::Intent;
use crate::ranking::train::learning_rate;

const BUILTIN: &[u8] = include_bytes!("../../knowledge/intent/intent-default.safetensors");
const META_KEY: &str = "aisle_intent";
pub const HIDDEN: usize = 96;

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("intent model {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("intent model: {0}")]
    Candle(#[from] candle_core::Error),
}

/// What a model file says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassifierInfo {
    pub version: u64,
    /// The embedding model whose vectors it reads.
    pub embedding_model: String,
    pub embedding_dim: usize,
    pub cues: Vec<String>,
    pub intents: Vec<String>,
    pub trained_at: String,
    pub training: serde_json::Value,
}

struct Net {
    hidden: Linear,
    out: Linear,
    dropout: Dropout,
}

impl Net {
    fn new(vb: VarBuilder<'_>, inputs: usize) -> candle_core::Result<Self> {
        Ok(Self {
            hidden: linear(inputs, HIDDEN, vb.pp("hidden"))?,
            out: linear(HIDDEN, Intent::ALL.len(), vb.pp("out"))?,
            dropout: Dropout::new(0.2),
        })
    }

    /// Logits `[n, intents]`.
    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = self.hidden.forward(x)?.relu()?;
        let h = self.dropout.forward(&h, train)?;
        self.out.forward(&h)
    }
}

/// A loaded classifier.
pub struct IntentClassifier {
    pub info: ClassifierInfo,
    pub path: PathBuf,
    net: Net,
}

/// One labelled example: the classifier's input and the intent.
#[derive(Debug, Clone)]
pub struct Example {
    pub input: Vec<f32>,
    pub label: Intent,
    /// A stable key for the train/validation split.
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub warmup_epochs: usize,
    pub batch: usize,
    /// One example in `val_every` goes to validation (by a hash of its key).
    pub val_every: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 60,
            learning_rate: 2e-3,
            weight_decay: 0.01,
            warmup_epochs: 4,
            batch: 32,
            val_every: 7,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub examples: usize,
    pub train: usize,
    pub validation: usize,
    pub best_epoch: usize,
    pub validation_accuracy: f32,
    pub train_accuracy: f32,
    pub per_intent: HashMap<String, usize>,
}

/// Whether `key` falls in the one-in-`every` share (FNV-1a: stable across runs and platforms).
pub(super) fn split(key: &str, every: u64) -> bool {
    let h = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    h % every == 0
}

fn accuracy(net: &Net, x: &Tensor, y: &[u32]) -> candle_core::Result<f32> {
    if y.is_empty() {
        return Ok(0.0);
    }
    let pred: Vec<u32> = net.forward(x, false)?.argmax(D::Minus1)?.to_vec1()?;
    let hits = pred.iter().zip(y).filter(|(a, b)| a == b).count();
    Ok(hits as f32 / y.len() as f32)
}

fn matrix(rows: &[&Example], dim: usize) -> candle_core::Result<(Tensor, Vec<u32>)> {
    let flat: Vec<f32> = rows.iter().flat_map(|e| e.input.iter().copied()).collect();
    let x = Tensor::from_vec(flat, (rows.len(), dim), &Device::Cpu)?;
    let y = rows.iter().map(|e| e.label.index() as u32).collect();
    Ok((x, y))
}

impl IntentClassifier {
    /// Trains a classifier on `examples`.
    pub fn train(
        examples: &[Example],
        opts: &TrainOptions,
        mut info: ClassifierInfo,
    ) -> Result<(Self, VarMap, TrainReport), ClassifierError> {
        let dim = examples.first().map_or(0, |e| e.input.len());
        if dim == 0 || examples.iter().any(|e| e.input.len() != dim) {
            return Err(ClassifierError::Invalid {
                path: PathBuf::from("(training)"),
                message: "no examples, or examples of different widths".into(),
            });
        }
        let (val, train): (Vec<&Example>, Vec<&Example>) =
            examples.iter().partition(|e| split(&e.key, opts.val_every));
        // Inverse square-root frequency weights keep small classes from being drowned out.
        let mut counts = [0usize; 9];
        for e in &train {
            counts[e.label.index()] += 1;
        }
        let weights: Vec<f32> = counts
            .iter()
            .map(|&c| if c == 0 { 0.0 } else { 1.0 / (c as f32).sqrt() })
            .collect();
        let mean_w = weights.iter().sum::<f32>()
            / weights.iter().filter(|w| **w > 0.0).count().max(1) as f32;
        let weights: Vec<f32> = weights.iter().map(|w| w / mean_w).collect();
        let class_w = Tensor::from_slice(&weights, 9, &Device::Cpu)?;

        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = Net::new(vb, dim)?;
        let batches = train.len().div_ceil(opts.batch).max(1);
        let total = opts.epochs * batches;
        let mut opt = AdamW::new(
            varmap.all_vars(),
            ParamsAdamW {
                lr: opts.learning_rate,
                weight_decay: opts.weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        let (val_x, val_y) = matrix(&val, dim)?;
        let (train_x, train_y) = matrix(&train, dim)?;
        let mut best: Option<(f32, usize, HashMap<String, Tensor>)> = None;
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut step = 0;
        for epoch in 0..opts.epochs {
            // A deterministic shuffle per epoch.
            order.sort_by_key(|&i| {
                (i as u64 + 1)
                    .wrapping_mul(0x9E3779B97F4A7C15)
                    .rotate_left(epoch as u32 % 63)
            });
            for chunk in order.chunks(opts.batch) {
                let rows: Vec<&Example> = chunk.iter().map(|&i| train[i]).collect();
                let (x, y) = matrix(&rows, dim)?;
                let y = Tensor::from_vec(y, rows.len(), &Device::Cpu)?;
                let logits = net.forward(&x, true)?;
                let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
                let picked = logp.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?;
                let w = class_w.gather(&y, 0)?;
                let loss =
                    (picked.mul(&w)?.sum_all()?.neg()? / w.sum_all()?.to_scalar::<f32>()? as f64)?;
                opt.set_learning_rate(learning_rate(
                    opts.learning_rate,
                    step,
                    opts.warmup_epochs * batches,
                    total,
                ));
                opt.backward_step(&loss)?;
                step += 1;
            }
            let acc = if val_y.is_empty() {
                accuracy(&net, &train_x, &train_y)?
            } else {
                accuracy(&net, &val_x, &val_y)?
            };
            if best.as_ref().is_none_or(|(a, _, _)| acc > *a) {
                let snapshot = varmap
                    .data()
                    .lock()
                    .map_err(|_| candle_core::Error::Msg("parameter lock poisoned".into()))?
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
                    .collect::<candle_core::Result<HashMap<_, _>>>()?;
                best = Some((acc, epoch, snapshot));
            }
        }
        let Some((val_acc, best_epoch, snapshot)) = best else {
            return Err(ClassifierError::Invalid {
                path: PathBuf::from("(training)"),
                message: "no epochs were run".into(),
            });
        };
        for (name, var) in varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter lock poisoned".into()))?
            .iter()
        {
            if let Some(t) = snapshot.get(name) {
                var.set(t)?;
            }
        }
        let report = TrainReport {
            examples: examples.len(),
            train: train.len(),
            validation: val.len(),
            best_epoch,
            validation_accuracy: val_acc,
            train_accuracy: accuracy(&net, &train_x, &train_y)?,
            per_intent: Intent::ALL
                .iter()
                .map(|i| (i.as_str().to_owned(), counts[i.index()]))
                .collect(),
        };
        info.training = serde_json::to_value(&report).unwrap_or_default();
        let model = Self {
            info,
            path: PathBuf::from("(trained)"),
            net,
        };
        Ok((model, varmap, report))
    }

    /// Writes the model to `dir/intent-v<version>.safetensors`.
    pub fn save(&self, dir: &Path, varmap: &VarMap) -> Result<PathBuf, ClassifierError> {
        let tensors: HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter lock poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        crate::modelfile::write_versioned(
            dir,
            "intent",
            self.info.version,
            tensors,
            META_KEY,
            &self.info,
        )
        .map_err(|message| ClassifierError::Invalid {
            path: dir.to_owned(),
            message,
        })
    }

    /// The newest model in `dir`, else the built-in one; `None` when neither exists.
    pub fn load_newest(dir: &Path) -> Result<Option<Self>, ClassifierError> {
        for (_, path) in crate::modelfile::versions(dir, "intent") {
            match Self::load(&path) {
                Ok(m) => return Ok(Some(m)),
                Err(e) => tracing::warn!(error = %e, "skipping an intent model that does not load"),
            }
        }
        Self::builtin()
    }

    pub fn builtin() -> Result<Option<Self>, ClassifierError> {
        if BUILTIN.is_empty() {
            return Ok(None);
        }
        let mut m = Self::from_bytes(BUILTIN, Path::new("(built in)"))?;
        m.info.version = 0;
        Ok(Some(m))
    }

    pub fn load(path: &Path) -> Result<Self, ClassifierError> {
        let bytes = std::fs::read(path).map_err(|e| ClassifierError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_bytes(&bytes, path)
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ClassifierError> {
        let invalid = |message: String| ClassifierError::Invalid {
            path: path.to_owned(),
            message,
        };
        let info: ClassifierInfo = crate::modelfile::read_info(bytes, META_KEY).map_err(invalid)?;
        let cues = super::cues::names();
        if info.cues != cues {
            return Err(invalid(format!(
                "trained on cues {:?}, this build computes {:?}",
                info.cues, cues
            )));
        }
        let intents: Vec<String> = Intent::ALL.iter().map(|i| i.as_str().to_owned()).collect();
        if info.intents != intents {
            return Err(invalid("trained on another intent list".into()));
        }
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let net =
            Net::new(vb, info.embedding_dim + cues.len()).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            info,
            path: path.to_owned(),
            net,
        })
    }

    /// Intent probabilities for one input (embedding then cues), in [`Intent::ALL`] order.
    pub fn predict(&self, input: &[f32]) -> Result<[f32; 9], ClassifierError> {
        let x = Tensor::from_slice(input, (1, input.len()), &Device::Cpu)?;
        let p = candle_nn::ops::softmax(&self.net.forward(&x, false)?, D::Minus1)?;
        let v: Vec<f32> = p.squeeze(0)?.to_vec1()?;
        let mut out = [0f32; 9];
        out.copy_from_slice(&v[..9]);
        Ok(out)
    }
}
