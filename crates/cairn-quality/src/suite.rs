//! Expectation suites: Great Expectations' expectation names and arguments, read from YAML or
//! from Great Expectations' own JSON suites unchanged.
//!
//! Accepted shapes for each entry of `expectations:`:
//! `{type: expect_..., kwargs: {...}}` (GX 1.x JSON), `{expectation_type: ..., kwargs: ...}`
//! (GX 0.x JSON), or the short YAML form `{expect_...: {...}}`. Class names
//! (`ExpectColumnValuesToBeBetween`) are accepted for the type as well.
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Largest number of unexpected values kept per expectation (GX's `partial_unexpected_count`).
pub const PARTIAL: usize = 20;

/// A bound on a statistic or a value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
    /// Lower bound excluded.
    pub strict_min: bool,
    /// Upper bound excluded.
    pub strict_max: bool,
}

impl Range {
    /// Whether `x` lies within the bounds.
    pub fn contains(&self, x: f64) -> bool {
        let above = match self.min {
            None => true,
            Some(m) if self.strict_min => x > m,
            Some(m) => x >= m,
        };
        let below = match self.max {
            None => true,
            Some(m) if self.strict_max => x < m,
            Some(m) => x <= m,
        };
        above && below
    }
}

/// A statistic of one column compared with a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Arithmetic mean.
    Mean,
    /// Median (the mean of the two middle values for an even count).
    Median,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
}

/// One check, with its arguments parsed.
#[derive(Debug, Clone)]
pub enum Check {
    /// `expect_table_row_count_to_be_between`.
    RowCount(Range),
    /// `expect_table_columns_to_match_set`.
    ColumnsMatchSet {
        /// Expected columns.
        set: Vec<String>,
        /// Whether extra columns fail.
        exact: bool,
    },
    /// `expect_column_to_exist`.
    ColumnExists(String),
    /// `expect_column_values_to_not_be_null`.
    NotNull(String),
    /// `expect_column_values_to_be_between`.
    Between(String, Range),
    /// `expect_column_values_to_be_unique`.
    Unique(String),
    /// `expect_column_values_to_be_in_set`.
    InSet(String, Vec<Value>),
    /// `expect_column_values_to_match_regex`.
    Regex(String, regex::Regex),
    /// `expect_column_{mean,median,min,max}_to_be_between`.
    Stat(String, Stat, Range),
    /// `expect_column_values_to_be_of_type`.
    OfType(String, String),
    /// `expect_column_distinct_values_to_be_in_set`.
    DistinctInSet(String, Vec<Value>),
    /// `expect_column_value_lengths_to_be_between`.
    Lengths(String, Range),
    /// `expect_compound_columns_to_be_unique`.
    CompoundUnique(Vec<String>),
}

/// An expectation as written, and its parsed check.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// GX's snake-case type name.
    pub type_name: String,
    /// The arguments as given (echoed in results).
    pub kwargs: Map<String, Value>,
    /// Fraction of values that must meet a per-value check (1.0 when not given).
    pub mostly: f64,
    /// The check.
    pub check: Check,
}

impl Expectation {
    /// The column a single-column expectation is about.
    pub fn column(&self) -> Option<&str> {
        match &self.check {
            Check::ColumnExists(c)
            | Check::NotNull(c)
            | Check::Between(c, _)
            | Check::Unique(c)
            | Check::InSet(c, _)
            | Check::Regex(c, _)
            | Check::Stat(c, _, _)
            | Check::OfType(c, _)
            | Check::DistinctInSet(c, _)
            | Check::Lengths(c, _) => Some(c),
            _ => None,
        }
    }
}

/// A named list of expectations.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// Its expectations, in order.
    pub expectations: Vec<Expectation>,
}

