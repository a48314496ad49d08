//! Business rules applied after scoring: pins (the product a query names exactly, and pins from
//! config), boosts from config, out-of-stock products demoted, and diversity (maximal marginal
//! relevance over product embeddings, then a cap on one brand's share of the first page).
//!
//! Out-of-stock products are demoted, not sent to the end: by `out_of_stock_penalty` standard
//! deviations of the query's candidate scores. An exact match that is sold out still outranks
//! a hundred in-stock products that barely match; a close in-stock alternative outranks it.

use std::collections::HashMap;

use serde::Deserialize;

use super::pipeline::{Candidate, Inputs};
use super::query::QuerySpec;

/// Results a shopper sees first; the brand cap applies to them.
const FIRST_PAGE: usize = 10;
/// Results diversity re-orders, at most.
const DIVERSITY_WINDOW: usize = 60;

/// Rules from config (`[ranking]`). The default applies none of them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Rules {
    /// Maximal-marginal-relevance trade-off: 0 turns diversity off; 0.2 gives up a fifth of the
    /// (normalised) score for novelty.
    pub diversity: f32,
    /// At most this many products of one brand on the first page (0: no cap).
    pub max_per_brand: usize,
    /// How far an out-of-stock product falls, in standard deviations of the candidates' scores.
    pub out_of_stock_penalty: f32,
    #[serde(default)]
    pub pins: Vec<Pin>,
    #[serde(default)]
    pub boosts: Vec<Boost>,
}

/// Put `product` first for a query (compared case- and space-insensitively).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Pin {
    pub query: String,
    pub product: String,
}

/// Add `by` to the score of the matching products (a product id, a brand, or a category path
/// prefix); negative values bury.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Boost {
    pub product: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub by: f32,
}

/// A candidate's place in the final order.
#[derive(Debug, Clone)]
pub struct Placed {
    pub index: usize,
    pub boost: f32,
    pub notes: Vec<String>,
}

fn fold(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The final order of `candidates` (indices), at most `limit` long.
pub fn apply(
    inp: &Inputs<'_>,
    spec: &QuerySpec,
    candidates: &[Candidate],
    scores: &[f32],
    limit: usize,
) -> Vec<Placed> {
    let rules = inp.rules;
    let query = fold(&spec.text);
    let n = scores.len().max(1) as f32;
    let mean = scores.iter().sum::<f32>() / n;
    let spread = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f32>() / n).sqrt();
    let mut placed: Vec<Placed> = candidates
        .iter()
        .enumerate()
        .map(|(index, c)| {
            let mut p = Placed {
                index,
                boost: 0.0,
                notes: Vec::new(),
            };
            let s = inp.lexical.summary(&c.id);
            for b in &rules.boosts {
                let hit = b.product.as_deref() == Some(c.id.as_str())
                    || b.brand.as_deref().is_some_and(|want| {
                        s.and_then(|s| s.brand.as_deref())
                            .is_some_and(|have| have.eq_ignore_ascii_case(want))
                    })
                    || b.category.as_deref().is_some_and(|want| {
                        s.and_then(|s| s.category.as_deref())
                            .is_some_and(|have| have.starts_with(want))
                    });
                if hit {
                    p.boost += b.by;
                }
            }
            if p.boost != 0.0 {
                p.notes.push(format!("boost {:+.2}", p.boost));
            }
            if !c.in_stock && rules.out_of_stock_penalty > 0.0 {
                p.boost -= rules.out_of_stock_penalty * spread;
                p.notes.push("out of stock: demoted".into());
            }
            p
        })
        .collect();
    let pinned_rank = |c: &Candidate| -> Option<usize> {
        if c.named {
            return Some(0);
        }
        rules
            .pins
            .iter()
            .position(|pin| pin.product == c.id && fold(&pin.query) == query)
            .map(|i| i + 1)
    };
    for p in &mut placed {
        let c = &candidates[p.index];
        if c.named {
            p.notes.push("exact name".into());
        } else if pinned_rank(c).is_some() {
            p.notes.push("pinned".into());
        }
    }
    let effective = |p: &Placed| scores[p.index] + p.boost;
    // Pinned first (in pin order), then by score after boosts and demotions; ties by id so
    // results are stable.
    placed.sort_by(|a, b| {
        let (ca, cb) = (&candidates[a.index], &candidates[b.index]);
        let pa = pinned_rank(ca).unwrap_or(usize::MAX);
        let pb = pinned_rank(cb).unwrap_or(usize::MAX);
        pa.cmp(&pb)
            .then(effective(b).total_cmp(&effective(a)))
            .then(ca.id.cmp(&cb.id))
    });
    let pins = placed
        .iter()
        .take_while(|p| pinned_rank(&candidates[p.index]).is_some())
        .count();
    if rules.diversity > 0.0 {
        let window = (limit * 3).clamp(FIRST_PAGE, DIVERSITY_WINDOW);
        let end = placed.len().min(pins + window);
        mmr(
            inp,
            candidates,
            scores,
            &mut placed[pins..end],
            rules.diversity,
        );
    }
    if rules.max_per_brand > 0 {
        cap_brands(inp, candidates, &mut placed[pins..], rules.max_per_brand);
    }
    placed.truncate(limit);
    placed
}

