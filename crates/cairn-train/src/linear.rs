//! Linear models on encoded features: L2-regularised logistic regression (the objective of
//! scikit-learn's `LogisticRegression(C=1)`: binary with one weight vector, multinomial softmax
//! for more classes) and ridge regression (`Ridge(alpha=1)`).
//!
//! Features are encoded as scikit-learn users do before a linear model: numbers imputed with
//! the training mean and standardised (`SimpleImputer` + `StandardScaler`), categories one-hot
//! (`OneHotEncoder(handle_unknown="ignore")`: missing and unseen values are all zeros).
use crate::error::{Error, Result};
use crate::frame::{Column, Frame, Target, MISSING};

/// How one frame column becomes encoded features.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// `(x - mean) / scale`, missing → 0 (the mean).
    Standardized { mean: f64, scale: f64 },
    /// One 0/1 feature per level.
    OneHot { levels: usize },
}

/// The fitted encoding of every frame column, in frame order.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    pub encodings: Vec<Encoding>,
}

impl Encoder {
    /// Fits means, scales and levels on the training `rows`.
    pub fn fit(frame: &Frame, rows: &[usize]) -> Encoder {
        let encodings = frame
            .features
            .iter()
            .map(|f| match &f.column {
                Column::Numeric(v) => {
                    let present: Vec<f64> =
                        rows.iter().map(|&r| v[r]).filter(|x| !x.is_nan()).collect();
                    let n = present.len().max(1) as f64;
                    let mean = present.iter().sum::<f64>() / n;
                    // Imputed rows sit at the mean: StandardScaler sees them there too.
                    let missing = rows.len() - present.len();
                    let var = present.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>()
                        / (present.len() + missing).max(1) as f64;
                    let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
                    Encoding::Standardized { mean, scale }
                }
                Column::Categorical { levels, .. } => Encoding::OneHot {
                    levels: levels.len(),
                },
            })
            .collect();
        Encoder { encodings }
    }

    /// Number of encoded features.
    pub fn width(&self) -> usize {
        self.encodings
            .iter()
            .map(|e| match e {
                Encoding::Standardized { .. } => 1,
                Encoding::OneHot { levels } => *levels,
            })
            .sum()
    }

    /// The encoded rows, row-major.
    pub fn encode(&self, frame: &Frame, rows: &[usize]) -> Vec<f64> {
        let width = self.width();
        let mut out = vec![0.0; rows.len() * width];
        let mut offset = 0;
        for (feature, encoding) in frame.features.iter().zip(&self.encodings) {
            match (&feature.column, encoding) {
                (Column::Numeric(v), Encoding::Standardized { mean, scale }) => {
                    for (i, &r) in rows.iter().enumerate() {
                        let x = v[r];
                        out[i * width + offset] = if x.is_nan() { 0.0 } else { (x - mean) / scale };
                    }
                    offset += 1;
                }
                (Column::Categorical { codes, .. }, Encoding::OneHot { levels }) => {
                    for (i, &r) in rows.iter().enumerate() {
                        let c = codes[r];
                        if c != MISSING && (c as usize) < *levels {
                            out[i * width + offset + c as usize] = 1.0;
                        }
                    }
                    offset += levels;
                }
                _ => {}
            }
        }
        out
    }
}

/// A fitted linear model.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub encoder: Encoder,
    /// One row of `encoder.width()` weights per output: 1 for binary logistic and ridge, one per
    /// class for multinomial.
    pub weights: Vec<Vec<f64>>,
    pub intercepts: Vec<f64>,
    /// Number of classes, 0 for regression.
    pub classes: usize,
}

