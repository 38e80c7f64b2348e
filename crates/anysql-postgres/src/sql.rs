//! A small PostgreSQL lexer: counts `$N` placeholders, finds statement boundaries and the leading
//! keywords of each statement, skipping string literals (including `E'…'` and dollar-quoted
//! strings), quoted identifiers and comments.

/// What the driver needs to know about a SQL string before sending it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SqlInfo {
    /// The highest `$N` placeholder, which is the number of parameters PostgreSQL expects.
    pub(crate) max_param: usize,
    /// Whether the string holds more than one statement.
    pub(crate) multiple_statements: bool,
    /// The effect of the string's statements on the transaction state, in order.
    pub(crate) effects: Vec<TxnEffect>,
}

/// How a statement changes the transaction state of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnEffect {
    /// `BEGIN`, `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `END`: ends the transaction (a failed one is rolled back).
    Commit,
    /// `ROLLBACK`, `ABORT`, `PREPARE TRANSACTION`: ends the transaction.
    Rollback,
    /// `ROLLBACK TO SAVEPOINT`, `ROLLBACK AND CHAIN`: the transaction is no longer failed.
    Recover,
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Scans `sql`.
pub(crate) fn scan(sql: &str) -> SqlInfo {
    let bytes = sql.as_bytes();
    let mut info = SqlInfo::default();
    // The first words of the current statement: all that `classify` looks at. No allocation, as
    // this runs for every statement.
    let mut words: Words<'_> = Words::default();
    let mut statements = 0usize;
    let mut has_content = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' => {
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && (i < 2 || !is_ident_char(bytes[i - 2]));
                i = skip_string(bytes, i + 1, escapes);
                has_content = true;
            }
            b'"' => {
                // Double quotes never take backslash escapes.
                i = skip_string(bytes, i + 1, false);
                has_content = true;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i + 2),
            b';' => {
                if has_content {
                    statements += 1;
                    if let Some(effect) = classify(words.as_slice()) {
                        info.effects.push(effect);
                    }
                }
                words = Words::default();
                has_content = false;
                i += 1;
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                if let Ok(n) = sql[start..end].parse::<usize>() {
                    info.max_param = info.max_param.max(n);
                }
                has_content = true;
                i = end;
            }
            b'$' => {
                i = match dollar_quote_end(bytes, i) {
                    Some(end) => end,
                    None => i + 1,
                };
                has_content = true;
            }
            _ if is_ident_char(b) => {
                let start = i;
                while i < bytes.len() && is_ident_char(bytes[i]) {
                    i += 1;
                }
                if bytes[start].is_ascii_alphabetic() {
                    words.push(&sql[start..i]);
                }
                has_content = true;
            }
            _ => {
                if !b.is_ascii_whitespace() {
                    has_content = true;
                }
                i += 1;
            }
        }
    }
    if has_content {
        statements += 1;
        if let Some(effect) = classify(words.as_slice()) {
            info.effects.push(effect);
        }
    }
    info.multiple_statements = statements > 1;
    info
}