/// Re-orders `slice` greedily: each next item maximises
/// `(1 − λ)·score − λ·max similarity to those already chosen`, scores scaled to 0..1.
fn mmr(
    inp: &Inputs<'_>,
    candidates: &[Candidate],
    scores: &[f32],
    slice: &mut [Placed],
    lambda: f32,
) {
    if slice.len() < 3 {
        return;
    }
    let s: Vec<f32> = slice.iter().map(|p| scores[p.index] + p.boost).collect();
    let (lo, hi) = s
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let span = (hi - lo).max(f32::EPSILON);
    let norm: Vec<f32> = s.iter().map(|x| (x - lo) / span).collect();
    let mut rest: Vec<usize> = (0..slice.len()).collect();
    let mut chosen: Vec<usize> = Vec::with_capacity(slice.len());
    let mut max_sim = vec![0f32; slice.len()];
    while !rest.is_empty() {
        let (pos, _) = rest
            .iter()
            .enumerate()
            .map(|(pos, &i)| (pos, (1.0 - lambda) * norm[i] - lambda * max_sim[i]))
            .fold((0, f32::MIN), |best, x| if x.1 > best.1 { x } else { best });
        let next = rest.remove(pos);
        let next_id = &candidates[slice[next].index].id;
        for &i in &rest {
            let sim = inp
                .dense
                .similarity(next_id, &candidates[slice[i].index].id)
                .unwrap_or(0.0);
            max_sim[i] = max_sim[i].max(sim);
        }
        chosen.push(next);
    }
    let reordered: Vec<Placed> = chosen.iter().map(|&i| slice[i].clone()).collect();
    slice.clone_from_slice(&reordered);
}

/// Moves a brand's products beyond the first `cap` out of the first page (keeping their order).
fn cap_brands(inp: &Inputs<'_>, candidates: &[Candidate], slice: &mut [Placed], cap: usize) {
    let brand = |p: &Placed| {
        inp.lexical
            .summary(&candidates[p.index].id)
            .and_then(|s| s.brand.as_deref())
            .map(str::to_lowercase)
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut page = Vec::new();
    let mut deferred = Vec::new();
    let mut later = Vec::new();
    for p in slice.iter() {
        if page.len() >= FIRST_PAGE {
            later.push(p.clone());
            continue;
        }
        if let Some(b) = brand(p) {
            let n = counts.entry(b).or_default();
            if *n >= cap {
                let mut p = p.clone();
                p.notes.push(format!(
                    "after the first page: more than {cap} of its brand"
                ));
                deferred.push(p);
                continue;
            }
            *n += 1;
        }
        page.push(p.clone());
    }
    let mut out = page;
    out.extend(deferred);
    out.extend(later);
    slice.clone_from_slice(&out);
}
