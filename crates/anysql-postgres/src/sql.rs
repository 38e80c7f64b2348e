//! A small PostgreSQL lexer: counts `$N` placeholders, finds statement boundaries and the leading
//! keywords of each statement, skipping string literals (including `E'…'` and dollar-quoted
//! strings), quoted identifiers and comments.

use anysql_core::{Error, ErrorKind};

/// The most parameters one statement can take: the protocol counts them in 16 bits.
pub(crate) const MAX_PARAMS: usize = u16::MAX as usize;

/// What the driver needs to know about a SQL string before sending it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SqlInfo {
    /// The highest `$N` placeholder, which is the number of parameters PostgreSQL expects.
    pub(crate) max_param: usize,
    /// Whether the string holds more than one statement.
    pub(crate) multiple_statements: bool,
    /// The effect of the string's statements on the transaction state, in order.
    pub(crate) effects: Vec<TxnEffect>,
    /// Whether a statement is transaction control (`BEGIN`, `START TRANSACTION`, `COMMIT`,
    /// `END`, `ROLLBACK`, `ABORT`, `SAVEPOINT`, `RELEASE`, `PREPARE TRANSACTION`, in any form),
    /// whatever its effect.
    pub(crate) transaction_control: bool,
    /// Whether a statement is `COPY … FROM STDIN` or `COPY … TO STDOUT`, which needs the COPY
    /// sub-protocol.
    pub(crate) copy_stdio: bool,
    /// Whether a statement is `COPY … FROM STDIN` (data from the client).
    pub(crate) copy_from_stdin: bool,
}

impl SqlInfo {
    /// Refuses, before anything is sent, what the connection must not send: a COPY to or from the
    /// client, or more parameters than the protocol can count (`params` given, or `$N` in the
    /// SQL).
    pub(crate) fn check(&self, params: usize) -> Result<(), Error> {
        if self.copy_stdio {
            return Err(copy_error());
        }
        check_param_limit(params.max(self.max_param))
    }
}

/// The error for `COPY … FROM STDIN` / `COPY … TO STDOUT` sent through a query method.
pub(crate) fn copy_error() -> Error {
    Error::new(
        ErrorKind::InvalidStatement,
        "COPY FROM STDIN / TO STDOUT cannot run through execute or fetch, and nothing was sent; \
         use conn.copy_in(sql) / conn.copy_out(sql) (or copy_in_rows) on a connection or a \
         transaction (COPY to or from a file on the server works through execute)",
    )
}

/// Refuses a statement with more than [`MAX_PARAMS`] parameters.
pub(crate) fn check_param_limit(count: usize) -> Result<(), Error> {
    if count > MAX_PARAMS {
        return Err(Error::parameter(format!(
            "PostgreSQL takes at most {MAX_PARAMS} parameters per statement, but this one has \
             {count}; split it into several statements, or pass the values as one array \
             parameter (`= ANY($1)`, `unnest($1)`)"
        )));
    }
    Ok(())
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
    // For `COPY` statements only: the parenthesis depth and the previous top-level word, to find
    // `FROM STDIN` and `TO STDOUT` outside a `(query)` or column list.
    let mut copy = Copy::default();
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
                    end_statement(&mut info, words.as_slice(), &copy);
                }
                words = Words::default();
                copy = Copy::default();
                has_content = false;
                i += 1;
            }
            b'(' | b')' => {
                if copy.active {
                    if b == b'(' {
                        copy.depth += 1;
                    } else {
                        copy.depth = copy.depth.saturating_sub(1);
                    }
                }
                has_content = true;
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
                    let word = &sql[start..i];
                    if words.len == 0 {
                        copy.active = word.eq_ignore_ascii_case("COPY");
                    } else if copy.active && copy.depth == 0 {
                        copy.see(word);
                    }
                    words.push(word);
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
        end_statement(&mut info, words.as_slice(), &copy);
    }
    info.multiple_statements = statements > 1;
    info
}

/// Records what one statement, whose first words are `words`, means for the string.
fn end_statement(info: &mut SqlInfo, words: &[&str], copy: &Copy) {
    if let Some(effect) = classify(words) {
        info.effects.push(effect);
    }
    info.transaction_control |= is_transaction_control(words);
    info.copy_stdio |= copy.stdio;
    info.copy_from_stdin |= copy.from_stdin;
}

/// What the scanner follows of a `COPY` statement.
#[derive(Default)]
struct Copy {
    /// The statement starts with `COPY`.
    active: bool,
    /// Parenthesis depth.
    depth: usize,
    /// The previous top-level word was `FROM` (`Some(true)`) or `TO` (`Some(false)`).
    after: Option<bool>,
    /// `FROM STDIN` or `TO STDOUT` was seen.
    stdio: bool,
    /// `FROM STDIN` was seen.
    from_stdin: bool,
}

impl Copy {
    fn see(&mut self, word: &str) {
        let is = |k: &str| word.eq_ignore_ascii_case(k);
        self.from_stdin |= self.after == Some(true) && is("STDIN");
        self.stdio |= match self.after {
            Some(true) => is("STDIN"),
            Some(false) => is("STDOUT"),
            None => false,
        };
        self.after = if is("FROM") {
            Some(true)
        } else if is("TO") {
            Some(false)
        } else {
            None
        };
    }
}