/// Every expectation type understood, in documentation order.
pub const SUPPORTED: [&str; 16] = [
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_table_row_count_to_be_between",
    "expect_column_mean_to_be_between",
    "expect_column_to_exist",
    "expect_table_columns_to_match_set",
    "expect_column_values_to_be_of_type",
    "expect_column_distinct_values_to_be_in_set",
    "expect_column_min_to_be_between",
    "expect_column_max_to_be_between",
    "expect_column_median_to_be_between",
    "expect_column_value_lengths_to_be_between",
    "expect_compound_columns_to_be_unique",
];

/// Keys any expectation may carry that do not change what is checked.
const INERT_KEYS: [&str; 6] = [
    "meta",
    "notes",
    "id",
    "result_format",
    "catch_exceptions",
    "description",
];

fn snake_case(name: &str) -> String {
    if name.contains('_') || name.chars().all(|c| !c.is_ascii_uppercase()) {
        return name.to_owned();
    }
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Suite {
    /// Parses a suite from YAML or JSON text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Suite> {
        let yaml: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| Error::Invalid(format!("{origin}: not YAML or JSON: {e}")))?;
        let root: Value =
            serde_json::to_value(yaml).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
        let bad = |msg: String| Error::Invalid(format!("{origin}: {msg}"));
        let (name, list) = match &root {
            Value::Object(m) => {
                let name = m
                    .get("name")
                    .or_else(|| m.get("expectation_suite_name"))
                    .and_then(Value::as_str)
                    .unwrap_or("suite")
                    .to_owned();
                let list = m
                    .get("expectations")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("no `expectations` list".into()))?;
                (name, list)
            }
            Value::Array(list) => ("suite".to_owned(), list),
            _ => return Err(bad("expected a map with an `expectations` list".into())),
        };
        let expectations = list
            .iter()
            .enumerate()
            .map(|(i, e)| {
                parse_entry(e).map_err(|msg| bad(format!("expectation {}: {msg}", i + 1)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Suite { name, expectations })
    }
}

fn parse_entry(entry: &Value) -> std::result::Result<Expectation, String> {
    let map = entry.as_object().ok_or("each expectation must be a map")?;
    let (type_name, kwargs) = if let Some(t) =
        map.get("type").or_else(|| map.get("expectation_type"))
    {
        let t = t.as_str().ok_or("`type` must be a string")?;
        let kwargs = match map.get("kwargs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(k)) => k.clone(),
            Some(_) => return Err("`kwargs` must be a map".into()),
        };
        (snake_case(t), kwargs)
    } else if map.len() == 1 {
        let (t, k) = map.iter().next().ok_or("empty expectation")?;
        let kwargs = match k {
            Value::Null => Map::new(),
            Value::Object(k) => k.clone(),
            _ => return Err(format!("the arguments of {t} must be a map")),
        };
        (snake_case(t), kwargs)
    } else {
        return Err("expected `type` and `kwargs`, or one `expect_...: {arguments}` entry".into());
    };
    let check = parse_check(&type_name, &kwargs)?;
    let mostly = match kwargs.get("mostly") {
        None | Some(Value::Null) => 1.0,
        Some(v) => {
            let m = v.as_f64().ok_or("`mostly` must be a number")?;
            if !(0.0..=1.0).contains(&m) {
                return Err(format!("`mostly` must be between 0 and 1, got {m}"));
            }
            m
        }
    };
    Ok(Expectation {
        type_name,
        kwargs,
        mostly,
        check,
    })
}

struct Args<'a> {
    type_name: &'a str,
    kwargs: &'a Map<String, Value>,
    allowed: Vec<&'static str>,
}

impl<'a> Args<'a> {
    fn new(type_name: &'a str, kwargs: &'a Map<String, Value>) -> Self {
        Args {
            type_name,
            kwargs,
            allowed: INERT_KEYS.to_vec(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.allowed.push(key);
        self.kwargs.get(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &'static str) -> std::result::Result<String, String> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{}: `{key}` must be a string", self.type_name)),
            None => Err(format!("{}: `{key}` is required", self.type_name)),
        }
    }

    fn number(&mut self, key: &'static str) -> std::result::Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("{}: `{key}` must be a number", self.type_name)),
        }
    }

    fn flag(&mut self, key: &'static str, default: bool) -> std::result::Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("{}: `{key}` must be true or false", self.type_name)),
        }
    }

