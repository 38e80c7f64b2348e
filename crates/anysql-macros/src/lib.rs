//! The macros of [anysql](https://docs.rs/anysql): `#[derive(FromRow)]`, `#[derive(Type)]`,
//! `migrate!` and `#[anysql::test]`.
//!
//! Use them through the `anysql` crate (its `macros` feature, on by default), as
//! `anysql::FromRow` and `anysql::Type`; this crate is an implementation detail. See
//! [`FromRow`](derive@FromRow) and [`Type`](derive@Type).

mod attr;
mod case;
mod from_row;
mod migrate;
mod test_attr;
mod value_type;

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

/// Derives `ToValue`, `FromValue` and `ArrayElement` for an enum stored as text or a newtype
/// stored as its field.
///
/// The type can then be bound as a parameter (`query(..).bind(Mood::Happy)`), read from a column
/// (`query_scalar::<Mood>`, a tuple in `query_as`, a `#[derive(FromRow)]` field), used as
/// `Option<Mood>` for a column that may be NULL, and bound as an array in a `Vec` or a slice.
/// There is no `Type` trait: the name is the derive's only, and `use anysql::Type;` imports it.
///
/// # Enums: stored as text
///
/// An enum whose variants are all unit variants is stored as the name of its variant:
///
/// * `ToValue` gives `Value::Text` of the variant's name.
/// * `FromValue` accepts a `Value::Text` that is exactly one of the names (case and spaces
///   count). Any other text is an
///   [`ErrorKind::Decode`](https://docs.rs/anysql/latest/anysql/enum.ErrorKind.html) error that
///   names the type, the text and the names it accepts: ``cannot decode "angry" into Mood;
///   expected one of ["Happy", "Sad"]``. NULL is the usual ``unexpected NULL; decode into
///   Option<Mood> to accept NULL``, and a value that is not text ``cannot decode a integer
///   value into Mood``.
/// * `ArrayElement`: `Vec<Mood>` binds as an array of the names, and decodes from one.
///
/// A name is the variant's as written, unless the enum has `rename_all` or the variant `rename`.
///
/// ```
/// use anysql::{FromValue, ToValue, Type, Value};
///
/// #[derive(Type, Debug, Clone, Copy, PartialEq, Eq)]
/// enum Mood {
///     Happy,
///     Sad,
/// }
///
/// assert_eq!(Mood::Happy.to_value(), Value::Text("Happy".into()));
/// assert_eq!(Mood::from_value(Value::Text("Sad".into()))?, Mood::Sad);
/// assert_eq!(Option::<Mood>::from_value(Value::Null)?, None);
///
/// let err = Mood::from_value(Value::Text("angry".into())).unwrap_err();
/// assert_eq!(err.message(), r#"cannot decode "angry" into Mood; expected one of ["Happy", "Sad"]"#);
///
/// assert_eq!(
///     vec![Mood::Sad, Mood::Happy].to_value(),
///     Value::Array(vec![Value::Text("Sad".into()), Value::Text("Happy".into())])
/// );
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// ## A PostgreSQL enum type, or a SQLite TEXT column
///
/// The same Rust enum serves a PostgreSQL enum type whose labels are its names (PostgreSQL binds
/// an enum parameter from text and sends its values as text) and a plain text column on SQLite,
/// where a `CHECK` constraint can keep other text out:
///
/// ```sql
/// -- PostgreSQL
/// CREATE TYPE mood AS ENUM ('happy', 'sad', 'so_so');
/// CREATE TABLE people (name text NOT NULL, mood mood NOT NULL);
///
/// -- SQLite
/// CREATE TABLE people (
///     name TEXT NOT NULL,
///     mood TEXT NOT NULL CHECK (mood IN ('happy', 'sad', 'so_so'))
/// );
/// ```
///
/// ```
/// use anysql::{query, query_as, query_scalar, Engine, FromRow, Type};
///
/// #[derive(Type, Debug, Clone, Copy, PartialEq, Eq)]
/// #[anysql(rename_all = "snake_case")]
/// enum Mood {
///     Happy,
///     Sad,
///     SoSo,
/// }
///
/// #[derive(FromRow, Debug)]
/// struct Person {
///     name: String,
///     mood: Mood,
/// }
///
/// // The same code for both databases: the engine of `create_async_engine("postgres://..")` or
/// // of `create_async_engine("sqlite:app.db")`.
/// async fn record(engine: &Engine, name: &str, mood: Mood) -> Result<u64, anysql::Error> {
///     query("INSERT INTO people (name, mood) VALUES ($1, $2)")
///         .bind(name)
///         .bind(mood)
///         .execute(engine)
///         .await
/// }
///
/// async fn mood_of(engine: &Engine, name: &str) -> Result<Option<Mood>, anysql::Error> {
///     query_scalar("SELECT mood FROM people WHERE name = $1")
///         .bind(name)
///         .fetch_optional(engine)
///         .await
/// }
///
/// async fn feeling(engine: &Engine, mood: Mood) -> Result<Vec<Person>, anysql::Error> {
///     query_as("SELECT name, mood FROM people WHERE mood = $1")
///         .bind(mood)
///         .fetch_all(engine)
///         .await
/// }
/// ```
///
/// A label the database has and the Rust enum lacks is found when a row holding it is decoded:
/// it is the decode error above, not a compile error.
///
/// # Newtypes: stored as their field
///
/// A struct with one field, a tuple struct or one with a named field, marked
/// `#[anysql(transparent)]`, binds and decodes as that field: `ToValue` and `FromValue` call the
/// field's, so a `UserId(i64)` is an integer and a failed decode is the field type's error,
/// unchanged. It is an `ArrayElement` when its field's type is one: `Vec<UserId>` binds as an
/// array because `i64` would, and a newtype of `u8` has no arrays (a `Vec<u8>` is bytes).
///
/// ```
/// use anysql::{FromValue, ToValue, Type, Value};
///
/// #[derive(Type, Debug, Clone, Copy, PartialEq, Eq, Hash)]
/// #[anysql(transparent)]
/// struct UserId(i64);
///
/// #[derive(Type, Debug, PartialEq)]
/// #[anysql(transparent)]
/// struct Email {
///     address: String,
/// }
///
/// assert_eq!(UserId(7).to_value(), Value::Int(7));
/// assert_eq!(UserId::from_value(Value::Int(7))?, UserId(7));
/// let err = UserId::from_value(Value::Text("seven".into())).unwrap_err();
/// assert_eq!(err.message(), "cannot decode a text value into i64");
/// assert_eq!(
///     vec![UserId(1), UserId(2)].to_value(),
///     Value::Array(vec![Value::Int(1), Value::Int(2)])
/// );
/// assert_eq!(Email { address: "a@b.c".into() }.to_value(), Value::Text("a@b.c".into()));
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// Generic newtypes work: the struct's own bounds are kept, and a field whose type mentions a
/// parameter adds the bound each impl needs (`T: ToValue` on `ToValue`, `T: FromValue` on
/// `FromValue`, `T: ArrayElement` on `ArrayElement`). So do newtypes that borrow, for binding:
///
/// ```
/// use anysql::{FromValue, ToValue, Type, Value};
///
/// #[derive(Type, Debug, PartialEq)]
/// #[anysql(transparent)]
/// struct Checked<T>(T);
///
/// assert_eq!(Checked(3u8).to_value(), Value::Int(3));
/// assert_eq!(Checked::<String>::from_value(Value::Text("x".into()))?, Checked("x".to_string()));
///
/// #[derive(Type)]
/// #[anysql(transparent)]
/// struct Name<'a>(&'a str);
///
/// assert_eq!(Name("Ada").to_value(), Value::Text("Ada".into()));
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// # Attributes
///
/// ## `#[anysql(rename_all = "..")]` on an enum
///
/// Renames every variant that has no `rename` of its own: `"snake_case"`, `"camelCase"`,
/// `"PascalCase"`, `"SCREAMING_SNAKE_CASE"`, `"kebab-case"`, `"lowercase"` or `"UPPERCASE"`. A
/// variant's name is split into words where a lowercase letter or a digit is followed by an
/// uppercase one (and at underscores), so `OnHold` is `on_hold`, `onHold`, `OnHold`, `ON_HOLD`,
/// `on-hold`, `onhold` and `ONHOLD`; a run of capitals is one word (`HTTPError` is `httperror` in
/// snake case; write `HttpError` for `http_error`).
///
/// ## `#[anysql(rename = "..")]` on a variant
///
/// Stores the variant as that name, whatever the enum's `rename_all`.
///
/// ```
/// use anysql::{FromValue, ToValue, Type, Value};
///
/// #[derive(Type, Debug, PartialEq)]
/// #[anysql(rename_all = "SCREAMING_SNAKE_CASE")]
/// enum Status {
///     OnHold,
///     #[anysql(rename = "gone")]
///     Deleted,
/// }
///
/// assert_eq!(Status::OnHold.to_value(), Value::Text("ON_HOLD".into()));
/// assert_eq!(Status::Deleted.to_value(), Value::Text("gone".into()));
/// assert_eq!(Status::from_value(Value::Text("gone".into()))?, Status::Deleted);
/// # Ok::<(), anysql::Error>(())
/// ```
///
/// ## `#[anysql(transparent)]` on a struct
///
/// Stores the struct as its one field (above). A struct needs it: there is no other way to store
/// a struct in one column.
///
/// ## `#[anysql(crate = "..")]` on either
///
/// The path the generated code names `ToValue`, `FromValue`, `ArrayElement`, `Value` and `Error`
/// through; the default is `::anysql::core`. Code that depends on `anysql-core` and not on
/// `anysql` writes `#[anysql(crate = "anysql_core")]`.
///
/// ```
/// # use anysql::{ToValue, Value};
/// mod reexport {
///     pub use anysql::core as db;
/// }
///
/// #[derive(anysql::Type)]
/// #[anysql(crate = "reexport::db", rename_all = "lowercase")]
/// enum Level {
///     Low,
///     High,
/// }
///
/// assert_eq!(Level::High.to_value(), Value::Text("high".into()));
/// ```
///
/// # Mistakes caught at compile time
///
/// Each is a compile error pointing at the attribute or the item. A variant with fields (an enum
/// is stored as a name only):
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// enum Shape {
///     Circle(f64),
///     Square,
/// }
/// ```
///
/// An enum without variants (nothing could decode into it):
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// enum Never {}
/// ```
///
/// Two variants stored as the same name:
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// #[anysql(rename_all = "lowercase")]
/// enum Mood {
///     Happy,
///     #[anysql(rename = "happy")]
///     Glad,
/// }
/// ```
///
/// A struct without `transparent`:
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// struct UserId(i64);
/// ```
///
/// `transparent` on a struct with no field, or with several:
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// #[anysql(transparent)]
/// struct Nothing;
/// ```
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// #[anysql(transparent)]
/// struct Point {
///     x: i64,
///     y: i64,
/// }
/// ```
///
/// An unknown key (or a key in the wrong place: `rename_all` on a struct, `transparent` on an
/// enum, `rename` on anything but a variant, any attribute on a transparent struct's field):
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// #[anysql(rename_al = "snake_case")]
/// enum Mood {
///     Happy,
/// }
/// ```
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// #[anysql(transparent)]
/// enum Mood {
///     Happy,
/// }
/// ```
///
/// An unknown `rename_all` rule:
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// #[anysql(rename_all = "snake")]
/// enum Mood {
///     Happy,
/// }
/// ```
///
/// A union:
///
/// ```compile_fail
/// #[derive(anysql::Type)]
/// union Bits {
///     a: u32,
///     b: f32,
/// }
/// ```
///
/// And where it is used, a `Vec` of a newtype whose field has no arrays:
///
/// ```compile_fail
/// use anysql::ToValue;
///
/// #[derive(anysql::Type)]
/// #[anysql(transparent)]
/// struct Byte(u8);
///
/// let _ = Byte(1).to_value(); // fine: an integer
/// let _ = vec![Byte(1)].to_value(); // `u8` is no ArrayElement, so neither is `Byte`
/// ```
#[proc_macro_derive(Type, attributes(anysql))]
pub fn derive_type(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    value_type::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Embeds a directory of migration files in the binary and evaluates to an
/// `anysql::migrate::Migrator` for them: `migrate!("migrations")` (the default when no path is
/// given), the path relative to the crate's `Cargo.toml`. Use it through `anysql::migrate!`
/// (the `macros` and `migrate` features).
///
/// Files are named `<version>_<name>.sql`, with an optional `<version>_<name>.down.sql`; other
/// files are ignored, and a badly named `.sql` file, two files with one version or a down file
/// without its up file is a compile error. Each file is embedded with `include_str!`, so cargo
/// rebuilds when one changes; to have it notice a *new* file too, add a build script with
/// `println!("cargo:rerun-if-changed=migrations");`.
///
/// ```
/// # smol::block_on(async {
/// // This crate's doc tests run in crates/anysql-macros; an application writes "migrations".
/// let migrator = anysql::migrate!("../anysql/tests/migrations");
/// assert_eq!(migrator.migrations().len(), 2);
/// let engine = anysql::create_async_engine("sqlite::memory:")?;
/// migrator.run(&engine).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[proc_macro]
pub fn migrate(input: TokenStream) -> TokenStream {
    migrate::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes an `async fn name(engine: anysql::Engine)` a `#[test]` that runs on a fresh database:
/// a temporary SQLite file, or a uniquely named PostgreSQL database dropped afterwards (also when
/// the test fails or panics), on the URL of `ANYSQL_TEST_DATABASE_URL`, else `DATABASE_URL`, else
/// `sqlite:`. Use it as `#[anysql::test]` (the `macros` and `testing` features).
///
/// The body runs on the runtime named by `runtime = "tokio"` (the default), `"smol"` or
/// `"async-std"`, whose crate the test crate must depend on (tokio with its `rt` feature). The
/// function may return `()` or a `Result<(), E>` with `E: Debug`; an `Err` fails the test. Other
/// attributes, such as `#[should_panic]`, go on as usual.
///
/// ```
/// #[anysql::test(runtime = "smol")]
/// async fn counts(engine: anysql::Engine) -> Result<(), anysql::Error> {
///     anysql::query("CREATE TABLE t (x INTEGER)").execute(&engine).await?;
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
