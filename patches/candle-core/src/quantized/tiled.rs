//! Tiled CPU matmul for Q8_0 and Q4_1 weights on x86-64 (aisle's patch; see patches/README.md).
//!
//! Upstream `k_quants::matmul` computes one output row at a time: each row is a separate rayon
//! dispatch, and each (row, column) pair is an independent `vec_dot` that reloads the weight column.
//! Q4_1 has no SIMD `vec_dot` at all and runs a scalar loop. Here one dispatch covers the whole
//! product: rayon splits the weight columns into chunks, and each task walks every activation row
//! in tiles of `R` rows by `C` columns, so a weight block is loaded (and, for Q4_1, unpacked) once
//! per tile and reused `R` times from registers.
//!
//! The kernels are chosen at run time: AVX2 + FMA + F16C, plus `vpdpbusd` where AVX512-VNNI is
//! present. Q8_0 results are bit-for-bit those of upstream's AVX2 `vec_dot_q8_0_q8_0` (same
//! per-block products and accumulation order); Q4_1 sums blocks in vector lanes rather than in one
//! scalar, so its results differ from upstream's scalar loop by float rounding only.
//!
//! `CANDLE_TILED_MATMUL=0` turns the path off (the upstream loop runs instead); [`set_enabled`]
//! does the same at run time, which benchmarks use to time the upstream loop in the same run.

use super::k_quants::{BlockQ4_1, BlockQ8_0, BlockQ8_1, GgmlType};
use crate::Result;
use half::f16;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Isa {
    Avx2,
    Vnni,
}

/// Set by [`set_enabled`]: the tiled path is off for the whole process.
static DISABLED: AtomicBool = AtomicBool::new(false);

fn isa() -> Option<Isa> {
    static ISA: OnceLock<Option<Isa>> = OnceLock::new();
    if DISABLED.load(Ordering::Relaxed) {
        return None;
    }
    *ISA.get_or_init(|| {
        if std::env::var("CANDLE_TILED_MATMUL").is_ok_and(|v| v == "0") {
            return None;
        }
        if !(std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c"))
        {
            return None;
        }
        if std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512vl")
        {
            Some(Isa::Vnni)
        } else {
            Some(Isa::Avx2)
        }
    })
}

/// Turns the tiled path off (`false`) or back on for the whole process, e.g. to time the upstream
/// loop as a baseline in the same run. It cannot turn it on where the CPU lacks AVX2 or
/// `CANDLE_TILED_MATMUL=0` is set.
pub fn set_enabled(on: bool) {
    DISABLED.store(!on, Ordering::Relaxed);
}

/// The instruction set the tiled kernels use now: `"avx512-vnni"`, `"avx2"`, or `None` when the
/// path is off.
pub fn kernel() -> Option<&'static str> {
    isa().map(|isa| match isa {
        Isa::Avx2 => "avx2",
        Isa::Vnni => "avx512-vnni",
    })
}

/// Whether `matmul` takes the tiled path for weights of `dtype` on this CPU.
pub fn covers(dtype: super::GgmlDType) -> bool {
    matches!(dtype, super::GgmlDType::Q8_0 | super::GgmlDType::Q4_1) && isa().is_some()
}

/// The tiled product `dst (m x n) = lhs (m x k) * rhs_t (n x k)^T`, or `None` when this type or
/// CPU is not covered (the caller then runs the upstream loop).
pub fn matmul<T: GgmlType>(
    (m, k, n): (usize, usize, usize),
    lhs: &[f32],
    rhs_t: &[T],
    dst: &mut [f32],
) -> Option<Result<()>> {
    let isa = isa()?;
    if m * k != lhs.len() || m * n != dst.len() || !k.is_multiple_of(32) {
        return None;
    }
    let kb = k / 32;
    if rhs_t.len() != n * kb {
        return None;
    }
    match T::DTYPE {
        super::GgmlDType::Q8_0 => {
            // SAFETY: T is BlockQ8_0 (its DTYPE says so); same size and layout.
            let w = unsafe {
                std::slice::from_raw_parts(rhs_t.as_ptr() as *const BlockQ8_0, rhs_t.len())
            };
            let a = quantize_rows::<BlockQ8_0>(lhs, m, k);
            run(isa, m, n, kb, dst, |isa, rows, cols, out| unsafe {
                match isa {
                    Isa::Avx2 => q8_0_avx2::<4, 2>(&a, w, kb, rows, cols, n, out),
                    Isa::Vnni => q8_0_vnni::<4, 3>(&a, w, kb, rows, cols, n, out),
                }
            });
            Some(Ok(()))
        }
        super::GgmlDType::Q4_1 => {
            // SAFETY: T is BlockQ4_1 (its DTYPE says so); same size and layout.
            let w = unsafe {
                std::slice::from_raw_parts(rhs_t.as_ptr() as *const BlockQ4_1, rhs_t.len())
            };
            let a = quantize_rows::<BlockQ8_1>(lhs, m, k);
            run(isa, m, n, kb, dst, |isa, rows, cols, out| unsafe {
                match isa {
                    Isa::Avx2 => q4_1_avx2::<4, 2>(&a, w, kb, rows, cols, n, out),
                    Isa::Vnni => q4_1_vnni::<4, 3>(&a, w, kb, rows, cols, n, out),
                }
            });
            Some(Ok(()))
        }
        _ => None,
    }
}

