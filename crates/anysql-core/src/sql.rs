//! A small SQL lexer for drivers: placeholder translation and statement counting, skipping string
//! literals, quoted identifiers and comments.

use std::borrow::Cow;

use crate::error::{Error, ErrorKind};

/// Checks that `sql` can be sent as written: it must not contain a NUL character, which SQLite
/// takes as the end of the statement (so `DELETE FROM t\0 WHERE id = 1` would delete every row)
/// and which PostgreSQL's protocol cannot carry. The core calls it before every statement reaches
/// a driver.
///
/// ```
/// use anysql_core::sql::check_statement;
/// use anysql_core::ErrorKind;
///
/// assert!(check_statement("SELECT 1").is_ok());
/// let err = check_statement("DELETE FROM t\0 WHERE id = 1").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidStatement);
/// ```
pub fn check_statement(sql: &str) -> Result<(), Error> {
    match sql.as_bytes().iter().position(|&b| b == 0) {
        None => Ok(()),
        Some(at) => Err(Error::new(
            ErrorKind::InvalidStatement,
            format!(
                "the sql contains a NUL character at byte {at}, which would cut the statement short; \
                 nothing was run. Pass text and bytes with NULs as parameters instead"
            ),
        )),
    }
}

/// Rewrites every `$N` placeholder in `sql` to `{prefix}N`, leaving string literals, quoted identifiers
/// and comments untouched. Returns `sql` unchanged (borrowed) when it has no placeholder to rewrite.
///
/// SQLite reads `$1` as a *named* parameter called "1" and binds names in order of first appearance,
/// so `$2 … $1` would bind backwards; rewriting to `?2 … ?1` keeps the numbers meaningful.
///
/// ```
/// use anysql_core::sql::rewrite_dollar_placeholders;
///
/// let sql = "SELECT '$1', \"$2\", $2 -- $3\n + $1 /* $4 */";
/// assert_eq!(
///     rewrite_dollar_placeholders(sql, '?'),
///     "SELECT '$1', \"$2\", ?2 -- $3\n + ?1 /* $4 */"
/// );
/// ```
pub fn rewrite_dollar_placeholders(sql: &str, prefix: char) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let bytes = sql.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => i = skip_quoted(bytes, i + 1, quote),
            b'[' => i = skip_until(bytes, i + 1, b"]"),
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_until(bytes, i + 2, b"\n"),
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_until(bytes, i + 2, b"*/"),
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let buf = out.get_or_insert_with(|| String::with_capacity(sql.len()));
                buf.push_str(&sql[copied..i]);
                buf.push(prefix);
                copied = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(sql),
        Some(mut buf) => {
            buf.push_str(&sql[copied..]);
            Cow::Owned(buf)
        }
    }
}

/// Whether `sql` holds anything but whitespace, comments and semicolons after its first semicolon
/// outside literals, quoted identifiers and comments: whether it is a script of several statements.
///
/// It errs on the side of "yes": a `CREATE TRIGGER … BEGIN …; END` counts as several statements.
///
/// ```
/// use anysql_core::sql::has_more_statements;
///
/// assert!(has_more_statements("CREATE TABLE a (x); CREATE TABLE b (y)"));
/// assert!(!has_more_statements("SELECT ';' ; -- done;\n"));
/// ```
pub fn has_more_statements(sql: &str) -> bool {
    if !sql.contains(';') {
        return false;
    }
    let bytes = sql.as_bytes();
    let mut after_semicolon = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_until(bytes, i + 2, b"\n"),
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_until(bytes, i + 2, b"*/"),
            b';' => {
                after_semicolon = true;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ if after_semicolon => return true,
            quote @ (b'\'' | b'"' | b'`') => i = skip_quoted(bytes, i + 1, quote),
            b'[' => i = skip_until(bytes, i + 1, b"]"),
            _ => i += 1,
        }
    }
    false
}

/// Skips a quoted run whose quote is escaped by doubling it; returns the index after the closing quote.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    i
}

/// Skips to just after `end`, or to the end of input.
fn skip_until(bytes: &[u8], from: usize, end: &[u8]) -> usize {
    bytes[from.min(bytes.len())..]
        .windows(end.len())
        .position(|w| w == end)
        .map_or(bytes.len(), |p| from + p + end.len())
}

#[cfg(test)]
mod tests {
    use super::has_more_statements as more;
    use super::rewrite_dollar_placeholders as rewrite;

    #[test]
    fn counts_statements_outside_literals_and_comments() {
        assert!(!more("SELECT 1"));
        assert!(!more("SELECT 1;"));
        assert!(!more("SELECT 1; -- trailing comment"));
        assert!(!more("SELECT 1; /* c */ ;  "));
        assert!(!more("SELECT 'a;b', \"c;d\", [e;f], `g;h`"));
        assert!(more("SELECT 1; SELECT 2"));
        assert!(more("INSERT INTO t VALUES (';'); DELETE FROM t"));
        assert!(!more("SELECT 'unterminated; SELECT 2"));
    }

    #[test]
    fn leaves_sql_without_placeholders_borrowed() {
        assert!(matches!(
            rewrite("SELECT 1", '?'),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            rewrite("SELECT '$1'", '?'),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn skips_literals_identifiers_and_comments() {
        assert_eq!(
            rewrite("SELECT 'it''s $1', $1", '?'),
            "SELECT 'it''s $1', ?1"
        );
        assert_eq!(
            rewrite("SELECT \"a\"\"$1\" FROM t WHERE x = $10", '?'),
            "SELECT \"a\"\"$1\" FROM t WHERE x = ?10"
        );
        assert_eq!(
            rewrite("SELECT [$1], `$2`, $3", '?'),
            "SELECT [$1], `$2`, ?3"
        );
        assert_eq!(rewrite("SELECT $1 -- $2", '?'), "SELECT ?1 -- $2");
        assert_eq!(rewrite("SELECT /* $1 */ $2", '?'), "SELECT /* $1 */ ?2");
        assert_eq!(rewrite("SELECT $name, $", '?'), "SELECT $name, $");
    }

    #[test]
    fn survives_unterminated_input() {
        assert_eq!(rewrite("SELECT '$1", '?'), "SELECT '$1");
        assert_eq!(rewrite("SELECT $1 /* $2", '?'), "SELECT ?1 /* $2");
        assert_eq!(rewrite("$", '?'), "$");
        assert_eq!(rewrite("-", '?'), "-");
    }
}
