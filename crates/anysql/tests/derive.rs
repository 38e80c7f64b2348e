//! `#[derive(FromRow)]` through the facade, against real SQLite on tokio.
#![cfg(all(feature = "macros", feature = "sqlite", feature = "runtime-tokio"))]

use anysql::{Columns, ErrorKind, FromRow, Row, Value};

fn engine() -> anysql::Engine {
    anysql::create_async_engine("sqlite::memory:").unwrap()
}

fn row(names: &[&str], values: Vec<Value>) -> Row {
    Row::new(Columns::new(names.iter().map(|n| n.to_string())), values)
}

#[derive(FromRow, Debug, PartialEq)]
struct User {
    id: i64,
    name: String,
    email: Option<String>,
}

#[tokio::test]
async fn named_fields_are_read_by_name_in_any_order_on_engine_and_connection() {
    let engine = engine();
    let sql = "SELECT 'ada@example.com' AS email, 'Ada' AS name, 1 AS id, 'extra' AS ignored \
               UNION ALL SELECT NULL, 'Grace', 2, 'extra' ORDER BY id";
    let expected = [
        User {
            id: 1,
            name: "Ada".into(),
            email: Some("ada@example.com".into()),
        },
        User {
            id: 2,
            name: "Grace".into(),
            email: None,
        },
    ];

    let users: Vec<User> = engine.fetch_all_as(sql, ()).await.unwrap();
    assert_eq!(users, expected);
    let first: User = engine.fetch_one(sql, ()).await.unwrap().decode().unwrap();
    assert_eq!(first, expected[0]);

    let mut conn = engine.acquire().await.unwrap();
    let users: Vec<User> = conn.fetch_all_as(sql, ()).await.unwrap();
    assert_eq!(users, expected);
    let first: User = conn.fetch_one_as(sql, ()).await.unwrap();
    assert_eq!(first, expected[0]);
    let none: Option<User> = conn
        .fetch_optional_as("SELECT 1 AS id, 'x' AS name, NULL AS email WHERE 0", ())
        .await
        .unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn many_rows_decode_through_the_reused_row_buffer() {
    let mut conn = engine().acquire().await.unwrap();
    conn.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)",
        (),
    )
    .await
    .unwrap();
    for i in 0..50u32 {
        let email = i.is_multiple_of(2).then(|| format!("u{i}@example.com"));
        conn.execute(
            "INSERT INTO users (name, email) VALUES ($1, $2)",
            (format!("user {i}"), email),
        )
        .await
        .unwrap();
    }
    let users: Vec<User> = conn
        .fetch_all_as("SELECT * FROM users ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(users.len(), 50);
    for (i, user) in users.iter().enumerate() {
        assert_eq!(user.id, i as i64 + 1);
        assert_eq!(user.name, format!("user {i}"));
        assert_eq!(
            user.email,
            i.is_multiple_of(2).then(|| format!("u{i}@example.com"))
        );
    }
}

#[test]
fn from_row_mut_takes_only_the_columns_it_reads() {
    let mut r = row(
        &["id", "name", "email", "other"],
        vec![
            Value::Int(1),
            Value::Text("Ada".into()),
            Value::Null,
            Value::Text("kept".into()),
        ],
    );
    let user = User::from_row_mut(&mut r).unwrap();
    assert_eq!(user.name, "Ada");
    assert_eq!(r.values()[1], Value::Null);
    assert_eq!(r.values()[3], Value::Text("kept".into()));
}

#[tokio::test]
async fn a_missing_column_is_an_error_naming_the_field_and_the_column() {
    let mut conn = engine().acquire().await.unwrap();
    let err = conn
        .fetch_one_as::<User>("SELECT 1 AS id, NULL AS email", ())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(
        err.message(),
        "decoding field `name` of User: no column named \"name\"; the row has [\"id\", \"email\"]"
    );
}

#[tokio::test]
async fn an_undecodable_column_is_an_error_naming_the_field_and_the_column() {
    let mut conn = engine().acquire().await.unwrap();
    let err = conn
        .fetch_all_as::<User>("SELECT 'one' AS id, 'Ada' AS name, NULL AS email", ())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message()
            .starts_with("decoding field `id` of User: column 0 (\"id\"): "),
        "{err}"
    );

    // NULL into a field that is not an Option.
    let err = conn
        .fetch_one_as::<User>("SELECT 1 AS id, NULL AS name, NULL AS email", ())
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("decoding field `name` of User: column 1 (\"name\"): unexpected NULL"),
        "{err}"
    );
}

