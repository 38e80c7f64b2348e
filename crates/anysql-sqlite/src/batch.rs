//! [`RowBatch`]: many result rows in one flat buffer, as the worker sends them to the caller.
//!
//! The worker thread does no allocation per row or per cell: numbers go into one vector of cells,
//! and the bytes of every text and blob cell are appended to one byte buffer. The caller's side
//! turns cells into [`Value`]s, allocating each `String` and `Vec<u8>` on the thread that will
//! also free it.
//!
//! Why: a `Vec<Value>` per row and a `String` per text cell, allocated on the worker and freed by
//! the caller, made glibc's allocator take its slow cross-thread paths on both sides (a fifth of
//! the time of fetching 20,000 rows went to `malloc`, `_int_free` and `malloc_consolidate`). The
//! text is validated as UTF-8 once, by the caller, when it becomes a `String`.
//!
//! [`FlatParams`] is the same idea the other way round, for `execute_many`: the caller flattens the
//! parameter sets, dropping its `String`s on its own thread, and the worker binds straight from the
//! buffer.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::sync::Arc;

use anysql_core::{Columns, Error, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Statement;

use crate::error::from_rusqlite;

/// One cell, with text and blob bytes kept in the batch's byte buffer.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    /// The bytes at `start..end` of the buffer.
    Text {
        start: usize,
        end: usize,
    },
    Blob {
        start: usize,
        end: usize,
    },
    /// A number of a column declared decimal, as its decimal text at `start..end` of the buffer
    /// (see [`Decimals`]).
    Numeric {
        start: usize,
        end: usize,
    },
}

impl Cell {
    /// The cell as SQLite takes it, borrowing text and blobs from `bytes`.
    fn value_ref<'a>(&self, bytes: &'a [u8]) -> ValueRef<'a> {
        match *self {
            Cell::Null => ValueRef::Null,
            Cell::Int(v) => ValueRef::Integer(v),
            Cell::Real(v) => ValueRef::Real(v),
            Cell::Text { start, end } | Cell::Numeric { start, end } => {
                ValueRef::Text(&bytes[start..end])
            }
            Cell::Blob { start, end } => ValueRef::Blob(&bytes[start..end]),
        }
    }
}

/// Which result columns of a statement are declared with a decimal type: their numbers are read
/// as [`Value::Numeric`] (see the crate docs, Decimal columns).
///
/// Worked out once per statement, with its column names, by the worker's
/// [`Registry`](crate::statements::Registry), and again only after a schema change; it stays on the
/// worker's side. For a statement without such columns it holds nothing, and reading a cell costs
/// one test of that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Decimals(Option<Arc<[bool]>>);

impl Decimals {
    /// The decimal columns of `stmt`, by their declared types.
    pub(crate) fn of(stmt: &Statement<'_>) -> Decimals {
        let flags: Vec<bool> = stmt
            .columns()
            .map(|column| is_decimal_type(column.decl_type()))
            .collect();
        Decimals(flags.contains(&true).then(|| flags.into()))
    }

    /// Whether column `i` is declared decimal.
    #[inline]
    pub(crate) fn is(&self, i: usize) -> bool {
        match &self.0 {
            None => false,
            Some(flags) => flags.get(i).copied().unwrap_or(false),
        }
    }
}

/// Whether a column's declared type (`sqlite3_column_decltype`: `None` for an expression) names a
/// decimal type: whether it contains `NUMERIC` or `DECIMAL`, in any case (`NUMERIC(40,10)`,
/// `decimal(10,2)`). Not decided by affinity: `BOOLEAN`, `DATE` and any unknown type name get
/// SQLite's NUMERIC affinity too.
pub(crate) fn is_decimal_type(declared: Option<&str>) -> bool {
    declared.is_some_and(|declared| {
        declared
            .as_bytes()
            .windows(7)
            .any(|w| w.eq_ignore_ascii_case(b"NUMERIC") || w.eq_ignore_ascii_case(b"DECIMAL"))
    })
}

/// Where a batch keeps the bytes of its text and blob cells.
trait ByteSink {
    /// Appends `bytes` and returns where they are.
    fn append(&mut self, bytes: &[u8]) -> Range<usize>;

    /// Where the next bytes appended will start.
    fn end(&self) -> usize;
}

impl ByteSink for Vec<u8> {
    fn append(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.len();
        self.extend_from_slice(bytes);
        start..self.len()
    }

    fn end(&self) -> usize {
        self.len()
    }
}

/// Appends `number` as decimal text and returns where it is: no allocation, the digits go
/// straight into the sink.
fn append_number(bytes: &mut impl ByteSink, number: impl fmt::Display) -> Range<usize> {
    struct Sink<'a, S>(&'a mut S);
    impl<S: ByteSink> fmt::Write for Sink<'_, S> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.append(s.as_bytes());
            Ok(())
        }
    }
    let start = bytes.end();
    // Writing a number into a sink that never fails cannot fail.
    let _ = write!(Sink(bytes), "{number}");
    start..bytes.end()
}

