//! [`ConnectOptions`]: a parsed database URL, with the password kept out of every message.

use std::fmt;
use std::ops::Range;

use url::Url;

use crate::error::Error;
use crate::pool::PoolOptions;

/// A parsed database URL, as handed to a driver.
///
/// The engine takes the pool's own query parameters out (`max_size`, `acquire_timeout`, …, see
/// [`PoolOptions`]) and leaves the rest to the driver, which rejects those it does not know.
///
/// `Debug` and `Display` show the URL with every part that may hold a password replaced by `***`
/// (see [`redact`]). A query parameter that lies in such a part (one after a `password=`, or one
/// that an unencoded `?` in the user info's password made) is a *secret* parameter: its key and
/// value are never quoted in messages ([`is_secret_param`](Self::is_secret_param)).
#[derive(Clone)]
pub struct ConnectOptions {
    raw: String,
    scheme: String,
    key_value: bool,
    url: Option<Url>,
    params: Vec<(String, String)>,
    secret_params: Vec<bool>,
    pool_params: Vec<(String, String)>,
    secret_pool_params: Vec<bool>,
    /// The parts of `raw` that may hold a password.
    secret: Vec<Range<usize>>,
}

impl ConnectOptions {
    /// Parses a database URL such as `sqlite://data.db` or `postgres://user@host/db`.
    ///
    /// A string with no scheme whose first word is `key=value` (`host=/run/postgresql dbname=test`,
    /// libpq's form) is a [key=value string](Self::is_key_value): it has no scheme, and it goes to
    /// the driver that [accepts such strings](crate::AsyncDriver::accepts_key_value).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Error::configuration(
                "the database url is empty; pass one such as `sqlite://data.db` or `postgres://user@localhost/db`",
            ));
        }
        let scheme_end = trimmed.find(':');
        let is_key_value = is_key_value(trimmed);
        if is_key_value {
            return Ok(ConnectOptions {
                raw: trimmed.to_owned(),
                scheme: String::new(),
                key_value: true,
                url: None,
                params: Vec::new(),
                secret_params: Vec::new(),
                pool_params: Vec::new(),
                secret_pool_params: Vec::new(),
                secret: secret_spans(trimmed),
            });
        }
        let Some(colon) = scheme_end else {
            return Err(Error::configuration(format!(
                "malformed database url `{}`: it has no scheme; expected e.g. `sqlite://data.db` or `postgres://user@localhost/db`",
                redact(trimmed)
            )));
        };
        let scheme = &trimmed[..colon];
        let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return Err(Error::configuration(format!(
                "malformed database url `{}`: `{scheme}` is not a valid scheme",
                redact(trimmed)
            )));
        }
        let scheme = scheme.to_ascii_lowercase();

        let (base, query) = match trimmed.split_once('?') {
            Some((base, query)) => (base, query),
            None => (trimmed, ""),
        };
        // The query is split by hand, not by `form_urlencoded::parse`, to know where each pair
        // sits: a pair inside a part that may hold a password is a secret one.
        let spans = secret_spans(trimmed);
        let mut params = Vec::new();
        let mut secret_params = Vec::new();
        let mut pool_params = Vec::new();
        let mut secret_pool_params = Vec::new();
        let mut driver_pairs = Vec::new();
        let mut offset = base.len() + 1;
        for pair in query.split('&') {
            let range = offset..offset + pair.len();
            offset += pair.len() + 1;
            let Some((key, value)) = url::form_urlencoded::parse(pair.as_bytes()).next() else {
                continue;
            };
            let secret = spans
                .iter()
                .any(|s| s.start < range.end && range.start < s.end);
            let entry = (key.into_owned(), value.into_owned());
            if PoolOptions::is_url_param(&entry.0) {
                pool_params.push(entry);
                secret_pool_params.push(secret);
            } else {
                params.push(entry);
                secret_params.push(secret);
                driver_pairs.push(pair);
            }
        }
        // The pool's parameters are taken out of the string the driver sees; but when one of them
        // lies in a secret part, the string is kept whole, so that its masks stay the same.
        let rebuilt = if secret_pool_params.contains(&true) {
            trimmed.to_owned()
        } else if driver_pairs.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", driver_pairs.join("&"))
        };
        // The `url` crate rejects some forms that drivers accept: libpq URLs naming several hosts
        // (`h1:5432,h2:5433`) or none (`postgres://u@/db`), SQLite paths that are not hosts
        // (`sqlite://:memory:`, `sqlite://my data.db`) and opaque forms (`sqlite::memory:`). Those
        // have no `url()`, and the driver parses the string itself, or rejects it.
        let url = Url::parse(&rebuilt).ok();
        let secret = secret_spans(&rebuilt);
        Ok(ConnectOptions {
            raw: rebuilt,
            scheme,
            key_value: false,
            url,
            params,
            secret_params,
            pool_params,
            secret_pool_params,
            secret,
        })
    }

    /// The scheme, lowercased: `sqlite`, `postgres`, …; empty for a
    /// [key=value string](Self::is_key_value).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether the string is a libpq-style `key=value` connection string
    /// (`host=/run/postgresql dbname=test`) rather than a URL.
    pub fn is_key_value(&self) -> bool {
        self.key_value
    }

    /// The URL, when the string is one (`None` for a libpq `key=value` string and for opaque forms
    /// the `url` crate does not accept). Contains the password: do not log it.
    pub fn url(&self) -> Option<&Url> {
        self.url.as_ref()
    }

    /// The string as given, minus the pool's parameters. Contains the password: do not log it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The part after `scheme:` and before `?`, for drivers with their own URL forms
    /// (`sqlite:data.db`, `sqlite::memory:`).
    pub fn location(&self) -> &str {
        if self.key_value {
            return &self.raw;
        }
        let rest = &self.raw[self.scheme.len() + 1..];
        rest.split_once('?').map_or(rest, |(location, _)| location)
    }

    /// The query parameters meant for the driver, in order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The query parameters meant for the pool, in order.
    pub fn pool_params(&self) -> &[(String, String)] {
        &self.pool_params
    }

    /// Whether the driver parameter at `index` of [`params`](Self::params) lies in a part of the
    /// string that may hold a password: a message must quote neither its key nor its value.
    pub fn is_secret_param(&self, index: usize) -> bool {
        self.secret_params.get(index).copied().unwrap_or(true)
    }

    /// Whether the pool parameter at `index` of [`pool_params`](Self::pool_params) lies in a part
    /// of the string that may hold a password: a message must quote neither its key nor its value.
    pub fn is_secret_pool_param(&self, index: usize) -> bool {
        self.secret_pool_params.get(index).copied().unwrap_or(true)
    }

    /// Whether quoting `piece` in a message could show (part of) a password.
    ///
    /// `piece` should be a slice of [`as_str`](Self::as_str): it is then checked against the parts
    /// that [`redacted`](Self::redacted) masks. Any other string counts as secret when the URL
    /// has any such part.
    pub fn conceals(&self, piece: &str) -> bool {
        let start = (piece.as_ptr() as usize).wrapping_sub(self.raw.as_ptr() as usize);
        if start <= self.raw.len() && piece.len() <= self.raw.len() - start {
            let end = start + piece.len();
            self.secret
                .iter()
                .any(|s| s.start < end.max(start + 1) && start < s.end)
        } else {
            !self.secret.is_empty()
        }
    }

    /// The string with every part that may hold a password replaced by `***`, for messages.
    pub fn redacted(&self) -> String {
        mask(&self.raw, &self.secret)
    }

    /// A configuration error for a query parameter this driver does not know (its name is not
    /// shown when it is a secret parameter).
    pub fn unknown_param(&self, key: &str, known: &[&str]) -> Error {
        let secret = self
            .params
            .iter()
            .zip(&self.secret_params)
            .any(|((k, _), secret)| *secret && k == key)
            // A key of a `key=value` string inside a masked part (a password's tail).
            || self.secret.iter().any(|r| self.raw[r.clone()].contains(key));
        let shown = if secret {
            "***".to_owned()
        } else {
            format!("`{key}`")
        };
        Error::configuration(format!(
            "unknown option {shown} in database url `{}`; {} options are: {}",
            self.redacted(),
            if self.key_value { "its" } else { &self.scheme },
            known.join(", ")
        ))
    }
}

