//! Reading libtest's summary lines and printing the matrix table.

use std::fmt::Write as _;
use std::ops::AddAssign;
use std::time::Duration;

/// Test counts, summed over every `test result:` line of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

/// Whether `line` is one of libtest's closing lines, e.g.
/// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
pub fn is_summary_line(line: &str) -> bool {
    line.trim_start().starts_with("test result: ")
}

/// Sums the counts of every libtest summary line in `output` (one per test binary and one for doc tests);
/// `None` if there is none, say because the build failed.
pub fn sum_summaries(output: &str) -> Option<Counts> {
    output
        .lines()
        .filter_map(parse_summary)
        .reduce(|mut sum, counts| {
            sum += counts;
            sum
        })
}

/// Parses one summary line; `None` if the line is not one.
pub fn parse_summary(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    // Skip the verdict ("ok." or "FAILED."), then read the `N word` fields separated by `;`.
    let (_verdict, fields) = rest.split_once(". ")?;
    let mut counts = Counts::default();
    let mut seen = false;
    for field in fields.split(';') {
        let mut words = field.split_whitespace();
        let (Some(number), Some(word)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match word {
            "passed" => counts.passed = number,
            "failed" => counts.failed = number,
            "ignored" => counts.ignored = number,
            _ => continue,
        }
        seen = true;
    }
    seen.then_some(counts)
}

/// How a row of the matrix ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "SKIPPED",
        }
    }
}

/// One line of the final table: the unit step or one runtime × driver cell.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub outcome: Outcome,
    /// `None` when nothing ran (skipped, or the suite did not build).
    pub counts: Option<Counts>,
    pub elapsed: Option<Duration>,
    /// Why a row was skipped or failed without running tests.
    pub note: String,
}

impl Row {
    pub fn not_run(name: String, outcome: Outcome, note: String) -> Row {
        Row {
            name,
            outcome,
            counts: None,
            elapsed: None,
            note,
        }
    }
}

/// Renders the table printed at the end of `cargo xtask test-matrix`.
pub fn render_table(rows: &[Row]) -> String {
    let header = [
        "cell", "result", "passed", "failed", "ignored", "seconds", "note",
    ];
    let mut lines: Vec<[String; 7]> = vec![header.map(String::from)];
    for row in rows {
        let number = |pick: fn(&Counts) -> u64| {
            row.counts
                .as_ref()
                .map_or("-".to_owned(), |c| pick(c).to_string())
        };
        lines.push([
            row.name.clone(),
            row.outcome.label().to_owned(),
            number(|c| c.passed),
            number(|c| c.failed),
            number(|c| c.ignored),
            row.elapsed
                .map_or("-".to_owned(), |e| format!("{:.1}", e.as_secs_f64())),
            row.note.clone(),
        ]);
    }

    // Width in chars, not bytes: cell names contain "×".
    let mut widths = [0; 7];
    for line in &lines {
        for (width, field) in widths.iter_mut().zip(line) {
            *width = (*width).max(field.chars().count());
        }
    }
    let numeric = [false, false, true, true, true, true, false];

    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        let mut text = String::new();
        for (column, field) in line.iter().enumerate() {
            if column > 0 {
                text.push_str("  ");
            }
            let pad = " ".repeat(widths[column] - field.chars().count());
            if numeric[column] {
                text.push_str(&pad);
                text.push_str(field);
            } else {
                text.push_str(field);
                text.push_str(&pad);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
        if index == 0 {
            // The rule stops where the notes begin; a long note would make it absurdly long.
            let rule = widths[..6].iter().sum::<usize>() + 2 * 6 + "note".len();
            let _ = writeln!(out, "{}", "-".repeat(rule));
        }
    }
    out
}

/// The closing line the CI harness reads: `N passed, N failed, N skipped`.
///
/// `skipped` counts ignored tests. A failed row that reported no failing test (a build error, a crash, or a
/// PostgreSQL cell that CI requires but could not run) adds one failure, so the line never claims success
/// for a failed run.
pub fn totals_line(rows: &[Row]) -> String {
    let mut total = Counts::default();
    for row in rows {
        let counts = row.counts.unwrap_or_default();
        total += counts;
        if row.outcome == Outcome::Fail && counts.failed == 0 {
            total.failed += 1;
        }
    }
    format!(
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, total.ignored
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_ok_line() {
        let line = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.52s";
        assert_eq!(
            parse_summary(line),
            Some(Counts {
                passed: 12,
                failed: 0,
                ignored: 3
            })
        );
    }

    #[test]
    fn parses_a_failed_line() {
        let line = "test result: FAILED. 7 passed; 2 failed; 0 ignored; 0 measured; 5 filtered out; finished in 1.00s";
        assert_eq!(
            parse_summary(line),
            Some(Counts {
                passed: 7,
                failed: 2,
                ignored: 0
            })
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(parse_summary("test foo ... ok"), None);
        assert_eq!(parse_summary("running 3 tests"), None);
        assert_eq!(parse_summary("test result: nonsense"), None);
        assert!(!is_summary_line("test tests::result ... ok"));
    }

    #[test]
    fn sums_every_binary_and_doc_tests() {
        let output = "\
     Running unittests src/lib.rs (target/debug/deps/a-1)

running 2 tests
test a ... ok
test b ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/cells.rs (target/debug/deps/cells-2)
test result: FAILED. 40 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 3.10s

   Doc-tests a
test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.20s
";
        assert_eq!(
            sum_summaries(output),
            Some(Counts {
                passed: 47,
                failed: 1,
                ignored: 3
            })
        );
        assert_eq!(sum_summaries("error: could not compile `anysql`"), None);
    }

    #[test]
    fn totals_count_failed_rows_without_failing_tests() {
        let rows = vec![
            Row {
                name: "tokio × sqlite".into(),
                outcome: Outcome::Pass,
                counts: Some(Counts {
                    passed: 10,
                    failed: 0,
                    ignored: 1,
                }),
                elapsed: Some(Duration::from_secs(2)),
                note: String::new(),
            },
            Row {
                name: "smol × sqlite".into(),
                outcome: Outcome::Fail,
                counts: Some(Counts {
                    passed: 8,
                    failed: 2,
                    ignored: 0,
                }),
                elapsed: Some(Duration::from_secs(2)),
                note: String::new(),
            },
            Row::not_run(
                "tokio × postgres".into(),
                Outcome::Fail,
                "CI needs PostgreSQL".into(),
            ),
            Row::not_run(
                "smol × postgres".into(),
                Outcome::Skipped,
                "no PostgreSQL".into(),
            ),
        ];
        assert_eq!(totals_line(&rows), "18 passed, 3 failed, 1 skipped");
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            Row {
                name: "tokio × sqlite".into(),
                outcome: Outcome::Pass,
                counts: Some(Counts {
                    passed: 120,
                    failed: 0,
                    ignored: 0,
                }),
                elapsed: Some(Duration::from_millis(3300)),
                note: String::new(),
            },
            Row::not_run(
                "async-std × postgres".into(),
                Outcome::Skipped,
                "no PostgreSQL".into(),
            ),
        ];
        let table = render_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "cell                  result   passed  failed  ignored  seconds  note"
        );
        assert_eq!(
            lines[2],
            "tokio × sqlite        PASS        120       0        0      3.3"
        );
        assert_eq!(
            lines[3],
            "async-std × postgres  SKIPPED       -       -        -        -  no PostgreSQL"
        );
    }
}
