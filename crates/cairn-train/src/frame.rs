//! A table read for training: numeric and categorical feature columns and a target.
use crate::error::{Error, Result};
use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use cairn_quality::table::{Table, ValueType};
use std::collections::HashMap;
use std::path::Path;

/// More distinct text values than this in a feature column make it an identifier or free text,
/// not a category: one-hot encoding it would only memorise rows.
pub const MAX_CATEGORY_LEVELS: usize = 1000;
/// An integer (or integral) target with at most this many distinct values is taken as classes
/// when the task is not given.
pub const MAX_INFERRED_CLASSES: usize = 20;

/// Classification or regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Classification,
    Regression,
}

impl Task {
    /// `classification` / `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }

    /// Parses [`Task::as_str`].
    pub fn parse(text: &str) -> Option<Task> {
        match text {
            "classification" => Some(Task::Classification),
            "regression" => Some(Task::Regression),
            _ => None,
        }
    }
}

/// The code of a missing categorical value.
pub const MISSING: u32 = u32::MAX;

/// One feature column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numbers; missing values are NaN.
    Numeric(Vec<f64>),
    /// Category codes into `levels` (sorted), [`MISSING`] where missing.
    Categorical {
        codes: Vec<u32>,
        levels: Vec<String>,
    },
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Categorical { codes, .. } => codes.len(),
        }
    }
}

/// A named feature column.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    pub column: Column,
}

/// The target column.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Class indices into `classes`, which are sorted as scikit-learn sorts labels (numbers by
    /// value, text by code point).
    Classes {
        codes: Vec<u32>,
        classes: Vec<String>,
    },
    /// Values to predict.
    Values(Vec<f64>),
}

impl Target {
    /// The task this target asks for.
    pub fn task(&self) -> Task {
        match self {
            Target::Classes { .. } => Task::Classification,
            Target::Values(_) => Task::Regression,
        }
    }
}

/// A table ready for training.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub features: Vec<Feature>,
    pub target_name: String,
    pub target: Target,
    pub rows: usize,
}

/// A column as read, before it is typed for training.
enum Raw {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl Raw {
    fn new(kind: ValueType) -> Raw {
        match kind {
            ValueType::Int => Raw::Int(Vec::new()),
            ValueType::Float => Raw::Float(Vec::new()),
            ValueType::Bool => Raw::Bool(Vec::new()),
            ValueType::Str => Raw::Text(Vec::new()),
        }
    }

    fn extend(&mut self, array: &dyn Array, column: &str) -> Result<()> {
        let mismatch = || Error::invalid(format!("column {column} changes type within the file"));
        match self {
            Raw::Int(out) => {
                let a = array
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(mismatch)?;
                out.extend(a.iter());
            }
            Raw::Float(out) => {
                let a = array
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(mismatch)?;
                out.extend(a.iter().map(|v| v.filter(|x| !x.is_nan())));
            }
            Raw::Bool(out) => {
                let a = array
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(mismatch)?;
                out.extend(a.iter());
            }
            Raw::Text(out) => {
                let a = array
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(mismatch)?;
                out.extend(a.iter().map(|v| v.map(str::to_owned)));
            }
        }
        Ok(())
    }

    fn missing(&self) -> usize {
        match self {
            Raw::Int(v) => v.iter().filter(|x| x.is_none()).count(),
            Raw::Float(v) => v.iter().filter(|x| x.is_none()).count(),
            Raw::Bool(v) => v.iter().filter(|x| x.is_none()).count(),
            Raw::Text(v) => v.iter().filter(|x| x.is_none()).count(),
        }
    }
}

/// Reads `path` (CSV, TSV or Parquet), with `target` as the column to predict. `task` is
/// inferred when not given: text and booleans are classes; integers (or integral numbers) with
/// at most [`MAX_INFERRED_CLASSES`] distinct values are classes; other numbers are regression.
/// `drop` names columns to leave out.
pub fn load(path: &Path, target: &str, task: Option<Task>, drop: &[String]) -> Result<Frame> {
    let mut table = Table::open(path)?;
    let names = table.column_names();
    let types = table.types();
    if !names.iter().any(|n| n == target) {
        return Err(Error::invalid(format!(
            "{}: no column named {target:?} to predict (columns: {})",
            path.display(),
            names.join(", ")
        )));
    }
    for name in drop {
        if !names.contains(name) {
            return Err(Error::invalid(format!(
                "{}: no column named {name:?} to drop",
                path.display()
            )));
        }
    }
    let mut raws: Vec<Raw> = types.iter().map(|t| Raw::new(*t)).collect();
    while let Some(batch) = table.next_batch()? {
        for (i, raw) in raws.iter_mut().enumerate() {
            raw.extend(batch.column(i).as_ref(), &names[i])?;
        }
    }
    let rows = match raws.first() {
        Some(Raw::Int(v)) => v.len(),
        Some(Raw::Float(v)) => v.len(),
        Some(Raw::Bool(v)) => v.len(),
        Some(Raw::Text(v)) => v.len(),
        None => 0,
    };
    if rows == 0 {
        return Err(Error::invalid(format!(
            "{}: the table has no rows to train on",
            path.display()
        )));
    }
    let mut features = Vec::new();
    let mut target_column = None;
    for (name, raw) in names.into_iter().zip(raws) {
        if name == target {
            target_column = Some(raw);
        } else if !drop.contains(&name) {
            let column = feature_column(&name, raw)?;
            debug_assert_eq!(column.len(), rows);
            features.push(Feature { name, column });
        }
    }
    let raw = target_column.ok_or_else(|| Error::invalid("target column vanished"))?;
    let target_value = make_target(target, raw, task)?;
    if features.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no feature columns besides the target {target:?}",
            path.display()
        )));
    }
    Ok(Frame {
        features,
        target_name: target.to_string(),
        target: target_value,
        rows,
    })
}