/// Whether `text` is a libpq `key=value` string rather than a URL: its first word is `key=`, with
/// no `scheme:` before it.
fn is_key_value(text: &str) -> bool {
    let Some(eq) = text.find('=') else {
        return false;
    };
    text[..eq]
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.find(':').is_none_or(|colon| eq < colon)
}

/// Whether a query or `key=value` key may name a password: once percent-decoded and lowercased, it
/// contains `pass` or `pwd` (`password`, `sslpassword`, `pass%77ord`, …). Errs on the side of
/// masking.
fn is_password_key(key: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8_lossy()
        .to_lowercase();
    decoded.contains("pass") || decoded.contains("pwd")
}

/// The byte ranges of `raw` that may hold a password, in order and not overlapping.
///
/// For a URL (or anything that is not a `key=value` string):
/// - the user info: from the first `:` after `scheme://` up to the **last** `@`, so that a
///   password with an unencoded `@`, `/`, `?` or `#` is masked whole, whatever the parsers make of
///   it;
/// - the query: everything after a `password=`, `sslpassword=`, … key (found after any `?` or `&`),
///   to the end, since an unencoded `&` or `#` in the password would split it.
///
/// For a `key=value` string: the value of every password key (quoted or not), every value that is
/// itself a URL's password, and everything from the first token that does not parse.
pub(crate) fn secret_spans(raw: &str) -> Vec<Range<usize>> {
    let mut spans = if is_key_value(raw.trim_start()) {
        key_value_spans(raw)
    } else {
        url_spans(raw)
    };
    spans.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

fn url_spans(raw: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    // Skip `scheme://`, when there. Without the `//`, the first `:` may as well end a user name
    // (`user:pw@host`, no scheme) as a scheme (`sqlite:data.db`): it counts as the user info's.
    let mut start = 0;
    if let Some(colon) = raw.find("://") {
        let scheme = &raw[..colon];
        if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            start = colon + 3;
        }
    }
    let rest = &raw[start..];
    if let Some(at) = rest.rfind('@') {
        if let Some(colon) = rest[..at].find(':') {
            spans.push(start + colon + 1..start + at);
        }
    }
    for (i, _) in raw.match_indices(['?', '&']) {
        let pair = &raw[i + 1..];
        let key_end = pair.find(['=', '&']).unwrap_or(pair.len());
        if pair[key_end..].starts_with('=') && is_password_key(&pair[..key_end]) {
            spans.push(i + 1 + key_end + 1..raw.len());
            break;
        }
    }
    spans
}

