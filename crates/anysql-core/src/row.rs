//! [`Row`], its [`Columns`], and the [`FromRow`] conversion.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;
use crate::value::{FromValue, Value};

/// The column names of a result, shared by all its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    names: Box<[String]>,
}

impl Columns {
    /// Columns with these names, in order.
    pub fn new(names: impl IntoIterator<Item = String>) -> Arc<Self> {
        Arc::new(Columns {
            names: names.into_iter().collect(),
        })
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The column names, in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.names.iter().map(String::as_str)
    }

    /// The name of column `index`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// The index of the column called `name`: an exact match first, then one ignoring ASCII case
    /// (databases fold unquoted identifiers to different cases).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .or_else(|| self.names.iter().position(|n| n.eq_ignore_ascii_case(name)))
    }
}

/// One result row: values by index or by column name.
///
/// ```
/// use anysql_core::{Columns, Row, Value};
///
/// let row = Row::new(Columns::new(["id".to_string(), "name".to_string()]), vec![
///     Value::Int(1),
///     Value::Text("ada".into()),
/// ]);
/// assert_eq!(row.get::<i64>(0)?, 1);
/// assert_eq!(row.get::<String>("name")?, "ada");
/// let (id, name): (i32, String) = row.decode()?;
/// assert_eq!((id, name.as_str()), (1, "ada"));
/// # Ok::<(), anysql_core::Error>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Row {
    columns: Arc<Columns>,
    values: Box<[Value]>,
}

impl Row {
    /// A row of `values` under `columns`. For drivers.
    pub fn new(columns: Arc<Columns>, values: Vec<Value>) -> Self {
        debug_assert_eq!(columns.len(), values.len());
        Row {
            columns,
            values: values.into_boxed_slice(),
        }
    }

    /// The columns of this row.
    pub fn columns(&self) -> &Arc<Columns> {
        &self.columns
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The raw values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the raw values, in column order.
    pub fn into_values(self) -> Vec<Value> {
        self.values.into_vec()
    }

    /// The raw value of a column, by index or by name.
    pub fn value(&self, index: impl RowIndex) -> Result<&Value, Error> {
        let i = index.position(&self.columns)?;
        self.values
            .get(i)
            .ok_or_else(|| index.not_found(&self.columns))
    }

    /// Decodes a column, by index or by name.
    pub fn get<T: FromValue>(&self, index: impl RowIndex) -> Result<T, Error> {
        let i = index.position(&self.columns)?;
        let value = self
            .values
            .get(i)
            .ok_or_else(|| index.not_found(&self.columns))?;
        T::from_value_ref(value).map_err(|e| e.context(ColumnLabel(&self.columns, i)))
    }

    /// Decodes the whole row, for example into a tuple.
    pub fn decode<T: FromRow>(self) -> Result<T, Error> {
        T::from_row(self)
    }

    /// The row's value slots, one per column, for a driver that decodes a whole result through one
    /// reused row (see [`DriverConnection::fetch_each`](crate::DriverConnection::fetch_each)).
    ///
    /// The slots hold what the last [`FromRow::from_row_mut`] left behind (NULLs where it took
    /// values); if it took the whole row, fresh NULL slots are put back.
    pub fn refill(&mut self) -> &mut [Value] {
        if self.values.len() != self.columns.len() {
            self.values = vec![Value::Null; self.columns.len()].into_boxed_slice();
        }
        &mut self.values
    }

    /// Takes the whole row out, leaving a row with the same columns and no values behind.
    fn take_whole(&mut self) -> Row {
        Row {
            columns: Arc::clone(&self.columns),
            values: std::mem::take(&mut self.values),
        }
    }

    /// Takes a column's value out, leaving NULL behind; used by [`FromRow`] to avoid copies.
    pub fn take<T: FromValue>(&mut self, index: usize) -> Result<T, Error> {
        let value = self
            .values
            .get_mut(index)
            .ok_or_else(|| index.not_found(&self.columns))?;
        T::from_value(std::mem::replace(value, Value::Null))
            .map_err(|e| e.context(ColumnLabel(&self.columns, index)))
    }
}

struct ColumnLabel<'a>(&'a Columns, usize);

impl fmt::Display for ColumnLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.name(self.1) {
            Some(name) if !name.is_empty() => write!(f, "column {} ({name:?})", self.1),
            _ => write!(f, "column {}", self.1),
        }
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.columns.names().zip(self.values.iter()) {
            map.entry(&name, value);
        }
        map.finish()
    }
}

/// A way to name a column: its index (`usize`) or its name (`&str`).
pub trait RowIndex: private::Sealed + fmt::Display + Copy {
    #[doc(hidden)]
    fn position(&self, columns: &Columns) -> Result<usize, Error>;
    #[doc(hidden)]
    fn not_found(&self, columns: &Columns) -> Error {
        Error::decode(format!(
            "no column {self} in a row of {} column{}",
            columns.len(),
            if columns.len() == 1 { "" } else { "s" }
        ))
    }
}

