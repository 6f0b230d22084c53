//! Inference with features. A model version bound to a feature service (its
//! `cairn.feature_service` tag) may be sent the service's entity keys instead of its inputs:
//! the features are looked up online, turned into the model's inputs as training saw them, and
//! the prediction answered in the same request. The prediction log then records the features
//! the model was given.
//!
//! A value the online store does not hold, or holds past its view's time to live, is missing,
//! as the point-in-time join leaves it missing in a training set: `NaN` for a number, and for a
//! category the missing code; an input that has no missing value (integers, strings) refuses
//! the request, naming the entity row and the feature.
use crate::oip::ServedModel;
use axum::http::StatusCode;
use cairn_serving::{ElementType, FeatureColumn, NamedTensor, TensorData, TensorSpec};
use serde_json::Value;
use std::sync::Arc;

/// Entity rows: each join key with one value per row.
pub type EntityRows = Vec<(String, Vec<Value>)>;

/// Looks up a feature service's values for entity rows.
pub trait FeatureLookup: Send + Sync {
    /// Feast's `get-online-features` answer for `service` at `entities` (each join key with one
    /// value per row), with full feature names (`view__feature`). Blocking.
    fn lookup(&self, service: &str, entities: &[(String, Vec<Value>)])
        -> Result<Value, BoundError>;
}

/// The feature service a served version is bound to, and where its values are read.
#[derive(Clone)]
pub struct Binding {
    /// The feature service's name.
    pub service: String,
    /// The feature store; `None` when the server runs without one.
    pub lookup: Option<Arc<dyn FeatureLookup>>,
}

/// Why entity keys could not become the model's inputs: the status to answer and why.
#[derive(Debug)]
pub struct BoundError(pub StatusCode, pub String);

impl BoundError {
    /// The caller's mistake (400).
    pub fn invalid(message: impl Into<String>) -> Self {
        BoundError(StatusCode::BAD_REQUEST, message.into())
    }
}

/// Whether a request naming the inputs `names` sends entity keys: the version is bound to a
/// feature service and none of the names is one of the model's inputs.
pub fn sends_entities<'a>(served: &ServedModel, mut names: impl Iterator<Item = &'a str>) -> bool {
    let inputs = &served.runner.model().signature().inputs;
    served.binding.is_some() && names.all(|n| !inputs.iter().any(|i| i.name == n))
}

/// One looked-up column: its full name (`view__feature`, or a join key) and one value per row,
/// `None` where the value is missing.
#[derive(Debug)]
struct Looked {
    name: String,
    values: Vec<Option<Value>>,
}

/// The model's input tensors for the entity rows `entities`. Blocking: it reads the online
/// store.
pub fn inputs_for_entities(
    served: &ServedModel,
    entities: &[(String, Vec<Value>)],
) -> Result<Vec<NamedTensor>, BoundError> {
    let Some(binding) = &served.binding else {
        return Err(BoundError::invalid(format!(
            "model '{}' version {} is not bound to a feature service: send its inputs",
            served.name, served.version
        )));
    };
    let Some(lookup) = &binding.lookup else {
        return Err(BoundError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "model '{}' version {} is bound to feature service '{}', and this server has no \
                 feature store: start it with --features-project",
                served.name, served.version, binding.service
            ),
        ));
    };
    if entities.is_empty() {
        return Err(BoundError::invalid("the request names no entity keys"));
    }
    let answer = lookup.lookup(&binding.service, entities)?;
    let looked = parse_answer(&answer)?;
    build_inputs(
        served,
        &binding.service,
        &looked,
        entities.len(),
        entities[0].1.len(),
    )
}

/// Checks that a feature service whose answer has the columns `names` (the entity keys, `keys`
/// of them, then the features in full, `view__feature`) can feed every input of `served`.
pub fn check_binding(
    served: &ServedModel,
    service: &str,
    names: &[String],
    keys: usize,
) -> Result<(), BoundError> {
    let looked: Vec<Looked> = names
        .iter()
        .map(|n| Looked {
            name: n.clone(),
            values: Vec::new(),
        })
        .collect();
    build_inputs(served, service, &looked, keys, 0).map(|_| ())
}

