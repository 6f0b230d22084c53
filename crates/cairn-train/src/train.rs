//! Fitting the chosen models on one split and scoring them the same way: what `cairn train`
//! logs, one run per model.
use crate::baseline::Baseline;
use crate::error::{Error, Result};
use crate::frame::{Column, Frame, Target};
use crate::gbdt::{self, GbdtParams};
use crate::linear::{self, Linear};
use crate::metrics;
use crate::split::Split;
use std::time::Instant;

/// The models the trainer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Baseline,
    Linear,
    Gbdt,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [ModelKind::Baseline, ModelKind::Linear, ModelKind::Gbdt];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Baseline => "baseline",
            ModelKind::Linear => "linear",
            ModelKind::Gbdt => "gbdt",
        }
    }

    pub fn parse(text: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// What the model is, in words, for the given target.
    pub fn describe(self, target: &Target) -> &'static str {
        match (self, target) {
            (ModelKind::Baseline, Target::Classes { .. }) => "class priors (majority class)",
            (ModelKind::Baseline, Target::Values(_)) => "training mean",
            (ModelKind::Linear, Target::Classes { .. }) => "logistic regression",
            (ModelKind::Linear, Target::Values(_)) => "ridge regression",
            (ModelKind::Gbdt, _) => "histogram gradient-boosted trees",
        }
    }
}

/// Settings of the non-baseline models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Logistic regression's inverse regularisation strength.
    pub c: f64,
    /// Ridge regression's penalty.
    pub alpha: f64,
    pub gbdt: GbdtParams,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            c: 1.0,
            alpha: 1.0,
            gbdt: GbdtParams::default(),
        }
    }
}

/// A fitted model of any kind.
#[derive(Debug, Clone)]
pub enum Fitted {
    Baseline(Baseline),
    Linear(Linear),
    Gbdt(gbdt::Gbdt),
}

impl Fitted {
    /// Probabilities (row-major) or values for `rows`.
    pub fn predict(&self, frame: &Frame, rows: &[usize]) -> Vec<f64> {
        match self {
            Fitted::Baseline(b) => match b {
                Baseline::Mean(m) => vec![*m; rows.len()],
                Baseline::Prior { probabilities } => rows
                    .iter()
                    .flat_map(|_| probabilities.iter().copied())
                    .collect(),
            },
            Fitted::Linear(m) => match frame.target {
                Target::Classes { .. } => m.predict_proba(frame, rows),
                Target::Values(_) => m.predict_values(frame, rows),
            },
            Fitted::Gbdt(m) => m.predict(frame, rows),
        }
    }

    /// The model as ONNX.
    pub fn onnx(&self, frame: &Frame) -> Vec<u8> {
        match self {
            Fitted::Baseline(b) => crate::onnx::baseline(b, frame),
            Fitted::Linear(m) => crate::onnx::linear(m, frame),
            Fitted::Gbdt(m) => crate::onnx::gbdt(m, frame),
        }
    }

    /// Each feature's importance: gain shares for trees, the share of absolute standardised
    /// coefficients for linear models (summed over a category's levels and over classes),
    /// nothing for the baseline.
    pub fn feature_importances(&self, frame: &Frame) -> Vec<(String, f64)> {
        let shares = match self {
            Fitted::Baseline(_) => return Vec::new(),
            Fitted::Gbdt(m) => m.feature_importances(),
            Fitted::Linear(m) => {
                let mut sums = Vec::with_capacity(frame.features.len());
                let mut offset = 0;
                for encoding in &m.encoder.encodings {
                    let width = match encoding {
                        linear::Encoding::Standardized { .. } => 1,
                        linear::Encoding::OneHot { levels } => *levels,
                    };
                    let total: f64 = m
                        .weights
                        .iter()
                        .map(|w| {
                            w[offset..offset + width]
                                .iter()
                                .map(|v| v.abs())
                                .sum::<f64>()
                        })
                        .sum();
                    sums.push(total);
                    offset += width;
                }
                let all: f64 = sums.iter().sum();
                if all > 0.0 {
                    sums.iter_mut().for_each(|s| *s /= all);
                }
                sums
            }
        };
        frame
            .features
            .iter()
            .map(|f| f.name.clone())
            .zip(shares)
            .collect()
    }
}

/// One model's fit and scores.
#[derive(Debug, Clone)]
pub struct Trained {
    pub kind: ModelKind,
    pub model: Fitted,
    /// `(name, value)` in a fixed order: `val_*`, then `test_*`.
    pub metrics: Vec<(String, f64)>,
    pub fit_seconds: f64,
    /// Predictions on the test rows (probabilities row-major, or values).
    pub test_predictions: Vec<f64>,
}