/// Skips a `'…'` or `"…"` run (the quote is `bytes[from - 1]`), where a doubled quote is an escaped
/// quote and, with `escapes`, so is a backslash-escaped one. Returns the index after the closing quote.
fn skip_string(bytes: &[u8], from: usize, escapes: bool) -> usize {
    let quote = bytes[from - 1];
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if escapes => i += 2,
            c if c == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Skips a (nestable) block comment whose `/*` ends just before `from`.
fn skip_block_comment(bytes: &[u8], from: usize) -> usize {
    let mut depth = 1;
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// If a dollar-quoted string (`$$…$$` or `$tag$…$tag$`) starts at `start`, the index after its end.
fn dollar_quote_end(bytes: &[u8], start: usize) -> Option<usize> {
    if start > 0 && is_ident_char(bytes[start - 1]) {
        // `a$b`: the dollar is part of an identifier.
        return None;
    }
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != b'$' {
        let c = bytes[i];
        let ok = c.is_ascii_alphabetic()
            || c == b'_'
            || c >= 0x80
            || (i > start + 1 && c.is_ascii_digit());
        if !ok {
            return None;
        }
        i += 1;
    }
    if i >= bytes.len() {
        return None;
    }
    let tag = &bytes[start..=i];
    let body = i + 1;
    let end = bytes[body..].windows(tag.len()).position(|w| w == tag);
    Some(end.map_or(bytes.len(), |p| body + p + tag.len()))
}

/// Up to the first four words of a statement.
#[derive(Default)]
struct Words<'a> {
    words: [&'a str; 4],
    len: usize,
}

impl<'a> Words<'a> {
    fn push(&mut self, word: &'a str) {
        if let Some(slot) = self.words.get_mut(self.len) {
            *slot = word;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[&'a str] {
        &self.words[..self.len]
    }
}

fn classify(words: &[&str]) -> Option<TxnEffect> {
    let is =
        |word: Option<&&str>, keyword: &str| word.is_some_and(|w| w.eq_ignore_ascii_case(keyword));
    let first = *words.first()?;
    // Skip the optional noise words of `COMMIT WORK`, `ROLLBACK TRANSACTION`, …
    let mut rest = words[1..]
        .iter()
        .filter(|w| !w.eq_ignore_ascii_case("WORK") && !w.eq_ignore_ascii_case("TRANSACTION"));
    let next = rest.next();
    let and_chain = is(next, "AND") && is(rest.next(), "CHAIN");
    let keyword = |k: &str| first.eq_ignore_ascii_case(k);
    if keyword("BEGIN") {
        Some(TxnEffect::Begin)
    } else if keyword("START") {
        is(words.get(1), "TRANSACTION").then_some(TxnEffect::Begin)
    } else if keyword("COMMIT") || keyword("END") {
        (!is(next, "PREPARED") && !and_chain).then_some(TxnEffect::Commit)
    } else if keyword("ROLLBACK") || keyword("ABORT") {
        if is(next, "PREPARED") {
            None
        } else if is(next, "TO") || and_chain {
            Some(TxnEffect::Recover)
        } else {
            Some(TxnEffect::Rollback)
        }
    } else if keyword("PREPARE") {
        is(words.get(1), "TRANSACTION").then_some(TxnEffect::Rollback)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max(sql: &str) -> usize {
        scan(sql).max_param
    }

    #[test]
    fn counts_placeholders_outside_literals_and_comments() {
        assert_eq!(max("SELECT $1, $2"), 2);
        assert_eq!(max("SELECT $2"), 2);
        assert_eq!(max("SELECT '$3', \"$4\", $1 -- $5\n"), 1);
        assert_eq!(max("SELECT /* $9 /* nested $8 */ still $7 */ $1"), 1);
        assert_eq!(max("SELECT E'it\\'s $5', $1"), 1);
        assert_eq!(
            max("SELECT 'a\\', $2"),
            2,
            "plain strings take no backslash escapes"
        );
        assert_eq!(max("SELECT $$ $3 $$, $tag$ $4 $tag$, $1"), 1);
        assert_eq!(max("SELECT a$1 FROM t"), 0, "a$1 is an identifier");
        assert_eq!(max("SELECT $10 + $2"), 10);
        assert_eq!(max("SELECT 1"), 0);
        assert_eq!(max("SELECT '$1"), 0);
        assert_eq!(max("SELECT $"), 0);
    }

    #[test]
    fn finds_statement_boundaries() {
        assert!(!scan("SELECT 1;").multiple_statements);
        assert!(!scan("SELECT 1; -- done\n ").multiple_statements);
        assert!(scan("CREATE TABLE t (a int); INSERT INTO t VALUES (1)").multiple_statements);
        assert!(!scan("SELECT ';'").multiple_statements);
        assert!(!scan("DO $$ BEGIN PERFORM 1; END $$").multiple_statements);
    }

    #[test]
    fn classifies_transaction_control() {
        let effects = |sql: &str| scan(sql).effects;
        assert_eq!(effects("begin"), [TxnEffect::Begin]);
        assert_eq!(
            effects("  /* c */ START TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            [TxnEffect::Begin]
        );
        assert_eq!(effects("COMMIT"), [TxnEffect::Commit]);
        assert_eq!(effects("end work"), [TxnEffect::Commit]);
        assert_eq!(effects("COMMIT AND CHAIN"), []);
        assert_eq!(effects("ROLLBACK"), [TxnEffect::Rollback]);
        assert_eq!(effects("ROLLBACK TO SAVEPOINT s"), [TxnEffect::Recover]);
        assert_eq!(effects("rollback transaction to s"), [TxnEffect::Recover]);
        assert_eq!(effects("ROLLBACK PREPARED 'x'"), []);
        assert_eq!(effects("PREPARE TRANSACTION 'x'"), [TxnEffect::Rollback]);
        assert_eq!(effects("SELECT 1"), []);
        assert_eq!(effects("DO $$BEGIN END$$"), []);
        assert_eq!(
            effects("BEGIN; INSERT INTO t VALUES (1); COMMIT"),
            [TxnEffect::Begin, TxnEffect::Commit]
        );
    }
}