/// The model's inputs from looked-up columns (`keys` entity keys first, then features).
fn build_inputs(
    served: &ServedModel,
    service: &str,
    looked: &[Looked],
    keys: usize,
    rows: usize,
) -> Result<Vec<NamedTensor>, BoundError> {
    let specs = &served.runner.model().signature().inputs;
    let find = |name: &str| find_column(looked, name, service);
    match (specs.as_slice(), &served.columns) {
        ([x], Some(columns)) if x.shape.len() == 2 => {
            let found: Vec<(&FeatureColumn, &Looked)> = columns
                .iter()
                .map(|c| find(&c.name).map(|l| (c, l)))
                .collect::<Result<_, _>>()?;
            let mut data = Vec::with_capacity(rows * columns.len());
            for row in 0..rows {
                for (column, looked) in &found {
                    data.push(encode(column, looked.values[row].as_ref()));
                }
            }
            Ok(vec![NamedTensor {
                name: x.name.clone(),
                shape: vec![rows, columns.len()],
                data: TensorData::Fp32(data),
            }])
        }
        ([x], None) => {
            // The service's features in its order, as the columns of one input.
            let features = &looked[keys.min(looked.len())..];
            if let Some(&width) = x.shape.get(1).filter(|w| **w >= 0) {
                if width as usize != features.len() {
                    return Err(BoundError::invalid(format!(
                        "feature service '{service}' gives {} features, model input '{}' takes \
                         {width}",
                        features.len(),
                        x.name
                    )));
                }
            }
            let cells: Vec<(&Looked, usize)> = (0..rows)
                .flat_map(|row| features.iter().map(move |f| (f, row)))
                .collect();
            let shape = if x.shape.len() == 1 {
                vec![rows * features.len()]
            } else {
                vec![rows, features.len()]
            };
            Ok(vec![NamedTensor {
                name: x.name.clone(),
                shape,
                data: typed(x, &cells)?,
            }])
        }
        (specs, _) => specs
            .iter()
            .map(|spec| {
                let looked = find(&spec.name)?;
                let cells: Vec<(&Looked, usize)> = (0..rows).map(|row| (looked, row)).collect();
                let shape = if spec.shape.len() == 1 {
                    vec![rows]
                } else {
                    vec![rows, 1]
                };
                Ok(NamedTensor {
                    name: spec.name.clone(),
                    shape,
                    data: typed(spec, &cells)?,
                })
            })
            .collect(),
    }
}

/// The columns of a `get-online-features` answer; values not `PRESENT` are missing.
fn parse_answer(answer: &Value) -> Result<Vec<Looked>, BoundError> {
    let broken = || {
        BoundError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the feature store's answer is not a get-online-features answer".into(),
        )
    };
    let names = answer["metadata"]["feature_names"]
        .as_array()
        .ok_or_else(broken)?;
    let results = answer["results"].as_array().ok_or_else(broken)?;
    if names.len() != results.len() {
        return Err(broken());
    }
    names
        .iter()
        .zip(results)
        .map(|(name, result)| {
            let values = result["values"].as_array().ok_or_else(broken)?;
            let statuses = result["statuses"].as_array().ok_or_else(broken)?;
            Ok(Looked {
                name: name.as_str().ok_or_else(broken)?.to_string(),
                values: values
                    .iter()
                    .zip(statuses)
                    .map(|(v, s)| (s == "PRESENT" && !v.is_null()).then(|| v.clone()))
                    .collect(),
            })
        })
        .collect()
}