fn key_value_spans(raw: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let bytes: Vec<(usize, char)> = raw.char_indices().collect();
    let at = |i: usize| bytes.get(i).map(|&(_, c)| c);
    let offset = |i: usize| bytes.get(i).map_or(raw.len(), |&(o, _)| o);
    let mut i = 0;
    // After an unquoted password, a token whose key is not a libpq keyword's shape (lowercase
    // letters and `_`) may be the password's tail after a space: it is masked too.
    let mut after_unquoted_password = false;
    loop {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if i >= bytes.len() {
            return spans;
        }
        let key_start = i;
        while at(i).is_some_and(|c| c != '=' && !c.is_whitespace()) {
            i += 1;
        }
        let key = &raw[offset(key_start)..offset(i)];
        let keyword = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        // Where a span that runs to the end starts: at the key when the key may itself be the
        // tail of a password.
        let tail_start = if after_unquoted_password && !keyword {
            key_start
        } else {
            usize::MAX
        };
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i) != Some('=') {
            // Not `key=value`: perhaps the rest of an unquoted password with a space in it.
            spans.push(offset(key_start)..raw.len());
            return spans;
        }
        i += 1;
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        let value_start = i;
        if at(i) == Some('\'') {
            i += 1;
            loop {
                match at(i) {
                    Some('\\') => i += 2,
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                    None => {
                        spans.push(offset(tail_start.min(value_start))..raw.len());
                        return spans;
                    }
                }
            }
        } else {
            while let Some(c) = at(i) {
                if c.is_whitespace() {
                    break;
                }
                i += if c == '\\' { 2 } else { 1 };
            }
        }
        let i_end = i.min(bytes.len());
        let value = offset(value_start)..offset(i_end);
        if after_unquoted_password && !keyword {
            spans.push(offset(key_start)..offset(i_end));
        } else if is_password_key(key) {
            spans.push(value.clone());
            after_unquoted_password = !raw[value.clone()].starts_with('\'');
            i = i_end;
            continue;
        } else if raw[value.clone()]
            .split_once('=')
            .is_some_and(|(inner, _)| is_password_key(inner))
        {
            // `key= password=x`: libpq skips the space after `=`, and the value is `password=x`.
            spans.push(value.clone());
        } else if raw[value.clone()].contains("://") || raw[value.clone()].contains('@') {
            // A URL as a value (`dbname=postgres://u:pw@h/db`): its own password.
            let inner = &raw[value.clone()];
            spans.extend(
                url_spans(inner)
                    .into_iter()
                    .map(|r| value.start + r.start..value.start + r.end),
            );
        }
        after_unquoted_password = after_unquoted_password && !keyword;
        i = i_end;
    }
}

