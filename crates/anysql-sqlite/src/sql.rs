//! A small SQL lexer: does a piece of SQL hold more than one statement?

/// Whether `sql` holds anything but whitespace, comments and semicolons after its first semicolon
/// outside literals, quoted identifiers and comments.
///
/// It errs on the side of "yes": a `CREATE TRIGGER … BEGIN …; END` counts as several statements,
/// which is harmless, because SQL with several statements runs through SQLite's own splitter.
pub(crate) fn has_more_statements(sql: &str) -> bool {
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
    let from = from.min(bytes.len());
    bytes[from..]
        .windows(end.len())
        .position(|w| w == end)
        .map_or(bytes.len(), |p| from + p + end.len())
}

#[cfg(test)]
mod tests {
    use super::has_more_statements as more;

    #[test]
    fn finds_a_second_statement() {
        assert!(!more("SELECT 1"));
        assert!(!more("SELECT 1;"));
        assert!(!more("SELECT 1 ; -- done\n ; /* nothing */ "));
        assert!(!more("SELECT ';x', \"a;b\", [c;d], `e;f` FROM t"));
        assert!(!more("SELECT 1 -- ; SELECT 2"));
        assert!(more("CREATE TABLE a(x); CREATE TABLE b(y)"));
        assert!(more("SELECT 1;SELECT 2"));
        assert!(more("SELECT 1; 'x'"));
        assert!(!more("SELECT 'it''s;'"));
        assert!(!more("SELECT 'unterminated;"));
        assert!(!more("/* unterminated ;"));
    }
}
