//! Unit tests of binding and decoding.

use std::error::Error as StdError;

use anysql_core::{Error, ErrorKind, Value};
use bytes::BytesMut;
use postgres_types::{Format, IsNull, ToSql, Type};

use postgres_protocol::types as pg;

use super::decode::{column_error, decode_value, decoder, numeric, Decoder, Problem};
use super::*;

fn encode(value: Value, ty: &Type) -> Result<(Format, Vec<u8>), Box<dyn StdError + Sync + Send>> {
    let param = PgParam {
        value: &value,
        position: 1,
    };
    let mut out = BytesMut::new();
    let format = param.encode_format(ty);
    match param.to_sql_checked(ty, &mut out)? {
        IsNull::Yes => Ok((format, b"NULL".to_vec())),
        IsNull::No => Ok((format, out.to_vec())),
    }
}

fn is_text(format: Format) -> bool {
    matches!(format, Format::Text)
}

#[test]
fn integers_are_range_checked_for_small_types() {
    assert_eq!(encode(Value::Int(7), &Type::INT2).unwrap().1, [0, 7]);
    assert_eq!(encode(Value::Int(-1), &Type::INT4).unwrap().1, [255; 4]);
    let err = check_params(&[Value::Int(70_000)], &[Type::INT2]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert!(
        err.message().contains("$1") && err.message().contains("int2"),
        "{err}"
    );
    assert!(check_params(&[Value::Int(i64::from(i32::MAX) + 1)], &[Type::INT4]).is_err());
    assert!(check_params(&[Value::Int(i64::MAX)], &[Type::INT8]).is_ok());
}

#[test]
fn conversions_and_mismatches() {
    assert_eq!(
        encode(Value::Int(2), &Type::FLOAT8).unwrap().1,
        2.0f64.to_be_bytes()
    );
    let (format, text) = encode(Value::Int(12), &Type::NUMERIC).unwrap();
    assert!(is_text(format) && text == b"12");
    let (format, text) = encode(Value::Text("2024-01-02".into()), &Type::DATE).unwrap();
    assert!(is_text(format) && text == b"2024-01-02");
    assert!(!is_text(
        encode(Value::Text("x".into()), &Type::VARCHAR).unwrap().0
    ));
    let err = check_params(
        &[Value::Null, Value::Text("x".into())],
        &[Type::INT4, Type::INT4],
    )
    .unwrap_err();
    assert!(
        err.message()
            .starts_with("parameter $2: cannot bind a text value"),
        "{err}"
    );
    assert!(check_params(&[Value::Float(1.5)], &[Type::INT8]).is_err());
    assert!(check_params(&[Value::Bool(true)], &[Type::TEXT]).is_err());
    assert!(check_params(&[Value::Blob(vec![1])], &[Type::TEXT]).is_err());
    assert_eq!(
        check_params(&[], &[Type::INT4]).unwrap_err().message(),
        Error::parameter_count(1, 0).message()
    );
}

#[test]
fn unspecified_parameters_are_text() {
    let unspecified = unspecified_type();
    let text = |v: Value| {
        let (format, bytes) = encode(v, &unspecified).unwrap();
        assert!(is_text(format));
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(text(Value::Int(-5)), "-5");
    assert_eq!(text(Value::Float(1.0)), "1.0");
    assert_eq!(text(Value::Float(f64::NEG_INFINITY)), "-Infinity");
    assert_eq!(text(Value::Float(0.1)), "0.1");
    assert_eq!(text(Value::Bool(false)), "f");
    assert_eq!(text(Value::Blob(vec![0, 0xab])), "\\x00ab");
    assert_eq!(text(Value::Text("é".into())), "é");
    assert_eq!(encode(Value::Null, &unspecified).unwrap().1, b"NULL");
}

#[test]
fn placeholders_typed_text_by_default_take_the_value_type() {
    let values = [Value::Int(5), Value::Text("x".into()), Value::Bool(true)];
    let (signature, types) = retype(&values, &[Type::TEXT, Type::TEXT, Type::INT4]).unwrap();
    assert_eq!(signature, "int8,,,");
    assert_eq!(types[0], Type::INT8);
    assert_eq!(types[1].oid(), 0);
    assert_eq!(
        types[2].oid(),
        0,
        "int4 was inferred from context: the bool stays refused"
    );
    assert!(retype(&[Value::Text("x".into())], &[Type::INT4]).is_none());
    assert!(retype(&[Value::Int(1)], &[Type::INT4]).is_none());
    assert_eq!(
        unnamed_param_type(&Value::Float(1.0), &unspecified_type()),
        Type::FLOAT8
    );
    assert_eq!(
        unnamed_param_type(&Value::Null, &unspecified_type()).oid(),
        0
    );
}

fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [ndigits, weight, sign as i16, dscale as i16]
        .into_iter()
        .chain(digits.iter().copied())
    {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out
}

#[test]
fn numerics_decode_digit_for_digit() {
    let value = |n, w, s, d, digits: &[i16]| match numeric(&numeric_bytes(n, w, s, d, digits)) {
        Ok(Value::Numeric(text)) => text,
        Ok(other) => panic!("{other:?}"),
        Err(_) => panic!("malformed"),
    };
    assert_eq!(value(0, 0, 0, 0, &[]), "0");
    assert_eq!(value(0, 0, 0, 3, &[]), "0.000");
    assert_eq!(value(1, 0, 0, 0, &[4000]), "4000");
    assert_eq!(value(2, 1, 0x4000, 0, &[12, 3456]), "-123456");
    assert_eq!(value(1, 2, 0, 0, &[7]), "700000000", "trailing zero groups");
    assert_eq!(value(2, 0, 0, 1, &[1, 5000]), "1.5");
    assert_eq!(value(2, 0, 0, 2, &[1, 5000]), "1.50", "the scale is kept");
    assert_eq!(value(1, -1, 0x4000, 2, &[2500]), "-0.25");
    assert_eq!(value(1, -2, 0, 8, &[12]), "0.00000012");
    assert_eq!(value(1, 0, 0, 3, &[2]), "2.000");
    // numeric(40,10) 12345678901234567890.0123456789
    assert_eq!(
        value(
            8,
            4,
            0,
            10,
            &[1234, 5678, 9012, 3456, 7890, 123, 4567, 8900]
        ),
        "12345678901234567890.0123456789"
    );
    // 2^63, past i64.
    assert_eq!(
        value(5, 4, 0, 0, &[922, 3372, 368, 5477, 5808]),
        "9223372036854775808"
    );
    assert_eq!(value(0, 0, 0xC000, 0, &[]), "NaN");
    assert_eq!(value(0, 0, 0xD000, 0, &[]), "Infinity");
    assert_eq!(value(0, 0, 0xF000, 0, &[]), "-Infinity");
    assert!(numeric(&[0, 1]).is_err());
    assert!(numeric(&numeric_bytes(1, 0, 0, 0, &[10_000])).is_err());
    assert!(numeric(&numeric_bytes(2, 0, 0, 0, &[1])).is_err(), "short");
    assert!(numeric(&numeric_bytes(0, 0, 0x1234, 0, &[])).is_err());
}

#[test]
fn numerics_bind_as_exact_text() {
    let big = Value::Numeric("12345678901234567890.0123456789".into());
    let (format, text) = encode(big.clone(), &Type::NUMERIC).unwrap();
    assert!(is_text(format) && text == b"12345678901234567890.0123456789");
    assert_eq!(encode(big.clone(), &Type::TEXT).unwrap().1, text);
    assert_eq!(encode(big.clone(), &Type::VARCHAR).unwrap().1, text);
    assert_eq!(encode(big.clone(), &unspecified_type()).unwrap().1, text);
    for ty in [
        Type::INT4,
        Type::INT8,
        Type::FLOAT8,
        Type::BOOL,
        Type::BYTEA,
    ] {
        let err = check_params(std::slice::from_ref(&big), &[ty]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parameter);
        assert!(err.message().contains("$1::numeric"), "{err}");
    }
    assert!(check_params(&[Value::Numeric("1".into())], &[Type::NUMERIC]).is_ok());
    assert_eq!(
        unnamed_param_type(&big, &unspecified_type()).oid(),
        0,
        "left to the server, as text"
    );
}

#[test]
fn decoding() {
    assert_eq!(
        decode_value(Decoder::Int2, &[255, 254]).ok(),
        Some(Value::Int(-2))
    );
    assert_eq!(
        decode_value(Decoder::Oid, &[255; 4]).ok(),
        Some(Value::Int(4_294_967_295))
    );
    assert_eq!(
        decode_value(Decoder::Jsonb, b"\x01{}").ok(),
        Some(Value::Json("{}".into()))
    );
    assert_eq!(
        decode_value(Decoder::Json, "{\"é\": 1}".as_bytes()).ok(),
        Some(Value::Json("{\"é\": 1}".into()))
    );
    assert!(decode_value(Decoder::Jsonb, b"\x02{}").is_err());
    assert!(decode_value(Decoder::Int4, &[1]).is_err());
    assert!(decode_value(Decoder::Text, &[0xff]).is_err());
    assert_eq!(decoder(&Type::NUMERIC), Decoder::Numeric);
    assert_eq!(decoder(&Type::TIMESTAMPTZ), Decoder::TimestampTz);
    assert_eq!(decoder(&Type::JSON), Decoder::Json);
    assert_eq!(decoder(&Type::CIDR), Decoder::Inet);
    assert_eq!(decoder(&Type::NAME), Decoder::Text);
    assert_eq!(decoder(&Type::INT4_ARRAY), Decoder::Array(&Decoder::Int4));
    assert_eq!(decoder(&Type::JSONB_ARRAY), Decoder::Array(&Decoder::Jsonb));
    assert_eq!(
        decoder(&Type::VARCHAR_ARRAY),
        Decoder::Array(&Decoder::Text)
    );
    for unsupported in [
        Type::INTERVAL,
        Type::TIMETZ,
        Type::MONEY,
        Type::INT4_RANGE,
        Type::INTERVAL_ARRAY,
        Type::RECORD,
    ] {
        assert_eq!(decoder(&unsupported), Decoder::Unsupported, "{unsupported}");
    }
}

fn bytes(write: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut out = BytesMut::new();
    write(&mut out);
    out.to_vec()
}

fn problem(decoder: Decoder, raw: &[u8]) -> Problem {
    decode_value(decoder, raw).expect_err("a problem")
}

fn message(decoder: Decoder, raw: &[u8], ty: &str) -> String {
    column_error(0, "c", ty, problem(decoder, raw))
        .message()
        .to_owned()
}

#[test]
fn dates_and_times_decode_from_their_postgres_counts() {
    let date = |days: i32| decode_value(Decoder::Date, &bytes(|b| pg::date_to_sql(days, b)));
    assert_eq!(date(0).ok(), Some(Value::Date(10_957)), "2000-01-01");
    assert_eq!(date(-10_957).ok(), Some(Value::Date(0)));
    assert_eq!(
        date(-2_451_545).ok(),
        Some(Value::Date(-2_440_588)),
        "4714-11-24 BC"
    );
    assert_eq!(date(2_145_031_948).ok(), Some(Value::Date(2_145_042_905)));
    for (raw, which) in [(i32::MAX, "infinity"), (i32::MIN, "-infinity")] {
        let text = message(Decoder::Date, &bytes(|b| pg::date_to_sql(raw, b)), "date");
        assert!(
            text.starts_with(&format!("column 0 (\"c\") of type date is {which},"))
                && text.contains("::text"),
            "{text}"
        );
    }
    assert!(date(0).is_ok());
    assert!(matches!(
        problem(Decoder::Date, &[0, 0, 0]),
        Problem::Malformed(_)
    ));

    let time = |micros: i64| decode_value(Decoder::Time, &bytes(|b| pg::time_to_sql(micros, b)));
    assert_eq!(time(1).ok(), Some(Value::Time(1_000)));
    assert_eq!(
        time(86_400_000_000).ok(),
        Some(Value::Time(86_400_000_000_000)),
        "24:00:00"
    );
    assert!(time(-1).is_err());
    assert!(time(86_400_000_001).is_err());

    let timestamp =
        |decoder, micros: i64| decode_value(decoder, &bytes(|b| pg::timestamp_to_sql(micros, b)));
    let at = |seconds, nanos| anysql_core::Timestamp { seconds, nanos };
    assert_eq!(
        timestamp(Decoder::Timestamp, 1).ok(),
        Some(Value::Timestamp(at(946_684_800, 1_000)))
    );
    assert_eq!(
        timestamp(Decoder::TimestampTz, -1).ok(),
        Some(Value::TimestampTz(at(946_684_799, 999_999_000), 0))
    );
    for decoder in [Decoder::Timestamp, Decoder::TimestampTz] {
        for (raw, which) in [(i64::MAX, "infinity"), (i64::MIN, "-infinity")] {
            let text = message(
                decoder,
                &bytes(|b| pg::timestamp_to_sql(raw, b)),
                "timestamp",
            );
            assert!(text.contains(&format!("is {which}, ")), "{text}");
            assert!(text.contains("`expression::text`"), "{text}");
        }
    }
    assert!(timestamp(Decoder::Timestamp, 0).is_ok());
    assert!(decode_value(Decoder::Timestamp, &[0; 7]).is_err());
}

#[test]
fn uuids_and_addresses_decode() {
    let uuid: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
    assert_eq!(
        decode_value(Decoder::Uuid, &uuid).ok(),
        Some(Value::Uuid(uuid))
    );
    assert!(decode_value(Decoder::Uuid, &uuid[..15]).is_err());
    let inet = |addr: &str, bits| {
        let addr: std::net::IpAddr = addr.parse().unwrap();
        decode_value(Decoder::Inet, &bytes(|b| pg::inet_to_sql(addr, bits, b)))
    };
    assert_eq!(
        inet("10.0.0.1", 32).ok(),
        Some(Value::Inet("10.0.0.1".parse().unwrap()))
    );
    assert_eq!(
        inet("2001:db8::1", 128).ok(),
        Some(Value::Inet("2001:db8::1".parse().unwrap()))
    );
    let network = bytes(|b| pg::inet_to_sql("10.0.0.0".parse().unwrap(), 8, b));
    let text = message(Decoder::Inet, &network, "cidr");
    assert!(text.contains("(/8)") && text.contains("::text"), "{text}");
    assert!(inet("10.0.0.1", 32).is_ok());
    assert!(decode_value(Decoder::Inet, &[2, 32, 0, 4, 1]).is_err());
}

/// A binary array as PostgreSQL sends it: 1 dimension (none when empty), lower bound 1.
fn pg_array(element_oid: u32, items: &[Option<Vec<u8>>]) -> Vec<u8> {
    bytes(|b| {
        let dims = (!items.is_empty()).then_some(pg::ArrayDimension {
            len: items.len() as i32,
            lower_bound: 1,
        });
        pg::array_to_sql(
            dims,
            element_oid,
            items,
            |item, b| match item {
                Some(raw) => {
                    b.extend_from_slice(raw);
                    Ok(postgres_protocol::IsNull::No)
                }
                None => Ok(postgres_protocol::IsNull::Yes),
            },
            b,
        )
        .unwrap();
    })
}

#[test]
fn one_dimensional_arrays_decode_with_null_elements() {
    let raw = pg_array(
        23,
        &[
            Some(7i32.to_be_bytes().to_vec()),
            None,
            Some((-1i32).to_be_bytes().to_vec()),
        ],
    );
    assert_eq!(
        decode_value(Decoder::Array(&Decoder::Int4), &raw).ok(),
        Some(Value::Array(vec![
            Value::Int(7),
            Value::Null,
            Value::Int(-1)
        ]))
    );
    assert_eq!(
        decode_value(Decoder::Array(&Decoder::Text), &pg_array(25, &[])).ok(),
        Some(Value::Array(vec![]))
    );
    let raw = pg_array(3802, &[Some(b"\x01[1]".to_vec()), None]);
    assert_eq!(
        decode_value(Decoder::Array(&Decoder::Jsonb), &raw).ok(),
        Some(Value::Array(vec![Value::Json("[1]".into()), Value::Null]))
    );
    // An element that cannot be decoded names its index.
    let raw = pg_array(
        1082,
        &[
            Some(0i32.to_be_bytes().to_vec()),
            Some(i32::MAX.to_be_bytes().to_vec()),
        ],
    );
    let text = message(Decoder::Array(&Decoder::Date), &raw, "date[]");
    assert!(
        text.starts_with("column 0 (\"c\") of type date[], array element 1 is infinity"),
        "{text}"
    );
    // Two dimensions: {{1,2},{3,4}}.
    let raw = bytes(|b| {
        for word in [2i32, 0, 23, 2, 1, 2, 1] {
            b.extend_from_slice(&word.to_be_bytes());
        }
        for v in 1..=4i32 {
            b.extend_from_slice(&4i32.to_be_bytes());
            b.extend_from_slice(&v.to_be_bytes());
        }
    });
    let text = message(Decoder::Array(&Decoder::Int4), &raw, "int4[]");
    assert!(
        text.contains("2-dimensional") && text.contains("unnest"),
        "{text}"
    );
    // Truncated, or claiming more elements than it has: malformed, never a panic.
    let mut raw = pg_array(23, &[Some(1i32.to_be_bytes().to_vec())]);
    raw.truncate(raw.len() - 3);
    assert!(matches!(
        problem(Decoder::Array(&Decoder::Int4), &raw),
        Problem::Malformed(_)
    ));
    let mut lying = pg_array(23, &[Some(1i32.to_be_bytes().to_vec())]);
    lying[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        problem(Decoder::Array(&Decoder::Int4), &lying),
        Problem::Malformed(_)
    ));
    assert!(matches!(
        problem(Decoder::Array(&Decoder::Int4), &[0, 0]),
        Problem::Malformed(_)
    ));
}
