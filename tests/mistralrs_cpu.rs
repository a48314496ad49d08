//! The patched mistralrs-core's CPU paths (patches/README.md) through mistral.rs's public types.
//!
//! Attention, through `Sdpa::run_attention`, against a plain f64 softmax(q·kᵀ·scale + mask)·v:
//! decode and prefill, grouped-query heads, keys and values read from a cache with spare room
//! (strided views), causal and holed masks, a softcap, head sizes that do and do not fill whole
//! vectors, and f16. The upstream loops must give the same results (the switch that benchmarks use).
//!
//! RMS norm and RoPE for a decoded token's rows, which the patch computes on the calling thread:
//! bit for bit what the parallel kernels give for the same rows inside a larger input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::values;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use mistralrs::core::layers::{
    QRmsNorm, RotaryEmbedding, Sdpa, SdpaParams, set_upstream_cpu_attention, upstream_cpu_attention,
};

#[derive(Clone, Copy, Debug)]
enum Mask {
    /// No mask tensor (mistral.rs passes none for one decoded position).
    None,
    /// Causal over `q_len` new positions after the cached ones.
    Causal,
    /// Causal, with some earlier keys hidden too and finite biases on others.
    Holes,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    q_len: usize,
    kv_len: usize,
    mask: Mask,
    softcap: Option<f32>,
}

