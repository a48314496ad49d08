//! aisle's patch (patches/README.md): RMS norm, RoPE and the SiLU gate for small f32 inputs on the
//! CPU, computed on the calling thread.
//!
//! candle-nn's CPU kernels for RMS norm and RoPE, and mistralrs-quant's fused GLU, each hand
//! every call to rayon. Called from mistral.rs's engine thread, which is not one of rayon's
//! workers, each call then injects a job into the pool and puts the caller to sleep until a
//! worker has run it: about 120 times per decoded SmolLM2 token, for rows of a few hundred
//! values. Below `MAX_ELEMS` elements these functions do the same arithmetic in the same order
//! on the caller, so their results are bit for bit those of the parallel kernels.

use candle_core::{DType, Result, Storage, Tensor};

/// Inputs up to this many elements (a decoded token's rows) run on the caller.
const MAX_ELEMS: usize = 1 << 14;

/// Whether `x` is a small contiguous f32 tensor on the CPU.
pub(crate) fn eligible(x: &Tensor) -> bool {
    x.device().is_cpu()
        && x.dtype() == DType::F32
        && x.is_contiguous()
        && x.elem_count() <= MAX_ELEMS
}

/// Runs `f` on the f32 elements of the contiguous CPU tensor `x`.
fn with_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("expected a CPU tensor");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("expected a contiguous tensor");
    };
    f(&cpu.as_slice::<f32>()?[start..end])
}

/// `candle_nn::ops::rms_norm` for an eligible `x` and an f32 `alpha` on the CPU.
pub(crate) fn rms_norm(x: &Tensor, alpha: &Tensor, eps: f32) -> Result<Tensor> {
    let dim = x.dim(candle_core::D::Minus1)?;
    if alpha.dims1()? != dim || alpha.dtype() != DType::F32 || dim == 0 {
        return candle_nn::ops::rms_norm(x, alpha, eps);
    }
    let alpha = alpha.contiguous()?;
    let dst = with_f32(x, |src| {
        with_f32(&alpha, |alpha| {
            let mut dst = vec![0f32; src.len()];
            for (src, dst) in src.chunks(dim).zip(dst.chunks_mut(dim)) {
                let sum2 = src.iter().map(|&v| v * v).sum::<f32>();
                let m = (sum2 / dim as f32 + eps).sqrt();
                for ((d, s), a) in dst.iter_mut().zip(src).zip(alpha) {
                    *d = *s / m * *a;
                }
            }
            Ok(dst)
        })
    })?;
    Tensor::from_vec(dst, x.shape(), x.device())
}

/// `candle_nn::rotary_emb::rope_i` (`interleaved`) or `rope` for an eligible (b, h, t, d) `x`
/// and (t, d / 2) f32 tables on the CPU.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
    let (_, _, t, d) = x.dims4()?;
    let tables_fit = |c: &Tensor| {
        c.dims() == [t, d / 2]
            && c.dtype() == DType::F32
            && c.is_contiguous()
            && c.device().is_cpu()
    };
    if !(tables_fit(cos) && tables_fit(sin)) || d % 2 != 0 || t * d == 0 {
        return if interleaved {
            candle_nn::rotary_emb::rope_i(x, cos, sin)
        } else {
            candle_nn::rotary_emb::rope(x, cos, sin)
        };
    }
    let dst = with_f32(x, |src| {
        with_f32(cos, |cos| {
            with_f32(sin, |sin| {
                let mut dst = vec![0f32; src.len()];
                for (src, dst) in src.chunks(t * d).zip(dst.chunks_mut(t * d)) {
                    if interleaved {
                        for k in 0..t * d / 2 {
                            let i = 2 * k;
                            dst[i] = src[i] * cos[k] - src[i + 1] * sin[k];
                            dst[i + 1] = src[i] * sin[k] + src[i + 1] * cos[k];
                        }
                    } else {
                        for i_t in 0..t {
                            for i_d in 0..d / 2 {
                                let i1 = i_t * d + i_d;
                                let i2 = i1 + d / 2;
                                let c = i_t * (d / 2) + i_d;
                                dst[i1] = src[i1] * cos[c] - src[i2] * sin[c];
                                dst[i2] = src[i1] * sin[c] + src[i2] * cos[c];
                            }
                        }
                    }
                }
                Ok(dst)
            })
        })
    })?;
    Tensor::from_vec(dst, x.shape(), x.device())
}