#[tokio::test]
async fn column_names_match_ignoring_case_as_a_fallback() {
    let mut conn = engine().acquire().await.unwrap();
    let user: User = conn
        .fetch_one_as("SELECT 1 AS ID, 'Ada' AS Name, NULL AS EMAIL", ())
        .await
        .unwrap();
    assert_eq!(user.name, "Ada");
}

#[derive(FromRow, Debug, PartialEq)]
struct Renamed {
    #[anysql(rename = "type")]
    kind: String,
    r#ref: i64,
}

#[tokio::test]
async fn rename_and_raw_identifiers() {
    let mut conn = engine().acquire().await.unwrap();
    let got: Renamed = conn
        .fetch_one_as("SELECT 'book' AS \"type\", 4 AS \"ref\"", ())
        .await
        .unwrap();
    assert_eq!(
        got,
        Renamed {
            kind: "book".into(),
            r#ref: 4
        }
    );
    let err = conn
        .fetch_one_as::<Renamed>("SELECT 'book' AS kind, 4 AS \"ref\"", ())
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("decoding field `kind` of Renamed: no column named \"type\""),
        "{err}"
    );
}

macro_rules! rename_all_case {
    ($name:ident, $rule:literal, $first:literal) => {
        #[derive(FromRow, Debug, PartialEq)]
        #[anysql(rename_all = $rule)]
        struct $name {
            user_id: i64,
            #[anysql(rename = "explicit")]
            display_name: String,
        }

        let got: $name = row(
            &[$first, "explicit"],
            vec![Value::Int(7), Value::Text("x".into())],
        )
        .decode()
        .unwrap();
        assert_eq!(
            got,
            $name {
                user_id: 7,
                display_name: "x".into()
            }
        );
        // The renamed name only: the field's own name is not a column.
        let err = row(
            &["user_id_", "explicit"],
            vec![Value::Int(7), Value::Text("x".into())],
        )
        .decode::<$name>()
        .unwrap_err();
        assert!(
            err.message()
                .contains(&format!("no column named {:?}", $first)),
            "{err}"
        );
    };
}

#[test]
fn rename_all_rules() {
    rename_all_case!(Snake, "snake_case", "user_id");
    rename_all_case!(Camel, "camelCase", "userId");
    rename_all_case!(Pascal, "PascalCase", "UserId");
    rename_all_case!(Screaming, "SCREAMING_SNAKE_CASE", "USER_ID");
    rename_all_case!(Kebab, "kebab-case", "user-id");
    rename_all_case!(Lower, "lowercase", "user_id");
    rename_all_case!(Upper, "UPPERCASE", "USER_ID");
}

#[tokio::test]
async fn rename_all_against_sqlite() {
    #[derive(FromRow)]
    #[anysql(rename_all = "camelCase")]
    struct Account {
        user_id: i64,
        display_name: String,
    }
    let mut conn = engine().acquire().await.unwrap();
    let got: Account = conn
        .fetch_one_as("SELECT 3 AS \"userId\", 'Grace' AS \"displayName\"", ())
        .await
        .unwrap();
    assert_eq!((got.user_id, got.display_name.as_str()), (3, "Grace"));
}

#[derive(FromRow, Debug, PartialEq)]
struct WithDefault {
    name: String,
    #[anysql(default)]
    retries: i64,
    #[anysql(default, rename = "label")]
    tag: Option<String>,
}

#[tokio::test]
async fn default_fills_a_missing_column_but_not_an_undecodable_one() {
    let mut conn = engine().acquire().await.unwrap();
    let got: WithDefault = conn.fetch_one_as("SELECT 'a' AS name", ()).await.unwrap();
    assert_eq!(
        got,
        WithDefault {
            name: "a".into(),
            retries: 0,
            tag: None
        }
    );
    let got: WithDefault = conn
        .fetch_one_as("SELECT 'a' AS name, 3 AS retries, 'x' AS label", ())
        .await
        .unwrap();
    assert_eq!((got.retries, got.tag.as_deref()), (3, Some("x")));

    let err = conn
        .fetch_one_as::<WithDefault>("SELECT 'a' AS name, 'three' AS retries", ())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message()
            .starts_with("decoding field `retries` of WithDefault: column 1 (\"retries\"): "),
        "{err}"
    );
    // A required field is still required.
    let err = conn
        .fetch_one_as::<WithDefault>("SELECT 3 AS retries", ())
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("decoding field `name` of WithDefault: no column named"),
        "{err}"
    );
}

#[derive(FromRow, Debug, PartialEq)]
struct Address {
    city: String,
    zip: Option<String>,
}

#[derive(FromRow, Debug, PartialEq)]
struct Customer {
    id: i64,
    #[anysql(flatten)]
    address: Address,
    name: String,
}

