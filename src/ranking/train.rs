//! Listwise training of the ranker.
//!
//! Each query is one list: its candidates (stages 1–2 of the pipeline) with their features, and a
//! target distribution from graded relevance, `(2^grade − 1) / Σ`. The loss is the cross-entropy
//! between that target and the softmax of the model's scores over the list (ListNet's top-one
//! form), averaged over queries. AdamW with weight decay, a learning rate that warms up linearly
//! and then follows a cosine to zero, and early stopping on the nDCG@10 of a held-out split of the
//! training queries (the best epoch's weights are kept).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use serde::Serialize;

use super::features::{FEATURES, N_FEATURES};
use super::learned::Mlp;

/// One query's candidates and labels.
#[derive(Debug, Clone)]
pub struct ListExample {
    pub id: String,
    pub features: Vec<[f32; N_FEATURES]>,
    /// Graded relevance of each candidate (0: not relevant).
    pub grades: Vec<u8>,
    /// Every relevant product's grade, candidates or not (for the ideal DCG).
    pub all_grades: Vec<u8>,
}

impl ListExample {
    pub fn has_relevant(&self) -> bool {
        self.grades.iter().any(|&g| g > 0)
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub max_epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Epochs of linear warm-up.
    pub warmup: usize,
    /// Stop after this many epochs without a better validation nDCG@10.
    pub patience: usize,
    /// One query in `val_every` goes to validation (chosen by a hash of its id).
    pub val_every: u64,
    /// Queries per gradient step.
    pub batch_queries: usize,
    /// Independent runs from fresh random weights; the best on validation is kept.
    pub restarts: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            max_epochs: 400,
            learning_rate: 0.01,
            weight_decay: 0.01,
            warmup: 20,
            patience: 60,
            val_every: 5,
            batch_queries: 16,
            restarts: 5,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub train_queries: usize,
    pub val_queries: usize,
    pub candidates: usize,
    pub epochs: usize,
    pub best_epoch: usize,
    pub train_loss: f32,
    pub val_ndcg10: f32,
    pub val_ndcg10_at_start: f32,
    /// The same validation lists ranked by the fixed fusion `bm25 + 0.5 × graph`, for comparison.
    pub val_ndcg10_fused: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training query has a relevant product among its candidates")]
    NoData,
    #[error("training: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The learning rate at `step` of `total`: linear warm-up, then cosine decay to zero.
pub fn learning_rate(base: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Listwise softmax cross-entropy: `scores` and `target` are `[lists, candidates]`, `mask` is 1
/// for real candidates and 0 for padding; the mean over lists of `−Σ target · log_softmax(score)`.
pub fn listwise_loss(
    scores: &Tensor,
    target: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    // Padding gets a score so low that its softmax weight is zero.
    let masked = scores.add(&((mask - 1.0)? * 1e4)?)?;
    let log_p = candle_nn::ops::log_softmax(&masked, 1)?;
    (target * log_p)?.sum(1)?.neg()?.mean(0)
}

/// Lists padded into tensors.
struct Batch {
    x: Tensor,
    target: Tensor,
    mask: Tensor,
}

fn batch(lists: &[&ListExample], device: &Device) -> candle_core::Result<Batch> {
    let width = lists
        .iter()
        .map(|l| l.features.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut x = vec![0f32; lists.len() * width * N_FEATURES];
    let mut target = vec![0f32; lists.len() * width];
    let mut mask = vec![0f32; lists.len() * width];
    for (q, l) in lists.iter().enumerate() {
        let gains: Vec<f32> = l
            .grades
            .iter()
            .map(|&g| 2f32.powi(i32::from(g)) - 1.0)
            .collect();
        let total: f32 = gains.iter().sum::<f32>().max(f32::EPSILON);
        for (c, (row, gain)) in l.features.iter().zip(&gains).enumerate() {
            let at = q * width + c;
            x[at * N_FEATURES..(at + 1) * N_FEATURES].copy_from_slice(row);
            target[at] = gain / total;
            mask[at] = 1.0;
        }
    }
    Ok(Batch {
        x: Tensor::from_vec(x, (lists.len(), width, N_FEATURES), device)?,
        target: Tensor::from_vec(target, (lists.len(), width), device)?,
        mask: Tensor::from_vec(mask, (lists.len(), width), device)?,
    })
}

/// nDCG@10 of `scores` for one list (ideal from all of its relevant products).
pub fn ndcg10(scores: &[f32], list: &ListExample) -> f32 {
    let dcg = |grades: &mut dyn Iterator<Item = u8>| -> f32 {
        grades
            .take(10)
            .enumerate()
            .map(|(i, g)| (2f32.powi(i32::from(g)) - 1.0) / ((i + 2) as f32).log2())
            .sum()
    };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut ideal = list.all_grades.clone();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let best = dcg(&mut ideal.into_iter());
    if best == 0.0 {
        return 0.0;
    }
    dcg(&mut order.into_iter().map(|i| list.grades[i])) / best
}

fn split(id: &str, every: u64) -> bool {
    use std::hash::{BuildHasher, BuildHasherDefault};
    every > 1
        && BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id)
            % every
            == 0
}

/// Feature means and standard deviations over the real rows (a constant feature gets 1).
fn standardisation(lists: &[&ListExample]) -> (Vec<f32>, Vec<f32>) {
    let rows: Vec<&[f32; N_FEATURES]> = lists.iter().flat_map(|l| &l.features).collect();
    let n = rows.len().max(1) as f32;
    let mut mean = vec![0f32; N_FEATURES];
    for r in &rows {
        for (m, v) in mean.iter_mut().zip(r.iter()) {
            *m += v / n;
        }
    }
    let mut std = vec![0f32; N_FEATURES];
    for r in &rows {
        for ((s, v), m) in std.iter_mut().zip(r.iter()).zip(&mean) {
            *s += (v - m).powi(2) / n;
        }
    }
    let std = std
        .into_iter()
        .map(|v| if v.sqrt() < 1e-3 { 1.0 } else { v.sqrt() })
        .collect();
    (mean, std)
}

/// Trains `opts.restarts` models from different random initial weights and keeps the one with
/// the best validation nDCG@10 (small data makes single runs noisy). `on_epoch` sees
/// (restart, epoch, loss, validation nDCG@10).
pub fn train(
    lists: &[ListExample],
    opts: &TrainOptions,
    mut on_epoch: impl FnMut(usize, usize, f32, f32),
) -> Result<(VarMap, Mlp, TrainReport), TrainError> {
    let mut best: Option<(VarMap, Mlp, TrainReport)> = None;
    for restart in 0..opts.restarts.max(1) {
        let run = train_once(lists, opts, |e, l, n| on_epoch(restart, e, l, n))?;
        if best
            .as_ref()
            .is_none_or(|b| run.2.val_ndcg10 > b.2.val_ndcg10)
        {
            best = Some(run);
        }
    }
    best.ok_or(TrainError::NoData)
}

fn train_once(
    lists: &[ListExample],
    opts: &TrainOptions,
    mut on_epoch: impl FnMut(usize, f32, f32),
) -> Result<(VarMap, Mlp, TrainReport), TrainError> {
    let usable: Vec<&ListExample> = lists.iter().filter(|l| l.has_relevant()).collect();
    if usable.is_empty() {
        return Err(TrainError::NoData);
    }
    let (mut val, mut tr): (Vec<&ListExample>, Vec<&ListExample>) =
        usable.iter().partition(|l| split(&l.id, opts.val_every));
    if tr.is_empty() || val.len() < 2 {
        // Too few queries to hold any out: validate on the training lists.
        tr = usable.clone();
        val = usable.clone();
    }
    let device = Device::Cpu;
    let (mean, std) = standardisation(&tr);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let mlp = Mlp::new(vb, &mean, &std)?;
    let mut order: Vec<usize> = (0..tr.len()).collect();
    let batches_per_epoch = tr.len().div_ceil(opts.batch_queries.max(1));
    let total_steps = opts.max_epochs * batches_per_epoch;
    let warmup_steps = opts.warmup * batches_per_epoch;
    let mut step = 0usize;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: opts.learning_rate,
            weight_decay: opts.weight_decay,
            ..Default::default()
        },
    )?;
    let val_ndcg = |mlp: &Mlp| -> candle_core::Result<f32> {
        let mut sum = 0.0;
        for l in &val {
            let flat: Vec<f32> = l.features.iter().flatten().copied().collect();
            let x = Tensor::from_vec(flat, (l.features.len(), N_FEATURES), &device)?;
            sum += ndcg10(&mlp.forward(&x)?.to_vec1()?, l);
        }
        Ok(sum / val.len() as f32)
    };
    let snapshot = |vars: &[Var]| -> candle_core::Result<Vec<Tensor>> {
        vars.iter().map(|v| v.as_tensor().copy()).collect()
    };
    let vars = varmap.all_vars();
    let start_ndcg = val_ndcg(&mlp)?;
    let mut best = (start_ndcg, 0usize, snapshot(&vars)?);
    let mut last_loss = f32::NAN;
    let mut epochs = 0;
    for epoch in 0..opts.max_epochs {
        epochs = epoch + 1;
        // A fresh order of the training lists each epoch (Fisher–Yates with a fixed-seed LCG, so a
        // run is repeatable for the same data and initial weights).
        for i in (1..order.len()).rev() {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            order.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let mut epoch_loss = 0.0;
        for chunk in order.chunks(opts.batch_queries.max(1)) {
            opt.set_learning_rate(learning_rate(
                opts.learning_rate,
                step,
                warmup_steps,
                total_steps,
            ));
            step += 1;
            let lists: Vec<&ListExample> = chunk.iter().map(|&i| tr[i]).collect();
            let data = batch(&lists, &device)?;
            let scores = mlp.forward(&data.x)?;
            let loss = listwise_loss(&scores, &data.target, &data.mask)?;
            opt.backward_step(&loss)?;
            epoch_loss += loss.to_scalar::<f32>()? * chunk.len() as f32;
        }
        last_loss = epoch_loss / tr.len() as f32;
        let ndcg = val_ndcg(&mlp)?;
        on_epoch(epochs, last_loss, ndcg);
        if ndcg > best.0 + 1e-6 {
            best = (ndcg, epochs, snapshot(&vars)?);
        } else if epoch >= opts.warmup && epochs - best.1 > opts.patience {
            break;
        }
    }
    for (v, t) in vars.iter().zip(&best.2) {
        v.set(t)?;
    }
    let at = |name: &str| FEATURES.iter().position(|f| *f == name).unwrap_or(0);
    let (bm25, graph) = (at("bm25"), at("graph"));
    let fused = val
        .iter()
        .map(|l| {
            let s: Vec<f32> = l
                .features
                .iter()
                .map(|r| r[bm25] + 0.5 * r[graph])
                .collect();
            ndcg10(&s, l)
        })
        .sum::<f32>()
        / val.len() as f32;
    let report = TrainReport {
        train_queries: tr.len(),
        val_queries: val.len(),
        candidates: tr.iter().map(|l| l.features.len()).sum(),
        epochs,
        best_epoch: best.1,
        train_loss: last_loss,
        val_ndcg10: best.0,
        val_ndcg10_at_start: start_ndcg,
        val_ndcg10_fused: fused,
    };
    Ok((varmap, mlp, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((learning_rate(1.0, 0, 10, 110) - 0.1).abs() < 1e-9);
        assert!((learning_rate(1.0, 9, 10, 110) - 1.0).abs() < 1e-9);
        assert!((learning_rate(1.0, 60, 10, 110) - 0.5).abs() < 1e-9);
        assert!(learning_rate(1.0, 110, 10, 110).abs() < 1e-9);
    }

    /// The loss is the cross-entropy of the softmax, and its gradient with respect to the scores
    /// is `(softmax − target) / lists`, which is zero exactly when the softmax equals the target.
    #[test]
    fn loss_and_gradient_match_the_closed_form() {
        let d = Device::Cpu;
        let scores = Var::from_slice(&[1.0f32, 2.0, 0.5, 0.0, 0.0, 3.0], (2, 3), &d).unwrap();
        let target = Tensor::from_slice(&[0.0f32, 1.0, 0.0, 0.5, 0.5, 0.0], (2, 3), &d).unwrap();
        // The second list has one padded slot (its third entry).
        let mask = Tensor::from_slice(&[1.0f32, 1.0, 1.0, 1.0, 1.0, 0.0], (2, 3), &d).unwrap();
        let loss = listwise_loss(scores.as_tensor(), &target, &mask).unwrap();
        let softmax = |v: &[f32]| {
            let z: f32 = v.iter().map(|x| x.exp()).sum();
            v.iter().map(|x| x.exp() / z).collect::<Vec<_>>()
        };
        let p1 = softmax(&[1.0, 2.0, 0.5]);
        let p2 = softmax(&[0.0, 0.0]);
        let expected = (-(p1[1].ln()) + -(0.5 * p2[0].ln() + 0.5 * p2[1].ln())) / 2.0;
        let got = loss.to_scalar::<f32>().unwrap();
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");

        let grads = loss.backward().unwrap();
        let g = grads.get(&scores).unwrap().flatten_all().unwrap();
        let g: Vec<f32> = g.to_vec1().unwrap();
        let want = [
            p1[0] / 2.0,
            (p1[1] - 1.0) / 2.0,
            p1[2] / 2.0,
            (p2[0] - 0.5) / 2.0,
            (p2[1] - 0.5) / 2.0,
            0.0,
        ];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{g:?} vs {want:?}");
        }
        // At the optimum (softmax = target) the gradient vanishes.
        let at_opt = Var::from_slice(&[0.0f32, 0.0], (1, 2), &d).unwrap();
        let t = Tensor::from_slice(&[0.5f32, 0.5], (1, 2), &d).unwrap();
        let m = Tensor::ones((1, 2), DType::F32, &d).unwrap();
        let l = listwise_loss(at_opt.as_tensor(), &t, &m).unwrap();
        let g: Vec<f32> = l
            .backward()
            .unwrap()
            .get(&at_opt)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(g.iter().all(|x| x.abs() < 1e-6));
    }

    /// Lists where relevance is planted in one feature (others are noise): training must find it.
    #[test]
    fn training_recovers_a_planted_signal() {
        let mut seed = 42u64;
        let mut rand = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32) / (1u64 << 31) as f32
        };
        let signal = FEATURES
            .iter()
            .position(|f| *f == "title_coverage")
            .unwrap();
        let lists: Vec<ListExample> = (0..60)
            .map(|q| {
                let mut features = Vec::new();
                let mut grades = Vec::new();
                for _ in 0..30 {
                    let mut row = [0f32; N_FEATURES];
                    for v in row.iter_mut() {
                        *v = rand();
                    }
                    let g = if row[signal] > 0.85 {
                        2
                    } else if row[signal] > 0.7 {
                        1
                    } else {
                        0
                    };
                    features.push(row);
                    grades.push(g);
                }
                ListExample {
                    id: format!("q{q}"),
                    all_grades: grades.clone(),
                    features,
                    grades,
                }
            })
            .collect();
        let opts = TrainOptions {
            restarts: 1,
            ..Default::default()
        };
        let (_, mlp, report) = train(&lists, &opts, |_, _, _, _| {}).unwrap();
        assert!(report.val_queries >= 2 && report.train_queries > report.val_queries);
        assert!(
            report.val_ndcg10 > 0.95 && report.val_ndcg10 > report.val_ndcg10_at_start + 0.2,
            "{report:?}"
        );
        // Moving only the planted feature moves the score; moving a noise feature barely does.
        let mut lo = [0.5f32; N_FEATURES];
        lo[signal] = 0.1;
        let mut hi = lo;
        hi[signal] = 0.95;
        let mut noise = lo;
        noise[3] = 0.95;
        let x =
            Tensor::from_slice(&[lo, hi, noise].concat(), (3, N_FEATURES), &Device::Cpu).unwrap();
        let s: Vec<f32> = mlp.forward(&x).unwrap().to_vec1().unwrap();
        assert!(s[1] - s[0] > 3.0 * (s[2] - s[0]).abs(), "{s:?}");
    }
}
