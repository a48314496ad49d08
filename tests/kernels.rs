//! The patched candle-core's tiled CPU matmul (patches/README.md) against candle's own per-pair
//! dot products, over shapes that exercise every tile remainder: Q8_0 must match bit for bit,
//! Q4_1 (whose upstream dot is a scalar loop summed in another order) to float rounding, and both
//! must agree with a plain f32 product of the dequantized weights within the activations'
//! quantization error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::values;

use candle_core::quantized::k_quants::{BlockQ4_1, BlockQ8_0, BlockQ8_1, GgmlType};
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};

/// (m, k, n): decode (m = 1), short and long prompts, columns not divisible by the tile widths,
/// and the lm_head-like wide case.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 32, 1),
    (1, 576, 49),
    (2, 64, 5),
    (3, 96, 7),
    (5, 576, 130),
    (9, 1536, 33),
    (17, 576, 97),
    (64, 576, 576),
    (1, 576, 4099),
];

fn quantize<B: GgmlType>(xs: &[f32], k: usize) -> Vec<B> {
    let mut out = vec![B::zeros(); xs.len() / 32];
    for (ys, xs) in out.chunks_mut(k / 32).zip(xs.chunks(k)) {
        B::from_float(xs, ys);
    }
    out
}

/// `x (m x k)` through `mm` as one batch of `m` rows.
fn forward(mm: &QMatMul, x: &[f32], m: usize, k: usize) -> Vec<f32> {
    let xt = Tensor::from_vec(x.to_vec(), (1, m, k), &Device::Cpu).unwrap();
    mm.forward(&xt)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Runs `QMatMul` (the patched path) and the per-pair upstream dot on the same blocks.
fn both<W, A>(m: usize, k: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Tensor)
where
    W: GgmlType<VecDotType = A> + Send + Sync + 'static,
    A: GgmlType,
{
    let x = values(m * k, seed, 2.0);
    let w = values(n * k, seed + 1, 2.0);
    let wq: Vec<W> = quantize(&w, k);
    let aq: Vec<A> = quantize(&x, k);
    let kb = k / 32;
    let mut upstream = Vec::with_capacity(m * n);
    for r in 0..m {
        for c in 0..n {
            upstream.push(W::vec_dot(
                k,
                &wq[c * kb..(c + 1) * kb],
                &aq[r * kb..(r + 1) * kb],
            ));
        }
    }
    let qt = QTensor::new(QStorage::Cpu(Box::new(wq)), (n, k)).unwrap();
    let deq = qt.dequantize(&Device::Cpu).unwrap();
    let got = forward(&QMatMul::from_qtensor(qt).unwrap(), &x, m, k);
    (got, upstream, x, deq)
}

/// |x| . |w| for each output: the scale every error bound is relative to.
fn magnitudes(x: &[f32], deq: &Tensor, m: usize, k: usize) -> Vec<f32> {
    let xa = Tensor::from_vec(
        x.iter().map(|v| v.abs()).collect::<Vec<_>>(),
        (m, k),
        &Device::Cpu,
    )
    .unwrap();
    let wa = deq.abs().unwrap();
    xa.matmul(&wa.t().unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn exact(x: &[f32], deq: &Tensor, m: usize, k: usize) -> Vec<f32> {
    let xt = Tensor::from_vec(x.to_vec(), (m, k), &Device::Cpu).unwrap();
    xt.matmul(&deq.t().unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn check_against_f32(got: &[f32], x: &[f32], deq: &Tensor, m: usize, k: usize, what: &str) {
    let want = exact(x, deq, m, k);
    let scale = magnitudes(x, deq, m, k);
    for (i, ((g, w), s)) in got.iter().zip(&want).zip(&scale).enumerate() {
        // Each activation moves by at most half a Q8 step, 1/254 of its block's largest value.
        assert!(
            (g - w).abs() <= s / 200.0 + 1e-4,
            "{what} output {i}: {g} vs exact {w} (scale {s})"
        );
    }
}

#[test]
fn tiled_kernels_cover_q8_0_and_q4_1_where_the_cpu_has_avx2() {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        let off = std::env::var("CANDLE_TILED_MATMUL").is_ok_and(|v| v == "0");
        use candle_core::quantized::tiled::covers;
        assert_eq!(covers(GgmlDType::Q8_0), avx2 && !off);
        assert_eq!(covers(GgmlDType::Q4_1), avx2 && !off);
        assert!(!covers(GgmlDType::Q4_0), "Q4_0 keeps upstream's kernel");
        assert!(!covers(GgmlDType::Q5_1));
    }
}

#[test]
fn q8_0_matches_upstream_bit_for_bit() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        let (got, upstream, x, deq) = both::<BlockQ8_0, BlockQ8_0>(m, k, n, 10 + i as u64);
        assert_eq!(got.len(), m * n);
        for (j, (g, u)) in got.iter().zip(&upstream).enumerate() {
            assert_eq!(
                g.to_bits(),
                u.to_bits(),
                "Q8_0 {m}x{k}x{n} output {j}: {g} vs upstream {u}"
            );
        }
        check_against_f32(&got, &x, &deq, m, k, &format!("Q8_0 {m}x{k}x{n}"));
    }
}

#[test]
fn q4_1_matches_upstream_to_rounding() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        if (k / 32) % 2 == 1 {
            // Upstream's scalar Q4_1 dot asserts an even block count; the tiled one has no such
            // limit, so odd counts are checked against the f32 product only.
            let x = values(m * k, 100 + i as u64, 2.0);
            let w = values(n * k, 101 + i as u64, 2.0);
            let qt = QTensor::quantize(
                &Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap(),
                GgmlDType::Q4_1,
            )
            .unwrap();
            let deq = qt.dequantize(&Device::Cpu).unwrap();
            let got = forward(&QMatMul::from_qtensor(qt).unwrap(), &x, m, k);
            check_against_f32(&got, &x, &deq, m, k, &format!("Q4_1 {m}x{k}x{n}"));
            continue;
        }
        let (got, upstream, x, deq) = both::<BlockQ4_1, BlockQ8_1>(m, k, n, 100 + i as u64);
        let scale = magnitudes(&x, &deq, m, k);
        for (j, ((g, u), s)) in got.iter().zip(&upstream).zip(&scale).enumerate() {
            assert!(
                (g - u).abs() <= s * 1e-5 + 1e-5,
                "Q4_1 {m}x{k}x{n} output {j}: {g} vs upstream {u}"
            );
        }
        check_against_f32(&got, &x, &deq, m, k, &format!("Q4_1 {m}x{k}x{n}"));
    }
}

#[test]
fn concurrent_callers_outside_the_pool_get_the_same_results() {
    // Callers outside rayon's pool share one team of helper threads; one that finds it busy falls
    // back to rayon. Either way every product must come out the same.
    let (m, k, n) = (3, 576, 131);
    let w = values(n * k, 7, 2.0);
    let qt = QTensor::quantize(
        &Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap(),
        GgmlDType::Q8_0,
    )
    .unwrap();
    let mm = QMatMul::from_qtensor(qt).unwrap();
    let x = values(m * k, 8, 2.0);
    let want = forward(&mm, &x, m, k);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    let got = forward(&mm, &x, m, k);
                    assert!(
                        got.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "a concurrent product differs"
                    );
                }
            });
        }
    });
}
