//! Weights in a block type the CPU kernels are fast for.
//!
//! candle's quantized matmul on the CPU has SIMD dot products (AVX2 on x86-64, NEON on arm64) for
//! Q4_0, Q8_0 and the K-quants, and only a scalar loop for Q4_1, Q5_0, Q5_1 and Q8_1. aisle's
//! candle-core patch (patches/README.md) adds tiled AVX2 kernels for Q8_0 and Q4_1 on x86-64, so
//! there Q4_1 (the default SmolLM2 file) loads as stored. Any other slow type, or Q4_1 where the
//! patch's kernels don't run (arm64, an x86-64 CPU without AVX2), would run several times slower
//! than it needs to: on the CPU, [`prepare`] rewrites such tensors as Q8_0 once, into a file beside
//! the original, and loads that instead. Q8_0's rounding step is 1/127 of a block's largest
//! magnitude, far finer than the 4- or 5-bit grid it re-encodes, so the model's output is
//! practically unchanged, at about 1.9x the weight memory of Q4_1.
//!
//! The rewritten file records which source it came from (name, size, modification time); a
//! changed source is rewritten again. Where the directory is not writable the original loads as
//! it is, with a warning.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use candle_core::Device;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use super::LlmError;

/// The metadata key recording the source of a rewritten file.
const SOURCE_KEY: &str = "aisle.transcoded_from";

/// How the local backend loads a GGUF's weights on the CPU (`llm.cpu_weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuWeights {
    /// Rewrite block types without a SIMD kernel in this build as Q8_0.
    Auto,
    /// Load the file as it is.
    AsIs,
}

/// Block types candle computes with a scalar loop only, on this CPU.
pub fn has_slow_kernel(dtype: GgmlDType) -> bool {
    match dtype {
        GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_1 => true,
        GgmlDType::Q4_1 => !runs_tiled(dtype),
        _ => false,
    }
}

/// The instruction set of the patched candle-core's tiled kernels on this CPU (`"avx2"`,
/// `"avx512-vnni"`), or `None` where they don't run.
pub fn tiled_kernels() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    return candle_core::quantized::tiled::kernel();
    #[cfg(not(target_arch = "x86_64"))]
    return None;
}

/// Turns the tiled kernels off or back on for the whole process (benchmarks time both).
pub fn set_tiled_kernels(on: bool) {
    #[cfg(target_arch = "x86_64")]
    candle_core::quantized::tiled::set_enabled(on);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = on;
}

/// Whether the patched candle-core's tiled kernels run `dtype` on this CPU.
pub fn runs_tiled(dtype: GgmlDType) -> bool {
    #[cfg(target_arch = "x86_64")]
    return candle_core::quantized::tiled::covers(dtype);
    #[cfg(not(target_arch = "x86_64"))]
    return {
        let _ = dtype;
        false
    };
}

/// Whether this build has SIMD quantized kernels at all (rewriting helps only then).
pub const fn simd_kernels() -> bool {
    cfg!(any(
        all(target_arch = "x86_64", target_feature = "avx2"),
        all(target_arch = "aarch64", target_feature = "neon")
    ))
}

/// What [`prepare`] did.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The file to load.
    pub path: PathBuf,
    /// Tensors stored as Q8_0 in `path` that the source holds in a slower type.
    pub rewritten: usize,
    /// Whether `path` was written now (false: reused or not needed).
    pub written: bool,
}

/// The file to load for `src` on the CPU: `src` itself, or a Q8_0 rewrite of its slow tensors.
pub fn prepare(src: &Path, mode: CpuWeights) -> Result<Prepared, LlmError> {
    let as_is = Prepared {
        path: src.to_path_buf(),
        rewritten: 0,
        written: false,
    };
    if mode == CpuWeights::AsIs || !simd_kernels() {
        return Ok(as_is);
    }
    let load = |e: String| LlmError::Load(format!("{}: {e}", src.display()));
    let mut reader = BufReader::new(File::open(src).map_err(|e| load(e.to_string()))?);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| load(e.to_string()))?;
    let slow = content
        .tensor_infos
        .values()
        .filter(|t| has_slow_kernel(t.ggml_dtype))
        .count();
    if slow == 0 {
        return Ok(as_is);
    }
    let stamp = source_stamp(src).map_err(|e| load(e.to_string()))?;
    let dst = rewritten_path(src);
    if recorded_source(&dst).as_deref() == Some(stamp.as_str()) {
        return Ok(Prepared {
            path: dst,
            rewritten: slow,
            written: false,
        });
    }
    let started = std::time::Instant::now();
    match write_rewrite(&content, &mut reader, &dst, &stamp) {
        Ok(()) => {
            tracing::info!(
                source = %src.display(),
                rewritten = %dst.display(),
                tensors = slow,
                ms = started.elapsed().as_millis() as u64,
                "weights without a SIMD kernel rewritten as Q8_0 for the CPU"
            );
            Ok(Prepared {
                path: dst,
                rewritten: slow,
                written: true,
            })
        }
        Err(WriteError::Io(e)) => {
            tracing::warn!(
                source = %src.display(),
                error = %e,
                "cannot write the Q8_0 rewrite beside the model; loading it as it is (slower)"
            );
            Ok(as_is)
        }
        Err(WriteError::Model(e)) => Err(load(e)),
    }
}

/// `dir/stem.cpu-q8_0.gguf` beside `src`.
pub fn rewritten_path(src: &Path) -> PathBuf {
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    src.with_file_name(format!("{stem}.cpu-q8_0.gguf"))
}

fn source_stamp(src: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(src)?;
    let modified = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = src
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!("{name}:{}:{modified}", meta.len()))
}