impl Trained {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

/// The metric that picks the best model, and whether higher is better.
pub fn selection_metric(target: &Target) -> (&'static str, bool) {
    match target {
        Target::Classes { .. } => ("val_log_loss", false),
        Target::Values(_) => ("val_rmse", false),
    }
}

/// Scores of predictions on `rows`, named with `prefix`.
pub fn score(frame: &Frame, rows: &[usize], predicted: &[f64], prefix: &str) -> Vec<(String, f64)> {
    match &frame.target {
        Target::Classes { codes, classes } => {
            let k = classes.len();
            let truth: Vec<u32> = rows.iter().map(|&r| codes[r]).collect();
            let labels = argmax_rows(predicted, k);
            vec![
                (
                    format!("{prefix}accuracy"),
                    metrics::accuracy(&truth, &labels),
                ),
                (format!("{prefix}f1"), metrics::f1(&truth, &labels, k)),
                (
                    format!("{prefix}roc_auc"),
                    metrics::roc_auc(&truth, predicted, k),
                ),
                (
                    format!("{prefix}log_loss"),
                    metrics::log_loss(&truth, predicted, k),
                ),
            ]
        }
        Target::Values(values) => {
            let truth: Vec<f64> = rows.iter().map(|&r| values[r]).collect();
            vec![
                (format!("{prefix}rmse"), metrics::rmse(&truth, predicted)),
                (format!("{prefix}mae"), metrics::mae(&truth, predicted)),
                (format!("{prefix}r2"), metrics::r2(&truth, predicted)),
            ]
        }
    }
}

/// The most probable class of each row (the first of equals).
pub fn argmax_rows(probabilities: &[f64], classes: usize) -> Vec<u32> {
    probabilities
        .chunks(classes.max(1))
        .map(|row| {
            let mut best = 0;
            for (i, p) in row.iter().enumerate() {
                if *p > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// Fits each of `kinds` on the split's training rows and scores it on its validation and test
/// rows.
pub fn fit(
    frame: &Frame,
    split: &Split,
    kinds: &[ModelKind],
    settings: &Settings,
) -> Result<Vec<Trained>> {
    if split.train.is_empty() {
        return Err(Error::invalid("the split left no rows to train on"));
    }
    if let Target::Classes { codes, classes } = &frame.target {
        let mut seen = vec![false; classes.len()];
        for &r in &split.train {
            seen[codes[r] as usize] = true;
        }
        if seen.iter().filter(|s| **s).count() < 2 {
            return Err(Error::invalid(
                "the training rows hold a single class: more rows, or another seed, are needed",
            ));
        }
    }
    let mut out = Vec::new();
    for &kind in kinds {
        let started = Instant::now();
        let model = match kind {
            ModelKind::Baseline => Fitted::Baseline(Baseline::fit(&frame.target, &split.train)),
            ModelKind::Linear => Fitted::Linear(match frame.target {
                Target::Classes { .. } => linear::fit_logistic(frame, &split.train, settings.c)?,
                Target::Values(_) => linear::fit_ridge(frame, &split.train, settings.alpha)?,
            }),
            ModelKind::Gbdt => Fitted::Gbdt(gbdt::fit(frame, &split.train, &settings.gbdt)?),
        };
        let fit_seconds = started.elapsed().as_secs_f64();
        let mut scores = Vec::new();
        if !split.validation.is_empty() {
            let p = model.predict(frame, &split.validation);
            scores.extend(score(frame, &split.validation, &p, "val_"));
        }
        let test_predictions = model.predict(frame, &split.test);
        if !split.test.is_empty() {
            scores.extend(score(frame, &split.test, &test_predictions, "test_"));
        }
        out.push(Trained {
            kind,
            model,
            metrics: scores,
            fit_seconds,
            test_predictions,
        });
    }
    Ok(out)
}

/// How many values each feature column holds that are missing, for the run's summary.
pub fn missing_counts(frame: &Frame) -> Vec<(String, usize)> {
    frame
        .features
        .iter()
        .map(|f| {
            let n = match &f.column {
                Column::Numeric(v) => v.iter().filter(|x| x.is_nan()).count(),
                Column::Categorical { codes, .. } => codes
                    .iter()
                    .filter(|c| **c == crate::frame::MISSING)
                    .count(),
            };
            (f.name.clone(), n)
        })
        .collect()
}
