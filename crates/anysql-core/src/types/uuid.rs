//! `uuid::Uuid` (feature `uuid`): [`Value::Uuid`]; PostgreSQL `uuid`; SQLite stores the 16 bytes
//! as a blob, and reads text UUIDs too.

use uuid::Uuid;

use super::uuid_bytes;
use crate::error::Error;
use crate::value::{FromValue, ToValue, Value};
use crate::ArrayElement;

impl ArrayElement for Uuid {}

impl ToValue for Uuid {
    fn to_value(&self) -> Value {
        Value::Uuid(*self.as_bytes())
    }
}

impl FromValue for Uuid {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        uuid_bytes(value, "Uuid").map(Uuid::from_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip() {
        let id = Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
        assert_eq!(Uuid::from_value(id.to_value()).unwrap(), id);
        assert_eq!(Uuid::from_value(Value::Text(id.to_string())).unwrap(), id);
        assert_eq!(
            Uuid::from_value(Value::Blob(id.as_bytes().to_vec())).unwrap(),
            id
        );
        assert_eq!(format!("{:?}", id.to_value()), format!("Uuid({id})"));
    }
}