impl RowIndex for usize {
    fn position(&self, columns: &Columns) -> Result<usize, Error> {
        if *self < columns.len() {
            Ok(*self)
        } else {
            Err(self.not_found(columns))
        }
    }
}

impl RowIndex for &str {
    fn position(&self, columns: &Columns) -> Result<usize, Error> {
        columns.index_of(self).ok_or_else(|| {
            let names: Vec<&str> = columns.names().collect();
            Error::decode(format!("no column named {self:?}; the row has {names:?}"))
        })
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for &str {}
}

/// Converts a whole [`Row`] into a Rust value: tuples of up to 16 [`FromValue`] types, a single
/// [`FromValue`] wrapped as `(T,)`, or [`Row`] itself. Implement it for your own structs.
///
/// ```
/// use anysql_core::{Columns, Error, FromRow, Row, Value};
///
/// struct User {
///     id: i64,
///     name: String,
/// }
///
/// impl FromRow for User {
///     fn from_row(row: Row) -> Result<Self, Error> {
///         Self::from_row_mut(&mut { row })
///     }
///
///     // Optional: lets `fetch_all_as` decode every row of a result from one reused row buffer.
///     fn from_row_mut(row: &mut Row) -> Result<Self, Error> {
///         Ok(User { id: row.take(0)?, name: row.take(1)? })
///     }
/// }
///
/// let row = Row::new(
///     Columns::new(["id".to_string(), "name".to_string()]),
///     vec![Value::Int(7), Value::Text("ada".into())],
/// );
/// let user: User = row.decode()?;
/// assert_eq!((user.id, user.name.as_str()), (7, "ada"));
/// # Ok::<(), Error>(())
/// ```
pub trait FromRow: Sized {
    /// Decodes the row.
    fn from_row(row: Row) -> Result<Self, Error>;

    /// Decodes the row through a mutable borrow, taking out the values it keeps (with
    /// [`Row::take`]) and leaving the rest.
    ///
    /// `fetch_all_as` decodes every row of a result through one row buffer that the driver refills,
    /// so a type that implements this decodes with no allocation per row beyond its own fields.
    /// The default moves the row's values out and calls [`from_row`](Self::from_row), which costs
    /// one allocation per row.
    fn from_row_mut(row: &mut Row) -> Result<Self, Error> {
        Self::from_row(row.take_whole())
    }
}

impl FromRow for Row {
    fn from_row(row: Row) -> Result<Self, Error> {
        Ok(row)
    }
}

macro_rules! tuple_from_row {
    ($n:literal; $($t:ident $i:tt),+) => {
        impl<$($t: FromValue),+> FromRow for ($($t,)+) {
            fn from_row(mut row: Row) -> Result<Self, Error> {
                Self::from_row_mut(&mut row)
            }

            fn from_row_mut(row: &mut Row) -> Result<Self, Error> {
                if row.len() != $n {
                    return Err(Error::decode(format!(
                        "cannot decode a row of {} column{} into a tuple of {}",
                        row.len(),
                        if row.len() == 1 { "" } else { "s" },
                        $n
                    )));
                }
                Ok(($(row.take::<$t>($i)?,)+))
            }
        }
    };
}

tuple_from_row!(1; A 0);
tuple_from_row!(2; A 0, B 1);
tuple_from_row!(3; A 0, B 1, C 2);
tuple_from_row!(4; A 0, B 1, C 2, D 3);
tuple_from_row!(5; A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_from_row!(9; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_from_row!(10; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_from_row!(11; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_from_row!(12; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
tuple_from_row!(13; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
tuple_from_row!(14; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);
tuple_from_row!(15; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14);
tuple_from_row!(16; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn row() -> Row {
        Row::new(
            Columns::new(["id".to_string(), "Name".to_string()]),
            vec![Value::Int(5), Value::Null],
        )
    }

    #[test]
    fn lookup_by_name_ignores_case_as_a_fallback() {
        assert_eq!(row().get::<i64>("ID").unwrap(), 5);
        assert_eq!(row().get::<Option<String>>("name").unwrap(), None);
    }

    #[test]
    fn missing_columns_and_bad_types_are_decode_errors() {
        let err = row().get::<i64>("nope").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.message().contains("no column named \"nope\""), "{err}");
        assert_eq!(row().get::<i64>(9).unwrap_err().kind(), ErrorKind::Decode);
        let err = row().get::<String>(1).unwrap_err();
        assert!(err.message().starts_with("column 1 (\"Name\")"), "{err}");
    }

    #[test]
    fn tuple_arity_must_match() {
        let err = row().decode::<(i64,)>().unwrap_err();
        assert_eq!(
            err.message(),
            "cannot decode a row of 2 columns into a tuple of 1"
        );
        let (id, name): (i64, Option<String>) = row().decode().unwrap();
        assert_eq!((id, name), (5, None));
    }
}
