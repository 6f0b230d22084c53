//! The trivial model every other model is compared with: the class frequencies of the training
//! rows (scikit-learn's `DummyClassifier(strategy="prior")`) or their mean
//! (`DummyRegressor()`).
use crate::frame::Target;

/// A fitted baseline.
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// Each class's share of the training rows; it always predicts the most frequent class.
    Prior { probabilities: Vec<f64> },
    /// The mean of the training target.
    Mean(f64),
}

impl Baseline {
    /// Fits on the target's `rows`.
    pub fn fit(target: &Target, rows: &[usize]) -> Baseline {
        match target {
            Target::Classes { codes, classes } => {
                let mut counts = vec![0usize; classes.len()];
                for &r in rows {
                    counts[codes[r] as usize] += 1;
                }
                let n = rows.len().max(1) as f64;
                Baseline::Prior {
                    probabilities: counts.iter().map(|&c| c as f64 / n).collect(),
                }
            }
            Target::Values(values) => {
                let sum: f64 = rows.iter().map(|&r| values[r]).sum();
                Baseline::Mean(sum / rows.len().max(1) as f64)
            }
        }
    }

    /// The class it predicts: the most frequent, the first of equals (as numpy's argmax).
    pub fn majority_class(&self) -> Option<u32> {
        match self {
            Baseline::Prior { probabilities } => {
                let mut best = 0;
                for (i, p) in probabilities.iter().enumerate() {
                    if *p > probabilities[best] {
                        best = i;
                    }
                }
                Some(best as u32)
            }
            Baseline::Mean(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priors_and_mean() {
        let target = Target::Classes {
            codes: vec![0, 1, 1, 2, 1],
            classes: vec!["a".into(), "b".into(), "c".into()],
        };
        let b = Baseline::fit(&target, &[0, 1, 2, 3]);
        assert_eq!(
            b,
            Baseline::Prior {
                probabilities: vec![0.25, 0.5, 0.25]
            }
        );
        assert_eq!(b.majority_class(), Some(1));
        let b = Baseline::fit(&Target::Values(vec![1.0, 2.0, 6.0]), &[0, 2]);
        assert_eq!(b, Baseline::Mean(3.5));
    }
}
