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
    for rendered in [
        Type::INTERVAL,
        Type::TIMETZ,
        Type::INT4_RANGE,
        Type::TSTZ_RANGE,
        Type::INT4MULTI_RANGE,
        Type::INTERVAL_ARRAY,
        Type::INT4_RANGE_ARRAY,
        Type::RECORD,
        Type::VARBIT,
        Type::MACADDR8,
        Type::CHAR,
        Type::POLYGON,
    ] {
        assert_eq!(decoder(&rendered), Decoder::Render, "{rendered}");
    }
    for unsupported in [Type::MONEY, Type::MONEY_ARRAY, Type::TS_VECTOR, Type::XML] {
        assert_eq!(decoder(&unsupported), Decoder::Unsupported, "{unsupported}");
    }
    let money = column_error(0, "m", "money", Problem::Unsupported);
    assert!(
        money.message().contains("lc_monetary") && money.message().contains("::numeric"),
        "{money}"
    );
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
    // A network is its text: an IpAddr has no netmask.
    assert_eq!(
        inet("10.0.0.0", 8).ok(),
        Some(Value::Text("10.0.0.0/8".into()))
    );
    assert_eq!(
        inet("2001:db8::", 32).ok(),
        Some(Value::Text("2001:db8::/32".into()))
    );
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

fn at(seconds: i64, nanos: u32) -> anysql_core::Timestamp {
    anysql_core::Timestamp { seconds, nanos }
}

fn binary(value: Value, ty: &Type) -> Vec<u8> {
    let (format, bytes) = encode(value, ty).unwrap();
    assert!(!is_text(format), "{ty}: text");
    bytes
}

fn text_form(value: Value, ty: &Type) -> String {
    let (format, bytes) = encode(value, ty).unwrap();
    assert!(is_text(format), "{ty}: binary");
    String::from_utf8(bytes).unwrap()
}

fn refusal(value: Value, ty: Type) -> String {
    let err = check_params(&[value], &[ty]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter);
    err.message().to_owned()
}

/// Seconds from 1970 to 2000.
const Y2K: i64 = 946_684_800;

#[test]
fn dates_and_times_bind_as_postgres_counts_truncated_to_the_microsecond() {
    assert_eq!(
        binary(Value::Date(0), &Type::DATE),
        (-10_957i32).to_be_bytes()
    );
    assert_eq!(binary(Value::Date(10_957), &Type::DATE), [0; 4]);
    assert_eq!(
        binary(Value::Time(3_600_000_001_999), &Type::TIME),
        3_600_000_001i64.to_be_bytes()
    );
    assert_eq!(
        binary(Value::Timestamp(at(Y2K + 1, 1_999)), &Type::TIMESTAMP),
        1_000_001i64.to_be_bytes()
    );
    // Before 2000 (and before 1970) as after: toward the past.
    assert_eq!(
        binary(Value::Timestamp(at(Y2K - 1, 999_999_999)), &Type::TIMESTAMP),
        (-1i64).to_be_bytes()
    );
    // An instant is sent as such: its offset only says how it was shown.
    for offset in [0, 3600, -12_600] {
        assert_eq!(
            binary(Value::TimestampTz(at(Y2K, 0), offset), &Type::TIMESTAMPTZ),
            [0; 8]
        );
    }
}

#[test]
fn local_times_and_instants_are_not_mixed() {
    let text = refusal(Value::Timestamp(at(0, 0)), Type::TIMESTAMPTZ);
    assert!(
        text.starts_with("parameter $1: cannot bind a timestamp without time zone")
            && text.contains("time zone")
            && text.contains("`$1::timestamp`"),
        "{text}"
    );
    let text = refusal(Value::TimestampTz(at(0, 0), 0), Type::TIMESTAMP);
    assert!(
        text.starts_with("parameter $1: cannot bind an instant")
            && text.contains("`$1::timestamptz`"),
        "{text}"
    );
    let text = refusal(
        Value::Array(vec![Value::Timestamp(at(0, 0))]),
        Type::TIMESTAMPTZ_ARRAY,
    );
    assert!(
        text.starts_with("parameter $1, array element 0: ") && text.contains("`$1::timestamp[]`"),
        "{text}"
    );
    assert!(refusal(Value::Date(0), Type::TIMESTAMP).contains("`$1::date`"));
    assert!(refusal(Value::Time(0), Type::TEXT).contains("`$1::time`"));
}

