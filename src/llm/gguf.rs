//! A bounded check of a GGUF file's header before mistral.rs is given it.
//!
//! mistral.rs panics on some inputs (a gemma3 GGUF inside its loader) and candle's reader trusts
//! every length in the file, so a corrupt header can ask for an absurd allocation. This walk reads
//! the metadata with every length checked against the file size, and returns what aisle needs:
//! the architecture (refused unless mistral.rs loads it) and the end-of-text token ids.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::LlmError;

/// GGUF architectures mistral.rs 0.8 loads as text models.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "mistral3",
    "phi2",
    "phi3",
    "starcoder2",
    "qwen2",
    "qwen3",
    "qwen3moe",
];

/// What the header says.
#[derive(Debug, Clone, Default)]
pub struct GgufInfo {
    pub architecture: String,
    pub name: Option<String>,
    pub tensor_count: u64,
    pub context_length: Option<u64>,
    pub eos_token_id: Option<u32>,
    /// Ids of the tokens that end a turn or the text (`<|im_end|>`, `<|endoftext|>`, `</s>`,
    /// `<|eot_id|>`, ...), found by name in the vocabulary.
    pub end_tokens: Vec<u32>,
    pub vocab_size: usize,
}

const END_TOKEN_NAMES: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "</s>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
];

struct Reader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.left < N as u64 {
            return Err("the file ends inside its header".into());
        }
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| format!("read failed: {e}"))?;
        self.left -= N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if n > self.left {
            return Err(format!(
                "a length of {n} bytes runs past the end of the file"
            ));
        }
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| format!("read failed: {e}"))?;
        if copied != n {
            return Err("the file ends inside its header".into());
        }
        self.left -= n;
        Ok(())
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.u64()?;
        if len > self.left || len > 1 << 20 {
            return Err(format!("a string of {len} bytes is not plausible here"));
        }
        let mut v = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut v)
            .map_err(|e| format!("read failed: {e}"))?;
        self.left -= len;
        Ok(String::from_utf8_lossy(&v)
            .trim_end_matches('\0')
            .to_owned())
    }
}

/// Size in bytes of a fixed-size GGUF value type; `None` for strings and arrays.
fn fixed_size(ty: u32) -> Result<Option<u64>, String> {
    Ok(match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        8 | 9 => None,
        other => return Err(format!("unknown metadata value type {other}")),
    })
}

enum Scalar {
    Int(u64),
    Str(String),
    Other,
}

fn read_scalar<R: Read>(r: &mut Reader<R>, ty: u32) -> Result<Scalar, String> {
    Ok(match ty {
        0 | 1 => Scalar::Int(u64::from(r.bytes::<1>()?[0])),
        2 | 3 => Scalar::Int(u64::from(u16::from_le_bytes(r.bytes::<2>()?))),
        4 | 5 => Scalar::Int(u64::from(r.u32()?)),
        10 | 11 => Scalar::Int(r.u64()?),
        8 => Scalar::Str(r.string()?),
        _ => {
            let size = fixed_size(ty)?.ok_or("nested value where a scalar belongs")?;
            r.skip(size)?;
            Scalar::Other
        }
    })
}

/// Reads and checks the header of the GGUF at `path`.
pub fn inspect(path: &Path) -> Result<GgufInfo, LlmError> {
    let fail = |why: String| LlmError::Load(format!("{}: {why}", path.display()));
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {e}")))?
        .len();
    let mut r = Reader {
        inner: BufReader::new(file),
        left: size,
    };
    let magic = r.bytes::<4>().map_err(&fail)?;
    if &magic != b"GGUF" {
        return Err(fail("not a GGUF file (bad magic)".into()));
    }
    let version = r.u32().map_err(&fail)?;
    if !(2..=3).contains(&version) {
        return Err(fail(format!("GGUF version {version} is not supported")));
    }
    let tensor_count = r.u64().map_err(&fail)?;
    let kv_count = r.u64().map_err(&fail)?;
    // Each tensor info and key-value pair takes at least 8 bytes.
    if tensor_count > size / 8 || kv_count > size / 8 {
        return Err(fail("implausible tensor or metadata counts".into()));
    }
    let mut info = GgufInfo {
        tensor_count,
        ..GgufInfo::default()
    };
    for _ in 0..kv_count {
        let key = r.string().map_err(&fail)?;
        let ty = r.u32().map_err(&fail)?;
        if ty == 9 {
            let item = r.u32().map_err(&fail)?;
            let n = r.u64().map_err(&fail)?;
            if n > r.left {
                return Err(fail(format!("array {key} of {n} items runs past the end")));
            }
            if key == "tokenizer.ggml.tokens" && item == 8 {
                info.vocab_size = n as usize;
                for id in 0..n {
                    let token = r.string().map_err(&fail)?;
                    if END_TOKEN_NAMES.contains(&token.as_str()) {
                        info.end_tokens.push(id as u32);
                    }
                }
            } else if item == 8 {
                for _ in 0..n {
                    let len = r.u64().map_err(&fail)?;
                    r.skip(len).map_err(&fail)?;
                }
            } else {
                let each = fixed_size(item)
                    .map_err(&fail)?
                    .ok_or_else(|| fail(format!("array {key} nests arrays")))?;
                r.skip(n.saturating_mul(each)).map_err(&fail)?;
            }
            continue;
        }
        match (key.as_str(), read_scalar(&mut r, ty).map_err(&fail)?) {
            ("general.architecture", Scalar::Str(s)) => info.architecture = s,
            ("general.name", Scalar::Str(s)) => info.name = Some(s),
            ("tokenizer.ggml.eos_token_id", Scalar::Int(v)) => info.eos_token_id = Some(v as u32),
            (k, Scalar::Int(v)) if k.ends_with(".context_length") => info.context_length = Some(v),
            _ => {}
        }
    }
    if info.architecture.is_empty() {
        return Err(fail("no general.architecture in the header".into()));
    }
    if !SUPPORTED_ARCHITECTURES.contains(&info.architecture.as_str()) {
        return Err(fail(format!(
            "architecture {:?} is not one mistral.rs loads from GGUF (supported: {})",
            info.architecture,
            SUPPORTED_ARCHITECTURES.join(", ")
        )));
    }
    if info.tensor_count == 0 {
        return Err(fail("the file holds no tensors".into()));
    }
    if let Some(eos) = info.eos_token_id
        && !info.end_tokens.contains(&eos)
    {
        info.end_tokens.push(eos);
    }
    Ok(info)
}