/// The looked-up column a model input names: by its full name (`view__feature`) or join key,
/// else by the feature's own name when one view of the service has it.
fn find_column<'a>(
    looked: &'a [Looked],
    name: &str,
    service: &str,
) -> Result<&'a Looked, BoundError> {
    if let Some(l) = looked.iter().find(|l| l.name == name) {
        return Ok(l);
    }
    let suffix = format!("__{name}");
    let matches: Vec<&Looked> = looked
        .iter()
        .filter(|l| l.name.ends_with(&suffix))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(BoundError::invalid(format!(
            "the model's input '{name}' is neither a feature of service '{service}' nor an entity \
             key of the request (the service gives {})",
            looked
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        several => Err(BoundError::invalid(format!(
            "the model's input '{name}' is a feature of several views of service '{service}' ({}): \
             the model must name it in full",
            several
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A value as `cairn train` encodes it in `x`: a number as it is, a category as the index of
/// its level, and anything missing or unknown as `NaN`.
fn encode(column: &FeatureColumn, value: Option<&Value>) -> f32 {
    let Some(value) = value else {
        return f32::NAN;
    };
    match &column.levels {
        Some(levels) => {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            levels
                .iter()
                .position(|l| *l == text)
                .map_or(f32::NAN, |i| i as f32)
        }
        None => match value {
            Value::Bool(b) => f32::from(u8::from(*b)),
            other => other.as_f64().map_or(f32::NAN, |f| f as f32),
        },
    }
}

/// Cells (a column and a row each) as the values of `spec`'s type. Floats take `NaN` for a
/// missing value; other types have none, and a missing cell refuses the request.
fn typed(spec: &TensorSpec, cells: &[(&Looked, usize)]) -> Result<TensorData, BoundError> {
    fn present<'a>(spec: &TensorSpec, cell: &(&'a Looked, usize)) -> Result<&'a Value, BoundError> {
        let (looked, row) = *cell;
        looked.values[row].as_ref().ok_or_else(|| {
            BoundError::invalid(format!(
                "entity row {row} has no value for feature {}, and input '{}' ({}) cannot \
                 take a missing value",
                looked.name,
                spec.name,
                spec.element_type.as_str()
            ))
        })
    }
    let wrong = |(looked, row): &(&Looked, usize), v: &Value| {
        BoundError::invalid(format!(
            "feature {} of entity row {row} is {v}, which input '{}' ({}) cannot take",
            looked.name,
            spec.name,
            spec.element_type.as_str()
        ))
    };
    let float = |cell: &(&Looked, usize)| match &cell.0.values[cell.1] {
        None => Ok(f64::NAN),
        Some(Value::Bool(b)) => Ok(f64::from(u8::from(*b))),
        Some(v) => v.as_f64().ok_or_else(|| wrong(cell, v)),
    };
    let integer = |cell: &(&Looked, usize)| {
        let v = present(spec, cell)?;
        v.as_i64().ok_or_else(|| wrong(cell, v))
    };
    Ok(match spec.element_type {
        ElementType::Fp32 => TensorData::Fp32(
            cells
                .iter()
                .map(|c| float(c).map(|f| f as f32))
                .collect::<Result<_, _>>()?,
        ),
        ElementType::Fp64 => TensorData::Fp64(cells.iter().map(float).collect::<Result<_, _>>()?),
        ElementType::Int64 => {
            TensorData::Int64(cells.iter().map(integer).collect::<Result<_, _>>()?)
        }
        ElementType::Int32 => TensorData::Int32(
            cells
                .iter()
                .map(|c| {
                    let n = integer(c)?;
                    i32::try_from(n).map_err(|_| wrong(c, &Value::from(n)))
                })
                .collect::<Result<_, _>>()?,
        ),
        ElementType::Bool => TensorData::Bool(
            cells
                .iter()
                .map(|c| {
                    let v = present(spec, c)?;
                    v.as_bool().ok_or_else(|| wrong(c, v))
                })
                .collect::<Result<_, _>>()?,
        ),
        ElementType::Bytes => TensorData::Bytes(
            cells
                .iter()
                .map(|c| {
                    let v = present(spec, c)?;
                    Ok(v.as_str().map_or_else(|| v.to_string(), str::to_string))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn looked(name: &str, values: Vec<Option<Value>>) -> Looked {
        Looked {
            name: name.into(),
            values,
        }
    }

    #[test]
    fn an_answer_keeps_only_present_values() {
        let answer = json!({
            "metadata": {"feature_names": ["driver_id", "stats__rate"]},
            "results": [
                {"values": [1, 2, 3], "statuses": ["PRESENT", "PRESENT", "PRESENT"]},
                {"values": [0.5, 0.7, null],
                 "statuses": ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"]},
            ]
        });
        let columns = parse_answer(&answer).unwrap();
        assert_eq!(columns[1].values, vec![Some(json!(0.5)), None, None]);
        assert!(parse_answer(&json!({"results": []})).is_err());
    }

    #[test]
    fn inputs_are_found_by_full_or_short_name_and_ambiguity_is_refused() {
        let columns = vec![
            looked("driver_id", vec![]),
            looked("stats__rate", vec![]),
            looked("stats__trips", vec![]),
            looked("other__trips", vec![]),
        ];
        assert_eq!(
            find_column(&columns, "rate", "s").unwrap().name,
            "stats__rate"
        );
        assert_eq!(
            find_column(&columns, "other__trips", "s").unwrap().name,
            "other__trips"
        );
        assert_eq!(
            find_column(&columns, "driver_id", "s").unwrap().name,
            "driver_id"
        );
        let ambiguous = find_column(&columns, "trips", "s").unwrap_err();
        assert!(ambiguous.1.contains("several views"), "{}", ambiguous.1);
        let unknown = find_column(&columns, "speed", "s").unwrap_err();
        assert!(unknown.1.contains("'speed'"), "{}", unknown.1);
    }

    #[test]
    fn values_are_encoded_as_training_encoded_them() {
        let number = FeatureColumn {
            name: "n".into(),
            levels: None,
        };
        let category = FeatureColumn {
            name: "c".into(),
            levels: Some(vec!["a".into(), "b".into()]),
        };
        assert_eq!(encode(&number, Some(&json!(2.5))), 2.5);
        assert_eq!(encode(&number, Some(&json!(true))), 1.0);
        assert!(encode(&number, None).is_nan());
        assert_eq!(encode(&category, Some(&json!("b"))), 1.0);
        assert!(encode(&category, Some(&json!("z"))).is_nan());
        assert!(encode(&category, None).is_nan());
    }

    #[test]
    fn a_missing_value_is_nan_for_floats_and_refused_for_integers() {
        let column = looked("v__n", vec![Some(json!(3)), None]);
        let cells = vec![(&column, 0), (&column, 1)];
        let spec = |t| TensorSpec {
            name: "x".into(),
            element_type: t,
            shape: vec![-1],
        };
        match typed(&spec(ElementType::Fp64), &cells).unwrap() {
            TensorData::Fp64(v) => assert!(v[0] == 3.0 && v[1].is_nan()),
            other => panic!("{other:?}"),
        }
        let refused = typed(&spec(ElementType::Int64), &cells).unwrap_err();
        assert_eq!(refused.0, StatusCode::BAD_REQUEST);
        assert!(refused.1.contains("entity row 1"), "{}", refused.1);
    }
}
