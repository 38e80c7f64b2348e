//! [`ConnectOptions`]: a parsed database URL, with the password kept out of every message.

use std::fmt;

use url::Url;

use crate::error::Error;
use crate::pool::PoolOptions;

/// A parsed database URL, as handed to a driver.
///
/// The engine takes the pool's own query parameters out (`max_size`, `acquire_timeout`, …, see
/// [`PoolOptions`]) and leaves the rest to the driver, which rejects those it does not know.
///
/// `Debug` and `Display` show the URL with its password replaced by `***`.
#[derive(Clone)]
pub struct ConnectOptions {
    raw: String,
    scheme: String,
    url: Option<Url>,
    params: Vec<(String, String)>,
    pool_params: Vec<(String, String)>,
}

impl ConnectOptions {
    /// Parses a database URL such as `sqlite://data.db` or `postgres://user@host/db`.
    ///
    /// A string with no scheme whose first word is `key=value` is taken as a libpq connection string
    /// for PostgreSQL (`host=/run/postgresql dbname=test`).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Error::configuration(
                "the database url is empty; pass one such as `sqlite://data.db` or `postgres://user@localhost/db`",
            ));
        }
        let scheme_end = trimmed.find(':');
        let first_eq = trimmed.find('=');
        let is_key_value = match (scheme_end, first_eq) {
            (_, Some(eq))
                if trimmed[..eq]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                scheme_end.is_none_or(|colon| eq < colon)
            }
            _ => false,
        };
        if is_key_value {
            return Ok(ConnectOptions {
                raw: trimmed.to_owned(),
                scheme: "postgres".to_owned(),
                url: None,
                params: Vec::new(),
                pool_params: Vec::new(),
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
        let mut params = Vec::new();
        let mut pool_params = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let entry = (key.into_owned(), value.into_owned());
            if PoolOptions::is_url_param(&entry.0) {
                pool_params.push(entry);
            } else {
                params.push(entry);
            }
        }
        let rebuilt = if params.is_empty() {
            base.to_owned()
        } else {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter())
                .finish();
            format!("{base}?{query}")
        };
        let url = match Url::parse(&rebuilt) {
            Ok(url) => Some(url),
            // libpq URLs may name several hosts (`h1:5432,h2:5433`) or none (`postgres://u@/db`),
            // and SQLite paths are not hosts (`sqlite://:memory:`, `sqlite://my data.db`): the
            // `url` crate rejects those, and the drivers parse them themselves.
            Err(_) if matches!(scheme.as_str(), "postgres" | "postgresql" | "sqlite") => None,
            // A hierarchical URL must parse; opaque forms such as `sqlite::memory:` are the driver's.
            Err(e) if trimmed[colon..].starts_with("://") => {
                return Err(Error::configuration(format!(
                    "malformed database url `{}`: {e}",
                    redact(trimmed)
                )));
            }
            Err(_) => None,
        };
        Ok(ConnectOptions {
            raw: rebuilt,
            scheme,
            url,
            params,
            pool_params,
        })
    }

    /// The scheme, lowercased: `sqlite`, `postgres`, …
    pub fn scheme(&self) -> &str {
        &self.scheme
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

    /// The string with the password replaced by `***`, for messages.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// A configuration error for a query parameter this driver does not know.
    pub fn unknown_param(&self, key: &str, known: &[&str]) -> Error {
        Error::configuration(format!(
            "unknown option `{key}` in database url `{}`; {} options are: {}",
            self.redacted(),
            self.scheme,
            known.join(", ")
        ))
    }
}

/// Replaces the password of a URL or of a `key=value` string by `***`.
pub fn redact(raw: &str) -> String {
    if let Ok(mut url) = Url::parse(raw) {
        if url.password().is_some() && url.set_password(Some("***")).is_ok() {
            return url.to_string();
        }
        let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        if pairs.iter().any(|(k, _)| k == "password") {
            for (k, v) in &mut pairs {
                if k == "password" {
                    *v = "***".into();
                }
            }
            url.query_pairs_mut().clear().extend_pairs(pairs);
            return url.to_string();
        }
        return raw.to_owned();
    }
    if let Some(start) = raw.find("://").map(|i| i + 3) {
        // A URL the `url` crate rejects: mask whatever sits between the first ':' and the '@' of the
        // authority, so that even a malformed URL never shows its password.
        let authority_end = raw[start..]
            .find(['/', '?', '#'])
            .map_or(raw.len(), |i| start + i);
        if let Some(at) = raw[start..authority_end].rfind('@').map(|i| start + i) {
            if let Some(colon) = raw[start..at].find(':').map(|i| start + i) {
                return format!("{}***{}", &raw[..=colon], &raw[at..]);
            }
        }
        return raw.to_owned();
    }
    // libpq key=value form: mask the value of `password=`, quoted or not.
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find("password") {
        let after = &rest[pos + "password".len()..];
        let eq = after.trim_start();
        if !eq.starts_with('=') || (pos > 0 && !rest[..pos].ends_with(char::is_whitespace)) {
            out.push_str(&rest[..pos + "password".len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..pos]);
        out.push_str("password=***");
        let value = eq[1..].trim_start();
        rest = if let Some(quoted) = value.strip_prefix('\'') {
            let mut end = quoted.len();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '\'' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            &quoted[end..]
        } else {
            &value[value.find(char::is_whitespace).unwrap_or(value.len())..]
        };
    }
    out.push_str(rest);
    out
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
        assert_eq!(o.scheme(), "postgres");
        assert!(o.url().is_none());
    }

    #[test]
    fn malformed_urls_are_configuration_errors() {
        for bad in [
            "",
            "   ",
            "no-scheme-here",
            "1x://a",
            "mysql://u@h:notaport/db",
            "post gres://x",
        ] {
            let err = ConnectOptions::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{bad}: {err}");
        }
        let err = ConnectOptions::parse("mysql://u:pw@h:bad/db").unwrap_err();
        assert!(!err.to_string().contains("pw@"), "{err}");
        let multi = ConnectOptions::parse("postgres://u:pw@h1:5432,h2:5433/db").unwrap();
        assert!(multi.url().is_none());
        assert_eq!(multi.to_string(), "postgres://u:***@h1:5432,h2:5433/db");
    }
}