#[tokio::test]
async fn flatten_reads_the_inner_struct_from_the_same_row() {
    let engine = engine();
    let sql = "SELECT 'Ada' AS name, 'N1' AS zip, 1 AS id, 'London' AS city";
    let expected = Customer {
        id: 1,
        address: Address {
            city: "London".into(),
            zip: Some("N1".into()),
        },
        name: "Ada".into(),
    };
    let got: Vec<Customer> = engine.fetch_all_as(sql, ()).await.unwrap();
    assert_eq!(got, [expected]);

    let mut conn = engine.acquire().await.unwrap();
    let err = conn
        .fetch_one_as::<Customer>("SELECT 'Ada' AS name, 1 AS id", ())
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with(
            "decoding field `address` of Customer: decoding field `city` of Address: no column named \"city\""
        ),
        "{err}"
    );
}

#[derive(FromRow, Debug, PartialEq)]
struct Converted {
    #[anysql(try_from = "i64")]
    count: u8,
    #[anysql(try_from = "String", rename = "letters")]
    chars: Letters,
    #[anysql(try_from = "i64", default)]
    maybe: u16,
}

#[derive(Debug, PartialEq)]
struct Letters(Vec<char>);

impl TryFrom<String> for Letters {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.chars().all(char::is_alphabetic) {
            Ok(Letters(s.chars().collect()))
        } else {
            Err(format!("{s:?} is not all letters"))
        }
    }
}

#[tokio::test]
async fn try_from_converts_and_its_failure_names_the_field_and_the_column() {
    let mut conn = engine().acquire().await.unwrap();
    let got: Converted = conn
        .fetch_one_as("SELECT 200 AS count, 'ab' AS letters", ())
        .await
        .unwrap();
    assert_eq!(
        got,
        Converted {
            count: 200,
            chars: Letters(vec!['a', 'b']),
            maybe: 0
        }
    );

    let err = conn
        .fetch_one_as::<Converted>("SELECT 300 AS count, 'ab' AS letters", ())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message().starts_with(
            "decoding field `count` of Converted: column 0 (\"count\"): cannot convert the i64 into u8: "
        ),
        "{err}"
    );

    let err = conn
        .fetch_one_as::<Converted>("SELECT 1 AS count, 'a1' AS letters", ())
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "decoding field `chars` of Converted: column 1 (\"letters\"): cannot convert the String into \
         Letters: \"a1\" is not all letters"
    );

    // The column must decode as the `try_from` type first.
    let err = conn
        .fetch_one_as::<Converted>("SELECT 'x' AS count, 'a' AS letters", ())
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with(
            "decoding field `count` of Converted: column 0 (\"count\"): cannot decode"
        ),
        "{err}"
    );
    // `default` with `try_from`: present and out of range is an error, not the default.
    let err = conn
        .fetch_one_as::<Converted>("SELECT 1 AS count, 'a' AS letters, -1 AS maybe", ())
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("decoding field `maybe` of Converted"),
        "{err}"
    );
}

#[derive(FromRow, Debug, PartialEq)]
struct WithSkip {
    id: i64,
    #[anysql(skip)]
    cache: Vec<String>,
}

#[tokio::test]
async fn skip_reads_nothing_even_when_the_column_exists() {
    let mut conn = engine().acquire().await.unwrap();
    let got: WithSkip = conn
        .fetch_one_as("SELECT 1 AS id, 'not a list' AS cache", ())
        .await
        .unwrap();
    assert_eq!(
        got,
        WithSkip {
            id: 1,
            cache: Vec::new()
        }
    );
    let got: WithSkip = conn.fetch_one_as("SELECT 1 AS id", ()).await.unwrap();
    assert!(got.cache.is_empty());
}

#[derive(FromRow, Debug, PartialEq)]
struct Point(i64, Option<String>);

#[derive(FromRow, Debug, PartialEq)]
struct Tail(i64, #[anysql(skip)] u8, #[anysql(default)] i32);

#[tokio::test]
async fn tuple_structs_read_by_position() {
    let engine = engine();
    let got: Vec<Point> = engine
        .fetch_all_as("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, NULL", ())
        .await
        .unwrap();
    assert_eq!(got, [Point(1, Some("x".into())), Point(2, None)]);

    let mut conn = engine.acquire().await.unwrap();
    let err = conn
        .fetch_one_as::<Point>("SELECT 1, 'x', 3", ())
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "cannot decode a row of 3 columns into Point, which reads 2"
    );
    let err = conn
        .fetch_one_as::<Point>("SELECT 1", ())
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "decoding field 1 of Point: no column 1 in a row of 1 column"
    );
    let err = conn
        .fetch_one_as::<Point>("SELECT 'one' AS a, 'x' AS b", ())
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("decoding field 0 of Point: column 0 (\"a\"): "),
        "{err}"
    );

    // Skipped fields take no position; a default one may be past the end of the row.
    assert_eq!(
        conn.fetch_one_as::<Tail>("SELECT 5", ()).await.unwrap(),
        Tail(5, 0, 0)
    );
    assert_eq!(
        conn.fetch_one_as::<Tail>("SELECT 5, 6", ()).await.unwrap(),
        Tail(5, 0, 6)
    );
}

