//! Converting Arrow columns to a few plain types: 64-bit integers, 64-bit floats and text.
//!
//! Written here rather than taken from `arrow-cast` because that crate (with `arrow-ord`, which
//! only it pulls in) costs about two minutes of a clean release build on two cores, and Cairn
//! needs only these conversions: widening numbers and writing values as text.
use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, TimeUnit};
use std::sync::Arc;

/// Whether [`to_int64`] accepts the type.
pub fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Whether [`to_float64`] accepts the type.
pub fn is_float(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..)
    )
}

/// Any integer column as `Int64` (unsigned values above `i64::MAX` become null).
pub fn to_int64(col: &dyn Array) -> Option<ArrayRef> {
    macro_rules! widen {
        ($t:ty) => {
            Arc::new(
                col.as_primitive::<$t>()
                    .iter()
                    .map(|v| v.and_then(|x| i64::try_from(x).ok()))
                    .collect::<Int64Array>(),
            )
        };
    }
    let out: ArrayRef = match col.data_type() {
        DataType::Int64 => Arc::new(col.as_primitive::<Int64Type>().clone()),
        DataType::Int8 => widen!(Int8Type),
        DataType::Int16 => widen!(Int16Type),
        DataType::Int32 => widen!(Int32Type),
        DataType::UInt8 => widen!(UInt8Type),
        DataType::UInt16 => widen!(UInt16Type),
        DataType::UInt32 => widen!(UInt32Type),
        DataType::UInt64 => widen!(UInt64Type),
        _ => return None,
    };
    Some(out)
}

/// Any float or decimal column as `Float64`.
pub fn to_float64(col: &dyn Array) -> Option<ArrayRef> {
    let out: ArrayRef = match col.data_type() {
        DataType::Float64 => Arc::new(col.as_primitive::<Float64Type>().clone()),
        DataType::Float32 => Arc::new(
            col.as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.map(f64::from))
                .collect::<Float64Array>(),
        ),
        DataType::Float16 => Arc::new(
            col.as_primitive::<Float16Type>()
                .iter()
                .map(|v| v.map(f64::from))
                .collect::<Float64Array>(),
        ),
        DataType::Decimal128(_, scale) => {
            let div = 10f64.powi(i32::from(*scale));
            Arc::new(
                col.as_primitive::<Decimal128Type>()
                    .iter()
                    .map(|v| v.map(|x| x as f64 / div))
                    .collect::<Float64Array>(),
            )
        }
        _ => return None,
    };
    Some(out)
}

/// Days since 1970-01-01 as `YYYY-MM-DD`.
pub fn date(days: i64) -> String {
    let (y, m, d) = cairn_core::dates::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A timestamp in `unit`s since the epoch as ISO 8601 (UTC, fractional seconds when present).
fn timestamp(v: i64, unit: &TimeUnit) -> String {
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let secs = v.div_euclid(per_second);
    let frac = v.rem_euclid(per_second);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let mut s = format!(
        "{}T{:02}:{:02}:{:02}",
        date(days),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let digits = per_second.ilog10() as usize;
        s.push_str(&format!(".{frac:0digits$}"));
    }
    s
}

/// Every value of a column as text (`None` for nulls); `None` for a type Cairn cannot write.
pub fn to_text(col: &dyn Array) -> Option<StringArray> {
    macro_rules! each {
        ($arr:expr, $f:expr) => {{
            let a = $arr;
            let mut b = StringBuilder::new();
            for i in 0..a.len() {
                if a.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value($f(a.value(i)));
                }
            }
            b.finish()
        }};
    }
    let out = match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().clone(),
        DataType::LargeUtf8 => each!(col.as_string::<i64>(), |v: &str| v.to_owned()),
        DataType::Utf8View => each!(col.as_string_view(), |v: &str| v.to_owned()),
        DataType::Boolean => each!(col.as_boolean(), |v: bool| v.to_string()),
        DataType::Int8 => each!(col.as_primitive::<Int8Type>(), |v: i8| v.to_string()),
        DataType::Int16 => each!(col.as_primitive::<Int16Type>(), |v: i16| v.to_string()),
        DataType::Int32 => each!(col.as_primitive::<Int32Type>(), |v: i32| v.to_string()),
        DataType::Int64 => each!(col.as_primitive::<Int64Type>(), |v: i64| v.to_string()),
        DataType::UInt8 => each!(col.as_primitive::<UInt8Type>(), |v: u8| v.to_string()),
        DataType::UInt16 => each!(col.as_primitive::<UInt16Type>(), |v: u16| v.to_string()),
        DataType::UInt32 => each!(col.as_primitive::<UInt32Type>(), |v: u32| v.to_string()),
        DataType::UInt64 => each!(col.as_primitive::<UInt64Type>(), |v: u64| v.to_string()),
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            let f = to_float64(col)?;
            each!(f.as_primitive::<Float64Type>(), |v: f64| format!("{v:?}"))
        }
        DataType::Date32 => each!(col.as_primitive::<Date32Type>(), |v: i32| date(i64::from(
            v
        ))),
        DataType::Date64 => each!(col.as_primitive::<Date64Type>(), |v: i64| date(
            v.div_euclid(86_400_000)
        )),
        DataType::Timestamp(unit, _) => {
            let unit = *unit;
            let ts = |v: i64| timestamp(v, &unit);
            match unit {
                TimeUnit::Second => each!(col.as_primitive::<TimestampSecondType>(), ts),
                TimeUnit::Millisecond => each!(col.as_primitive::<TimestampMillisecondType>(), ts),
                TimeUnit::Microsecond => each!(col.as_primitive::<TimestampMicrosecondType>(), ts),
                TimeUnit::Nanosecond => each!(col.as_primitive::<TimestampNanosecondType>(), ts),
            }
        }
        DataType::Binary => each!(col.as_binary::<i32>(), |v: &[u8]| v
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()),
        _ => return None,
    };
    Some(out)
}

/// Converts a column to `to` (Int64, Float64 or Utf8, or its own type); `None` if not possible.
pub fn convert(col: &ArrayRef, to: &DataType) -> Option<ArrayRef> {
    if col.data_type() == to {
        return Some(col.clone());
    }
    match to {
        DataType::Int64 => to_int64(col.as_ref()),
        DataType::Float64 => to_float64(col.as_ref()),
        DataType::Utf8 => to_text(col.as_ref()).map(|a| Arc::new(a) as ArrayRef),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps_are_iso() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_723), "2024-01-01");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(
            timestamp(1_704_067_200_500, &TimeUnit::Millisecond),
            "2024-01-01T00:00:00.500"
        );
        assert_eq!(timestamp(86_399, &TimeUnit::Second), "1970-01-01T23:59:59");
    }

    #[test]
    fn numbers_widen_and_write() {
        let a: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![Some(1), None, Some(-3)]));
        let w = convert(&a, &DataType::Int64).unwrap();
        assert_eq!(
            w.as_primitive::<Int64Type>().values().to_vec(),
            vec![1, 0, -3]
        );
        assert!(w.is_null(1));
        let t = to_text(a.as_ref()).unwrap();
        assert_eq!(t.value(2), "-3");
        let f: ArrayRef = Arc::new(arrow_array::Float32Array::from(vec![0.5f32]));
        assert_eq!(to_text(f.as_ref()).unwrap().value(0), "0.5");
    }
}