/// A REAL of a decimal column as a [`Cell::Numeric`]: the shortest decimal that reads back as the
/// same `f64` (what std's `Display` writes), always without an exponent
/// (`1.2345678901234567e19` is `12345678901234567000`, `0.1` is `0.1`). SQLite stores no NaN (it
/// binds one as NULL), but a column may hold an infinity: those are `Infinity` and `-Infinity`,
/// as PostgreSQL spells them.
fn real_numeric(v: f64, bytes: &mut impl ByteSink) -> Cell {
    let Range { start, end } = if v.is_nan() {
        bytes.append(b"NaN")
    } else if v.is_infinite() {
        bytes.append(if v > 0.0 { b"Infinity" } else { b"-Infinity" })
    } else if v == 0.0 {
        // Not `-0`: a decimal has no negative zero.
        bytes.append(b"0")
    } else {
        append_number(bytes, v)
    };
    Cell::Numeric { start, end }
}

/// Reads cell `i` of the current row, appending its text or blob bytes to `bytes`. The numbers
/// of a `decimal` column become [`Cell::Numeric`]; its text, blobs and NULLs stay as they are.
#[inline]
fn read_cell(
    row: &rusqlite::Row<'_>,
    i: usize,
    decimal: bool,
    bytes: &mut impl ByteSink,
) -> Result<Cell, Error> {
    Ok(match row.get_ref(i).map_err(from_rusqlite)? {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(v) if decimal => {
            let Range { start, end } = append_number(bytes, v);
            Cell::Numeric { start, end }
        }
        ValueRef::Real(v) if decimal => real_numeric(v, bytes),
        ValueRef::Integer(v) => Cell::Int(v),
        ValueRef::Real(v) => Cell::Real(v),
        ValueRef::Text(text) => {
            let Range { start, end } = bytes.append(text);
            Cell::Text { start, end }
        }
        ValueRef::Blob(blob) => {
            let Range { start, end } = bytes.append(blob);
            Cell::Blob { start, end }
        }
    })
}

/// Writes `cells` into `out` as values, taking their bytes from `bytes`. On the caller's side.
fn fill_values(
    cells: &[Cell],
    bytes: &[u8],
    columns: &Columns,
    out: &mut [Value],
) -> Result<(), Error> {
    for (column, (cell, slot)) in cells.iter().zip(out.iter_mut()).enumerate() {
        *slot = match *cell {
            Cell::Null => Value::Null,
            Cell::Int(v) => Value::Int(v),
            Cell::Real(v) => Value::Float(v),
            Cell::Text { start, end } => match std::str::from_utf8(&bytes[start..end]) {
                Ok(text) => Value::Text(text.to_owned()),
                Err(e) => return Err(not_utf8(columns, column, e)),
            },
            Cell::Blob { start, end } => Value::Blob(bytes[start..end].to_vec()),
            Cell::Numeric { start, end } => match std::str::from_utf8(&bytes[start..end]) {
                Ok(text) => Value::Numeric(text.to_owned()),
                Err(e) => return Err(not_utf8(columns, column, e)),
            },
        };
    }
    Ok(())
}

/// Rows of one result, `width` cells each, in one flat buffer.
#[derive(Debug, Default)]
pub(crate) struct RowBatch {
    width: usize,
    rows: usize,
    cells: Vec<Cell>,
    bytes: Vec<u8>,
}

