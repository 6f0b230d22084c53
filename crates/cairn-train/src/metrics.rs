//! Standard scores, defined as scikit-learn defines them, so that numbers agree across tools.

/// Share of rows whose predicted class is the true one.
pub fn accuracy(truth: &[u32], predicted: &[u32]) -> f64 {
    if truth.is_empty() {
        return f64::NAN;
    }
    let right = truth.iter().zip(predicted).filter(|(a, b)| a == b).count();
    right as f64 / truth.len() as f64
}

/// F1 of one class taken as positive; 0 when it is never predicted nor present (scikit-learn's
/// `zero_division=0`).
fn f1_of(truth: &[u32], predicted: &[u32], positive: u32) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (&t, &p) in truth.iter().zip(predicted) {
        match (t == positive, p == positive) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => {}
        }
    }
    let denominator = 2 * tp + fp + fn_;
    if denominator == 0 {
        0.0
    } else {
        2.0 * tp as f64 / denominator as f64
    }
}

/// `f1_score`: of class 1 for two classes (`average='binary'`), else the unweighted mean over
/// classes (`average='macro'`).
pub fn f1(truth: &[u32], predicted: &[u32], classes: usize) -> f64 {
    if classes == 2 {
        return f1_of(truth, predicted, 1);
    }
    let total: f64 = (0..classes as u32)
        .map(|c| f1_of(truth, predicted, c))
        .sum();
    total / classes as f64
}