    fn list(&mut self, key: &'static str) -> std::result::Result<Vec<Value>, String> {
        match self.get(key) {
            Some(Value::Array(a)) if !a.is_empty() => Ok(a.clone()),
            Some(Value::Array(_)) => Err(format!("{}: `{key}` must not be empty", self.type_name)),
            Some(_) => Err(format!("{}: `{key}` must be a list", self.type_name)),
            None => Err(format!("{}: `{key}` is required", self.type_name)),
        }
    }

    fn range(&mut self) -> std::result::Result<Range, String> {
        let range = Range {
            min: self.number("min_value")?,
            max: self.number("max_value")?,
            strict_min: self.flag("strict_min", false)?,
            strict_max: self.flag("strict_max", false)?,
        };
        if range.min.is_none() && range.max.is_none() {
            return Err(format!(
                "{}: give `min_value`, `max_value` or both",
                self.type_name
            ));
        }
        if let (Some(a), Some(b)) = (range.min, range.max) {
            if a > b {
                return Err(format!(
                    "{}: `min_value` {a} is above `max_value` {b}",
                    self.type_name
                ));
            }
        }
        Ok(range)
    }

    fn finish(self) -> std::result::Result<(), String> {
        let mut unknown: Vec<&String> = self
            .kwargs
            .keys()
            .filter(|k| !self.allowed.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: unsupported argument(s) {}",
                self.type_name,
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

fn parse_check(type_name: &str, kwargs: &Map<String, Value>) -> std::result::Result<Check, String> {
    let mut a = Args::new(type_name, kwargs);
    let is_map = matches!(
        type_name,
        "expect_column_values_to_not_be_null"
            | "expect_column_values_to_be_between"
            | "expect_column_values_to_be_unique"
            | "expect_column_values_to_be_in_set"
            | "expect_column_values_to_match_regex"
            | "expect_column_value_lengths_to_be_between"
            | "expect_compound_columns_to_be_unique"
    );
    if is_map {
        a.get("mostly");
    }
    let check = match type_name {
        "expect_table_row_count_to_be_between" => Check::RowCount(a.range()?),
        "expect_table_columns_to_match_set" => {
            let set = a
                .list("column_set")?
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(format!("{type_name}: `column_set` must list column names")),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Check::ColumnsMatchSet {
                set,
                exact: a.flag("exact_match", true)?,
            }
        }
        "expect_column_to_exist" => Check::ColumnExists(a.string("column")?),
        "expect_column_values_to_not_be_null" => Check::NotNull(a.string("column")?),
        "expect_column_values_to_be_between" => {
            let c = a.string("column")?;
            Check::Between(c, a.range()?)
        }
        "expect_column_values_to_be_unique" => Check::Unique(a.string("column")?),
        "expect_column_values_to_be_in_set" => {
            let c = a.string("column")?;
            Check::InSet(c, a.list("value_set")?)
        }
        "expect_column_values_to_match_regex" => {
            let c = a.string("column")?;
            let pattern = a.string("regex")?;
            let re = regex::Regex::new(&pattern)
                .map_err(|e| format!("{type_name}: `regex` {pattern:?} is not valid: {e}"))?;
            Check::Regex(c, re)
        }
        "expect_column_mean_to_be_between"
        | "expect_column_median_to_be_between"
        | "expect_column_min_to_be_between"
        | "expect_column_max_to_be_between" => {
            let stat = match type_name {
                "expect_column_mean_to_be_between" => Stat::Mean,
                "expect_column_median_to_be_between" => Stat::Median,
                "expect_column_min_to_be_between" => Stat::Min,
                _ => Stat::Max,
            };
            let c = a.string("column")?;
            Check::Stat(c, stat, a.range()?)
        }
        "expect_column_values_to_be_of_type" => {
            let c = a.string("column")?;
            Check::OfType(c, a.string("type_")?)
        }
        "expect_column_distinct_values_to_be_in_set" => {
            let c = a.string("column")?;
            Check::DistinctInSet(c, a.list("value_set")?)
        }
        "expect_column_value_lengths_to_be_between" => {
            let c = a.string("column")?;
            Check::Lengths(c, a.range()?)
        }
        "expect_compound_columns_to_be_unique" => {
            let columns = a
                .list("column_list")?
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(format!("{type_name}: `column_list` must list column names")),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if columns.len() < 2 {
                return Err(format!(
                    "{type_name}: `column_list` needs two or more columns"
                ));
            }
            Check::CompoundUnique(columns)
        }
        other => {
            return Err(format!(
                "unknown expectation type {other:?}; supported: {}",
                SUPPORTED.join(", ")
            ))
        }
    };
    a.finish()?;
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_short_form_and_gx_json() {
        let yaml = "name: s\nexpectations:\n  - expect_column_values_to_be_between: {column: a, min_value: 0, mostly: 0.9}\n  - type: ExpectColumnToExist\n    kwargs: {column: b}\n";
        let s = Suite::parse(yaml, "t").unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(s.expectations.len(), 2);
        assert_eq!(s.expectations[0].mostly, 0.9);
        assert_eq!(s.expectations[1].type_name, "expect_column_to_exist");
        let json = r#"{"expectations":[{"expectation_type":"expect_column_values_to_be_unique","kwargs":{"column":"id"}}]}"#;
        assert_eq!(Suite::parse(json, "t").unwrap().expectations.len(), 1);
    }

    #[test]
    fn bad_suites_are_named() {
        for (text, needle) in [
            ("expectations: [{expect_nothing: {}}]", "unknown expectation type"),
            (
                "expectations: [{expect_column_values_to_be_between: {column: a}}]",
                "min_value",
            ),
            (
                "expectations: [{expect_column_values_to_be_between: {column: a, min_value: 1, typo: 2}}]",
                "`typo`",
            ),
            (
                "expectations: [{expect_column_values_to_match_regex: {column: a, regex: '('}}]",
                "not valid",
            ),
            ("expectations: [{expect_column_to_exist: {column: a, mostly: 3}}]", "mostly"),
            ("just text", "expected a map"),
        ] {
            let err = Suite::parse(text, "s.yaml").unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.starts_with("s.yaml"), "{err}");
        }
    }

    proptest::proptest! {
        /// Any text, YAML- or JSON-shaped or not, is a suite or an error naming the problem.
        #[test]
        fn any_suite_text_parses_or_is_refused(text in "\\PC{0,200}") {
            let _ = Suite::parse(&text, "fuzz.yaml");
            let _ = Suite::parse(&text, "fuzz.json");
        }

        /// Suites assembled from real keys with arbitrary values.
        #[test]
        fn suites_with_arbitrary_values_never_panic(
            kind in proptest::sample::select(vec![
                "expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
                "expect_column_values_to_be_in_set", "expect_table_row_count_to_be_between",
                "expect_column_mean_to_be_between", "expect_column_values_to_match_regex",
                "no_such_expectation",
            ]),
            value in proptest::prop_oneof![
                proptest::strategy::Just("null".to_string()), proptest::strategy::Just("[1, 2]".to_string()),
                proptest::strategy::Just("{a: 1}".to_string()), proptest::strategy::Just("'(['".to_string()),
                proptest::strategy::Just("1e400".to_string()), proptest::strategy::Just("-5".to_string()),
                "[a-z]{0,6}",
            ],
        ) {
            let yaml = format!(
                "expectations:\n  - type: {kind}\n    kwargs:\n      column: {value}\n      min_value: {value}\n      max_value: {value}\n      value_set: {value}\n      regex: {value}\n      mostly: {value}\n"
            );
            let _ = Suite::parse(&yaml, "fuzz.yaml");
        }
    }
}