impl Linear {
    /// Raw scores per row and output, row-major.
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        let width = self.encoder.width();
        let outputs = self.weights.len();
        let mut out = Vec::with_capacity(x.len() / width.max(1) * outputs);
        for row in x.chunks(width.max(1)) {
            for (w, b) in self.weights.iter().zip(&self.intercepts) {
                out.push(b + dot(w, row));
            }
        }
        out
    }

    /// Class probabilities per row, row-major (`classes` per row).
    pub fn predict_proba(&self, frame: &Frame, rows: &[usize]) -> Vec<f64> {
        let x = self.encoder.encode(frame, rows);
        let scores = self.scores(&x);
        if self.classes == 2 {
            scores
                .iter()
                .flat_map(|&z| {
                    let p = sigmoid(z);
                    [1.0 - p, p]
                })
                .collect()
        } else {
            let mut out = scores;
            for row in out.chunks_mut(self.classes.max(1)) {
                softmax_in_place(row);
            }
            out
        }
    }

    /// Predicted values (ridge).
    pub fn predict_values(&self, frame: &Frame, rows: &[usize]) -> Vec<f64> {
        let x = self.encoder.encode(frame, rows);
        self.scores(&x)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The logistic function, without overflow for large |z|.
pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn softmax_in_place(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// `log(1 + exp(z))` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// Fits logistic regression with inverse regularisation strength `c` on the training `rows`.
pub fn fit_logistic(frame: &Frame, rows: &[usize], c: f64) -> Result<Linear> {
    let Target::Classes { codes, classes } = &frame.target else {
        return Err(Error::invalid("logistic regression needs a class target"));
    };
    let classes = classes.len();
    let encoder = Encoder::fit(frame, rows);
    let width = encoder.width();
    let x = encoder.encode(frame, rows);
    let y: Vec<usize> = rows.iter().map(|&r| codes[r] as usize).collect();
    let outputs = if classes == 2 { 1 } else { classes };
    // Parameters: per output, `width` weights then the intercept.
    let stride = width + 1;
    let penalty = 1.0 / c;
    let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut loss = 0.0;
        let mut z = vec![0.0; outputs];
        for (row, &label) in x.chunks(width.max(1)).zip(&y) {
            for (k, zk) in z.iter_mut().enumerate() {
                let p = &theta[k * stride..(k + 1) * stride];
                *zk = p[width] + dot(&p[..width], row);
            }
            if outputs == 1 {
                let s = if label == 1 { 1.0 } else { -1.0 };
                loss += softplus(-s * z[0]);
                // d/dz log(1 + exp(-s z)) = -s * sigmoid(-s z)
                let dz = -s * sigmoid(-s * z[0]);
                let g = &mut grad[..stride];
                for (gj, xj) in g[..width].iter_mut().zip(row) {
                    *gj += dz * xj;
                }
                g[width] += dz;
            } else {
                let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
                loss += max + sum.ln() - z[label];
                for k in 0..outputs {
                    let dz = (z[k] - max).exp() / sum - if k == label { 1.0 } else { 0.0 };
                    let g = &mut grad[k * stride..(k + 1) * stride];
                    for (gj, xj) in g[..width].iter_mut().zip(row) {
                        *gj += dz * xj;
                    }
                    g[width] += dz;
                }
            }
        }
        for k in 0..outputs {
            for j in 0..width {
                let w = theta[k * stride + j];
                loss += 0.5 * penalty * w * w;
                grad[k * stride + j] += penalty * w;
            }
        }
        loss
    };
    let theta = lbfgs(vec![0.0; outputs * stride], objective, 1e-10, 2000);
    let (weights, intercepts) = (0..outputs)
        .map(|k| {
            let p = &theta[k * stride..(k + 1) * stride];
            (p[..width].to_vec(), p[width])
        })
        .unzip();
    Ok(Linear {
        encoder,
        weights,
        intercepts,
        classes,
    })
}

/// Fits ridge regression with penalty `alpha` on the training `rows` (intercept unpenalised).
pub fn fit_ridge(frame: &Frame, rows: &[usize], alpha: f64) -> Result<Linear> {
    let Target::Values(values) = &frame.target else {
        return Err(Error::invalid("ridge regression needs a numeric target"));
    };
    let encoder = Encoder::fit(frame, rows);
    let width = encoder.width();
    let x = encoder.encode(frame, rows);
    let n = rows.len() as f64;
    let y: Vec<f64> = rows.iter().map(|&r| values[r]).collect();
    let y_mean = y.iter().sum::<f64>() / n;
    let mut x_mean = vec![0.0; width];
    for row in x.chunks(width.max(1)) {
        for (m, v) in x_mean.iter_mut().zip(row) {
            *m += v / n;
        }
    }
    // Normal equations on centred data: (Xc'Xc + alpha I) w = Xc'(y - mean).
    let mut gram = vec![0.0; width * width];
    let mut rhs = vec![0.0; width];
    let mut centred = vec![0.0; width];
    for (row, &target) in x.chunks(width.max(1)).zip(&y) {
        for (c, (v, m)) in centred.iter_mut().zip(row.iter().zip(&x_mean)) {
            *c = v - m;
        }
        let t = target - y_mean;
        for i in 0..width {
            let ci = centred[i];
            if ci == 0.0 {
                continue;
            }
            rhs[i] += ci * t;
            for j in 0..=i {
                gram[i * width + j] += ci * centred[j];
            }
        }
    }
    for i in 0..width {
        gram[i * width + i] += alpha;
        for j in 0..i {
            gram[j * width + i] = gram[i * width + j];
        }
    }
    let weights = cholesky_solve(&mut gram, &rhs, width)
        .ok_or_else(|| Error::invalid("ridge regression: the system is not positive definite"))?;
    let intercept = y_mean - dot(&weights, &x_mean);
    Ok(Linear {
        encoder,
        weights: vec![weights],
        intercepts: vec![intercept],
        classes: 0,
    })
}

/// Solves `a x = b` for symmetric positive definite `a` (n x n, overwritten by its factor).
fn cholesky_solve(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    let mut z = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            z[i] -= a[i * n + k] * z[k];
        }
        z[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= a[k * n + i] * z[k];
        }
        z[i] /= a[i * n + i];
    }
    Some(z)
}