fn feature_column(name: &str, raw: Raw) -> Result<Column> {
    Ok(match raw {
        Raw::Int(v) => Column::Numeric(
            v.into_iter()
                .map(|x| x.map_or(f64::NAN, |x| x as f64))
                .collect(),
        ),
        Raw::Float(v) => Column::Numeric(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()),
        Raw::Bool(v) => {
            let labels: Vec<Option<String>> = v
                .into_iter()
                .map(|x| x.map(|b| if b { "True" } else { "False" }.to_string()))
                .collect();
            categorical(name, labels)?
        }
        Raw::Text(v) => categorical(name, v)?,
    })
}

fn categorical(name: &str, values: Vec<Option<String>>) -> Result<Column> {
    let mut levels: Vec<String> = Vec::new();
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for v in values.iter().flatten() {
        if seen.insert(v.as_str(), ()).is_none() {
            levels.push(v.clone());
            if levels.len() > MAX_CATEGORY_LEVELS {
                let distinct = values
                    .iter()
                    .flatten()
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                return Err(Error::invalid(format!(
                    "column {name:?} has {distinct} distinct text values (more than \
                     {MAX_CATEGORY_LEVELS}): an identifier or free text, not a category; \
                     leave it out (--drop {name}) or encode it as numbers first"
                )));
            }
        }
    }
    levels.sort();
    let index: HashMap<&str, u32> = levels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as u32))
        .collect();
    let codes = values
        .iter()
        .map(|v| {
            v.as_deref()
                .and_then(|v| index.get(v).copied())
                .unwrap_or(MISSING)
        })
        .collect();
    Ok(Column::Categorical { codes, levels })
}