#[test]
fn values_out_of_postgres_range_are_refused() {
    for days in [i32::MAX, i32::MIN, 2_145_042_906, -2_440_589] {
        let text = refusal(Value::Date(days), Type::DATE);
        assert!(
            text.contains("is out of PostgreSQL's range (4714-11-24 BC to 5874897-12-31)"),
            "{text}"
        );
    }
    assert!(refusal(Value::Date(2_145_042_906), Type::DATE).contains("date 5874898-01-01 "));
    assert!(check_params(&[Value::Date(2_145_042_905)], &[Type::DATE]).is_ok());
    assert!(check_params(&[Value::Date(-2_440_588)], &[Type::DATE]).is_ok());
    // 294277-01-01 and the second before 4714-11-24 BC.
    for t in [at(9_224_318_016_000, 0), at(-210_866_803_201, 999_999_999)] {
        for value in [Value::Timestamp(t), Value::TimestampTz(t, 0)] {
            let ty = if matches!(value, Value::Timestamp(_)) {
                Type::TIMESTAMP
            } else {
                Type::TIMESTAMPTZ
            };
            let text = refusal(value, ty);
            assert!(text.contains("out of PostgreSQL's range"), "{text}");
        }
    }
    let ok = [
        Value::Timestamp(at(9_224_318_015_999, 999_999_999)),
        Value::Timestamp(at(-210_866_803_200, 0)),
    ];
    assert!(check_params(&ok, &[Type::TIMESTAMP, Type::TIMESTAMP]).is_ok());
    assert!(
        refusal(Value::Timestamp(at(0, 1_000_000_000)), Type::TIMESTAMP).contains("nanoseconds")
    );
    assert!(refusal(Value::Time(86_400_000_000_001), Type::TIME).contains("24:00:00"));
    assert!(check_params(&[Value::Time(86_400_000_000_000)], &[Type::TIME]).is_ok());
    // The range holds whatever the encoding.
    assert!(check_params(&[Value::Date(i32::MAX)], &[unspecified_type()]).is_err());
}