/// Quantizes each activation row into `B` blocks, rows in parallel when there are many.
fn quantize_rows<B: GgmlType>(lhs: &[f32], m: usize, k: usize) -> Vec<B> {
    let kb = k / 32;
    let mut out = vec![B::zeros(); m * kb];
    if m >= 16 {
        out.par_chunks_mut(kb)
            .zip(lhs.par_chunks(k))
            .for_each(|(ys, xs)| B::from_float(xs, ys));
    } else {
        for (ys, xs) in out.chunks_mut(kb).zip(lhs.chunks(k)) {
            B::from_float(xs, ys);
        }
    }
    out
}

/// Raw output pointer shared by the column tasks; each task writes only its own columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint column ranges of `dst`, which outlives the parallel loop.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

fn run(
    isa: Isa,
    m: usize,
    n: usize,
    kb: usize,
    dst: &mut [f32],
    kernel: impl Fn(Isa, usize, std::ops::Range<usize>, *mut f32) + Sync,
) {
    // Columns per task: enough work per task to amortize the dispatch, and enough tasks to keep
    // every thread busy on the small matrices of a single decoded token.
    let work_per_col = m * kb;
    let chunk = (4096 / work_per_col.max(1)).clamp(12, 96);
    let chunk = chunk - chunk % 6;
    let out = Out(dst.as_mut_ptr());
    let tasks = n.div_ceil(chunk);
    if tasks == 1 {
        kernel(isa, m, 0..n, out.0);
        return;
    }
    let task = |t: usize| {
        let cols = t * chunk..((t + 1) * chunk).min(n);
        let out = out;
        kernel(isa, m, cols, out.0)
    };
    if rayon::current_thread_index().is_none() {
        if let Some(team) = team::get() {
            if team.run(tasks, &task) {
                return;
            }
        }
    }
    (0..tasks).into_par_iter().for_each(task);
}

/// Dispatch for callers outside the rayon pool (an inference engine's own thread): the caller
/// works on the product itself, beside `rayon::current_num_threads() - 1` helper threads that
/// spin for new work for a short while after each product and then park. Handing a product to
/// rayon's pool from outside instead costs a sleep and a wake-up of the caller on every call,
/// which for the ~200 small products of one decoded token was a large share of its time, and
/// leaves one more runnable thread than there are cores.
mod team {
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Condvar, Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// An idle helper spins this long, then yields its core to other runnable threads (the
    /// engine's attention pool, say) between checks until `PARK`, then parks.
    const SPIN: Duration = Duration::from_micros(50);
    const PARK: Duration = Duration::from_millis(1);