/// The source recorded in a rewritten file, if it is one and is readable.
fn recorded_source(path: &Path) -> Option<String> {
    let mut reader = BufReader::new(File::open(path).ok()?);
    let content = gguf_file::Content::read(&mut reader).ok()?;
    match content.metadata.get(SOURCE_KEY)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

enum WriteError {
    /// The destination cannot be written: load the source instead.
    Io(std::io::Error),
    /// The source cannot be read or converted.
    Model(String),
}

fn write_rewrite<R: std::io::Read + Seek>(
    content: &gguf_file::Content,
    reader: &mut R,
    dst: &Path,
    stamp: &str,
) -> Result<(), WriteError> {
    let model = |e: candle_core::Error| WriteError::Model(e.to_string());
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(reader, name, &Device::Cpu).map_err(model)?;
        let tensor = if has_slow_kernel(tensor.dtype()) {
            let values = tensor.dequantize(&Device::Cpu).map_err(model)?;
            QTensor::quantize(&values, GgmlDType::Q8_0).map_err(model)?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }
    // candle's writer aligns to 32 bytes, so a different alignment key would misplace tensors.
    let source = Value::String(stamp.to_owned());
    let mut metadata: Vec<(&str, &Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment" && k.as_str() != SOURCE_KEY)
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    metadata.push((SOURCE_KEY, &source));
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();

    // A name of its own per writer: two processes preparing the same model at once each rename a
    // complete file into place, and the last one wins.
    let tmp = dst.with_extension(format!(
        "gguf.{}-{}.partial",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp).map_err(WriteError::Io)?);
        gguf_file::write(&mut out, &metadata, &tensor_refs).map_err(|e| match e {
            candle_core::Error::Io(e) => WriteError::Io(e),
            e => WriteError::Model(e.to_string()),
        })?;
        out.flush().map_err(WriteError::Io)?;
        out.get_ref().sync_all().map_err(WriteError::Io)?;
        std::fs::rename(&tmp, dst).map_err(WriteError::Io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    fn write_model(path: &Path, dtype: GgmlDType) -> Tensor {
        let values: Vec<f32> = (0..64 * 32)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let t = Tensor::from_vec(values, (64, 32), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, dtype).unwrap();
        let arch = Value::String("llama".into());
        let mut f = File::create(path).unwrap();
        gguf_file::write(
            &mut f,
            &[("general.architecture", &arch)],
            &[("w.weight", &q)],
        )
        .unwrap();
        q.dequantize(&Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn slow_types_are_rewritten_once_and_values_survive() {
        if !simd_kernels() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.gguf");
        let original = write_model(&src, GgmlDType::Q5_1);

        let first = prepare(&src, CpuWeights::Auto).unwrap();
        assert_eq!(first.path, rewritten_path(&src));
        assert_eq!((first.rewritten, first.written), (1, true));
        let mut r = BufReader::new(File::open(&first.path).unwrap());
        let content = gguf_file::Content::read(&mut r).unwrap();
        let q = content.tensor(&mut r, "w.weight", &Device::Cpu).unwrap();
        assert_eq!(q.dtype(), GgmlDType::Q8_0);
        assert!(matches!(
            content.metadata.get("general.architecture"),
            Some(Value::String(s)) if s == "llama"
        ));
        // Within half a Q8_0 step of the Q5_1 values (the largest magnitude here is 2).
        let diff = max_abs_diff(&q.dequantize(&Device::Cpu).unwrap(), &original);
        assert!(diff <= 2.0 / 127.0, "rewrite moved a weight by {diff}");

        let again = prepare(&src, CpuWeights::Auto).unwrap();
        assert_eq!((again.path, again.written), (first.path, false));
        assert_eq!(
            prepare(&src, CpuWeights::AsIs).unwrap().path,
            src,
            "as-is loads the source"
        );
    }

    #[test]
    fn a_changed_source_is_rewritten_again_and_fast_types_are_left_alone() {
        if !simd_kernels() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.gguf");
        write_model(&src, GgmlDType::Q5_0);
        assert!(prepare(&src, CpuWeights::Auto).unwrap().written);
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_model(&src, GgmlDType::Q5_1);
        assert!(
            prepare(&src, CpuWeights::Auto).unwrap().written,
            "stale rewrite reused"
        );

        let fast = dir.path().join("fast.gguf");
        write_model(&fast, GgmlDType::Q8_0);
        let p = prepare(&fast, CpuWeights::Auto).unwrap();
        assert_eq!((p.path, p.rewritten), (fast, 0));
    }

    #[test]
    fn writers_racing_on_one_model_leave_a_whole_file() {
        if !simd_kernels() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.gguf");
        write_model(&src, GgmlDType::Q5_1);
        let paths: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| prepare(&src, CpuWeights::Auto).unwrap().path))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(paths.iter().all(|p| *p == rewritten_path(&src)));
        let mut r = BufReader::new(File::open(rewritten_path(&src)).unwrap());
        let content = gguf_file::Content::read(&mut r).unwrap();
        let q = content.tensor(&mut r, "w.weight", &Device::Cpu).unwrap();
        assert_eq!(q.dtype(), GgmlDType::Q8_0);
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn a_truncated_source_is_an_error() {
        if !simd_kernels() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.gguf");
        write_model(&src, GgmlDType::Q5_1);
        let len = std::fs::metadata(&src).unwrap().len();
        File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_len(len - 100)
            .unwrap();
        assert!(matches!(
            prepare(&src, CpuWeights::Auto),
            Err(LlmError::Load(_))
        ));
        assert!(!rewritten_path(&src).exists());
    }
}
