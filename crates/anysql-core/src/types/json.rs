//! JSON (feature `json`): `serde_json::Value` and [`Json<T>`] for any serde type, as
//! [`Value::Json`]; PostgreSQL `json` and `jsonb`; SQLite stores the text.

use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::value::{mismatch, FromValue, ToValue, Value};
use crate::ArrayElement;

impl<T> ArrayElement for Json<T> {}
impl ArrayElement for serde_json::Value {}

/// A value bound and decoded as JSON through serde: `Json(my_struct)` as a parameter, and
/// `Json<MyStruct>` as a column's type (or a `#[derive(FromRow)]` field's).
///
/// ```
/// use anysql_core::{FromValue, Json, ToValue, Value};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Settings {
///     theme: String,
///     font_size: u8,
/// }
///
/// let settings = Settings { theme: "dark".into(), font_size: 14 };
/// let value = Json(&settings).to_value();
/// assert_eq!(value, Value::Json(r#"{"theme":"dark","font_size":14}"#.into()));
/// let Json(back) = Json::<Settings>::from_value(value)?;
/// assert_eq!(back, settings);
/// # Ok::<(), anysql_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Json<T>(pub T);

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// A value whose `Serialize` fails (a map with keys that are not strings, a custom impl that
/// refuses) becomes [`Value::Invalid`]: the statement it is bound to fails with that error, and
/// nothing is sent.
impl<T: Serialize> ToValue for Json<T> {
    fn to_value(&self) -> Value {
        match serde_json::to_string(&self.0) {
            Ok(text) => Value::Json(text),
            Err(e) => Value::Invalid(format!("the parameter cannot be serialized as JSON: {e}")),
        }
    }
}

fn json_text<'v>(value: &'v Value, wanted: &str) -> Result<&'v str, Error> {
    match value {
        Value::Json(text) | Value::Text(text) => Ok(text),
        _ => Err(mismatch(value, wanted)),
    }
}

impl<T: DeserializeOwned> FromValue for Json<T> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let text = json_text(value, "Json<_>")?;
        serde_json::from_str(text).map(Json).map_err(|e| {
            Error::decode(format!(
                "the JSON does not decode into {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

impl ToValue for serde_json::Value {
    fn to_value(&self) -> Value {
        Value::Json(self.to_string())
    }
}

impl FromValue for serde_json::Value {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let text = json_text(value, "serde_json::Value")?;
        serde_json::from_str(text).map_err(|e| Error::decode(format!("the text is not JSON: {e}")))
    }
}

/// A parsed JSON element as a [`Value`]: numbers as integers when they are, strings as text,
/// arrays as arrays, objects as their JSON text.
pub(super) fn to_value(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(v) => Value::Bool(v),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(v), _, _) => Value::Int(v),
            (None, Some(v), _) => Value::Numeric(v.to_string()),
            (_, _, Some(v)) => Value::Float(v),
            _ => Value::Numeric(n.to_string()),
        },
        serde_json::Value::String(v) => Value::Text(v),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(to_value).collect()),
        object @ serde_json::Value::Object(_) => Value::Json(object.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn json_round_trips_and_failures_are_errors() {
        let doc = serde_json::json!({"name": "Zoë 🦀", "tags": ["a", null], "n": 1.5});
        assert_eq!(serde_json::Value::from_value(doc.to_value()).unwrap(), doc);
        let Json(map) =
            Json::<HashMap<String, i32>>::from_value(Value::Text(r#"{"a":1}"#.into())).unwrap();
        assert_eq!(map["a"], 1);
        assert!(Json::<Vec<i32>>::from_value(Value::Json("{}".into())).is_err());
        assert!(serde_json::Value::from_value(Value::Text("not json".into())).is_err());
        let unserializable: HashMap<(i32, i32), i32> = [((1, 2), 3)].into();
        assert!(matches!(Json(unserializable).to_value(), Value::Invalid(_)));
    }
}