/// Minimises a smooth convex function by L-BFGS (10 pairs, backtracking Armijo line search),
/// until the largest gradient component is below `tolerance` or after `max_iterations`.
fn lbfgs(
    mut x: Vec<f64>,
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    tolerance: f64,
    max_iterations: usize,
) -> Vec<f64> {
    const PAIRS: usize = 10;
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut value = f(&x, &mut g);
    let mut s_list: Vec<Vec<f64>> = Vec::new();
    let mut y_list: Vec<Vec<f64>> = Vec::new();
    let mut new_g = vec![0.0; n];
    for _ in 0..max_iterations {
        let largest = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if largest < tolerance {
            break;
        }
        // Two-loop recursion for the search direction.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_list.len());
        for (s, y) in s_list.iter().zip(&y_list).rev() {
            let rho = 1.0 / dot(y, s);
            let a = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * yi;
            }
            alphas.push((a, rho));
        }
        let gamma = match (s_list.last(), y_list.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / largest.max(1.0),
        };
        for qi in q.iter_mut() {
            *qi *= gamma;
        }
        for ((s, y), (a, rho)) in s_list.iter().zip(&y_list).zip(alphas.into_iter().rev()) {
            let b = rho * dot(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * si;
            }
        }
        let direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let slope = dot(&g, &direction);
        if slope >= 0.0 {
            // Not a descent direction (rounding): start the memory again.
            s_list.clear();
            y_list.clear();
            continue;
        }
        let mut step = 1.0;
        let mut candidate = vec![0.0; n];
        let mut accepted = false;
        for _ in 0..60 {
            for ((c, xi), d) in candidate.iter_mut().zip(&x).zip(&direction) {
                *c = xi + step * d;
            }
            let v = f(&candidate, &mut new_g);
            if v <= value + 1e-4 * step * slope {
                let s: Vec<f64> = candidate.iter().zip(&x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = new_g.iter().zip(&g).map(|(a, b)| a - b).collect();
                if dot(&s, &y) > 1e-12 {
                    if s_list.len() == PAIRS {
                        s_list.remove(0);
                        y_list.remove(0);
                    }
                    s_list.push(s);
                    y_list.push(y);
                }
                let improvement = value - v;
                x.copy_from_slice(&candidate);
                g.copy_from_slice(&new_g);
                value = v;
                accepted = true;
                if improvement <= 1e-15 * value.abs().max(1.0) {
                    return x;
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Feature;

    fn frame(x: Vec<f64>, target: Target) -> Frame {
        let rows = x.len();
        Frame {
            features: vec![Feature {
                name: "x".into(),
                column: Column::Numeric(x),
            }],
            target_name: "y".into(),
            target,
            rows,
        }
    }

    #[test]
    fn ridge_matches_the_closed_form() {
        // x standardised: mean 2, std sqrt(2/3); y = 2x + 1 exactly.
        let f = frame(vec![1.0, 2.0, 3.0], Target::Values(vec![3.0, 5.0, 7.0]));
        let m = fit_ridge(&f, &[0, 1, 2], 1.0).unwrap();
        // In standardised units z = (x-2)/s, y = 5 + 2 s z and sum z^2 = n = 3, so ridge gives
        // w = 2 s n / (n + alpha).
        let s = (2.0f64 / 3.0).sqrt();
        let expected = 2.0 * s * 3.0 / 4.0;
        assert!((m.weights[0][0] - expected).abs() < 1e-12, "{m:?}");
        assert!((m.intercepts[0] - 5.0).abs() < 1e-12);
    }

    #[test]
    fn logistic_gradient_vanishes_at_the_solution() {
        let x = vec![-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 0.2];
        let codes = vec![0, 0, 1, 0, 1, 1, 1, 0];
        let f = frame(
            x,
            Target::Classes {
                codes,
                classes: vec!["a".into(), "b".into()],
            },
        );
        let rows: Vec<usize> = (0..8).collect();
        let m = fit_logistic(&f, &rows, 1.0).unwrap();
        let p = m.predict_proba(&f, &rows);
        // At the optimum: sum (p - y) = 0 (intercept) and sum (p - y) z = -w (weight, C = 1).
        let z = m.encoder.encode(&f, &rows);
        let (mut gi, mut gw) = (0.0, 0.0);
        for (i, &r) in rows.iter().enumerate() {
            let y = if let Target::Classes { codes, .. } = &f.target {
                codes[r] as f64
            } else {
                unreachable!()
            };
            gi += p[2 * i + 1] - y;
            gw += (p[2 * i + 1] - y) * z[i];
        }
        assert!(gi.abs() < 1e-8, "{gi}");
        assert!((gw + m.weights[0][0]).abs() < 1e-8, "{gw} {:?}", m.weights);
        assert!(m.weights[0][0] > 0.0);
    }
}