/// Whether a statement starting with `words` controls the transaction (see
/// [`SqlInfo::transaction_control`]).
fn is_transaction_control(words: &[&str]) -> bool {
    let Some(first) = words.first() else {
        return false;
    };
    let keyword = |k: &str| first.eq_ignore_ascii_case(k);
    let second_is = |k: &str| words.get(1).is_some_and(|w| w.eq_ignore_ascii_case(k));
    keyword("BEGIN")
        || keyword("COMMIT")
        || keyword("END")
        || keyword("ROLLBACK")
        || keyword("ABORT")
        || keyword("SAVEPOINT")
        || keyword("RELEASE")
        || (keyword("START") && second_is("TRANSACTION"))
        || (keyword("PREPARE") && second_is("TRANSACTION"))
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

/// Whether `sql`, trimmed and without a trailing `;`, is one of `words` (any case).
pub(crate) fn words_are(sql: &str, words: &[&str]) -> bool {
    let sql = sql.trim().trim_end_matches(';').trim();
    words.iter().any(|word| sql.eq_ignore_ascii_case(word))
}

/// Whether `sql` is a plain `COMMIT` (or `END`), without options.
pub(crate) fn is_plain_commit(sql: &str) -> bool {
    words_are(sql, &["COMMIT", "END"])
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
    fn finds_copy_to_and_from_the_client() {
        let copy = |sql: &str| scan(sql).copy_stdio;
        assert!(copy("COPY t FROM STDIN"));
        assert!(copy("copy t (a, b) from stdin with (format csv)"));
        assert!(copy("COPY t TO STDOUT"));
        assert!(copy("COPY (SELECT a FROM u) TO STDOUT"));
        assert!(copy("COPY t FROM /* where */ STDIN"));
        assert!(copy("SELECT 1; COPY t FROM STDIN"));
        assert!(copy("COPY t FROM STDIN; SELECT 1"));
        assert!(copy("  -- load\n COPY BINARY t FROM stdin"));
        assert!(!copy("COPY t TO '/tmp/x'"));
        assert!(!copy("COPY t FROM '/tmp/stdin'"));
        assert!(!copy("COPY t FROM PROGRAM 'cat stdin'"));
        assert!(!copy("COPY (SELECT stdin FROM stdout) TO '/tmp/x'"));
        assert!(!copy("COPY (SELECT 1 FROM stdin) TO '/tmp/x'"));
        assert!(!copy("SELECT 'COPY t FROM STDIN'"));
        assert!(!copy("SELECT \"COPY\" FROM stdin"));
        assert!(!copy("SELECT 1 -- COPY t FROM STDIN"));
        assert!(!copy("SELECT $$; COPY t FROM STDIN$$"));
        assert!(!copy("SELECT * FROM stdin"));
        assert!(!copy("INSERT INTO t SELECT 1 FROM stdin"));
        assert!(!copy("COPY t TO \"stdout\""));
        let from_stdin = |sql: &str| scan(sql).copy_from_stdin;
        assert!(from_stdin("copy t (a, b) from stdin with (format csv)"));
        assert!(!from_stdin("COPY t TO STDOUT"));
        assert!(!from_stdin("COPY (SELECT a FROM stdin) TO STDOUT"));
    }

    #[test]
    fn flags_every_form_of_transaction_control() {
        let control = |sql: &str| scan(sql).transaction_control;
        for sql in [
            "BEGIN",
            "begin isolation level serializable",
            "START TRANSACTION",
            "COMMIT",
            "COMMIT AND CHAIN",
            "COMMIT PREPARED 'x'",
            "END",
            "ROLLBACK",
            "ROLLBACK PREPARED 'x'",
            "ROLLBACK TO SAVEPOINT s",
            "ABORT",
            "SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "release s",
            "PREPARE TRANSACTION 'x'",
            "BEGIN; INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (1); COMMIT",
            "/* c */ BEGIN",
        ] {
            assert!(control(sql), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "DO $$ BEGIN PERFORM 1; END $$",
            "SELECT 'BEGIN'",
            "SELECT 1 -- COMMIT",
            "PREPARE q AS SELECT 1",
            "START_X",
            "INSERT INTO \"begin\" VALUES (1)",
        ] {
            assert!(!control(sql), "{sql}");
        }
    }

    #[test]
    fn refuses_copy_and_too_many_parameters() {
        assert!(scan("SELECT $1").check(1).is_ok());
        assert!(scan("SELECT $65535").check(65_535).is_ok());
        let err = scan("SELECT 1").check(65_536).unwrap_err();
        assert_eq!(err.kind(), anysql_core::ErrorKind::Parameter);
        assert!(
            err.message().contains("65535") && err.message().contains("65536"),
            "{err}"
        );
        assert!(scan("SELECT $65536").check(0).is_err());
        let err = scan("COPY t FROM STDIN").check(0).unwrap_err();
        assert!(err
            .message()
            .contains("COPY FROM STDIN / TO STDOUT cannot run through execute"));
        assert_eq!(err.kind(), ErrorKind::InvalidStatement);
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
