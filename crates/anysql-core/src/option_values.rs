//! Parsers for the values of URL options, shared by the pool and the drivers so that every option
//! spells durations, switches and escapes the same way.

use std::time::Duration;

/// Parses a duration: `50us`, `250ms`, `5s`, `2m`, `1h`; a bare number is seconds.
///
/// ```
/// use anysql_core::option_values::parse_duration;
/// use std::time::Duration;
///
/// assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
/// assert_eq!(parse_duration("soon"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" | "µs" => number / 1e6,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// Parses a switch: `true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`, in any case.
///
/// ```
/// use anysql_core::option_values::parse_bool;
///
/// assert_eq!(parse_bool("ON"), Some(true));
/// assert_eq!(parse_bool("0"), Some(false));
/// assert_eq!(parse_bool("maybe"), None);
/// ```
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits is kept as it is); `None` if the
/// result is not UTF-8.
///
/// ```
/// use anysql_core::option_values::percent_decode;
///
/// assert_eq!(percent_decode("my%20data.db").as_deref(), Some("my data.db"));
/// assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
/// assert_eq!(percent_decode("%FF"), None);
/// ```
pub fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("50us"), Some(Duration::from_micros(50)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration(""), None);
    }
}