impl Case {
    fn bias(&self) -> Option<Vec<f32>> {
        let past = self.kv_len - self.q_len;
        let hidden = |i: usize, j: usize| match self.mask {
            Mask::None => false,
            Mask::Causal => j > past + i,
            Mask::Holes => j > past + i || (j % 5 == 2 && j != past + i),
        };
        let finite = |j: usize| match self.mask {
            Mask::Holes => (j % 3) as f32 * 0.25,
            _ => 0.0,
        };
        (!matches!(self.mask, Mask::None)).then(|| {
            (0..self.q_len)
                .flat_map(|i| {
                    (0..self.kv_len).map(move |j| {
                        if hidden(i, j) {
                            f32::NEG_INFINITY
                        } else {
                            finite(j)
                        }
                    })
                })
                .collect()
        })
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// The inputs as mistral.rs's models hand them over: q (B, H, S, D); k and v (B, KVH, KV, D),
/// narrowed from a cache with room for 16 more positions.
struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    cap: usize,
}

fn inputs(c: &Case, seed: u64) -> Inputs {
    let cap = c.kv_len + 16;
    Inputs {
        q: values(c.batch * c.heads * c.q_len * c.head_dim, seed, 2.0),
        k: values(c.batch * c.kv_heads * cap * c.head_dim, seed + 1, 2.0),
        v: values(c.batch * c.kv_heads * cap * c.head_dim, seed + 2, 3.0),
        cap,
    }
}

fn reference(c: &Case, x: &Inputs) -> Vec<f32> {
    let d = c.head_dim;
    let bias = c.bias();
    let group = c.heads / c.kv_heads;
    let mut out = Vec::new();
    for b in 0..c.batch {
        for h in 0..c.heads {
            let kh = h / group;
            for i in 0..c.q_len {
                let q = &x.q[((b * c.heads + h) * c.q_len + i) * d..][..d];
                let row = |t: &[f32], j: usize| {
                    t[((b * c.kv_heads + kh) * x.cap + j) * d..][..d].to_vec()
                };
                let scores: Vec<f64> = (0..c.kv_len)
                    .map(|j| {
                        let k = row(&x.k, j);
                        let mut s = q
                            .iter()
                            .zip(&k)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            * c.scale() as f64;
                        if let Some(cap) = c.softcap {
                            s = cap as f64 * (s / cap as f64).tanh();
                        }
                        s + bias.as_ref().map_or(0.0, |m| m[i * c.kv_len + j] as f64)
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for e in 0..d {
                    let acc: f64 = (0..c.kv_len)
                        .map(|j| weights[j] * row(&x.v, j)[e] as f64)
                        .sum();
                    out.push((acc / sum) as f32);
                }
            }
        }
    }
    out
}

fn run(c: &Case, x: &Inputs, dtype: DType) -> Vec<f32> {
    let dev = &Device::Cpu;
    let d = c.head_dim;
    let q = Tensor::from_vec(x.q.clone(), (c.batch, c.heads, c.q_len, d), dev).unwrap();
    let cache = |t: &[f32]| {
        Tensor::from_vec(t.to_vec(), (c.batch, c.kv_heads, x.cap, d), dev)
            .unwrap()
            .narrow(2, 0, c.kv_len)
            .unwrap()
    };
    let (k, v) = (cache(&x.k), cache(&x.v));
    let mask = c
        .bias()
        .map(|m| Tensor::from_vec(m, (c.q_len, c.kv_len), dev).unwrap());
    let cast = |t: Tensor| t.to_dtype(dtype).unwrap();
    let (q, mask) = (cast(q), mask.map(cast));
    // The cast copies; cast the whole cache and narrow again so k and v stay strided views.
    let (k, v) = if dtype == DType::F32 {
        (k, v)
    } else {
        let full = |t: &[f32]| {
            Tensor::from_vec(t.to_vec(), (c.batch, c.kv_heads, x.cap, d), dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .narrow(2, 0, c.kv_len)
                .unwrap()
        };
        (full(&x.k), full(&x.v))
    };
    let params = SdpaParams {
        n_kv_groups: c.heads / c.kv_heads,
        softcap: c.softcap,
        softmax_scale: c.scale(),
        sliding_window: None,
        sinks: None,
    };
    let out = Sdpa
        .run_attention(&q, &k, &v, mask.as_ref(), None, &params)
        .unwrap();
    assert_eq!(out.dims(), [c.batch, c.heads, c.q_len, d]);
    out.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const fn case(heads: usize, kv_heads: usize, head_dim: usize, q_len: usize, kv_len: usize) -> Case {
    Case {
        batch: 1,
        heads,
        kv_heads,
        head_dim,
        q_len,
        kv_len,
        mask: Mask::Causal,
        softcap: None,
    }
}

/// SmolLM2's geometry (9 heads over 3 key/value heads of 64) and others around it.
fn cases() -> Vec<Case> {
    let decode = |kv_len| Case {
        mask: Mask::None,
        ..case(9, 3, 64, 1, kv_len)
    };
    vec![
        decode(1),
        decode(3),
        decode(37),
        decode(300),
        case(9, 3, 64, 16, 16),
        case(9, 3, 64, 5, 21), // a prompt after cached positions (prefix cache)
        case(9, 3, 64, 64, 64),
        Case {
            mask: Mask::Holes,
            ..case(4, 2, 64, 7, 30)
        },
        Case {
            batch: 2,
            ..case(4, 4, 128, 6, 13)
        },
        Case {
            softcap: Some(20.0),
            ..case(8, 2, 96, 5, 40)
        },
        Case {
            softcap: Some(30.0),
            mask: Mask::None,
            ..case(8, 2, 128, 1, 77)
        },
        case(6, 3, 36, 9, 9), // a head size that is not a whole number of vectors
        Case {
            mask: Mask::None,
            ..case(6, 3, 36, 1, 50)
        },
    ]
}

#[test]
fn cpu_attention_matches_a_plain_softmax_in_f64() {
    for (n, c) in cases().iter().enumerate() {
        let x = inputs(c, n as u64 * 10);
        let want = reference(c, &x);
        let got = run(c, &x, DType::F32);
        let diff = max_diff(&got, &want);
        // Values are within ±3; f32 sums over up to 300 keys stay well inside this.
        assert!(diff < 2e-4, "{c:?}: max difference {diff}");
    }
}

#[test]
fn cpu_attention_in_f16_stays_within_half_precision() {
    for (n, c) in cases().iter().enumerate() {
        let x = inputs(c, 1000 + n as u64);
        let want = reference(c, &x);
        let got = run(c, &x, DType::F16);
        let diff = max_diff(&got, &want);
        // f16 inputs and outputs: about 3 significant digits.
        assert!(diff < 0.05, "{c:?}: max difference {diff}");
    }
}

#[test]
fn upstream_loops_and_the_two_pass_kernel_agree() {
    // The switch is process-wide; this is the only test here that turns it, and it restores it.
    let before = upstream_cpu_attention();
    let mut worst = 0f32;
    for (n, c) in cases().iter().enumerate() {
        let x = inputs(c, 2000 + n as u64);
        set_upstream_cpu_attention(true);
        let upstream = run(c, &x, DType::F32);
        set_upstream_cpu_attention(false);
        let patched = run(c, &x, DType::F32);
        let diff = max_diff(&upstream, &patched);
        assert!(diff < 2e-4, "{c:?}: upstream and patched differ by {diff}");
        worst = worst.max(diff);
    }
    set_upstream_cpu_attention(before);
    // Two different summation orders: they agree to rounding, but are not the same code path.
    assert!(worst > 0.0, "the switch changed nothing");
}

/// `rows` rows of SmolLM2-like activations, `width` wide.
fn activations(rows: usize, width: usize, seed: u64) -> Tensor {
    Tensor::from_vec(values(rows * width, seed, 3.0), (rows, width), &Device::Cpu).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

#[test]
fn rms_norm_of_one_row_equals_the_parallel_kernel_bit_for_bit() {
    let width = 576;
    let weight = Tensor::from_vec(values(width, 7, 1.5), width, &Device::Cpu).unwrap();
    let norm = QRmsNorm::new(QTensor::quantize(&weight, GgmlDType::F32).unwrap(), 1e-5).unwrap();
    // 64 rows (over the calling-thread limit) go through candle-nn's rayon kernel.
    let many = activations(64, width, 8).reshape((1, 64, width)).unwrap();
    let all = norm.forward(&many).unwrap();
    for row in [0, 17, 63] {
        let one = many.narrow(1, row, 1).unwrap();
        let alone = norm.forward(&one).unwrap();
        assert_eq!(alone.dims(), [1, 1, width]);
        assert_eq!(
            bits(&alone),
            bits(&all.narrow(1, row, 1).unwrap()),
            "row {row}"
        );
    }
    // And both agree with the definition: x / sqrt(mean(x²) + eps) * weight.
    let row = |t: &Tensor| -> Vec<f32> {
        t.narrow(1, 5, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let x = row(&many);
    let w = weight.to_vec1::<f32>().unwrap();
    let rms = (x.iter().map(|v| (v * v) as f64).sum::<f64>() / width as f64 + 1e-5).sqrt();
    let got = row(&all);
    for ((g, x), w) in got.iter().zip(&x).zip(&w) {
        assert!((*g as f64 - *x as f64 / rms * *w as f64).abs() < 1e-4);
    }
}

#[test]
fn rope_of_one_position_equals_the_parallel_kernel_bit_for_bit() {
    for neox in [false, true] {
        let (heads, kv_heads, d) = (9, 3, 64);
        let rope = RotaryEmbedding::new(10000.0, d, 4096, &Device::Cpu, neox, DType::F32).unwrap();
        // A batch of 128 sequences at the same offset is over the calling-thread limit, so it goes
        // through candle-nn's rayon kernel; each sequence alone does not.
        let (b, offset) = (128, 37);
        let q = Tensor::from_vec(
            values(b * heads * d, 11, 2.0),
            (b, heads, 1, d),
            &Device::Cpu,
        )
        .unwrap();
        let k = Tensor::from_vec(
            values(b * kv_heads * d, 12, 2.0),
            (b, kv_heads, 1, d),
            &Device::Cpu,
        )
        .unwrap();
        let (q_all, k_all) = rope.forward(&q, &k, &[offset]).unwrap();
        for seq in [0, 100] {
            let one = |t: &Tensor| t.narrow(0, seq, 1).unwrap();
            let (q1, k1) = rope.forward(&one(&q), &one(&k), &[offset]).unwrap();
            assert_eq!(bits(&q1), bits(&one(&q_all)), "neox {neox}, sequence {seq}");
            assert_eq!(bits(&k1), bits(&one(&k_all)), "neox {neox}, sequence {seq}");
        }
        // The rotation keeps each pair's length.
        let (x, y) = (one_row(&q), one_row(&q_all));
        let pair = |v: &[f32], i: usize| {
            if neox {
                (v[i], v[i + d / 2])
            } else {
                (v[2 * i], v[2 * i + 1])
            }
        };
        for i in 0..d / 2 {
            let ((a, b), (c, e)) = (pair(&x, i), pair(&y, i));
            assert!(
                ((a * a + b * b) - (c * c + e * e)).abs() < 1e-4,
                "neox {neox}, pair {i}"
            );
        }
    }
}

fn one_row(t: &Tensor) -> Vec<f32> {
    let d = t.dim(3).unwrap();
    t.flatten_all()
        .unwrap()
        .narrow(0, 0, d)
        .unwrap()
        .to_vec1()
        .unwrap()
}
