//! Text for the types anysql has no [`Value`] variant for: the binary value a column of such a
//! type brings, written the way PostgreSQL's own text output (`expression::text`) writes it.
//!
//! tokio-postgres asks for every result column in binary (its Bind message requests the binary
//! format for all columns, and its API has no per-column choice), so a value of a type anysql does
//! not decode never comes as text. For the common such types the driver writes the text itself,
//! and the column decodes as [`Value::Text`] (into `String`):
//!
//! - `interval`, in the form of the default `IntervalStyle`, `postgres`
//!   (`1 year 2 mons -3 days +04:05:06.5`); `timetz` (`12:00:00.5+05:30`);
//! - ranges and multiranges of the types the driver decodes (`[1,5)`, `empty`, `(,)`,
//!   `["2020-01-01 00:00:00",infinity)`, `{[1,3),[5,7)}`);
//! - composites and anonymous records whose fields are of such types (`(1,"a b",)`), arrays among
//!   the fields (`{1,NULL}`);
//! - `bit` and `varbit`, `macaddr`, `macaddr8`, `"char"`, `pg_lsn`, and `inet` and `cidr` values
//!   that are networks rather than one address (`10.0.0.0/8`);
//! - the geometric types `point`, `line`, `lseg`, `box`, `path`, `polygon` and `circle`;
//! - arrays of all of these, as [`Value::Array`] of their texts.
//!
//! The values inside (numbers, dates, times) are written as PostgreSQL writes them under its
//! default settings: `DateStyle` ISO, `extra_float_digits` 1 (the shortest float that reads back
//! exactly), `bytea_output` hex, and timestamps with a time zone in UTC (`+00`), whatever the
//! session's `TimeZone`. A session that changes those settings still gets these forms.
//!
//! `money` is not among them: its text follows the server's `lc_monetary` (currency symbol,
//! separators, digits), which the driver cannot reproduce exactly, so it stays a decode error that
//! says how to cast it.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};

use anysql_core::types::text::civil_from_days;
use anysql_core::Value;
use fallible_iterator::FallibleIterator;
use postgres_protocol::types::{self as pg, RangeBound};
use postgres_types::{Kind, Type};

use super::decode::{numeric, scalar_decoder, Problem};
use super::{base_type, is_text_like};

/// Whether the driver writes the text of a value of type `ty` (a domain: of its base type).
pub(super) fn renderable(ty: &Type) -> bool {
    let ty = base_type(ty);
    if scalar(ty) || extra(ty) {
        return true;
    }
    if let Some(member) = array_member(ty) {
        return renderable(member);
    }
    match ty.kind() {
        Kind::Range(element) => renderable(element),
        Kind::Multirange(element) => renderable(element),
        Kind::Composite(fields) => fields.iter().all(|f| renderable(f.type_())),
        _ => false,
    }
}

/// `record`, the member type of `record[]`.
static RECORD: Type = Type::RECORD;

/// The element type of an array type: postgres-types gives `record[]` no array kind.
fn array_member(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        Kind::Array(member) => Some(member),
        _ if *ty == Type::RECORD_ARRAY => Some(&RECORD),
        _ => None,
    }
}

/// The types the driver decodes into their own variants (never arrays).
fn scalar(ty: &Type) -> bool {
    scalar_decoder(ty).is_some()
}

/// The types only this module gives a value for.
fn extra(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::INTERVAL
            | Type::TIMETZ
            | Type::BIT
            | Type::VARBIT
            | Type::MACADDR
            | Type::MACADDR8
            | Type::CHAR
            | Type::PG_LSN
            | Type::POINT
            | Type::LINE
            | Type::LSEG
            | Type::BOX
            | Type::PATH
            | Type::POLYGON
            | Type::CIRCLE
            | Type::RECORD
    )
}

/// The value of a column of a [`renderable`] type: its text, or (an array) the texts of its
/// elements, NULL elements `Null`.
pub(super) fn value(ty: &Type, raw: &[u8]) -> Result<Value, Problem> {
    let ty = base_type(ty);
    if let Some(member) = array_member(ty) {
        let malformed = |_| Problem::Malformed("bad array");
        let array = pg::array_from_sql(raw).map_err(malformed)?;
        let dimensions = array.dimensions().count().map_err(malformed)?;
        if dimensions > 1 {
            return Err(Problem::Dimensions(dimensions));
        }
        let mut values = array.values();
        let mut out = Vec::new();
        while let Some(item) = values.next().map_err(malformed)? {
            out.push(match item {
                None => Value::Null,
                Some(raw) => Value::Text(
                    text(member, raw)
                        .map_err(|problem| Problem::InArray(out.len(), Box::new(problem)))?,
                ),
            });
        }
        return Ok(Value::Array(out));
    }
    text(ty, raw).map(Value::Text)
}

