//! The learned scorer: a small MLP over [`super::features::FEATURES`] (standardised), trained
//! listwise by [`super::train`], stored as a versioned safetensors file
//! (`ranker-v<N>.safetensors`, metadata: version, feature names, training figures), and hot-loaded
//! by the search service when a newer version appears in the model folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap, linear};
use serde::{Deserialize, Serialize};

use super::features::{FEATURES, N_FEATURES};

/// The default model compiled in: used until a trained file appears in the model folder.
const BUILTIN: Option<&[u8]> = Some(include_bytes!(
    "../../knowledge/ranker/ranker-default.safetensors"
));

/// Hidden units of the MLP.
pub const HIDDEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("ranker model {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("ranker model: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("ranker model {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a model file says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    pub version: u64,
    pub features: Vec<String>,
    pub trained_at: String,
    /// Training figures (queries, epochs, validation nDCG@10 ...), as the trainer wrote them.
    pub training: serde_json::Value,
}

/// The network: standardise, Linear → ReLU → Linear, one score per candidate.
pub struct Mlp {
    mean: Tensor,
    std: Tensor,
    hidden: Linear,
    out: Linear,
}

impl Mlp {
    /// A network whose parameters live in `vb` (fresh ones from a `VarMap` when training).
    pub fn new(vb: VarBuilder<'_>, mean: &[f32], std: &[f32]) -> candle_core::Result<Self> {
        let device = vb.device().clone();
        Ok(Self {
            mean: Tensor::from_slice(mean, N_FEATURES, &device)?,
            std: Tensor::from_slice(std, N_FEATURES, &device)?,
            hidden: linear(N_FEATURES, HIDDEN, vb.pp("hidden"))?,
            out: linear(HIDDEN, 1, vb.pp("out"))?,
        })
    }

    /// Scores `[.., N_FEATURES]` → `[..]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let h = self.hidden.forward(&x)?.relu()?;
        self.out.forward(&h)?.squeeze(candle_core::D::Minus1)
    }

    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    pub fn std(&self) -> &Tensor {
        &self.std
    }
}

/// A loaded, ready model.
pub struct RankerModel {
    pub info: ModelInfo,
    pub path: PathBuf,
    mlp: Mlp,
}

impl RankerModel {
    /// Scores candidates (one feature row each).
    pub fn score(&self, rows: &[[f32; N_FEATURES]]) -> Result<Vec<f32>, ModelError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let x = Tensor::from_vec(flat, (rows.len(), N_FEATURES), &Device::Cpu)?;
        Ok(self.mlp.forward(&x)?.to_vec1()?)
    }

    /// Loads a model file, refusing one trained on another feature list.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// The model built into the binary (trained on the labelled queries in eval/queries, see
    /// knowledge/ranker/README.md), if this build has one. It counts as version 0, so any trained
    /// file supersedes it.
    pub fn builtin() -> Result<Option<Self>, ModelError> {
        BUILTIN
            .map(|bytes| {
                let mut m = Self::from_bytes(bytes, Path::new("(built in)"))?;
                m.info.version = 0;
                Ok(m)
            })
            .transpose()
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let invalid = |message: String| ModelError::Invalid {
            path: path.to_owned(),
            message,
        };
        let info: ModelInfo =
            crate::modelfile::read_info(bytes, "aisle_ranker").map_err(invalid)?;
        if info.features != FEATURES {
            return Err(invalid(format!(
                "trained on features {:?}, this build computes {:?}",
                info.features, FEATURES
            )));
        }
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let get = |name: &str| -> Result<Vec<f32>, ModelError> {
            Ok(tensors
                .get(name)
                .ok_or_else(|| invalid(format!("tensor {name} missing")))?
                .to_vec1()?)
        };
        let (mean, std) = (get("norm.mean")?, get("norm.std")?);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let mlp = Mlp::new(vb, &mean, &std).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            info,
            path: path.to_owned(),
            mlp,
        })
    }
}

/// Writes the trained parameters with `info` to `dir/ranker-v<version>.safetensors`.
pub fn save(
    dir: &Path,
    varmap: &VarMap,
    mlp: &Mlp,
    info: &ModelInfo,
) -> Result<PathBuf, ModelError> {
    let mut tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("parameter lock poisoned".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    tensors.insert("norm.mean".into(), mlp.mean().clone());
    tensors.insert("norm.std".into(), mlp.std().clone());
    crate::modelfile::write_versioned(dir, "ranker", info.version, tensors, "aisle_ranker", info)
        .map_err(|message| ModelError::Invalid {
            path: dir.to_owned(),
            message,
        })
}

/// Model files in `dir`, newest version first.
pub fn versions(dir: &Path) -> Vec<(u64, PathBuf)> {
    crate::modelfile::versions(dir, "ranker")
}
