//! A promotion gate: several requirements on a model version at once, each measured now —
//! metric thresholds with MLflow's `MetricThreshold` semantics, latency, file size, memory, and
//! the training data's checks. This module reads the policy and judges measured values; the
//! binary measures them.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// MLflow's `MetricThreshold`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricThreshold {
    /// The candidate's value must be at least this (at most, when lower is better).
    pub threshold: Option<f64>,
    /// The candidate must beat the comparison by at least this much.
    pub min_absolute_change: Option<f64>,
    /// The candidate must beat the comparison by at least this share of its magnitude.
    pub min_relative_change: Option<f64>,
    pub greater_is_better: bool,
}

/// Latency requirements, measured by running the model here on rows of its training data.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Rows per call.
    #[serde(default = "one")]
    pub batch_size: usize,
    /// Timed calls (after 20 untimed ones).
    #[serde(default = "calls")]
    pub calls: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

fn one() -> usize {
    1
}

fn calls() -> usize {
    500
}

/// Checks on the training data.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataChecks {
    /// An expectation suite (YAML or GX JSON file) the training data must pass.
    pub suite: Option<String>,
    /// What must show no dataset drift from the training data: a table (file, or dataset
    /// version NAME@N[:PATH]), or the inputs a version was served in the last `served_window`
    /// (`served` for the candidate's own traffic, `served:ALIAS` or `served:VERSION` for another
    /// version of the same model, such as the champion it would replace).
    pub drift_against: Option<String>,
    /// How far back `drift_against: served` looks, like 15m, 1h or 1d (default 1h).
    pub served_window: Option<String>,
}

impl DataChecks {
    /// For `drift_against: served[:WHICH]`: `Some(WHICH)` (`None` for the candidate itself).
    pub fn served(&self) -> Option<Option<&str>> {
        let against = self.drift_against.as_deref()?;
        if against == "served" {
            return Some(None);
        }
        against.strip_prefix("served:").map(Some)
    }
}

/// A gate policy (`gate.yaml`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// What `min_*_change` compares with: an alias of the same model (`champion`), or
    /// `baseline` (the `cairn train` baseline run on the same data and target).
    pub compare_to: Option<String>,
    /// Metric name → threshold, as MLflow's `validation_thresholds`.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricThreshold>,
    pub latency: Option<Latency>,
    pub max_model_size_mb: Option<f64>,
    pub max_memory_mb: Option<f64>,
    pub data: Option<DataChecks>,
}

impl Policy {
    /// Parses and checks a policy; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Policy> {
        let policy: Policy =
            serde_yaml::from_str(text).map_err(|e| Error::invalid(format!("{origin}: {e}")))?;
        for (name, t) in &policy.metrics {
            if t.threshold.is_none()
                && t.min_absolute_change.is_none()
                && t.min_relative_change.is_none()
            {
                return Err(Error::invalid(format!(
                    "{origin}: metric {name} sets none of threshold, min_absolute_change, min_relative_change"
                )));
            }
            if t.min_absolute_change
                .is_some_and(|v| v.is_nan() || v <= 0.0)
            {
                return Err(Error::invalid(format!(
                    "{origin}: metric {name}: min_absolute_change must be a positive number"
                )));
            }
            if t.min_relative_change
                .is_some_and(|v| !(0.0..=1.0).contains(&v))
            {
                return Err(Error::invalid(format!(
                    "{origin}: metric {name}: min_relative_change must be between 0 and 1"
                )));
            }
            if (t.min_absolute_change.is_some() || t.min_relative_change.is_some())
                && policy.compare_to.is_none()
            {
                return Err(Error::invalid(format!(
                    "{origin}: metric {name} asks for a change, but the policy has no compare_to \
                     (an alias such as champion, or baseline)"
                )));
            }
        }
        if let Some(data) = &policy.data {
            if data.served() == Some(Some("")) {
                return Err(Error::invalid(format!(
                    "{origin}: drift_against: served: names no alias or version (served, \
                     served:ALIAS or served:VERSION)"
                )));
            }
            if data.served_window.is_some() && data.served().is_none() {
                return Err(Error::invalid(format!(
                    "{origin}: served_window is only for drift_against: served"
                )));
            }
        }
        if let Some(l) = &policy.latency {
            if l.batch_size == 0 || l.calls == 0 {
                return Err(Error::invalid(format!(
                    "{origin}: latency batch_size and calls must be positive"
                )));
            }
        }
        Ok(policy)
    }
}