/// Area under the ROC curve of `scores` for the rows where `positive` holds (ties counted
/// half, as the trapezoid rule does); NaN when one side is empty.
pub fn binary_roc_auc(positive: &[bool], scores: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mann-Whitney U with average ranks for ties.
    let mut rank_sum_positive = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        for &row in &order[i..=j] {
            if positive[row] {
                rank_sum_positive += average_rank;
            }
        }
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum_positive - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// `roc_auc_score`: of class 1's probability for two classes, else one-vs-rest averaged over
/// classes (`multi_class='ovr'`, `average='macro'`), over the classes `truth` holds (a rare
/// class may be missing from a test split, where scikit-learn refuses to answer).
/// `probabilities` is row-major, `classes` per row.
pub fn roc_auc(truth: &[u32], probabilities: &[f64], classes: usize) -> f64 {
    let column =
        |c: usize| -> Vec<f64> { probabilities.chunks(classes).map(|row| row[c]).collect() };
    if classes == 2 {
        let positive: Vec<bool> = truth.iter().map(|&t| t == 1).collect();
        return binary_roc_auc(&positive, &column(1));
    }
    let per_class: Vec<f64> = (0..classes)
        .filter(|&c| truth.iter().any(|&t| t as usize == c))
        .map(|c| {
            let positive: Vec<bool> = truth.iter().map(|&t| t as usize == c).collect();
            binary_roc_auc(&positive, &column(c))
        })
        .collect();
    per_class.iter().sum::<f64>() / per_class.len() as f64
}

/// `log_loss`: the mean negative log of the probability given to the true class, clipped to
/// [eps, 1 - eps] with float64's machine epsilon, rows renormalised as scikit-learn does.
pub fn log_loss(truth: &[u32], probabilities: &[f64], classes: usize) -> f64 {
    let eps = f64::EPSILON;
    let mut total = 0.0;
    for (row, &t) in probabilities.chunks(classes).zip(truth) {
        let clipped: Vec<f64> = row.iter().map(|p| p.clamp(eps, 1.0 - eps)).collect();
        let sum: f64 = clipped.iter().sum();
        total -= (clipped[t as usize] / sum).ln();
    }
    total / truth.len() as f64
}

/// Root of the mean squared error.
pub fn rmse(truth: &[f64], predicted: &[f64]) -> f64 {
    let sum: f64 = truth
        .iter()
        .zip(predicted)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    (sum / truth.len() as f64).sqrt()
}

/// Mean absolute error.
pub fn mae(truth: &[f64], predicted: &[f64]) -> f64 {
    let sum: f64 = truth
        .iter()
        .zip(predicted)
        .map(|(a, b)| (a - b).abs())
        .sum();
    sum / truth.len() as f64
}

/// Coefficient of determination: 1 - residual / total sum of squares. For a constant truth,
/// 1 when predicted exactly, else 0 (scikit-learn's `force_finite`).
pub fn r2(truth: &[f64], predicted: &[f64]) -> f64 {
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let total: f64 = truth.iter().map(|t| (t - mean) * (t - mean)).sum();
    let residual: f64 = truth
        .iter()
        .zip(predicted)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    if total == 0.0 {
        return if residual == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - residual / total
}

/// Counts of (true class, predicted class), row-major `classes` x `classes`.
pub fn confusion_matrix(truth: &[u32], predicted: &[u32], classes: usize) -> Vec<u64> {
    let mut counts = vec![0u64; classes * classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        counts[t as usize * classes + p as usize] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from scikit-learn 1.9.1 on the same inputs.
    #[test]
    fn classification_scores_match_scikit_learn() {
        let truth = [0, 1, 1, 0, 1, 1];
        let predicted = [0, 1, 0, 0, 1, 1];
        assert!((accuracy(&truth, &predicted) - 5.0 / 6.0).abs() < 1e-12);
        // f1_score: tp=3 fp=0 fn=1 → 6/7.
        assert!((f1(&truth, &predicted, 2) - 6.0 / 7.0).abs() < 1e-12);
        let p1 = [0.1, 0.9, 0.4, 0.4, 0.8, 0.7];
        let probabilities: Vec<f64> = p1.iter().flat_map(|p| [1.0 - p, *p]).collect();
        // roc_auc_score([0,1,1,0,1,1], [.1,.9,.4,.4,.8,.7]) = 0.9375 (a tie counts half).
        assert!((roc_auc(&truth, &probabilities, 2) - 0.9375).abs() < 1e-12);
        // log_loss(...) = 0.3696093137014567.
        let expected =
            -(0.9f64.ln() + 0.9f64.ln() + 0.4f64.ln() + 0.6f64.ln() + 0.8f64.ln() + 0.7f64.ln())
                / 6.0;
        assert!((log_loss(&truth, &probabilities, 2) - expected).abs() < 1e-12);
        assert_eq!(confusion_matrix(&truth, &predicted, 2), vec![2, 0, 1, 3]);
    }

    #[test]
    fn multiclass_scores_average_over_classes() {
        let truth = [0, 1, 2, 2];
        let predicted = [0, 2, 2, 2];
        // f1 per class: 1, 0, 0.8 → macro 0.6.
        assert!((f1(&truth, &predicted, 3) - 0.6).abs() < 1e-12);
        let probabilities = [
            0.8, 0.1, 0.1, //
            0.2, 0.3, 0.5, //
            0.1, 0.2, 0.7, //
            0.3, 0.3, 0.4,
        ];
        // roc_auc_score(truth, probabilities, multi_class='ovr') = 0.8611111 (1, 5/6, 3/4).
        let per_class = [
            binary_roc_auc(&[true, false, false, false], &[0.8, 0.2, 0.1, 0.3]),
            binary_roc_auc(&[false, true, false, false], &[0.1, 0.3, 0.2, 0.3]),
            binary_roc_auc(&[false, false, true, true], &[0.1, 0.5, 0.7, 0.4]),
        ];
        assert_eq!(per_class[0], 1.0);
        assert!((per_class[1] - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(per_class[2], 0.75);
        let macro_auc = per_class.iter().sum::<f64>() / 3.0;
        assert!((roc_auc(&truth, &probabilities, 3) - macro_auc).abs() < 1e-12);
    }

    #[test]
    fn regression_scores() {
        let truth = [3.0, -0.5, 2.0, 7.0];
        let predicted = [2.5, 0.0, 2.0, 8.0];
        // mean_squared_error = 0.375, mean_absolute_error = 0.5, r2_score = 0.9486081370449679.
        assert!((rmse(&truth, &predicted) - 0.375f64.sqrt()).abs() < 1e-12);
        assert!((mae(&truth, &predicted) - 0.5).abs() < 1e-12);
        assert!((r2(&truth, &predicted) - 0.948_608_137_044_967_9).abs() < 1e-12);
    }
}