fn make_target(name: &str, raw: Raw, task: Option<Task>) -> Result<Target> {
    let missing = raw.missing();
    if missing > 0 {
        return Err(Error::invalid(format!(
            "target column {name:?} has {missing} missing values: drop those rows or fill them first"
        )));
    }
    // Labels as text, and their numeric values when they have them (for ordering and regression).
    let (labels, numbers): (Vec<String>, Option<Vec<f64>>) = match raw {
        Raw::Int(v) => {
            let n: Vec<f64> = v.iter().map(|x| x.unwrap_or_default() as f64).collect();
            (
                v.iter()
                    .map(|x| x.unwrap_or_default().to_string())
                    .collect(),
                Some(n),
            )
        }
        Raw::Float(v) => {
            let n: Vec<f64> = v.iter().map(|x| x.unwrap_or_default()).collect();
            (n.iter().map(|x| format_number(*x)).collect(), Some(n))
        }
        Raw::Bool(v) => (
            v.iter()
                .map(|x| {
                    if x.unwrap_or_default() {
                        "True"
                    } else {
                        "False"
                    }
                    .to_string()
                })
                .collect(),
            None,
        ),
        Raw::Text(v) => (v.into_iter().map(Option::unwrap_or_default).collect(), None),
    };
    let mut distinct: Vec<&String> = labels.iter().collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(Error::invalid(format!(
            "target column {name:?} is constant (every row is {}): there is nothing to learn",
            distinct.first().map_or("", |s| s.as_str())
        )));
    }
    let task = match task {
        Some(t) => t,
        None => match &numbers {
            None => Task::Classification,
            Some(n) => {
                let integral = n.iter().all(|x| x.fract() == 0.0);
                if integral && distinct.len() <= MAX_INFERRED_CLASSES {
                    Task::Classification
                } else {
                    Task::Regression
                }
            }
        },
    };
    match task {
        Task::Regression => {
            let values = numbers.ok_or_else(|| {
                Error::invalid(format!(
                    "target column {name:?} holds text, which cannot be regressed on; use --task classification"
                ))
            })?;
            Ok(Target::Values(values))
        }
        Task::Classification => {
            let mut classes: Vec<(Option<f64>, String)> = Vec::new();
            let mut index: HashMap<&str, usize> = HashMap::new();
            for (i, label) in labels.iter().enumerate() {
                if !index.contains_key(label.as_str()) {
                    index.insert(label.as_str(), classes.len());
                    classes.push((numbers.as_ref().map(|n| n[i]), label.clone()));
                }
            }
            if classes.len() > MAX_CATEGORY_LEVELS {
                return Err(Error::invalid(format!(
                    "target column {name:?} has {} distinct values: too many classes; use --task regression for numbers",
                    classes.len()
                )));
            }
            classes.sort_by(|a, b| match (a.0, b.0) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => a.1.cmp(&b.1),
            });
            let order: HashMap<&str, u32> = classes
                .iter()
                .enumerate()
                .map(|(i, (_, l))| (l.as_str(), i as u32))
                .collect();
            let codes = labels.iter().map(|l| order[l.as_str()]).collect();
            Ok(Target::Classes {
                codes,
                classes: classes.into_iter().map(|(_, l)| l).collect(),
            })
        }
    }
}

/// A float label as Python prints it for integral values (`3.0` → `3`), else Rust's shortest form.
fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn columns_are_typed_and_the_task_inferred() {
        let (_d, path) = csv("a,color,y\n1.5,red,1\n,blue,0\n3,,1\n4,red,0\n");
        let frame = load(&path, "y", None, &[]).unwrap();
        assert_eq!(frame.rows, 4);
        assert_eq!(frame.features[0].name, "a");
        match &frame.features[0].column {
            Column::Numeric(v) => {
                assert_eq!(v[0], 1.5);
                assert!(v[1].is_nan());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            frame.features[1].column,
            Column::Categorical {
                codes: vec![1, 0, MISSING, 1],
                levels: vec!["blue".into(), "red".into()]
            }
        );
        assert_eq!(
            frame.target,
            Target::Classes {
                codes: vec![1, 0, 1, 0],
                classes: vec!["0".into(), "1".into()]
            }
        );
        let (_d, path) = csv("a,y\n1,0.5\n2,1.5\n3,2.25\n");
        let frame = load(&path, "y", None, &[]).unwrap();
        assert_eq!(frame.target, Target::Values(vec![0.5, 1.5, 2.25]));
    }

    #[test]
    fn numeric_classes_sort_by_value() {
        let (_d, path) = csv("a,y\n1,10\n2,9\n3,10\n");
        let frame = load(&path, "y", None, &[]).unwrap();
        assert_eq!(
            frame.target,
            Target::Classes {
                codes: vec![1, 0, 1],
                classes: vec!["9".into(), "10".into()]
            }
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let (_d, path) = csv("a,y\n1,0\n2,1\n");
        let err = load(&path, "label", None, &[]).unwrap_err().to_string();
        assert!(err.contains("no column named \"label\""), "{err}");
        let (_d, path) = csv("a,y\n1,3\n2,3\n");
        let err = load(&path, "y", None, &[]).unwrap_err().to_string();
        assert!(err.contains("constant"), "{err}");
        let (_d, path) = csv("a,y\n");
        let err = load(&path, "y", None, &[]).unwrap_err().to_string();
        assert!(err.contains("no rows"), "{err}");
        let mut ids = String::from("id,y\n");
        for i in 0..1500 {
            ids.push_str(&format!("user-{i},{}\n", i % 2));
        }
        let (_d, path) = csv(&ids);
        let err = load(&path, "y", None, &[]).unwrap_err().to_string();
        assert!(
            err.contains("\"id\" has 1500 distinct text values"),
            "{err}"
        );
        assert!(err.contains("--drop id"), "{err}");
        let (_d, path) = csv("a,y\n1,x\n2,z\n");
        let err = load(&path, "y", Some(Task::Regression), &[]).unwrap_err();
        assert!(err.to_string().contains("cannot be regressed"), "{err}");
    }
}