#[test]
fn uuids_json_and_addresses_bind() {
    let uuid: [u8; 16] = core::array::from_fn(|i| i as u8);
    assert_eq!(binary(Value::Uuid(uuid), &Type::UUID), uuid);
    let json = || Value::Json(r#"{"é": [1, null]}"#.to_owned());
    assert_eq!(
        binary(json(), &Type::JSONB),
        [b"\x01".as_slice(), r#"{"é": [1, null]}"#.as_bytes()].concat()
    );
    for ty in [Type::JSON, Type::TEXT, Type::VARCHAR] {
        assert_eq!(
            binary(json(), &ty),
            r#"{"é": [1, null]}"#.as_bytes(),
            "{ty}"
        );
    }
    let v4: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        binary(Value::Inet(v4), &Type::INET),
        [2, 32, 0, 4, 192, 0, 2, 1]
    );
    assert_eq!(binary(Value::Inet(v4), &Type::CIDR)[..2], [2, 32]);
    let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(binary(Value::Inet(v6), &Type::INET)[..4], [3, 128, 0, 16]);
    assert!(refusal(json(), Type::INT4).contains("`$1::jsonb`"));
    assert!(refusal(Value::Uuid(uuid), Type::TEXT).contains("`$1::uuid`"));
    assert!(
        refusal(Value::Inet(v4), Type::TEXT).starts_with("parameter $1: cannot bind an inet value")
    );
}

#[test]
fn invalid_values_bind_to_nothing() {
    let invalid = || Value::Invalid("key must be a string".to_owned());
    for ty in [Type::TEXT, Type::JSONB, unspecified_type()] {
        let err = check_params(&[invalid()], &[ty]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parameter);
        assert_eq!(err.message(), "parameter $1: key must be a string");
    }
    assert!(encode(invalid(), &unspecified_type()).is_err());
    let err = check_params(
        &[Value::Array(vec![Value::Null, invalid()])],
        &[Type::JSONB_ARRAY],
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "parameter $1, array element 1: key must be a string"
    );
    assert_eq!(unnamed_param_type(&invalid(), &unspecified_type()).oid(), 0);
}

/// The elements of a binary array, as PostgreSQL reads them.
fn elements(raw: &[u8]) -> (u32, i32, Vec<Option<Vec<u8>>>) {
    use fallible_iterator::FallibleIterator;
    let array = pg::array_from_sql(raw).unwrap();
    let dims = array.dimensions().count().unwrap() as i32;
    let items = array
        .values()
        .map(|v| Ok(v.map(<[u8]>::to_vec)))
        .collect()
        .unwrap();
    (array.element_type(), dims, items)
}

#[test]
fn arrays_bind_element_by_element() {
    let ints = Value::Array(vec![Value::Int(1), Value::Null, Value::Int(-3)]);
    let (oid, dims, items) = elements(&binary(ints.clone(), &Type::INT4_ARRAY));
    assert_eq!((oid, dims), (23, 1));
    assert_eq!(
        items,
        [
            Some(1i32.to_be_bytes().to_vec()),
            None,
            Some((-3i32).to_be_bytes().to_vec())
        ]
    );
    let (oid, _, items) = elements(&binary(ints.clone(), &Type::INT8_ARRAY));
    assert_eq!(oid, 20);
    assert_eq!(items[2], Some((-3i64).to_be_bytes().to_vec()));
    let (oid, dims, items) = elements(&binary(Value::Array(vec![]), &Type::TEXT_ARRAY));
    assert_eq!((oid, dims, items.len()), (25, 0, 0));
    let (oid, _, items) = elements(&binary(
        Value::Array(vec![Value::Json("1".into())]),
        &Type::JSONB_ARRAY,
    ));
    assert_eq!((oid, items), (3802, vec![Some(b"\x011".to_vec())]));
    // Each element is range-checked, and named.
    let text = refusal(
        Value::Array(vec![Value::Int(1), Value::Int(70_000)]),
        Type::INT2_ARRAY,
    );
    assert!(
        text.starts_with("parameter $1, array element 1: integer 70000"),
        "{text}"
    );
    let text = refusal(
        Value::Array(vec![Value::Int(1), Value::Text("x".into())]),
        Type::INT8_ARRAY,
    );
    assert!(
        text.starts_with("parameter $1, array element 1: cannot bind a text value to the array's element type int8")
            && text.contains("`$1::text[]`"),
        "{text}"
    );
    let text = refusal(ints.clone(), Type::INT4);
    assert!(
        text.starts_with(
            "parameter $1: cannot bind an array value to a parameter of PostgreSQL type int4"
        ) && text.contains("`$1::bigint[]`"),
        "{text}"
    );
    let nested = Value::Array(vec![Value::Array(vec![Value::Int(1)])]);
    let text = refusal(nested.clone(), Type::INT4_ARRAY);
    assert!(text.contains("one-dimensional"), "{text}");
    assert!(check_params(&[nested], &[unspecified_type()]).is_err());
    // Elements that need PostgreSQL's text input make the whole array text.
    let uuids = Value::Array(vec![
        Value::Text("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        Value::Null,
    ]);
    assert_eq!(
        text_form(uuids, &Type::UUID_ARRAY),
        r#"{"67e55044-10b1-426f-9247-bb680e5fe0c8",NULL}"#
    );
    let numerics = Value::Array(vec![
        Value::Numeric("12345678901234567890.5".into()),
        Value::Int(2),
    ]);
    assert_eq!(
        text_form(numerics, &Type::NUMERIC_ARRAY),
        r#"{"12345678901234567890.5","2"}"#
    );
    // Quoting: `"` and `\` escaped, the text NULL quoted, a NULL bare.
    let awkward = Value::Array(vec![
        Value::Text(r#"a"b\c,{}"#.into()),
        Value::Text("NULL".into()),
        Value::Null,
        Value::Text(String::new()),
    ]);
    assert_eq!(
        text_form(awkward, &unspecified_type()),
        r#"{"a\"b\\c,{}","NULL",NULL,""}"#
    );
    assert_eq!(
        text_form(
            Value::Array(vec![Value::Blob(vec![0xab])]),
            &unspecified_type()
        ),
        r#"{"\\xab"}"#
    );
}

#[test]
fn values_the_server_types_write_postgres_text_literals() {
    let unspecified = unspecified_type();
    let text = |v: Value| text_form(v, &unspecified);
    assert_eq!(text(Value::Date(0)), "1970-01-01");
    assert_eq!(text(Value::Date(-2_440_588)), "4714-11-24 BC");
    assert_eq!(text(Value::Time(45_296_123_456_789)), "12:34:56.123456");
    assert_eq!(
        text(Value::Timestamp(at(-1, 999_999_999))),
        "1969-12-31 23:59:59.999999"
    );
    assert_eq!(
        text(Value::TimestampTz(at(Y2K, 5_000), -12_600)),
        "2000-01-01 00:00:00.000005+00"
    );
    assert_eq!(
        text(Value::Uuid(core::array::from_fn(|i| i as u8 * 16))),
        "00102030-4050-6070-8090-a0b0c0d0e0f0"
    );
    assert_eq!(text(Value::Json("[1]".into())), "[1]");
    assert_eq!(text(Value::Inet("::1".parse().unwrap())), "::1");
    assert_eq!(
        text(Value::Array(vec![Value::Date(0), Value::Bool(true)])),
        r#"{"1970-01-01","t"}"#
    );
}

#[test]
fn values_declare_their_own_types() {
    let unspecified = unspecified_type();
    let declared = |v: Value| unnamed_param_type(&v, &unspecified);
    assert_eq!(declared(Value::Date(0)), Type::DATE);
    assert_eq!(declared(Value::Time(0)), Type::TIME);
    assert_eq!(declared(Value::Timestamp(at(0, 0))), Type::TIMESTAMP);
    assert_eq!(declared(Value::TimestampTz(at(0, 0), 0)), Type::TIMESTAMPTZ);
    assert_eq!(declared(Value::Uuid([0; 16])), Type::UUID);
    assert_eq!(declared(Value::Json("1".into())), Type::JSONB);
    assert_eq!(declared(Value::Inet("::1".parse().unwrap())), Type::INET);
    assert_eq!(
        declared(Value::Array(vec![Value::Null, Value::Int(1)])),
        Type::INT8_ARRAY
    );
    assert_eq!(
        declared(Value::Array(vec![Value::Uuid([0; 16])])),
        Type::UUID_ARRAY
    );
    for left_to_the_server in [
        Value::Array(vec![]),
        Value::Array(vec![Value::Null]),
        Value::Array(vec![Value::Text("a".into())]),
        Value::Array(vec![Value::Array(vec![Value::Int(1)])]),
    ] {
        assert_eq!(
            declared(left_to_the_server.clone()).oid(),
            0,
            "{left_to_the_server:?}"
        );
    }

    // `SELECT $1`: PostgreSQL makes the placeholder text; the value's type replaces it.
    let retyped = |v: Value| retype(&[v], &[Type::TEXT]).map(|(_, types)| types[0].clone());
    assert_eq!(retyped(Value::Date(0)), Some(Type::DATE));
    assert_eq!(retyped(Value::Uuid([0; 16])), Some(Type::UUID));
    assert_eq!(
        retyped(Value::Array(vec![Value::Int(1)])),
        Some(Type::INT8_ARRAY)
    );
    assert_eq!(
        retyped(Value::Array(vec![Value::Text("a".into())])),
        Some(Type::TEXT_ARRAY)
    );
    assert_eq!(retyped(Value::Array(vec![])), Some(Type::TEXT_ARRAY));
    assert_eq!(
        retyped(Value::Array(vec![Value::Numeric("1".into())])),
        Some(Type::NUMERIC_ARRAY)
    );
    assert_eq!(retyped(Value::Json("1".into())), None, "JSON binds to text");
    assert_eq!(retyped(Value::Invalid("no".into())), None);
    let (signature, _) = retype(
        &[Value::TimestampTz(at(0, 0), 0), Value::Array(vec![])],
        &[Type::TEXT, Type::TEXT],
    )
    .unwrap();
    assert_eq!(signature, "timestamptz,_text,");
    // Typed by context: nothing changes.
    assert!(retype(&[Value::Date(0)], &[Type::TIMESTAMPTZ]).is_none());
}

#[test]
fn every_value_decodes_back_from_its_binary_form() {
    let uuid: [u8; 16] = core::array::from_fn(|i| 255 - i as u8);
    let cases = [
        (Value::Date(-719_163), Type::DATE),
        (Value::Date(2_145_042_905), Type::DATE),
        (Value::Time(86_399_999_999_000), Type::TIME),
        (Value::Timestamp(at(-210_866_803_200, 0)), Type::TIMESTAMP),
        (
            Value::Timestamp(at(9_224_318_015_999, 999_999_000)),
            Type::TIMESTAMP,
        ),
        (
            Value::TimestampTz(at(2_200_000_000, 123_456_000), 0),
            Type::TIMESTAMPTZ,
        ),
        (Value::Uuid(uuid), Type::UUID),
        (Value::Json(r#"{"k": "ü"}"#.into()), Type::JSONB),
        (Value::Json("[]".into()), Type::JSON),
        (Value::Inet("10.1.2.3".parse().unwrap()), Type::INET),
        (Value::Inet("fe80::1".parse().unwrap()), Type::CIDR),
        (
            Value::Array(vec![Value::Int(1), Value::Null, Value::Int(i64::MIN)]),
            Type::INT8_ARRAY,
        ),
        (
            Value::Array(vec![Value::Float(0.5), Value::Null]),
            Type::FLOAT4_ARRAY,
        ),
        (
            Value::Array(vec![Value::Bool(false), Value::Bool(true)]),
            Type::BOOL_ARRAY,
        ),
        (
            Value::Array(vec![Value::Text("é".into()), Value::Null]),
            Type::VARCHAR_ARRAY,
        ),
        (
            Value::Array(vec![Value::Blob(vec![0, 1]), Value::Blob(vec![])]),
            Type::BYTEA_ARRAY,
        ),
        (
            Value::Array(vec![Value::Uuid(uuid), Value::Null]),
            Type::UUID_ARRAY,
        ),
        (
            Value::Array(vec![Value::TimestampTz(at(0, 0), 0)]),
            Type::TIMESTAMPTZ_ARRAY,
        ),
        (Value::Array(vec![]), Type::DATE_ARRAY),
    ];
    for (value, ty) in cases {
        let raw = binary(value.clone(), &ty);
        assert_eq!(
            decode_value(decoder(&ty), &raw).ok(),
            Some(value.clone()),
            "{ty}"
        );
    }
    // Sub-microsecond digits do not come back.
    let raw = binary(Value::Time(1_999), &Type::TIME);
    assert_eq!(
        decode_value(Decoder::Time, &raw).ok(),
        Some(Value::Time(1_000))
    );
}
