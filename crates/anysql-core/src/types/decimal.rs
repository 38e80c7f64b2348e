//! `rust_decimal::Decimal` (feature `decimal`): bound and decoded as [`Value::Numeric`], exact
//! decimal text; PostgreSQL `numeric`; SQLite stores the text.
//!
//! A `Decimal` holds 28 significant digits (a 96-bit mantissa): a `numeric` with more fails to
//! decode into it, with an error, rather than being rounded. Decode such values into `String`, or
//! into `bigdecimal::BigDecimal` (feature `bigdecimal`), which holds any number of digits.

use rust_decimal::Decimal;

use crate::error::Error;
use crate::value::{mismatch, FromValue, ToValue, Value};
use crate::ArrayElement;

impl ArrayElement for Decimal {}

impl ToValue for Decimal {
    fn to_value(&self) -> Value {
        Value::Numeric(self.to_string())
    }
}

impl FromValue for Decimal {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Numeric(text) | Value::Text(text) => {
                // `from_str_exact` fails instead of rounding digits away.
                Decimal::from_str_exact(text.trim()).map_err(|e| {
                    Error::decode(format!(
                        "numeric {text} does not fit a Decimal exactly ({e}); decode it into String, or \
                         into BigDecimal (feature `bigdecimal`) for any number of digits"
                    ))
                })
            }
            Value::Int(v) => Ok(Decimal::from(*v)),
            Value::Float(_) => Err(Error::decode(
                "a float is not an exact decimal: store decimals as numeric or text, or decode \
                 the float into f64",
            )),
            _ => Err(mismatch(value, "Decimal")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimals_are_exact_or_an_error() {
        let d = Decimal::from_str("-12345678901234567890.12345678").unwrap();
        assert_eq!(Decimal::from_value(d.to_value()).unwrap(), d);
        assert_eq!(
            d.to_value(),
            Value::Numeric("-12345678901234567890.12345678".into())
        );
        assert_eq!(
            Decimal::from_value(Value::Int(7)).unwrap(),
            Decimal::from(7)
        );
        let too_long = Value::Numeric("12345678901234567890.0123456789".into());
        let err = Decimal::from_value(too_long).unwrap_err();
        assert!(err.to_string().contains("decode it into String"), "{err}");
        assert!(Decimal::from_value(Value::Float(0.1)).is_err());
        assert!(Decimal::from_value(Value::Numeric("NaN".into())).is_err());
    }
}
