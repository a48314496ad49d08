//! Versioned model files: `<stem>-v<N>.safetensors` in a folder, the tensors plus one JSON
//! metadata entry describing the model. Written through a temporary file and a rename, so a
//! watcher never reads half a file. The ranker and the intent classifier both use these.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::de::DeserializeOwned;

/// Writes `tensors` and `info` (stored as JSON under `meta_key`) to `dir/<stem>-v<version>.safetensors`.
pub fn write_versioned(
    dir: &Path,
    stem: &str,
    version: u64,
    tensors: HashMap<String, Tensor>,
    meta_key: &str,
    info: &impl serde::Serialize,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let metadata = HashMap::from([(
        meta_key.to_owned(),
        serde_json::to_string(info).map_err(|e| e.to_string())?,
    )]);
    let path = dir.join(format!("{stem}-v{version}.safetensors"));
    let tmp = dir.join(format!(".{stem}-v{version}.safetensors.part"));
    let views: Vec<(String, Tensor)> = tensors.into_iter().collect();
    safetensors::serialize_to_file(
        views.iter().map(|(k, t)| (k.as_str(), t)),
        Some(metadata),
        &tmp,
    )
    .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The JSON metadata entry `meta_key` of a safetensors file in memory.
pub fn read_info<T: DeserializeOwned>(bytes: &[u8], meta_key: &str) -> Result<T, String> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a safetensors file: {e}"))?;
    meta.metadata()
        .as_ref()
        .and_then(|m| m.get(meta_key))
        .ok_or_else(|| format!("no {meta_key} metadata"))
        .and_then(|t| serde_json::from_str(t).map_err(|e| e.to_string()))
}

/// `<stem>-v<N>.safetensors` files in `dir`, newest version first.
pub fn versions(dir: &Path, stem: &str) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{stem}-v");
    let mut found: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let v = name
                .strip_prefix(&prefix)?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()?;
            Some((v, e.path()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
}
