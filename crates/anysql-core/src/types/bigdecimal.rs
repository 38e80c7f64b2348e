//! `bigdecimal::BigDecimal` (feature `bigdecimal`): bound and decoded as [`Value::Numeric`],
//! exact decimal text; PostgreSQL `numeric`; SQLite stores the text.
//!
//! Where `rust_decimal::Decimal` (feature `decimal`) is a fixed 128-bit value of 28 significant
//! digits, fast and allocation-free, a `BigDecimal` holds any number of digits (a heap-allocated
//! big integer and a scale): every value of a PostgreSQL `numeric`, whatever its precision, comes
//! back digit for digit, its scale kept (`1.50` stays `1.50`). Only `NaN` and `±Infinity`, which a
//! `BigDecimal` has no value for, fail to decode, with an error.

use bigdecimal::BigDecimal;

use crate::error::Error;
use crate::value::{mismatch, FromValue, ToValue, Value};
use crate::ArrayElement;

impl ArrayElement for BigDecimal {}

/// The longest plain decimal text a value is spelled in; past it, scientific notation (`1E+200001`),
/// which PostgreSQL also reads (and refuses as out of range: its `numeric` has at most 131,072
/// digits before the point and 16,383 after).
const PLAIN_LIMIT: u64 = 200_000;

impl ToValue for BigDecimal {
    fn to_value(&self) -> Value {
        // `Display` switches to scientific notation for many leading or trailing zeros
        // (`1E-7`); the plain form is what `numeric` prints and what SQLite should store.
        let digits = self.digits();
        let (_, scale) = self.as_bigint_and_exponent();
        let plain_len = if scale <= 0 {
            digits.saturating_add(scale.unsigned_abs())
        } else {
            digits.max(scale.unsigned_abs()).saturating_add(2)
        };
        if plain_len <= PLAIN_LIMIT {
            Value::Numeric(self.to_plain_string())
        } else {
            Value::Numeric(self.to_scientific_notation())
        }
    }
}

impl FromValue for BigDecimal {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Numeric(text) | Value::Text(text) => {
                let text = text.trim();
                if matches!(text, "NaN" | "Infinity" | "-Infinity") {
                    return Err(Error::decode(format!(
                        "numeric {text} is not a number a BigDecimal holds; filter it out in the \
                         SQL, or decode it into String"
                    )));
                }
                text.parse::<BigDecimal>()
                    .map_err(|e| Error::decode(format!("`{text}` is not a decimal number ({e})")))
            }
            Value::Int(v) => Ok(BigDecimal::from(*v)),
            Value::Float(_) => Err(Error::decode(
                "a float is not an exact decimal: store decimals as numeric or text, or decode \
                 the float into f64",
            )),
            _ => Err(mismatch(value, "BigDecimal")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(text: &str) -> BigDecimal {
        text.parse().unwrap()
    }

    #[test]
    fn big_decimals_keep_every_digit_and_their_scale() {
        for text in [
            "12345678901234567890.0123456789",
            "-1234567890123456789012345678.0123456789",
            "1.50",
            "0",
            "-0.000000001",
            "100000000000000000000000000000000000000000",
        ] {
            let value = big(text).to_value();
            assert_eq!(value, Value::Numeric(text.into()));
            assert_eq!(
                BigDecimal::from_value(value).unwrap().to_plain_string(),
                text
            );
        }
        // Never scientific notation for what `numeric` prints plainly.
        assert_eq!(big("1E-7").to_value(), Value::Numeric("0.0000001".into()));
        assert_eq!(
            big("1E+20").to_value(),
            Value::Numeric("100000000000000000000".into())
        );
        // A value no `numeric` holds is not spelled out in full.
        assert_eq!(
            big("1E+300000").to_value(),
            Value::Numeric("1e300000".into())
        );
        assert_eq!(
            BigDecimal::from_value(Value::Int(-7)).unwrap(),
            BigDecimal::from(-7)
        );
        assert_eq!(
            BigDecimal::from_value(Value::Text(" 2.5 ".into())).unwrap(),
            big("2.5")
        );
    }

    #[test]
    fn what_is_no_big_decimal_is_an_error() {
        for text in ["NaN", "Infinity", "-Infinity"] {
            let err = BigDecimal::from_value(Value::Numeric(text.into())).unwrap_err();
            assert!(err.to_string().contains("decode it into String"), "{err}");
        }
        assert!(BigDecimal::from_value(Value::Text("twelve".into())).is_err());
        assert!(BigDecimal::from_value(Value::Float(0.1)).is_err());
        assert!(BigDecimal::from_value(Value::Bool(true)).is_err());
    }
}
