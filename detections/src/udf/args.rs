//! Argument and result plumbing shared by the UDFs: text arguments of any string type (Utf8,
//! LargeUtf8, Utf8View, scalars) read as `Option<&str>`, and boolean or text results built
//! row by row — one value when every argument is a scalar.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, BooleanBuilder, StringArray, StringBuilder};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;

/// A text argument.
pub(crate) enum Text {
    /// The same value for every row.
    Scalar(Option<String>),
    /// One value per row.
    Array(StringArray),
}

impl Text {
    /// Read argument `v` as text.
    pub(crate) fn of(name: &str, v: &ColumnarValue) -> Result<Text> {
        match v {
            ColumnarValue::Scalar(s) => match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    Ok(Text::Scalar(v.clone()))
                }
                ScalarValue::Null => Ok(Text::Scalar(None)),
                other if other.is_null() => Ok(Text::Scalar(None)),
                other => Ok(Text::Scalar(Some(other.to_string()))),
            },
            ColumnarValue::Array(a) => {
                let a: ArrayRef = if a.data_type() == &DataType::Utf8 {
                    a.clone()
                } else {
                    arrow::compute::cast(a, &DataType::Utf8)
                        .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?
                };
                let s = a
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataFusionError::Execution(format!("{name}: expected text")))?
                    .clone();
                Ok(Text::Array(s))
            }
        }
    }

    /// The value at row `i`.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        match self {
            Text::Scalar(v) => v.as_deref(),
            Text::Array(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }

    /// Whether this is a scalar.
    pub(crate) fn is_scalar(&self) -> bool {
        matches!(self, Text::Scalar(_))
    }
}

/// Read every argument as text.
pub(crate) fn texts(name: &str, args: &[ColumnarValue]) -> Result<Vec<Text>> {
    args.iter().map(|a| Text::of(name, a)).collect()
}

/// A boolean result: `f(row)` for every row (once when all arguments are scalars).
pub(crate) fn bools(
    rows: usize,
    args: &[Text],
    mut f: impl FnMut(usize) -> Option<bool>,
) -> ColumnarValue {
    if args.iter().all(Text::is_scalar) {
        return ColumnarValue::Scalar(ScalarValue::Boolean(f(0)));
    }
    let mut b = BooleanBuilder::with_capacity(rows);
    for i in 0..rows {
        b.append_option(f(i));
    }
    ColumnarValue::Array(Arc::new(b.finish()))
}

/// A boolean result: `f` of each value of `a` (NULL for NULL, and where `f` gives `None`) —
/// the per-row work of a one-argument function without the row-by-row builder: the outcomes
/// are a byte per row, packed into the values and validity bitmaps 64 rows at a time.
pub(crate) fn map_bools(a: &Text, f: impl Fn(&str) -> Option<bool>) -> ColumnarValue {
    let array = match a {
        Text::Scalar(v) => {
            return ColumnarValue::Scalar(ScalarValue::Boolean(v.as_deref().and_then(f)));
        }
        Text::Array(array) => array,
    };
    // 0 false, 1 true, 2 NULL.
    let outcomes: Vec<u8> = array.iter().map(|v| v.and_then(&f).map_or(2, u8::from)).collect();
    let len = outcomes.len();
    let values = BooleanBuffer::collect_bool(len, |i| outcomes[i] == 1);
    let nulls = outcomes
        .contains(&2)
        .then(|| NullBuffer::new(BooleanBuffer::collect_bool(len, |i| outcomes[i] != 2)));
    ColumnarValue::Array(Arc::new(BooleanArray::new(values, nulls)))
}

/// A text result: `f` of each value of `a` (NULL for NULL, and where `f` gives `None`).
pub(crate) fn map_strings<'a>(
    a: &'a Text,
    f: impl Fn(&'a str) -> Option<&'a str>,
) -> ColumnarValue {
    let array = match a {
        Text::Scalar(v) => {
            return ColumnarValue::Scalar(ScalarValue::Utf8(
                v.as_deref().and_then(f).map(str::to_owned),
            ));
        }
        Text::Array(array) => array,
    };
    let mut b = StringBuilder::with_capacity(array.len(), array.len() * 8);
    for v in array.iter() {
        b.append_option(v.and_then(&f));
    }
    ColumnarValue::Array(Arc::new(b.finish()))
}

/// A text result: `f(row)` for every row (once when all arguments are scalars).
pub(crate) fn strings<'a>(
    rows: usize,
    args: &[Text],
    mut f: impl FnMut(usize) -> Option<&'a str>,
) -> ColumnarValue {
    if args.iter().all(Text::is_scalar) {
        return ColumnarValue::Scalar(ScalarValue::Utf8(f(0).map(str::to_owned)));
    }
    let mut b = StringBuilder::with_capacity(rows, rows * 8);
    for i in 0..rows {
        b.append_option(f(i));
    }
    ColumnarValue::Array(Arc::new(b.finish()))
}