impl RowBatch {
    /// An empty batch of rows `width` cells wide.
    pub(crate) fn new(width: usize) -> Self {
        RowBatch {
            width,
            rows: 0,
            cells: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// The number of rows.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Appends the current row of a query, whose `decimals` columns are declared decimal. On the
    /// worker.
    pub(crate) fn push(
        &mut self,
        row: &rusqlite::Row<'_>,
        decimals: &Decimals,
    ) -> Result<(), Error> {
        for i in 0..self.width {
            let cell = read_cell(row, i, decimals.is(i), &mut self.bytes)?;
            self.cells.push(cell);
        }
        self.rows += 1;
        Ok(())
    }

    /// Writes row `index` into `out` (`width` slots). On the caller's side.
    pub(crate) fn fill(
        &self,
        index: usize,
        columns: &Columns,
        out: &mut [Value],
    ) -> Result<(), Error> {
        let cells = &self.cells[index * self.width..(index + 1) * self.width];
        fill_values(cells, &self.bytes, columns, out)
    }

    /// The values of row `index`, newly allocated.
    pub(crate) fn values(&self, index: usize, columns: &Columns) -> Result<Vec<Value>, Error> {
        let mut values = vec![Value::Null; self.width];
        self.fill(index, columns, &mut values)?;
        Ok(values)
    }
}

/// The widest row a [`OneRow`] holds.
pub(crate) const ONE_ROW_WIDTH: usize = 8;
/// The text and blob bytes a [`OneRow`] holds in place; more go to the heap.
const ONE_ROW_BYTES: usize = 96;

/// The single row of a point query, held entirely in place when its text fits: it travels in the
/// reply itself, with nothing allocated on the worker for the caller to free.
#[derive(Debug)]
pub(crate) struct OneRow {
    width: usize,
    cells: [Cell; ONE_ROW_WIDTH],
    bytes: InlineBytes,
}

impl OneRow {
    /// The current row of a query, if it is at most [`ONE_ROW_WIDTH`] cells wide, with its
    /// `decimals` columns declared decimal. On the worker.
    pub(crate) fn read(
        row: &rusqlite::Row<'_>,
        width: usize,
        decimals: &Decimals,
    ) -> Result<Option<OneRow>, Error> {
        if width > ONE_ROW_WIDTH {
            return Ok(None);
        }
        let mut one = OneRow {
            width,
            cells: [Cell::Null; ONE_ROW_WIDTH],
            bytes: InlineBytes {
                len: 0,
                inline: [0; ONE_ROW_BYTES],
                spilled: Vec::new(),
            },
        };
        for i in 0..width {
            one.cells[i] = read_cell(row, i, decimals.is(i), &mut one.bytes)?;
        }
        Ok(Some(one))
    }

    /// The row's values. On the caller's side.
    pub(crate) fn values(&self, columns: &Columns) -> Result<Vec<Value>, Error> {
        let mut values = vec![Value::Null; self.width];
        fill_values(
            &self.cells[..self.width],
            self.bytes.get(),
            columns,
            &mut values,
        )?;
        Ok(values)
    }
}

/// Bytes held in place up to [`ONE_ROW_BYTES`], all moved to the heap beyond.
#[derive(Debug)]
struct InlineBytes {
    len: usize,
    inline: [u8; ONE_ROW_BYTES],
    spilled: Vec<u8>,
}

impl InlineBytes {
    fn get(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

impl ByteSink for InlineBytes {
    fn end(&self) -> usize {
        self.len
    }

    fn append(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.len;
        let end = start + bytes.len();
        if self.spilled.is_empty() && end <= ONE_ROW_BYTES {
            self.inline[start..end].copy_from_slice(bytes);
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..start]);
            }
            self.spilled.extend_from_slice(bytes);
        }
        self.len = end;
        start..end
    }
}

/// Parameter sets of an `execute_many`, flattened by the caller, bound by the worker.
#[derive(Debug, Default)]
pub(crate) struct FlatParams {
    cells: Vec<Cell>,
    /// Where each set's cells end.
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl FlatParams {
    /// Appends a parameter set. On the caller's side. Fails, naming the parameter, for a value
    /// SQLite cannot store.
    pub(crate) fn push(&mut self, set: Vec<Value>) -> Result<(), Error> {
        for (i, value) in set.into_iter().enumerate() {
            let cell = match value {
                Value::Null => Cell::Null,
                Value::Bool(v) => Cell::Int(i64::from(v)),
                Value::Int(v) => Cell::Int(v),
                Value::Float(v) => Cell::Real(v),
                // SQLite has no decimal type: a numeric goes in as its text, as `value::bind` does.
                Value::Text(text) | Value::Numeric(text) | Value::Json(text) => {
                    let Range { start, end } = ByteSink::append(&mut self.bytes, text.as_bytes());
                    Cell::Text { start, end }
                }
                Value::Blob(blob) => {
                    let Range { start, end } = ByteSink::append(&mut self.bytes, &blob);
                    Cell::Blob { start, end }
                }
                Value::Uuid(bytes) => {
                    let Range { start, end } = ByteSink::append(&mut self.bytes, &bytes);
                    Cell::Blob { start, end }
                }
                other => match crate::value::stored_text(&other) {
                    Ok(text) => {
                        let Range { start, end } =
                            ByteSink::append(&mut self.bytes, text.as_bytes());
                        Cell::Text { start, end }
                    }
                    Err(why) => {
                        return Err(Error::parameter(format!(
                            "a parameter cannot be sent to sqlite: {why}"
                        ))
                        .context(format_args!("parameter ${}", i + 1)))
                    }
                },
            };
            self.cells.push(cell);
        }
        self.ends.push(self.cells.len());
        Ok(())
    }

    /// The number of sets.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Binds set `index` to `stmt`, after checking the number of parameters. On the worker.
    pub(crate) fn bind(&self, index: usize, stmt: &mut Statement<'_>) -> Result<(), Error> {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        let cells = &self.cells[start..self.ends[index]];
        let expected = stmt.parameter_count();
        if expected != cells.len() {
            return Err(Error::parameter_count(expected, cells.len()));
        }
        for (i, cell) in cells.iter().enumerate() {
            let value = ToSqlOutput::Borrowed(cell.value_ref(&self.bytes));
            stmt.raw_bind_parameter(i + 1, value)
                .map_err(|e| from_rusqlite(e).context(format_args!("parameter ${}", i + 1)))?;
        }
        Ok(())
    }
}

fn not_utf8(columns: &Columns, column: usize, e: std::str::Utf8Error) -> Error {
    let name = columns.name(column).unwrap_or_default();
    Error::decode(format!(
        "column {column} ({name:?}) holds text that is not valid utf-8 ({e}); read it as a blob \
         with CAST(.. AS BLOB)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_come_back_as_they_went_in() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT 1, 'a', 2.5, x'00ff', NULL UNION ALL SELECT -7, 'héllo', 0.0, x'', 'z'",
            )
            .unwrap();
        let mut batch = RowBatch::new(5);
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().unwrap() {
            batch.push(row, &Decimals::default()).unwrap();
        }
        assert_eq!(batch.len(), 2);
        let columns = Columns::new((0..5).map(|i| format!("c{i}")));
        assert_eq!(
            batch.values(0, &columns).unwrap(),
            vec![
                Value::Int(1),
                Value::Text("a".into()),
                Value::Float(2.5),
                Value::Blob(vec![0, 255]),
                Value::Null
            ]
        );
        assert_eq!(
            batch.values(1, &columns).unwrap(),
            vec![
                Value::Int(-7),
                Value::Text("héllo".into()),
                Value::Float(0.0),
                Value::Blob(vec![]),
                Value::Text("z".into())
            ]
        );
    }

    #[test]
    fn one_row_holds_short_text_in_place_and_spills_long_text() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let long = "x".repeat(300);
        let mut stmt = conn
            .prepare("SELECT 'short', ?1, x'01', 4.5, NULL, -1")
            .unwrap();
        let columns = Columns::new((0..6).map(|i| format!("c{i}")));
        for second in ["tiny", long.as_str()] {
            let mut rows = stmt.query([second]).unwrap();
            let row = rows.next().unwrap().unwrap();
            let one = OneRow::read(row, 6, &Decimals::default()).unwrap().unwrap();
            assert_eq!(one.bytes.spilled.is_empty(), second.len() < 50);
            assert_eq!(
                one.values(&columns).unwrap(),
                vec![
                    Value::Text("short".into()),
                    Value::Text(second.into()),
                    Value::Blob(vec![1]),
                    Value::Float(4.5),
                    Value::Null,
                    Value::Int(-1)
                ]
            );
        }
        let mut wide = conn.prepare("SELECT 1, 2, 3, 4, 5, 6, 7, 8, 9").unwrap();
        let mut rows = wide.raw_query();
        assert!(
            OneRow::read(rows.next().unwrap().unwrap(), 9, &Decimals::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn parameter_sets_bind_as_they_went_in() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut sets = FlatParams::default();
        sets.push(vec![
            Value::Int(1),
            Value::Text("a".into()),
            Value::Bool(true),
        ])
        .unwrap();
        sets.push(vec![
            Value::Null,
            Value::Blob(vec![1, 2]),
            Value::Float(0.5),
        ])
        .unwrap();
        sets.push(vec![Value::Int(3)]).unwrap();
        assert_eq!(sets.len(), 3);
        let mut stmt = conn
            .prepare("SELECT typeof(?1), quote(?1), quote(?2), quote(?3)")
            .unwrap();
        let mut seen = Vec::new();
        for i in 0..2 {
            sets.bind(i, &mut stmt).unwrap();
            let mut rows = stmt.raw_query();
            let row = rows.next().unwrap().unwrap();
            seen.push(
                (0..4)
                    .map(|c| row.get::<_, String>(c).unwrap())
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(seen[0], ["integer", "1", "'a'", "1"]);
        assert_eq!(seen[1], ["null", "NULL", "X'0102'", "0.5"]);
        let err = sets.bind(2, &mut stmt).unwrap_err();
        assert_eq!(err.kind(), anysql_core::ErrorKind::Parameter, "{err}");
    }

    #[test]
    fn text_that_is_not_utf8_is_a_decode_error_naming_the_column() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("SELECT CAST(x'ff' AS TEXT) AS bad").unwrap();
        let mut batch = RowBatch::new(1);
        let mut rows = stmt.raw_query();
        batch
            .push(rows.next().unwrap().unwrap(), &Decimals::default())
            .unwrap();
        let err = batch
            .values(0, &Columns::new(["bad".to_string()]))
            .unwrap_err();
        assert_eq!(err.kind(), anysql_core::ErrorKind::Decode);
        assert!(err.message().contains("column 0 (\"bad\")"), "{err}");
    }
}