/// Replaces each of `spans` (ordered, not overlapping) in `raw` by `***`.
fn mask(raw: &str, spans: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut done = 0;
    for span in spans {
        out.push_str(&raw[done..span.start]);
        out.push_str("***");
        done = span.end;
    }
    out.push_str(&raw[done..]);
    out
}

/// Replaces every part of a URL or of a `key=value` string that may hold a password by `***`.
///
/// It errs on the side of masking, and works on strings that do not parse: a URL's user info is
/// masked from its first `:` to its last `@` (so a password with an unencoded `#`, `/`, `?` or `@`
/// is masked whole), a query is masked from a `password=` or `sslpassword=` key (percent-encoded
/// too) to its end, and a `key=value` string has its password values masked, quoted or not, and
/// everything from the first token that does not parse.
///
/// ```
/// use anysql_core::redact;
///
/// assert_eq!(redact("postgres://u:s3cret@h/db"), "postgres://u:***@h/db");
/// assert_eq!(redact("postgres://u:S3cr#3t@h/db"), "postgres://u:***@h/db");
/// assert_eq!(redact("postgres://h/db?password=x"), "postgres://h/db?password=***");
/// assert_eq!(redact("host=h password='a b' dbname=d"), "host=h password=*** dbname=d");
/// ```
pub fn redact(raw: &str) -> String {
    mask(raw, &secret_spans(raw))
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnectOptions")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn passwords_never_show() {
        let o = ConnectOptions::parse("postgres://u:s3cret@h:5432/db?application_name=x").unwrap();
        assert!(!format!("{o:?} {o}").contains("s3cret"));
        assert!(o.to_string().contains("u:***@h"));
        assert_eq!(o.url().unwrap().password(), Some("s3cret"));
        let kv = ConnectOptions::parse("host=/tmp password='a b\\'c' dbname=x").unwrap();
        assert_eq!(kv.to_string(), "host=/tmp password=*** dbname=x");
        assert_eq!(redact("user=a password=xyz"), "user=a password=***");
        // Found by the property test: the tail of a password with a tab in it, whose quote
        // never ends.
        assert!(!redact("host=h port=1 password=Zqxv\tZqxv=' max_size=0").contains("Zqxv"));
        assert_eq!(
            redact("postgres://h/db?password=xyz"),
            "postgres://h/db?password=***"
        );
    }

    #[test]
    fn pool_params_are_split_off() {
        let o = ConnectOptions::parse("sqlite://a.db?max_size=3&mode=ro").unwrap();
        assert_eq!(
            o.pool_params(),
            &[("max_size".to_string(), "3".to_string())]
        );
        assert_eq!(o.params(), &[("mode".to_string(), "ro".to_string())]);
        assert_eq!(o.as_str(), "sqlite://a.db?mode=ro");
        assert_eq!(o.location(), "//a.db");
    }

    #[test]
    fn opaque_and_key_value_forms() {
        let o = ConnectOptions::parse("sqlite::memory:").unwrap();
        assert_eq!((o.scheme(), o.location()), ("sqlite", ":memory:"));
        for path in [
            "sqlite://:memory:",
            "sqlite://my data.db",
            "sqlite://a:b.db",
        ] {
            let o = ConnectOptions::parse(path).unwrap();
            assert_eq!(o.location(), &path["sqlite:".len()..]);
        }
        let o = ConnectOptions::parse("host=localhost port=5432").unwrap();
        assert!(o.is_key_value());
        assert_eq!((o.scheme(), o.location()), ("", "host=localhost port=5432"));
        assert!(o.url().is_none());
    }

    #[test]
    fn malformed_urls_are_configuration_errors() {
        for bad in ["", "   ", "no-scheme-here", "1x://a", "post gres://x"] {
            let err = ConnectOptions::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{bad}: {err}");
        }
        // What the `url` crate rejects is the driver's to parse or reject, and stays masked.
        let odd = ConnectOptions::parse("mysql://u:pw@h:bad/db").unwrap();
        assert!(odd.url().is_none());
        assert!(!odd.to_string().contains("pw@"), "{odd}");
        let multi = ConnectOptions::parse("postgres://u:pw@h1:5432,h2:5433/db").unwrap();
        assert!(multi.url().is_none());
        assert_eq!(multi.to_string(), "postgres://u:***@h1:5432,h2:5433/db");
    }

    /// Issue #10: the query-string password, the one used, showed verbatim.
    #[test]
    fn a_query_string_password_is_masked() {
        let o =
            ConnectOptions::parse("postgres://root:pw@127.0.0.1:1/test?password=other").unwrap();
        let shown = format!("{o} {o:?}");
        assert!(
            !shown.contains("other") && !shown.contains("pw@"),
            "{shown}"
        );
        assert_eq!(
            o.to_string(),
            "postgres://root:***@127.0.0.1:1/test?password=***"
        );
        assert_eq!(o.params(), &[("password".to_string(), "other".to_string())]);
        for (raw, expected) in [
            (
                "postgres://h/db?sslpassword=k&sslmode=disable",
                "postgres://h/db?sslpassword=***",
            ),
            (
                "postgres://h/db?pass%77ord=k",
                "postgres://h/db?pass%77ord=***",
            ),
            ("postgres://h/db?PASSWORD=k", "postgres://h/db?PASSWORD=***"),
            (
                "postgres://h/db?application_name=a&password=k&x=1",
                "postgres://h/db?application_name=a&password=***",
            ),
        ] {
            assert_eq!(redact(raw), expected, "{raw}");
        }
    }

    /// Issue #10: an unencoded `#`, `/` or `?` in the password put it whole into Display, Debug
    /// and the parse error.
    #[test]
    fn a_password_with_unencoded_delimiters_is_masked_whole() {
        for (raw, expected) in [
            (
                "postgres://root:S3cr#3tPw@host/test",
                "postgres://root:***@host/test",
            ),
            (
                "postgres://root:S3cr/3tPw@host/test",
                "postgres://root:***@host/test",
            ),
            (
                "postgres://root:S3cr?3tPw@host/test",
                "postgres://root:***@host/test",
            ),
            (
                "postgres://root:S3cr@3tPw@host/test",
                "postgres://root:***@host/test",
            ),
            (
                "postgres://root:12#3tPw@host/test",
                "postgres://root:***@host/test",
            ),
            (
                "mysql://root:S3cr#3tPw@host/test",
                "mysql://root:***@host/test",
            ),
            ("root:S3cr#3tPw@host/test", "root:***@host/test"),
        ] {
            assert_eq!(redact(raw), expected, "{raw}");
            match ConnectOptions::parse(raw) {
                Ok(o) => {
                    let shown = format!("{o} {o:?}");
                    assert!(
                        !shown.contains("S3cr") && !shown.contains("3tPw"),
                        "{shown}"
                    );
                }
                Err(e) => assert!(!e.to_string().contains("3tPw"), "{e}"),
            }
        }
        // The `?` made a query of the password's tail: those pairs are secret.
        let o =
            ConnectOptions::parse("postgres://root:S3cr?3tPw@host/test?sslmode=disable").unwrap();
        assert!(o.is_secret_param(0), "{:?}", o.params());
        let err = o.unknown_param(&o.params()[0].0.clone(), &["host"]);
        assert!(!err.to_string().contains("3tPw"), "{err}");
    }

    #[test]
    fn key_value_passwords_are_masked() {
        for (raw, expected) in [
            ("host=h password=x dbname=d", "host=h password=*** dbname=d"),
            (
                "host=h password = 'a b\\'c' dbname=d",
                "host=h password = *** dbname=d",
            ),
            (
                "host=h sslpassword='k k' dbname=d",
                "host=h sslpassword=*** dbname=d",
            ),
            // An unquoted password with a space: its tail does not parse, and is masked.
            ("host=h password=a b c", "host=h password=*** ***"),
            ("host=h password='open", "host=h password=***"),
            (
                "host=h port= password=x dbname=d",
                "host=h port= *** dbname=d",
            ),
            (
                "host=h password=a B=c dbname=d",
                "host=h password=*** *** dbname=d",
            ),
            (
                "host=h password=a\\ b dbname=d",
                "host=h password=*** dbname=d",
            ),
            (
                "host=h dbname=postgres://u:pw@h/db",
                "host=h dbname=postgres://u:***@h/db",
            ),
        ] {
            assert_eq!(redact(raw), expected, "{raw}");
        }
    }

    #[test]
    fn correct_urls_show_everything_but_the_password() {
        for raw in [
            "postgres://u@h:5432/db?application_name=x",
            "sqlite:///tmp/a@b.db?mode=ro",
            "sqlite::memory:",
            "postgres:///db?host=/run/postgresql",
        ] {
            assert_eq!(redact(raw), raw);
        }
        let o = ConnectOptions::parse("sqlite://a.db?max_size=3&mode=ro").unwrap();
        assert_eq!(o.to_string(), "sqlite://a.db?mode=ro");
    }
}