/// One requirement's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub requirement: String,
    pub measured: String,
    pub limit: String,
    pub passed: bool,
}

fn number(v: f64) -> String {
    if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

/// Judges a metric as MLflow's `validate_evaluation_results` does: a missing candidate metric
/// fails; a change asked for without the comparison's value fails; a zero comparison value
/// turns the relative change into "strictly better".
pub fn judge_metric(
    name: &str,
    t: &MetricThreshold,
    candidate: Option<f64>,
    compared: Option<f64>,
    compared_with: &str,
) -> Vec<Check> {
    let mut out = Vec::new();
    let better = if t.greater_is_better { ">=" } else { "<=" };
    let Some(value) = candidate else {
        out.push(Check {
            requirement: format!("metric {name}"),
            measured: "missing".into(),
            limit: "logged on the version's run".into(),
            passed: false,
        });
        return out;
    };
    let at_least = |a: f64, b: f64| if t.greater_is_better { a >= b } else { a <= b };
    if let Some(threshold) = t.threshold {
        out.push(Check {
            requirement: format!("metric {name}"),
            measured: number(value),
            limit: format!("{better} {}", number(threshold)),
            passed: at_least(value, threshold),
        });
    }
    if t.min_absolute_change.is_none() && t.min_relative_change.is_none() {
        return out;
    }
    let Some(base) = compared else {
        out.push(Check {
            requirement: format!("metric {name} vs {compared_with}"),
            measured: number(value),
            limit: format!("{compared_with} has no {name}"),
            passed: false,
        });
        return out;
    };
    if let Some(min_abs) = t.min_absolute_change {
        let needed = if t.greater_is_better {
            base + min_abs
        } else {
            base - min_abs
        };
        out.push(Check {
            requirement: format!("metric {name} vs {compared_with} (absolute)"),
            measured: format!("{} ({:+})", number(value), number(value - base)),
            limit: format!(
                "{better} {} ({} {})",
                number(needed),
                number(base),
                if t.greater_is_better {
                    format!("+ {}", number(min_abs))
                } else {
                    format!("- {}", number(min_abs))
                }
            ),
            passed: at_least(value, needed),
        });
    }
    if let Some(min_rel) = t.min_relative_change {
        let (measured, passed) = if base == 0.0 {
            let needed = if t.greater_is_better { 1e-10 } else { -1e-10 };
            (number(value), at_least(value, needed))
        } else {
            let change = if t.greater_is_better {
                (value - base) / base.abs()
            } else {
                (base - value) / base.abs()
            };
            (
                format!("{} ({:+.2}%)", number(value), 100.0 * change),
                change >= min_rel,
            )
        };
        out.push(Check {
            requirement: format!("metric {name} vs {compared_with} (relative)"),
            measured,
            limit: format!("improves {} by >= {:.2}%", number(base), 100.0 * min_rel),
            passed,
        });
    }
    out
}

/// A measured quantity against an upper limit.
pub fn at_most(requirement: &str, measured: Option<f64>, limit: f64, unit: &str) -> Check {
    match measured {
        Some(v) => Check {
            requirement: requirement.into(),
            measured: format!("{} {unit}", number(v)),
            limit: format!("<= {} {unit}", number(limit)),
            passed: v <= limit,
        },
        None => Check {
            requirement: requirement.into(),
            measured: "not measurable here".into(),
            limit: format!("<= {} {unit}", number(limit)),
            passed: false,
        },
    }
}

/// The `q` quantile (0..=1) of sorted durations, by the nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(threshold: Option<f64>, abs: Option<f64>, rel: Option<f64>, gib: bool) -> MetricThreshold {
        MetricThreshold {
            threshold,
            min_absolute_change: abs,
            min_relative_change: rel,
            greater_is_better: gib,
        }
    }

    // Cases from MLflow's `validate_evaluation_results` semantics.
    #[test]
    fn metric_thresholds_follow_mlflow() {
        let pass = |checks: Vec<Check>| checks.iter().all(|c| c.passed);
        assert!(pass(judge_metric(
            "acc",
            &t(Some(0.8), None, None, true),
            Some(0.8),
            None,
            "x"
        )));
        assert!(!pass(judge_metric(
            "acc",
            &t(Some(0.8), None, None, true),
            Some(0.79),
            None,
            "x"
        )));
        assert!(pass(judge_metric(
            "loss",
            &t(Some(0.3), None, None, false),
            Some(0.3),
            None,
            "x"
        )));
        assert!(!pass(judge_metric(
            "loss",
            &t(Some(0.3), None, None, false),
            Some(0.31),
            None,
            "x"
        )));
        // Absolute change: candidate >= base + change (or <= base - change).
        assert!(pass(judge_metric(
            "acc",
            &t(None, Some(0.05), None, true),
            Some(0.9),
            Some(0.85),
            "c"
        )));
        assert!(!pass(judge_metric(
            "acc",
            &t(None, Some(0.05), None, true),
            Some(0.89),
            Some(0.85),
            "c"
        )));
        assert!(pass(judge_metric(
            "loss",
            &t(None, Some(0.1), None, false),
            Some(0.19),
            Some(0.3),
            "c"
        )));
        // As in MLflow, base - change is computed in floating point: 0.3 - 0.1 < 0.2.
        assert!(!pass(judge_metric(
            "loss",
            &t(None, Some(0.1), None, false),
            Some(0.2),
            Some(0.3),
            "c"
        )));
        // Relative change over the base's magnitude, also for a negative base.
        assert!(pass(judge_metric(
            "acc",
            &t(None, None, Some(0.1), true),
            Some(0.55),
            Some(0.5),
            "c"
        )));
        assert!(!pass(judge_metric(
            "acc",
            &t(None, None, Some(0.1), true),
            Some(0.54),
            Some(0.5),
            "c"
        )));
        assert!(pass(judge_metric(
            "r2",
            &t(None, None, Some(0.5), true),
            Some(-0.5),
            Some(-1.0),
            "c"
        )));
        // A zero base: strictly better is enough.
        assert!(pass(judge_metric(
            "m",
            &t(None, None, Some(0.5), true),
            Some(0.001),
            Some(0.0),
            "c"
        )));
        assert!(!pass(judge_metric(
            "m",
            &t(None, None, Some(0.5), true),
            Some(0.0),
            Some(0.0),
            "c"
        )));
        // Missing candidate metric, missing comparison: fail.
        assert!(!pass(judge_metric(
            "acc",
            &t(Some(0.1), None, None, true),
            None,
            None,
            "x"
        )));
        assert!(!pass(judge_metric(
            "acc",
            &t(None, Some(0.1), None, true),
            Some(0.9),
            None,
            "champion"
        )));
    }

    #[test]
    fn policies_are_checked_when_read() {
        let ok = "compare_to: champion\nmetrics:\n  test_accuracy: {threshold: 0.8, min_absolute_change: 0.01, greater_is_better: true}\nlatency: {batch_size: 1, p99_ms: 5}\nmax_model_size_mb: 2\n";
        let p = Policy::parse(ok, "gate.yaml").unwrap();
        assert_eq!(p.latency.unwrap().calls, 500);
        for (bad, why) in [
            ("metrics:\n  a: {greater_is_better: true}\n", "sets none"),
            ("metrics:\n  a: {threshold: 1}\n", "greater_is_better"),
            ("metrics:\n  a: {min_absolute_change: 0.1, greater_is_better: true}\n", "no compare_to"),
            ("compare_to: c\nmetrics:\n  a: {min_relative_change: 2, greater_is_better: true}\n", "between 0 and 1"),
            ("compare_to: c\nmetrics:\n  a: {min_absolute_change: -1, greater_is_better: true}\n", "positive"),
            ("max_size: 3\n", "unknown field"),
        ] {
            let err = Policy::parse(bad, "gate.yaml").unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
    }
}