    /// One product being computed: tasks are claimed from `next`.
    struct Job<'a> {
        next: AtomicUsize,
        tasks: usize,
        task: &'a (dyn Fn(usize) + Sync),
    }

    impl Job<'_> {
        fn work(&self) {
            loop {
                let t = self.next.fetch_add(1, SeqCst);
                if t >= self.tasks {
                    return;
                }
                (self.task)(t);
            }
        }
    }

    pub(super) struct Team {
        /// Bumped for every published job.
        epoch: AtomicUsize,
        /// The open job, null when none; helpers only touch it while counted in `inside`.
        job: AtomicPtr<Job<'static>>,
        inside: AtomicUsize,
        /// One caller at a time; a second one concurrently uses rayon instead.
        caller: Mutex<()>,
        parked: Mutex<usize>,
        wake: Condvar,
    }

    pub(super) fn get() -> Option<&'static Team> {
        static TEAM: OnceLock<Option<&'static Team>> = OnceLock::new();
        *TEAM.get_or_init(|| {
            let helpers = rayon::current_num_threads().saturating_sub(1);
            if helpers == 0 {
                return None;
            }
            let team: &'static Team = Box::leak(Box::new(Team {
                epoch: AtomicUsize::new(0),
                job: AtomicPtr::new(std::ptr::null_mut()),
                inside: AtomicUsize::new(0),
                caller: Mutex::new(()),
                parked: Mutex::new(0),
                wake: Condvar::new(),
            }));
            for i in 0..helpers {
                let spawned = std::thread::Builder::new()
                    .name(format!("candle-tiled-{i}"))
                    .spawn(move || team.help());
                if spawned.is_err() {
                    return None;
                }
            }
            Some(team)
        })
    }

    impl Team {
        /// Runs `task(0..tasks)` on the caller and the helpers; false (nothing run) when another
        /// caller holds the team.
        pub(super) fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) -> bool {
            let Ok(_caller) = self.caller.try_lock() else {
                return false;
            };
            let job = Job {
                next: AtomicUsize::new(0),
                tasks,
                task,
            };
            // SAFETY: the pointer is withdrawn below, and this function waits until no helper
            // is inside, before `job` goes out of scope.
            let ptr = &job as *const Job<'_> as *mut Job<'static>;
            self.job.store(ptr, SeqCst);
            self.epoch.fetch_add(1, SeqCst);
            if *self.parked.lock().unwrap_or_else(|e| e.into_inner()) > 0 {
                self.wake.notify_all();
            }
            job.work();
            self.job.store(std::ptr::null_mut(), SeqCst);
            while self.inside.load(SeqCst) != 0 {
                std::hint::spin_loop();
            }
            true
        }

        fn help(&self) {
            let mut seen = self.epoch.load(SeqCst);
            loop {
                let started = Instant::now();
                let mut spins = 0u32;
                while self.epoch.load(SeqCst) == seen {
                    spins = spins.wrapping_add(1);
                    let waited = if spins % 64 == 0 {
                        started.elapsed()
                    } else {
                        Duration::ZERO
                    };
                    if waited < SPIN {
                        std::hint::spin_loop();
                    } else if waited < PARK {
                        std::thread::yield_now();
                    } else {
                        let mut parked = self.parked.lock().unwrap_or_else(|e| e.into_inner());
                        *parked += 1;
                        while self.epoch.load(SeqCst) == seen {
                            parked = self.wake.wait(parked).unwrap_or_else(|e| e.into_inner());
                        }
                        *parked -= 1;
                    }
                }
                seen = self.epoch.load(SeqCst);
                self.inside.fetch_add(1, SeqCst);
                let ptr = self.job.load(SeqCst);
                if !ptr.is_null() {
                    // SAFETY: the caller withdraws the pointer and then waits for `inside` to
                    // reach zero before the job is dropped; we were counted before loading it.
                    unsafe { &*ptr }.work();
                }
                self.inside.fetch_sub(1, SeqCst);
            }
        }
    }
}

use std::arch::x86_64::*;

