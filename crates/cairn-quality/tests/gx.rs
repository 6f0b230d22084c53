//! Validation results equal Great Expectations' on a fixture with nulls, out-of-range values,
//! duplicates, regex misses and mixed types. The expected results were recorded from
//! great-expectations 1.24.1 (pandas 2.3.3) by `tests/interop/gx_record.py` and are kept in
//! `tests/fixtures/people.gx.json`; the suite is GX's own JSON format, read unchanged.
#![allow(clippy::unwrap_used)]

use cairn_quality::suite::Suite;
use cairn_quality::validate::validate;
use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// JSON equality with numbers compared as floats (GX writes `0` bounds as `0.0`, and float
/// results may differ in the last bit from pandas' summation order).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn results_equal_great_expectations() {
    let text = std::fs::read_to_string(fixture("people.suite.json")).unwrap();
    let suite = Suite::parse(&text, "people.suite.json").unwrap();
    let ours = validate(&fixture("people.csv"), &suite).unwrap();
    let gx: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("people.gx.json")).unwrap()).unwrap();
    let gx_results = gx["results"].as_array().unwrap();
    assert_eq!(gx_results.len(), ours.results.len());
    for g in gx_results {
        let kwargs = g["kwargs"].as_object().unwrap();
        let mine = ours
            .results
            .iter()
            .find(|r| {
                r.type_name == g["type"].as_str().unwrap()
                    && same(
                        &Value::Object(r.kwargs.clone()),
                        &Value::Object(kwargs.clone()),
                    )
            })
            .unwrap_or_else(|| panic!("no result for {g}"));
        let label = format!("{} {}", mine.type_name, Value::Object(mine.kwargs.clone()));
        assert_eq!(
            mine.success,
            g["success"].as_bool().unwrap(),
            "{label}: success"
        );
        assert_eq!(
            mine.exception.is_some(),
            g["exception"].as_bool().unwrap(),
            "{label}: exception {:?}",
            mine.exception
        );
        assert!(
            same(&Value::Object(mine.result.clone()), &g["result"]),
            "{label}:\n ours {}\n GX   {}",
            Value::Object(mine.result.clone()),
            g["result"]
        );
    }
    assert!(
        same(&ours.statistics(), &gx["statistics"]),
        "{}",
        ours.statistics()
    );
    assert_eq!(ours.success, gx["success"].as_bool().unwrap());
}

/// The same table as Parquet (text dictionary-encoded, as writers store it) gives the same
/// results: columns are projected and text is checked once per dictionary value, which must
/// not change a number.
#[test]
fn parquet_results_equal_csv_results() {
    let dir = tempfile::tempdir().unwrap();
    let parquet_path = dir.path().join("people.parquet");
    let mut table = cairn_quality::table::Table::open(&fixture("people.csv")).unwrap();
    let file = std::fs::File::create(&parquet_path).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, table.schema().clone(), None).unwrap();
    while let Some(batch) = table.next_batch().unwrap() {
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
    let text = std::fs::read_to_string(fixture("people.suite.json")).unwrap();
    let suite = Suite::parse(&text, "people.suite.json").unwrap();
    let from_csv = validate(&fixture("people.csv"), &suite).unwrap();
    let from_parquet = validate(&parquet_path, &suite).unwrap();
    for (a, b) in from_csv.results.iter().zip(&from_parquet.results) {
        assert_eq!(a, b, "{}", a.type_name);
    }
    assert_eq!(from_csv.rows, from_parquet.rows);
}