/// The text PostgreSQL's output function writes for one value of type `ty`.
pub(super) fn text(ty: &Type, raw: &[u8]) -> Result<String, Problem> {
    let mut out = String::new();
    write(base_type(ty), raw, &mut out)?;
    Ok(out)
}

/// Reads the fixed-size fields of a binary value, front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Problem> {
        if self.0.len() < n {
            return Err(Problem::Malformed(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Problem> {
        let bytes = self.take(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, Problem> {
        self.array(what).map(i32::from_be_bytes)
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, Problem> {
        self.array(what).map(i64::from_be_bytes)
    }

    fn f64(&mut self, what: &'static str) -> Result<f64, Problem> {
        self.array(what).map(f64::from_be_bytes)
    }

    /// A 32-bit count, which may not be negative.
    fn count(&mut self, what: &'static str) -> Result<usize, Problem> {
        usize::try_from(self.i32(what)?).map_err(|_| Problem::Malformed(what))
    }

    fn end(&self, what: &'static str) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::Malformed(what))
        }
    }
}

fn exact<const N: usize>(raw: &[u8], what: &'static str) -> Result<[u8; N], Problem> {
    raw.try_into().map_err(|_| Problem::Malformed(what))
}

fn write(ty: &Type, raw: &[u8], out: &mut String) -> Result<(), Problem> {
    match *ty {
        Type::INT2 => {
            let _ = write!(out, "{}", i16::from_be_bytes(exact(raw, "bad int2")?));
        }
        Type::INT4 => {
            let _ = write!(out, "{}", i32::from_be_bytes(exact(raw, "bad int4")?));
        }
        Type::INT8 => {
            let _ = write!(out, "{}", i64::from_be_bytes(exact(raw, "bad int8")?));
        }
        Type::OID => {
            let _ = write!(out, "{}", u32::from_be_bytes(exact(raw, "bad oid")?));
        }
        Type::FLOAT4 => write_float4(f32::from_be_bytes(exact(raw, "bad float4")?), out),
        Type::FLOAT8 => write_float8(f64::from_be_bytes(exact(raw, "bad float8")?), out),
        Type::BOOL => out.push(if exact::<1>(raw, "bad bool")?[0] != 0 {
            't'
        } else {
            'f'
        }),
        Type::JSONB => match raw.split_first() {
            Some((1, json)) => out.push_str(utf8(json)?),
            _ => return Err(Problem::Malformed("unknown jsonb version")),
        },
        Type::BYTEA => {
            out.push_str("\\x");
            for b in raw {
                let _ = write!(out, "{b:02x}");
            }
        }
        Type::NUMERIC => match numeric(raw)? {
            Value::Numeric(text) => out.push_str(&text),
            _ => return Err(Problem::Malformed("bad numeric")),
        },
        Type::DATE => {
            let days = pg::date_from_sql(raw).map_err(|_| Problem::Malformed("bad date"))?;
            match days {
                i32::MAX => out.push_str("infinity"),
                i32::MIN => out.push_str("-infinity"),
                days => {
                    let bc = write_ymd(out, i64::from(days) + PG_EPOCH_DAYS);
                    if bc {
                        out.push_str(" BC");
                    }
                }
            }
        }
        Type::TIME => {
            let micros = pg::time_from_sql(raw).map_err(|_| Problem::Malformed("bad time"))?;
            write_clock(out, micros);
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros =
                pg::timestamp_from_sql(raw).map_err(|_| Problem::Malformed("bad timestamp"))?;
            match micros {
                i64::MAX => out.push_str("infinity"),
                i64::MIN => out.push_str("-infinity"),
                micros => {
                    let days = micros.div_euclid(MICROS_PER_DAY) + PG_EPOCH_DAYS;
                    let bc = write_ymd(out, days);
                    out.push(' ');
                    write_clock(out, micros.rem_euclid(MICROS_PER_DAY));
                    if *ty == Type::TIMESTAMPTZ {
                        out.push_str("+00");
                    }
                    if bc {
                        out.push_str(" BC");
                    }
                }
            }
        }
        Type::UUID => {
            let bytes = pg::uuid_from_sql(raw).map_err(|_| Problem::Malformed("bad uuid"))?;
            for (i, b) in bytes.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                let _ = write!(out, "{b:02x}");
            }
        }
        Type::INET | Type::CIDR => {
            let inet = pg::inet_from_sql(raw).map_err(|_| Problem::Malformed("bad inet"))?;
            let full = if inet.addr().is_ipv4() { 32 } else { 128 };
            write_network(
                out,
                inet.addr(),
                inet.netmask(),
                *ty == Type::CIDR || inet.netmask() != full,
            );
        }
        Type::INTERVAL => write_interval(raw, out)?,
        Type::TIMETZ => {
            let mut r = Reader(raw);
            let micros = r.i64("bad timetz")?;
            let zone = r.i32("bad timetz")?;
            r.end("bad timetz")?;
            write_clock(out, micros);
            write_zone(out, zone);
        }
        Type::BIT | Type::VARBIT => {
            let bits =
                pg::varbit_from_sql(raw).map_err(|_| Problem::Malformed("bad bit string"))?;
            let bytes = bits.bytes();
            if bytes.len() * 8 < bits.len() {
                return Err(Problem::Malformed("bad bit string"));
            }
            for i in 0..bits.len() {
                out.push(if bytes[i / 8] & (0x80 >> (i % 8)) != 0 {
                    '1'
                } else {
                    '0'
                });
            }
        }
        Type::MACADDR => write_hex_pairs(out, &exact::<6>(raw, "bad macaddr")?),
        Type::MACADDR8 => write_hex_pairs(out, &exact::<8>(raw, "bad macaddr8")?),
        Type::CHAR => {
            let c = exact::<1>(raw, "bad \"char\"")?[0];
            if c >= 0x80 {
                let _ = write!(out, "\\{:03o}", c);
            } else if c != 0 {
                out.push(char::from(c));
            }
        }
        Type::PG_LSN => {
            let lsn = u64::from_be_bytes(exact(raw, "bad pg_lsn")?);
            let _ = write!(out, "{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF);
        }
        Type::POINT => {
            let mut r = Reader(raw);
            write_point(out, &mut r)?;
            r.end("bad point")?;
        }
        Type::LINE => {
            let mut r = Reader(raw);
            let (a, b, c) = (r.f64("bad line")?, r.f64("bad line")?, r.f64("bad line")?);
            r.end("bad line")?;
            out.push('{');
            write_float8(a, out);
            out.push(',');
            write_float8(b, out);
            out.push(',');
            write_float8(c, out);
            out.push('}');
        }
        Type::LSEG => {
            let mut r = Reader(raw);
            out.push('[');
            write_point(out, &mut r)?;
            out.push(',');
            write_point(out, &mut r)?;
            out.push(']');
            r.end("bad lseg")?;
        }
        Type::BOX => {
            let mut r = Reader(raw);
            write_point(out, &mut r)?;
            out.push(',');
            write_point(out, &mut r)?;
            r.end("bad box")?;
        }
        Type::PATH => {
            let mut r = Reader(raw);
            let closed = r.take(1, "bad path")?[0] != 0;
            let n = r.count("bad path")?;
            out.push(if closed { '(' } else { '[' });
            write_points(out, &mut r, n)?;
            out.push(if closed { ')' } else { ']' });
            r.end("bad path")?;
        }
        Type::POLYGON => {
            let mut r = Reader(raw);
            let n = r.count("bad polygon")?;
            out.push('(');
            write_points(out, &mut r, n)?;
            out.push(')');
            r.end("bad polygon")?;
        }
        Type::CIRCLE => {
            let mut r = Reader(raw);
            out.push('<');
            write_point(out, &mut r)?;
            out.push(',');
            write_float8(r.f64("bad circle")?, out);
            out.push('>');
            r.end("bad circle")?;
        }
        Type::RECORD => write_record(raw, None, out)?,
        _ if is_text_like(ty) => out.push_str(utf8(raw)?),
        _ => match ty.kind() {
            Kind::Range(element) => write_range(base_type(element), raw, out)?,
            Kind::Multirange(element) => {
                // postgres-types names a multirange's element type, not its range type.
                let element = base_type(element);
                let mut r = Reader(raw);
                let n = r.count("bad multirange")?;
                out.push('{');
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    let len = r.count("bad multirange")?;
                    write_range(element, r.take(len, "bad multirange")?, out)?;
                }
                out.push('}');
                r.end("bad multirange")?;
            }
            Kind::Composite(fields) => {
                let types: Vec<&Type> = fields.iter().map(|f| f.type_()).collect();
                write_record(raw, Some(&types), out)?;
            }
            Kind::Domain(inner) => write(base_type(inner), raw, out)?,
            _ => match array_member(ty) {
                Some(member) => write_array(base_type(member), raw, out)?,
                None => return Err(Problem::Unsupported),
            },
        },
    }
    Ok(())
}

fn utf8(raw: &[u8]) -> Result<&str, Problem> {
    std::str::from_utf8(raw).map_err(|_| Problem::Malformed("invalid UTF-8"))
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `2026-12-01`, `0044-03-15` (returning true: BC, which the caller writes as a suffix).
fn write_ymd(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days);
    let (year, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    bc
}

/// `HH:MM:SS` and the fraction of a second without trailing zeros, from microseconds (which may
/// reach 24:00:00; negative ones are written as their magnitude).
fn write_clock(out: &mut String, micros: i64) {
    let micros = micros.unsigned_abs();
    let seconds = micros / 1_000_000;
    let _ = write!(out, "{:02}:{:02}:", seconds / 3600, seconds / 60 % 60);
    write_seconds(out, seconds % 60, micros % 1_000_000);
}

/// Two-digit seconds, then `.` and the microseconds without trailing zeros, if any.
fn write_seconds(out: &mut String, seconds: u64, micros: u64) {
    let _ = write!(out, "{seconds:02}");
    if micros != 0 {
        let mut digits = format!("{micros:06}");
        while digits.ends_with('0') {
            digits.pop();
        }
        out.push('.');
        out.push_str(&digits);
    }
}

/// A time zone given in seconds west of UTC, as PostgreSQL writes it: `+05:30`, `-08`, `+00`.
fn write_zone(out: &mut String, west: i32) {
    let seconds = west.unsigned_abs();
    out.push(if west <= 0 { '+' } else { '-' });
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let _ = write!(out, "{hours:02}");
    if seconds != 0 {
        let _ = write!(out, ":{minutes:02}:{seconds:02}");
    } else if minutes != 0 {
        let _ = write!(out, ":{minutes:02}");
    }
}

/// An `interval` (microseconds, days, months) in `IntervalStyle` `postgres`:
/// `1 year 2 mons -3 days +04:05:06.5`, `-00:00:01`, `00:00:00`.
fn write_interval(raw: &[u8], out: &mut String) -> Result<(), Problem> {
    let mut r = Reader(raw);
    let time = r.i64("bad interval")?;
    let days = r.i32("bad interval")?;
    let months = r.i32("bad interval")?;
    r.end("bad interval")?;
    let (years, months) = (months / 12, months % 12);
    let mut zero = true;
    let mut before = false;
    for (value, unit) in [
        (i64::from(years), "year"),
        (i64::from(months), "mon"),
        (i64::from(days), "day"),
    ] {
        if value == 0 {
            continue;
        }
        let _ = write!(
            out,
            "{}{}{value} {unit}{}",
            if zero { "" } else { " " },
            if before && value > 0 { "+" } else { "" },
            if value != 1 { "s" } else { "" }
        );
        // Each nonzero field decides the sign shown on the next one only.
        before = value < 0;
        zero = false;
    }
    if zero || time != 0 {
        let sign = if time < 0 {
            "-"
        } else if before {
            "+"
        } else {
            ""
        };
        let _ = write!(out, "{}{sign}", if zero { "" } else { " " });
        let micros = time.unsigned_abs();
        let seconds = micros / 1_000_000;
        let _ = write!(out, "{:02}:{:02}:", seconds / 3600, seconds / 60 % 60);
        write_seconds(out, seconds % 60, micros % 1_000_000);
    }
    Ok(())
}

/// An address, with `/bits` when `with_bits` (a `cidr`, or an `inet` network).
fn write_network(out: &mut String, addr: IpAddr, bits: u8, with_bits: bool) {
    match addr {
        IpAddr::V4(v4) => {
            let _ = write!(out, "{v4}");
        }
        IpAddr::V6(v6) => write_ipv6(out, v6),
    }
    if with_bits {
        let _ = write!(out, "/{bits}");
    }
}

/// IPv6 as PostgreSQL writes it: like Rust's own form, but an address whose first 96 bits are zero
/// (and is not `::` or `::1`) ends in dotted IPv4 (`::1.2.3.4`).
fn write_ipv6(out: &mut String, v6: Ipv6Addr) {
    let segments = v6.segments();
    if segments[..6] == [0; 6] && segments[6] != 0 {
        let o = v6.octets();
        let _ = write!(out, "::{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
    } else {
        let _ = write!(out, "{v6}");
    }
}

fn write_hex_pairs(out: &mut String, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02x}");
    }
}

fn write_point(out: &mut String, r: &mut Reader<'_>) -> Result<(), Problem> {
    let (x, y) = (r.f64("bad point")?, r.f64("bad point")?);
    out.push('(');
    write_float8(x, out);
    out.push(',');
    write_float8(y, out);
    out.push(')');
    Ok(())
}

fn write_points(out: &mut String, r: &mut Reader<'_>, n: usize) -> Result<(), Problem> {
    // Each point takes 16 bytes: no bogus count runs past the value.
    if n > r.0.len() / 16 {
        return Err(Problem::Malformed("bad point count"));
    }
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        write_point(out, r)?;
    }
    Ok(())
}

/// An `f64` as `float8out` writes it: the shortest text that reads back exactly, in exponent form
/// below 1e-4 and from 1e15 on (`1e+15`, `1.5e-05`), `NaN`, `Infinity`, `-Infinity`, `-0`.
fn write_float8(v: f64, out: &mut String) {
    if v.is_finite() {
        shortest(&format!("{v:e}"), 15, out);
    } else {
        special(v.is_nan(), v > 0.0, out);
    }
}

/// An `f32` as `float4out` writes it: in exponent form below 1e-4 and from 1e6 on.
fn write_float4(v: f32, out: &mut String) {
    if v.is_finite() {
        shortest(&format!("{v:e}"), 6, out);
    } else {
        special(v.is_nan(), v > 0.0, out);
    }
}

fn special(nan: bool, positive: bool, out: &mut String) {
    out.push_str(match (nan, positive) {
        (true, _) => "NaN",
        (false, true) => "Infinity",
        (false, false) => "-Infinity",
    });
}

/// Rewrites Rust's shortest exponent form (`-1.5e14`) the way PostgreSQL prints it: plain when
/// the exponent is from -4 to `limit - 1`, else `-1.5e+14`.
fn shortest(rust: &str, limit: i32, out: &mut String) {
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((rust, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    if negative {
        out.push('-');
    }
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if digits == "0" {
        out.push('0');
        return;
    }
    if (-4..limit).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(&digits);
        } else {
            let point = (exponent + 1) as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(mantissa);
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    }
}

/// A range: `empty`, or its bounds with their brackets, an unbounded end left blank (`(,5]`).
fn write_range(element: &Type, raw: &[u8], out: &mut String) -> Result<(), Problem> {
    let range = pg::range_from_sql(raw).map_err(|_| Problem::Malformed("bad range"))?;
    let (lower, upper) = match range {
        pg::Range::Empty => {
            out.push_str("empty");
            return Ok(());
        }
        pg::Range::Nonempty(lower, upper) => (lower, upper),
    };
    let bound = |bound: &RangeBound<Option<&[u8]>>,
                 inclusive: char,
                 exclusive: char|
     -> Result<(char, Option<String>), Problem> {
        Ok(match bound {
            RangeBound::Inclusive(value) => (inclusive, bound_text(element, *value)?),
            RangeBound::Exclusive(value) => (exclusive, bound_text(element, *value)?),
            RangeBound::Unbounded => (exclusive, None),
        })
    };
    let (open, low) = bound(&lower, '[', '(')?;
    let (close, high) = bound(&upper, ']', ')')?;
    out.push(open);
    if let Some(low) = low {
        quote(&low, out, |c| {
            matches!(c, '"' | '\\' | '(' | ')' | '[' | ']' | ',')
        });
    }
    out.push(',');
    if let Some(high) = high {
        quote(&high, out, |c| {
            matches!(c, '"' | '\\' | '(' | ')' | '[' | ']' | ',')
        });
    }
    out.push(close);
    Ok(())
}

fn bound_text(element: &Type, value: Option<&[u8]>) -> Result<Option<String>, Problem> {
    match value {
        Some(raw) => text(element, raw).map(Some),
        None => Ok(None),
    }
}

/// C's `isspace` in the C locale.
fn space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}')
}

/// A range bound or a record field as PostgreSQL writes it: in double quotes when empty or when
/// it holds a space or one of `special`'s characters, `"` and `\` then doubled.
fn quote(value: &str, out: &mut String, special: impl Fn(char) -> bool) {
    let quoted = value.is_empty() || value.chars().any(|c| space(c) || special(c));
    if quoted {
        out.push('"');
    }
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push(c);
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

/// A composite or anonymous record: `(1,"a b",)`, a NULL field left blank. The field types are the
/// composite's (`declared`), or, for a record, those the value names by OID.
fn write_record(raw: &[u8], declared: Option<&[&Type]>, out: &mut String) -> Result<(), Problem> {
    let mut r = Reader(raw);
    let n = r.count("bad record")?;
    // Each field takes at least its 8-byte header.
    if n > raw.len() / 8 {
        return Err(Problem::Malformed("bad record"));
    }
    out.push('(');
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let oid = u32::from_be_bytes(r.array("bad record")?);
        let len = r.i32("bad record")?;
        if len < 0 {
            continue;
        }
        let field = r.take(len as usize, "bad record")?;
        let ty = match declared.and_then(|types| types.get(i)) {
            Some(ty) if ty.oid() == oid => (*ty).clone(),
            _ => Type::from_oid(oid).ok_or(Problem::Unsupported)?,
        };
        if !renderable(&ty) {
            return Err(Problem::Unsupported);
        }
        let value = text(&ty, field)?;
        quote(&value, out, |c| matches!(c, '"' | '\\' | '(' | ')' | ','));
    }
    out.push(')');
    r.end("bad record")
}

/// An array inside a record: `{1,NULL,"a b"}`, `{{1,2},{3,4}}`, `[0:1]={1,2}` for lower bounds
/// other than 1; `{}` when empty.
fn write_array(member: &Type, raw: &[u8], out: &mut String) -> Result<(), Problem> {
    let malformed = |_| Problem::Malformed("bad array");
    let array = pg::array_from_sql(raw).map_err(malformed)?;
    let dimensions: Vec<pg::ArrayDimension> = array.dimensions().collect().map_err(malformed)?;
    if dimensions.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    if dimensions.iter().any(|d| d.lower_bound != 1) {
        for d in &dimensions {
            let upper = i64::from(d.lower_bound) + i64::from(d.len) - 1;
            let _ = write!(out, "[{}:{upper}]", d.lower_bound);
        }
        out.push('=');
    }
    // `box` is the one built-in type whose array delimiter is `;`.
    let delimiter = if *member == Type::BOX { ';' } else { ',' };
    let lens: Vec<usize> = dimensions
        .iter()
        .map(|d| usize::try_from(d.len).map_err(|_| Problem::Malformed("bad array")))
        .collect::<Result<_, _>>()?;
    let total = lens
        .iter()
        .try_fold(1usize, |acc, &len| acc.checked_mul(len))
        .ok_or(Problem::Malformed("bad array"))?;
    if total == 0 {
        out.push_str("{}");
        return Ok(());
    }
    // How many elements one block of each level of braces holds, the outermost first.
    let mut blocks = lens.clone();
    for level in (0..blocks.len().saturating_sub(1)).rev() {
        blocks[level] *= blocks[level + 1];
    }
    let mut values = array.values();
    for index in 0..total {
        // Open the braces of every level whose block starts here, the outermost first.
        for block in &blocks {
            if index % block == 0 {
                out.push('{');
            }
        }
        match values.next().map_err(malformed)? {
            None => return Err(Problem::Malformed("bad array")),
            Some(None) => out.push_str("NULL"),
            Some(Some(raw)) => {
                let value = text(member, raw)?;
                let quoted = value.is_empty()
                    || value.eq_ignore_ascii_case("NULL")
                    || value
                        .chars()
                        .any(|c| space(c) || matches!(c, '"' | '\\' | '{' | '}') || c == delimiter);
                if quoted {
                    out.push('"');
                    for c in value.chars() {
                        if matches!(c, '"' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(&value);
                }
            }
        }
        // Close the braces of every level whose block ends here, the innermost first.
        for block in blocks.iter().rev() {
            if (index + 1) % block == 0 {
                out.push('}');
            }
        }
        if index + 1 < total {
            out.push(delimiter);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f8(v: f64) -> String {
        let mut out = String::new();
        write_float8(v, &mut out);
        out
    }

    fn f4(v: f32) -> String {
        let mut out = String::new();
        write_float4(v, &mut out);
        out
    }

    #[test]
    fn floats_as_float8out_and_float4out_write_them() {
        for (v, text) in [
            (1e15, "1e+15"),
            (1.5e14, "150000000000000"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (-0.0, "-0"),
            (0.0, "0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e300, "1e+300"),
            (123.456, "123.456"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(f8(v), text, "{v}");
        }
        assert_eq!(f4(123456.0), "123456");
        assert_eq!(f4(1234567.0), "1.234567e+06");
        assert_eq!(f4(0.1), "0.1");
        assert_eq!(f4(f32::INFINITY), "Infinity");
    }

    fn interval(micros: i64, days: i32, months: i32) -> String {
        let mut raw = micros.to_be_bytes().to_vec();
        raw.extend(days.to_be_bytes());
        raw.extend(months.to_be_bytes());
        text(&Type::INTERVAL, &raw).unwrap()
    }

    #[test]
    fn intervals_in_the_postgres_style() {
        assert_eq!(interval(0, 0, 0), "00:00:00");
        assert_eq!(interval(1_500_000, 0, 0), "00:00:01.5");
        assert_eq!(interval(-1_000_000, 0, 0), "-00:00:01");
        assert_eq!(interval(7_200_000_000, -1, 0), "-1 days +02:00:00");
        assert_eq!(interval(0, 1, 14), "1 year 2 mons 1 day");
        assert_eq!(
            interval(-10_800_000_000, -2, -1),
            "-1 mons -2 days -03:00:00"
        );
        assert_eq!(interval(0, 0, 11), "11 mons");
        // The extremes do not overflow.
        assert!(interval(i64::MIN, i32::MIN, i32::MIN).starts_with("-178956970 years"));
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        for ty in [
            Type::INTERVAL,
            Type::TIMETZ,
            Type::INT4_RANGE,
            Type::INT4MULTI_RANGE,
            Type::RECORD,
            Type::VARBIT,
            Type::MACADDR,
            Type::POINT,
            Type::PATH,
            Type::POLYGON,
            Type::CIRCLE,
            Type::CHAR,
            Type::PG_LSN,
        ] {
            for raw in [&[][..], &[0xff; 3], &[0x7f; 9], &[0xff; 40]] {
                assert!(
                    matches!(text(&ty, raw), Err(Problem::Malformed(_))),
                    "{ty} {raw:?}"
                );
            }
        }
        // A record naming a type the driver does not know is unsupported, not malformed.
        let mut record = 1i32.to_be_bytes().to_vec();
        record.extend(790u32.to_be_bytes()); // money
        record.extend(8i32.to_be_bytes());
        record.extend(150i64.to_be_bytes());
        assert!(matches!(
            text(&Type::RECORD, &record),
            Err(Problem::Unsupported)
        ));
    }

    #[test]
    fn arrays_inside_records_nest_and_quote() {
        let mut array = bytes::BytesMut::new();
        pg::array_to_sql(
            [
                pg::ArrayDimension {
                    len: 2,
                    lower_bound: 1,
                },
                pg::ArrayDimension {
                    len: 2,
                    lower_bound: 1,
                },
            ],
            Type::TEXT.oid(),
            ["a", "b c", "NULL", ""],
            |v, buf| {
                pg::text_to_sql(v, buf);
                Ok(postgres_protocol::IsNull::No)
            },
            &mut array,
        )
        .unwrap();
        assert_eq!(
            text(&Type::TEXT_ARRAY, &array).unwrap(),
            r#"{{a,"b c"},{"NULL",""}}"#
        );
    }
}