#[inline(always)]
unsafe fn hsum(x: __m256) -> f32 {
    let mut r = _mm256_extractf128_ps(x, 1);
    r = _mm_add_ps(r, _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// Defines a Q8_0 x Q8_0 tile kernel for one instruction set. `$dot(u, s)` is the sum, in 8 i32
/// lanes, of the products of 32 unsigned bytes `u` with 32 signed bytes `s`.
macro_rules! q8_0_kernel {
    ($name:ident, $feat:literal, |$u:ident, $s:ident| $dot:expr) => {
        /// # Safety
        /// The CPU must have the named features; `a` holds `rows * kb` blocks, `w` the blocks
        /// of every column in `cols`, and `out` points at row 0 of an `n`-column output.
        #[target_feature(enable = $feat)]
        unsafe fn $name<const R: usize, const C: usize>(
            a: &[BlockQ8_0],
            w: &[BlockQ8_0],
            kb: usize,
            rows: usize,
            cols: std::ops::Range<usize>,
            n: usize,
            out: *mut f32,
        ) {
            let mut r0 = 0;
            while r0 + R <= rows {
                let mut c0 = cols.start;
                while c0 + C <= cols.end {
                    let mut acc = [[_mm256_setzero_ps(); C]; R];
                    for b in 0..kb {
                        let mut wq = [_mm256_setzero_si256(); C];
                        let mut wabs = [_mm256_setzero_si256(); C];
                        let mut wd = [0f32; C];
                        for c in 0..C {
                            let blk = w.get_unchecked((c0 + c) * kb + b);
                            wq[c] = _mm256_loadu_si256(blk.qs.as_ptr() as *const __m256i);
                            wabs[c] = _mm256_sign_epi8(wq[c], wq[c]);
                            wd[c] = f16::to_f32(blk.d);
                        }
                        for r in 0..R {
                            let ablk = a.get_unchecked((r0 + r) * kb + b);
                            let x = _mm256_loadu_si256(ablk.qs.as_ptr() as *const __m256i);
                            let ad = f16::to_f32(ablk.d);
                            for c in 0..C {
                                let $u = wabs[c];
                                let $s = _mm256_sign_epi8(x, wq[c]);
                                let i: __m256i = $dot;
                                let d = _mm256_set1_ps(wd[c] * ad);
                                acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(i), acc[r][c]);
                            }
                        }
                    }
                    for (r, acc) in acc.iter().enumerate() {
                        for (c, acc) in acc.iter().enumerate() {
                            *out.add((r0 + r) * n + c0 + c) = hsum(*acc);
                        }
                    }
                    c0 += C;
                }
                if c0 < cols.end {
                    $name::<R, 1>(&a[r0 * kb..], w, kb, R, c0..cols.end, n, out.add(r0 * n));
                }
                r0 += R;
            }
            if r0 < rows {
                $name::<1, C>(&a[r0 * kb..], w, kb, rows - r0, cols, n, out.add(r0 * n));
            }
        }
    };
}

/// Defines a Q4_1 x Q8_1 tile kernel: the 4-bit weights are unsigned, so they multiply the signed
/// activations directly; the block minimum enters through the activation block's sum `s`.
macro_rules! q4_1_kernel {
    ($name:ident, $feat:literal, |$u:ident, $s:ident| $dot:expr) => {
        /// # Safety
        /// As for the Q8_0 kernels.
        #[target_feature(enable = $feat)]
        unsafe fn $name<const R: usize, const C: usize>(
            a: &[BlockQ8_1],
            w: &[BlockQ4_1],
            kb: usize,
            rows: usize,
            cols: std::ops::Range<usize>,
            n: usize,
            out: *mut f32,
        ) {
            let low = _mm256_set1_epi8(0x0F);
            let mut r0 = 0;
            while r0 + R <= rows {
                let mut c0 = cols.start;
                while c0 + C <= cols.end {
                    let mut acc = [[_mm256_setzero_ps(); C]; R];
                    let mut mins = [[0f32; C]; R];
                    for b in 0..kb {
                        let mut wq = [_mm256_setzero_si256(); C];
                        let mut wd = [0f32; C];
                        let mut wm = [0f32; C];
                        for c in 0..C {
                            let blk = w.get_unchecked((c0 + c) * kb + b);
                            // Element j is the low nibble of byte j, element j + 16 the high one.
                            let packed = _mm_loadu_si128(blk.qs.as_ptr() as *const __m128i);
                            let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
                            wq[c] = _mm256_and_si256(both, low);
                            wd[c] = f16::to_f32(blk.d);
                            wm[c] = f16::to_f32(blk.m);
                        }
                        for r in 0..R {
                            let ablk = a.get_unchecked((r0 + r) * kb + b);
                            let x = _mm256_loadu_si256(ablk.qs.as_ptr() as *const __m256i);
                            let ad = f16::to_f32(ablk.d);
                            let asum = f16::to_f32(ablk.s);
                            for c in 0..C {
                                let $u = wq[c];
                                let $s = x;
                                let i: __m256i = $dot;
                                let d = _mm256_set1_ps(wd[c] * ad);
                                acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(i), acc[r][c]);
                                mins[r][c] += wm[c] * asum;
                            }
                        }
                    }
                    for r in 0..R {
                        for c in 0..C {
                            *out.add((r0 + r) * n + c0 + c) = hsum(acc[r][c]) + mins[r][c];
                        }
                    }
                    c0 += C;
                }
                if c0 < cols.end {
                    $name::<R, 1>(&a[r0 * kb..], w, kb, R, c0..cols.end, n, out.add(r0 * n));
                }
                r0 += R;
            }
            if r0 < rows {
                $name::<1, C>(&a[r0 * kb..], w, kb, rows - r0, cols, n, out.add(r0 * n));
            }
        }
    };
}

q8_0_kernel!(q8_0_avx2, "avx2,fma,f16c", |u, s| _mm256_madd_epi16(
    _mm256_maddubs_epi16(u, s),
    _mm256_set1_epi16(1)
));
q8_0_kernel!(q8_0_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", |u, s| {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
});
q4_1_kernel!(q4_1_avx2, "avx2,fma,f16c", |u, s| _mm256_madd_epi16(
    _mm256_maddubs_epi16(u, s),
    _mm256_set1_epi16(1)
));
q4_1_kernel!(q4_1_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", |u, s| {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
});
