//! Ranking metrics as the evaluation defines them: nDCG@10 with gains 2^grade − 1, Recall@50 over
//! products with grade ≥ 1, and the reciprocal rank of the first relevant product.

use std::collections::HashMap;

/// Metrics of one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryMetrics {
    pub ndcg10: f64,
    pub recall50: f64,
    pub mrr: f64,
}

fn dcg(grades: impl Iterator<Item = u8>) -> f64 {
    grades
        .enumerate()
        .map(|(i, g)| (2f64.powi(i32::from(g)) - 1.0) / (i as f64 + 2.0).log2())
        // An empty f64 sum is -0.0; report nothing found as 0.
        .sum::<f64>()
        + 0.0
}

impl QueryMetrics {
    /// `ranked`: product ids best first; `relevant`: graded labels (unlisted = 0).
    pub fn compute(ranked: &[String], relevant: &HashMap<String, u8>) -> Self {
        let grade = |id: &String| relevant.get(id).copied().unwrap_or(0);
        let mut ideal: Vec<u8> = relevant.values().copied().filter(|g| *g > 0).collect();
        ideal.sort_unstable_by(|a, b| b.cmp(a));
        let idcg = dcg(ideal.iter().copied().take(10));
        let ndcg10 = if idcg > 0.0 {
            dcg(ranked.iter().take(10).map(grade)) / idcg
        } else {
            0.0
        };
        let found = ranked.iter().take(50).filter(|id| grade(id) > 0).count();
        let recall50 = if ideal.is_empty() {
            0.0
        } else {
            found as f64 / ideal.len() as f64
        };
        let mrr = ranked
            .iter()
            .position(|id| grade(id) > 0)
            .map_or(0.0, |i| 1.0 / (i as f64 + 1.0));
        Self {
            ndcg10,
            recall50,
            mrr,
        }
    }
}

/// The mean, or 0 for nothing.
pub fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn perfect_ranking_scores_one() {
        let rel = HashMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]);
        let m = QueryMetrics::compute(&ids(&["a", "b", "c"]), &rel);
        assert!((m.ndcg10 - 1.0).abs() < 1e-12);
        assert_eq!((m.recall50, m.mrr), (1.0, 1.0));
    }

    #[test]
    fn swapped_grades_lose_gain_and_misses_lose_recall() {
        let rel = HashMap::from([
            ("a".to_owned(), 2),
            ("b".to_owned(), 1),
            ("z".to_owned(), 1),
        ]);
        let m = QueryMetrics::compute(&ids(&["x", "b", "a"]), &rel);
        let idcg = 3.0 + 1.0 / 3f64.log2() + 1.0 / 2.0;
        let dcg = 1.0 / 3f64.log2() + 3.0 / 2.0;
        assert!((m.ndcg10 - dcg / idcg).abs() < 1e-12);
        assert!((m.recall50 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.mrr, 0.5);
    }
}