#[derive(FromRow, Debug, PartialEq)]
struct Unit;

#[derive(FromRow, Debug, PartialEq)]
struct Empty {}

#[test]
fn structs_without_fields() {
    assert_eq!(
        row(&["a"], vec![Value::Int(1)]).decode::<Unit>().unwrap(),
        Unit
    );
    assert_eq!(row(&[], vec![]).decode::<Empty>().unwrap(), Empty {});
}

#[derive(FromRow, Debug, PartialEq)]
struct Tagged<T, M> {
    tag: String,
    value: T,
    maybe: Option<T>,
    #[anysql(flatten)]
    meta: M,
    #[anysql(skip)]
    cached: Option<M>,
    #[anysql(default)]
    list: Vec<u8>,
}

#[derive(FromRow, Debug, PartialEq)]
struct Meta {
    version: i32,
}

#[derive(FromRow, Debug, PartialEq)]
struct Converting<T> {
    #[anysql(try_from = "T")]
    small: u8,
    #[anysql(skip)]
    from: std::marker::PhantomData<T>,
}

#[derive(FromRow, Debug, PartialEq)]
struct Lifetime<'a, T: Clone + 'a>
where
    T: PartialEq,
{
    #[anysql(skip)]
    marker: std::marker::PhantomData<&'a ()>,
    value: T,
}

#[tokio::test]
async fn generic_structs_get_the_bounds_they_need() {
    let mut conn = engine().acquire().await.unwrap();
    let got: Tagged<i32, Meta> = conn
        .fetch_one_as(
            "SELECT 't' AS tag, 5 AS value, NULL AS maybe, 2 AS version",
            (),
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        Tagged {
            tag: "t".into(),
            value: 5,
            maybe: None,
            meta: Meta { version: 2 },
            cached: None,
            list: Vec::new(),
        }
    );
    let got: Tagged<String, Meta> = row(
        &["tag", "value", "maybe", "version", "list"],
        vec![
            Value::Text("t".into()),
            Value::Text("v".into()),
            Value::Text("m".into()),
            Value::Int(3),
            Value::Blob(vec![1, 2]),
        ],
    )
    .decode()
    .unwrap();
    assert_eq!(
        (got.maybe.as_deref(), got.meta.version, got.list),
        (Some("m"), 3, vec![1, 2])
    );

    let got: Converting<i64> = conn.fetch_one_as("SELECT 7 AS small", ()).await.unwrap();
    assert_eq!(got.small, 7);
    let err = conn
        .fetch_one_as::<Converting<i64>>("SELECT 700 AS small", ())
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with(
            "decoding field `small` of Converting: column 0 (\"small\"): cannot convert the T into u8"
        ),
        "{err}"
    );

    let got: Lifetime<'_, String> = conn.fetch_one_as("SELECT 'v' AS value", ()).await.unwrap();
    assert_eq!(got.value, "v");
}

mod core_only {
    //! Code that names anysql-core directly (the derive still comes from the facade).
    #[derive(anysql::FromRow, Debug, PartialEq)]
    #[anysql(crate = "anysql_core")]
    pub struct Count {
        pub n: i64,
    }

    #[derive(anysql::FromRow)]
    #[anysql(crate = "::anysql")]
    pub struct ThroughTheFacadeRoot(pub i64);
}

#[tokio::test]
async fn the_crate_attribute_names_another_path_to_the_core() {
    let mut conn = engine().acquire().await.unwrap();
    let got: core_only::Count = conn.fetch_one_as("SELECT 9 AS n", ()).await.unwrap();
    assert_eq!(got, core_only::Count { n: 9 });
    let got: core_only::ThroughTheFacadeRoot = conn.fetch_one_as("SELECT 4", ()).await.unwrap();
    assert_eq!(got.0, 4);
}

#[test]
fn the_prelude_has_the_derive() {
    mod uses_prelude {
        use anysql::prelude::*;

        #[derive(FromRow)]
        pub struct Id {
            pub id: i64,
        }
    }
    let got: uses_prelude::Id = row(&["id"], vec![Value::Int(3)]).decode().unwrap();
    assert_eq!(got.id, 3);
}
