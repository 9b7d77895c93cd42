//! Parameter values: the typed scalars and lists that pipelines set, canonicalised for hashing.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A param or matrix value as a pipeline sets it. Serialised untagged, as the plain JSON value (`null`, `true`, `3`, `0.5`, `"a"`, `[...]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// `null` (also `~`, or no value).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float (`.inf` and `.nan` included).
    Float(f64),
    /// A string (a quoted scalar is always one).
    Str(String),
    /// A list of values.
    List(Vec<Value>),
}

impl Value {
    /// YAML 1.2 core-schema typing of an unquoted scalar.
    pub fn from_plain_scalar(s: &str) -> Value {
        match s {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            ".inf" | ".Inf" | "+.inf" => return Value::Float(f64::INFINITY),
            "-.inf" | "-.Inf" => return Value::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
            _ => {}
        }
        if let Ok(i) = s.parse::<i64>() {
            return Value::Int(i);
        }
        let numeric = s.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) && s.chars().any(|c| c.is_ascii_digit());
        if numeric {
            if let Ok(f) = s.parse::<f64>() {
                return Value::Float(f);
            }
        }
        Value::Str(s.to_string())
    }

    /// The type's name, for messages: `null`, `bool`, `int`, `float`, `string` or `list`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
        }
    }

    /// The text of a `Str`; `None` for any other value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A number as a float (an `Int` widened); `None` for anything else.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The integer of an `Int`; `None` for anything else, a `Float` included.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean of a `Bool`; `None` for anything else.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items of a `List`; `None` for anything else.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// The compact form used in node names (`mu2=0.5`) and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => {
                if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Value::Str(s) => write!(f, "{s}"),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// The canonical values of one matrix axis (or list param): when every value is a number and any is
/// a float, every int becomes a float, so `[0, 0.5, 2]` is the float axis `0.0, 0.5, 2.0` and a
/// grid's coordinates, node ids and result columns have one type per axis.
///
/// Errors: two values that print alike (`[1, 1]`, `[1, 1.0]`, `[1, "1"]`, `[.nan, .nan]`), since
/// node ids, which hold the printed form, must be unique; the message names the value.
pub fn canonical_axis(values: &[Value]) -> Result<Vec<Value>, String> {
    let numeric = values.iter().all(|v| matches!(v, Value::Int(_) | Value::Float(_)));
    let any_float = values.iter().any(|v| matches!(v, Value::Float(_)));
    let out: Vec<Value> =
        if numeric && any_float { values.iter().map(|v| Value::Float(v.as_f64().unwrap_or(f64::NAN))).collect() } else { values.to_vec() };
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, v) in out.iter().enumerate() {
        if let Some(j) = seen.insert(v.to_string(), i) {
            let (a, b) = (&values[j], &values[i]);
            return Err(if a == b {
                format!("repeats the value `{v}`")
            } else {
                format!(
                    "has two values that name the same grid cell: `{}` ({}) and `{}` ({}) both print as `{v}`",
                    a,
                    a.type_name(),
                    b,
                    b.type_name()
                )
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_with_any_float_is_a_float_axis() {
        let v = canonical_axis(&[Value::Int(0), Value::Float(0.5), Value::Int(2)]).unwrap();
        assert_eq!(v, vec![Value::Float(0.0), Value::Float(0.5), Value::Float(2.0)]);
        assert_eq!(canonical_axis(&[Value::Int(1), Value::Int(2)]).unwrap(), vec![Value::Int(1), Value::Int(2)]);
        // Mixed kinds stay as written (a string axis with a number in it).
        assert_eq!(canonical_axis(&[Value::Int(1), Value::Str("a".into())]).unwrap(), vec![Value::Int(1), Value::Str("a".into())]);
    }

    #[test]
    fn values_that_print_alike_are_refused() {
        assert_eq!(canonical_axis(&[Value::Int(1), Value::Int(1)]).unwrap_err(), "repeats the value `1`");
        let e = canonical_axis(&[Value::Int(1), Value::Float(1.0)]).unwrap_err();
        assert!(e.contains("`1` (int) and `1.0` (float) both print as `1.0`"), "{e}");
        let e = canonical_axis(&[Value::Int(1), Value::Str("1".into())]).unwrap_err();
        assert!(e.contains("both print as `1`"), "{e}");
        assert!(canonical_axis(&[Value::Float(f64::NAN), Value::Float(f64::NAN)]).is_err());
    }

    #[test]
    fn plain_scalars_are_typed() {
        assert_eq!(Value::from_plain_scalar("3"), Value::Int(3));
        assert_eq!(Value::from_plain_scalar("1e-4"), Value::Float(1e-4));
        assert_eq!(Value::from_plain_scalar("0.5"), Value::Float(0.5));
        assert_eq!(Value::from_plain_scalar("mnist"), Value::Str("mnist".into()));
        assert_eq!(Value::from_plain_scalar("e"), Value::Str("e".into()));
        assert_eq!(Value::from_plain_scalar("true"), Value::Bool(true));
        assert_eq!(Value::from_plain_scalar("~"), Value::Null);
    }

    #[test]
    fn display_keeps_float_marker() {
        assert_eq!(Value::Float(1.0).to_string(), "1.0");
        assert_eq!(Value::Float(0.1).to_string(), "0.1");
        assert_eq!(Value::Int(1).to_string(), "1");
    }
}
