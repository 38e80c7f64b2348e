//! [`Value`], the dynamically typed SQL value, and the [`ToValue`]/[`FromValue`] conversions.

use std::fmt;

use crate::error::Error;

/// One SQL value, as sent as a parameter or read from a column.
///
/// Integers are carried as `i64` and floats as `f64` whatever their column width; drivers check the
/// range against the column type when they bind, and [`FromValue`] checks it when it decodes.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer of any width.
    Int(i64),
    /// A floating point number of any width.
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The name of this value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(v) => write!(f, "Bool({v})"),
            Value::Int(v) => write!(f, "Int({v})"),
            Value::Float(v) => write!(f, "Float({v:?})"),
            Value::Text(v) => write!(f, "Text({v:?})"),
            Value::Blob(v) => write!(f, "Blob({} bytes)", v.len()),
        }
    }
}

/// Converts a Rust value into a SQL [`Value`], for parameters.
pub trait ToValue {
    /// The SQL value.
    fn to_value(&self) -> Value;
}

/// Converts a SQL [`Value`] into a Rust value, for columns.
///
/// Conversions are checked: an integer out of the target's range, a NULL into a non-`Option`, or a
/// value of another type is an [`ErrorKind::Decode`](crate::ErrorKind::Decode) error, never a panic or a
/// silent truncation.
pub trait FromValue: Sized {
    /// Decodes a borrowed value.
    fn from_value_ref(value: &Value) -> Result<Self, Error>;

    /// Decodes an owned value; override it to move instead of copying.
    fn from_value(value: Value) -> Result<Self, Error> {
        Self::from_value_ref(&value)
    }
}

fn mismatch(value: &Value, wanted: &str) -> Error {
    if value.is_null() {
        Error::decode(format!(
            "unexpected NULL; decode into Option<{wanted}> to accept NULL"
        ))
    } else {
        Error::decode(format!(
            "cannot decode a {} value into {wanted}",
            value.type_name()
        ))
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl FromValue for Value {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        Ok(value.clone())
    }
    fn from_value(value: Value) -> Result<Self, Error> {
        Ok(value)
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl FromValue for bool {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match *value {
            Value::Bool(v) => Ok(v),
            // SQLite has no boolean type and stores them as 0 and 1.
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Int(v) => Err(Error::decode(format!(
                "cannot decode integer {v} into bool"
            ))),
            _ => Err(mismatch(value, "bool")),
        }
    }
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }

        impl FromValue for $t {
            fn from_value_ref(value: &Value) -> Result<Self, Error> {
                match *value {
                    Value::Int(v) => <$t>::try_from(v).map_err(|_| {
                        Error::decode(format!(
                            "integer {v} is out of range for {}",
                            stringify!($t)
                        ))
                    }),
                    Value::Bool(v) => Ok(<$t>::from(v)),
                    _ => Err(mismatch(value, stringify!($t))),
                }
            }
        }
    )*};
}

integer!(i8, i16, i32, i64, u8, u16, u32);

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
}

impl ToValue for f32 {
    fn to_value(&self) -> Value {
        Value::Float(f64::from(*self))
    }
}

impl FromValue for f64 {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match *value {
            Value::Float(v) => Ok(v),
            // SQLite's REAL affinity may hand back whole numbers as integers.
            #[allow(clippy::cast_precision_loss)] // deliberate: an integer read as a float
            Value::Int(v) => Ok(v as f64),
            _ => Err(mismatch(value, "f64")),
        }
    }
}

impl FromValue for f32 {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        // Narrowing a float is what every SQL driver does for real/float4; precision, not range, is lost.
        #[allow(clippy::cast_possible_truncation)]
        f64::from_value_ref(value).map(|v| v as f32)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl FromValue for String {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Text(v) => Ok(v.clone()),
            _ => Err(mismatch(value, "String")),
        }
    }
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Text(v) => Ok(v),
            other => Err(mismatch(&other, "String")),
        }
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl FromValue for Vec<u8> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Blob(v) => Ok(v.clone()),
            _ => Err(mismatch(value, "Vec<u8>")),
        }
    }
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Blob(v) => Ok(v),
            other => Err(mismatch(&other, "Vec<u8>")),
        }
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value_ref(v).map(Some),
        }
    }
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(i32::from_value(Value::Int(7)).unwrap(), 7);
        let err = i8::from_value(Value::Int(300)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert_eq!(err.message(), "integer 300 is out of range for i8");
        assert_eq!(
            u32::from_value(Value::Int(-1)).unwrap_err().kind(),
            ErrorKind::Decode
        );
    }

    #[test]
    fn null_needs_an_option() {
        assert_eq!(Option::<i64>::from_value(Value::Null).unwrap(), None);
        let err = String::from_value(Value::Null).unwrap_err();
        assert!(err.message().contains("Option<String>"), "{err}");
    }

    #[test]
    fn type_mismatch_is_a_decode_error() {
        let err = i64::from_value(Value::Text("x".into())).unwrap_err();
        assert_eq!(err.message(), "cannot decode a text value into i64");
    }
}
