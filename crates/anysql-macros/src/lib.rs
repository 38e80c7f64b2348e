//! The derive macros of [anysql](https://docs.rs/anysql): `#[derive(FromRow)]`.
//!
//! Use them through the `anysql` crate (its `macros` feature, on by default), as
//! `anysql::FromRow`; this crate is an implementation detail. See [`FromRow`](derive@FromRow).

mod attr;
mod case;
mod from_row;

use proc_macro::TokenStream;

/// Derives `FromRow` for a struct: each field is decoded from one column of the row.
///
/// The fields of a struct with named fields are read by column name (an exact match first, then
/// one ignoring ASCII case); the fields of a tuple struct by position, column 0 first, and a row
/// with more columns than the tuple struct reads is an error. Columns that no field reads are
/// ignored. Each field's type decodes its column with `FromValue`; an `Option<T>` field accepts
/// NULL.
///
/// A missing column or one that does not decode into the field's type is an
/// [`ErrorKind::Decode`](https://docs.rs/anysql/latest/anysql/enum.ErrorKind.html) error that
/// names the field and the column: ``decoding field `age` of User: column 2 ("age"): cannot decode
/// a text value into i64`` or ``decoding field `age` of User: no column named "age"; the row has
/// ["id", "name"]``.
///
/// ```
/// use anysql::{Columns, FromRow, Row, Value};
///
/// #[derive(FromRow, Debug, PartialEq)]
/// struct User {
///     id: i64,
///     name: String,
///     email: Option<String>,
/// }
///
/// let columns = Columns::new(["id", "name", "email"].map(String::from));
/// let row = Row::new(columns, vec![Value::Int(1), Value::Text("Ada".into()), Value::Null]);
/// let user: User = row.decode()?;
/// assert_eq!(user, User { id: 1, name: "Ada".into(), email: None });
///
/// #[derive(FromRow)]
/// struct Pair(i64, String);
///
/// let columns = Columns::new(["a", "b"].map(String::from));
/// let pair: Pair = Row::new(columns, vec![Value::Int(2), Value::Text("b".into())]).decode()?;
/// assert_eq!((pair.0, pair.1.as_str()), (2, "b"));
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// The generated `from_row_mut` moves each value out of the row (with `Row::take`), so
/// `fetch_all_as` decodes a whole result through one reused row buffer with no allocation per row
/// beyond the fields' own. Each column is therefore read by one field only: two fields of one
/// struct naming the same column is a compile error.
///
/// Generic structs work: a field whose type mentions a type parameter adds the bound it needs
/// (`T: FromValue`, `T: FromRow` for `flatten`, `T: Default` for `default` and `skip`) to the
/// impl's where clause.
///
/// ```
/// # use anysql::{Columns, FromRow, Row, Value};
/// #[derive(FromRow)]
/// struct Tagged<T> {
///     tag: String,
///     value: T,
/// }
///
/// let columns = Columns::new(["tag", "value"].map(String::from));
/// let row = Row::new(columns, vec![Value::Text("n".into()), Value::Int(5)]);
/// let tagged: Tagged<i32> = row.decode()?;
/// assert_eq!((tagged.tag.as_str(), tagged.value), ("n", 5));
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// # Struct attributes
///
/// ## `#[anysql(rename_all = "..")]`
///
/// Renames every field that has no `rename` of its own: `"snake_case"`, `"camelCase"`,
/// `"PascalCase"`, `"SCREAMING_SNAKE_CASE"`, `"kebab-case"`, `"lowercase"` or `"UPPERCASE"`. A
/// field name is split into words at underscores and where a lowercase letter or digit is followed
/// by an uppercase one.
///
/// ```
/// # use anysql::{Columns, FromRow, Row, Value};
/// #[derive(FromRow)]
/// #[anysql(rename_all = "camelCase")]
/// struct Account {
///     user_id: i64,
///     display_name: String,
/// }
///
/// let columns = Columns::new(["userId", "displayName"].map(String::from));
/// let row = Row::new(columns, vec![Value::Int(3), Value::Text("Grace".into())]);
/// let account: Account = row.decode()?;
/// assert_eq!((account.user_id, account.display_name.as_str()), (3, "Grace"));
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// ## `#[anysql(crate = "..")]`
///
/// The path the generated code names `FromRow`, `FromValue`, `Row` and `Error` through; the
/// default is `::anysql::core`. Code that depends on `anysql-core` and not on `anysql` writes
/// `#[anysql(crate = "anysql_core")]`.
///
/// ```
/// # use anysql::{Columns, FromRow, Row, Value};
/// mod reexport {
///     pub use anysql::core as db;
/// }
///
/// #[derive(FromRow)]
/// #[anysql(crate = "reexport::db")]
/// struct Count {
///     n: i64,
/// }
///
/// let row = Row::new(Columns::new(["n".to_string()]), vec![Value::Int(9)]);
/// assert_eq!(row.decode::<Count>()?.n, 9);
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// # Field attributes
///
/// ## `#[anysql(rename = "..")]`
///
/// Reads the column of that name instead of the field's name (and overrides `rename_all`). Named
/// fields only.
///
/// ```
/// # use anysql::{Columns, FromRow, Row, Value};
/// #[derive(FromRow)]
/// struct Item {
///     #[anysql(rename = "type")]
///     kind: String,
/// }
///
/// let row = Row::new(Columns::new(["type".to_string()]), vec![Value::Text("book".into())]);
/// assert_eq!(row.decode::<Item>()?.kind, "book");
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// ## `#[anysql(default)]`
///
/// A missing column gives `Default::default()`. A column that is present still has to decode: a
/// wrong type is an error, not the default. In a tuple struct, a missing column is one past the
/// end of the row.
///
/// ```
/// # use anysql::{Columns, FromRow, Row, Value};
/// #[derive(FromRow)]
/// struct Settings {
///     name: String,
///     #[anysql(default)]
///     retries: i64,
/// }
///
/// let row = Row::new(Columns::new(["name".to_string()]), vec![Value::Text("x".into())]);
/// assert_eq!(row.decode::<Settings>()?.retries, 0);
///
/// let columns = Columns::new(["name", "retries"].map(String::from));
/// let row = Row::new(columns, vec![Value::Text("x".into()), Value::Text("three".into())]);
/// assert!(row.decode::<Settings>().is_err());
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// ## `#[anysql(flatten)]`
///
/// The field's type is itself `FromRow` and decodes from the same row, by its own column names:
/// flatten a struct with named fields (a tuple struct or a tuple would read columns by position,
/// which is rarely what a flattened field means). Fields are decoded in declaration order and each
/// value is moved out of the row when read, so a flattened struct and its parent must not read the
/// same column: the second reader would find NULL there. Named fields only; it cannot be combined
/// with `rename`, `default` or `try_from`.
///
/// ```
/// # use anysql::{Columns, FromRow, Row, Value};
/// #[derive(FromRow)]
/// struct Address {
///     city: String,
///     zip: String,
/// }
///
/// #[derive(FromRow)]
/// struct Customer {
///     name: String,
///     #[anysql(flatten)]
///     address: Address,
/// }
///
/// let columns = Columns::new(["name", "city", "zip"].map(String::from));
/// let values = ["Ada", "London", "N1"].map(|s| Value::Text(s.into())).to_vec();
/// let customer: Customer = Row::new(columns, values).decode()?;
/// assert_eq!((customer.name.as_str(), customer.address.city.as_str()), ("Ada", "London"));
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// ## `#[anysql(try_from = "T")]`
///
/// Decodes the column as `T`, then converts it with `TryFrom<T>`; a failed conversion is a decode
/// error naming the field and the column, with the conversion error's `Display`.
///
/// ```
/// # use anysql::{Columns, FromRow, Row, Value};
/// #[derive(FromRow, Debug)]
/// struct Stock {
///     #[anysql(try_from = "i64")]
///     count: u64,
/// }
///
/// let row = Row::new(Columns::new(["count".to_string()]), vec![Value::Int(12)]);
/// assert_eq!(row.decode::<Stock>()?.count, 12);
///
/// let row = Row::new(Columns::new(["count".to_string()]), vec![Value::Int(-1)]);
/// let err = row.decode::<Stock>().unwrap_err();
/// assert!(err.message().starts_with("decoding field `count` of Stock: column 0 (\"count\")"));
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// ## `#[anysql(skip)]`
///
/// The field reads no column and is `Default::default()`.
///
/// ```
/// # use anysql::{Columns, FromRow, Row, Value};
/// #[derive(FromRow)]
/// struct Page {
///     title: String,
///     #[anysql(skip)]
///     views: Vec<u64>,
/// }
///
/// let row = Row::new(Columns::new(["title".to_string()]), vec![Value::Text("Home".into())]);
/// assert!(row.decode::<Page>()?.views.is_empty());
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// In a tuple struct, skipped fields take no position: `struct P(i64, #[anysql(skip)] u8, String)`
/// reads columns 0 and 1.
///
/// # Mistakes caught at compile time
///
/// A misused attribute is a compile error pointing at it. An unknown key:
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// struct User {
///     #[anysql(renamed = "user_name")]
///     name: String,
/// }
/// ```
///
/// The same key twice:
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// struct User {
///     #[anysql(rename = "a", rename = "b")]
///     name: String,
/// }
/// ```
///
/// A struct attribute on a field (and the other way round):
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// struct User {
///     #[anysql(rename_all = "camelCase")]
///     name: String,
/// }
/// ```
///
/// An unknown `rename_all` rule:
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// #[anysql(rename_all = "camel")]
/// struct User {
///     name: String,
/// }
/// ```
///
/// `rename` on a tuple struct's field (they are read by position):
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// struct Pair(#[anysql(rename = "a")] i64, String);
/// ```
///
/// `flatten` with `rename`:
///
/// ```compile_fail
/// # #[derive(anysql::FromRow)]
/// # struct Address { city: String }
/// #[derive(anysql::FromRow)]
/// struct Customer {
///     #[anysql(flatten, rename = "address")]
///     address: Address,
/// }
/// ```
///
/// `try_from` with a type that is not a string:
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// struct Stock {
///     #[anysql(try_from = i64)]
///     count: u64,
/// }
/// ```
///
/// `skip` with anything else:
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// struct Page {
///     #[anysql(skip, default)]
///     views: u64,
/// }
/// ```
///
/// Two fields reading one column:
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// struct User {
///     name: String,
///     #[anysql(rename = "name")]
///     also_name: String,
/// }
/// ```
///
/// An enum or a union:
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// enum State {
///     On,
///     Off,
/// }
/// ```
///
/// ```compile_fail
/// #[derive(anysql::FromRow)]
/// union Bits {
///     a: u32,
///     b: f32,
/// }
/// ```
#[proc_macro_derive(FromRow, attributes(anysql))]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    from_row::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
