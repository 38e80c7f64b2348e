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

use std::ops::Range;

use anysql_core::{Columns, Error, Value};
use rusqlite::types::ValueRef;

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

    /// Appends the current row of a query. On the worker.
    pub(crate) fn push(&mut self, row: &rusqlite::Row<'_>) -> Result<(), Error> {
        for i in 0..self.width {
            let cell = match row.get_ref(i).map_err(from_rusqlite)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(bytes) => {
                    let Range { start, end } = self.append(bytes);
                    Cell::Text { start, end }
                }
                ValueRef::Blob(bytes) => {
                    let Range { start, end } = self.append(bytes);
                    Cell::Blob { start, end }
                }
            };
            self.cells.push(cell);
        }
        self.rows += 1;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// Writes row `index` into `out` (`width` slots). On the caller's side.
    pub(crate) fn fill(
        &self,
        index: usize,
        columns: &Columns,
        out: &mut [Value],
    ) -> Result<(), Error> {
        let cells = &self.cells[index * self.width..(index + 1) * self.width];
        for (column, (cell, slot)) in cells.iter().zip(out.iter_mut()).enumerate() {
            *slot = match *cell {
                Cell::Null => Value::Null,
                Cell::Int(v) => Value::Int(v),
                Cell::Real(v) => Value::Float(v),
                Cell::Text { start, end } => match std::str::from_utf8(&self.bytes[start..end]) {
                    Ok(text) => Value::Text(text.to_owned()),
                    Err(e) => return Err(not_utf8(columns, column, e)),
                },
                Cell::Blob { start, end } => Value::Blob(self.bytes[start..end].to_vec()),
            };
        }
        Ok(())
    }

    /// The values of row `index`, newly allocated.
    pub(crate) fn values(&self, index: usize, columns: &Columns) -> Result<Vec<Value>, Error> {
        let mut values = vec![Value::Null; self.width];
        self.fill(index, columns, &mut values)?;
        Ok(values)
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
            batch.push(row).unwrap();
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
    fn text_that_is_not_utf8_is_a_decode_error_naming_the_column() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("SELECT CAST(x'ff' AS TEXT) AS bad").unwrap();
        let mut batch = RowBatch::new(1);
        let mut rows = stmt.raw_query();
        batch.push(rows.next().unwrap().unwrap()).unwrap();
        let err = batch
            .values(0, &Columns::new(["bad".to_string()]))
            .unwrap_err();
        assert_eq!(err.kind(), anysql_core::ErrorKind::Decode);
        assert!(err.message().contains("column 0 (\"bad\")"), "{err}");
    }
}
