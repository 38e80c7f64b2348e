//! `#[derive(Type)]` through the facade: enums stored as text and transparent newtypes, against
//! real SQLite on tokio (and by value, with no database, where that is the point).
#![cfg(all(feature = "macros", feature = "sqlite", feature = "runtime-tokio"))]

use anysql::{query, query_as, query_scalar, ErrorKind, FromRow, FromValue, ToValue, Type, Value};

fn engine() -> anysql::Engine {
    anysql::create_async_engine("sqlite::memory:").unwrap()
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[derive(Type, Debug, Clone, Copy, PartialEq, Eq)]
enum Mood {
    Happy,
    Sad,
    VeryHappy,
}

#[derive(Type, Debug, Clone, Copy, PartialEq, Eq)]
#[anysql(rename_all = "snake_case")]
enum Status {
    Active,
    OnHold,
    #[anysql(rename = "gone")]
    Deleted,
}

#[derive(Type, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[anysql(transparent)]
struct UserId(i64);

#[derive(Type, Debug, Clone, PartialEq, Eq)]
#[anysql(transparent)]
struct Email {
    address: String,
}

#[derive(Type, Debug, Clone, PartialEq)]
#[anysql(transparent)]
struct Wrapper<T>(T);

#[derive(FromRow, Debug, PartialEq)]
struct Person {
    id: UserId,
    name: String,
    mood: Mood,
    status: Option<Status>,
    email: Option<Email>,
}

#[test]
fn an_enum_is_its_variant_name_as_text() {
    assert_eq!(Mood::Happy.to_value(), text("Happy"));
    assert_eq!(Mood::VeryHappy.to_value(), text("VeryHappy"));
    assert_eq!(Mood::from_value(text("Sad")).unwrap(), Mood::Sad);
    assert_eq!(
        Mood::from_value_ref(&text("VeryHappy")).unwrap(),
        Mood::VeryHappy
    );
    // An exact match: no case folding, no trimming.
    assert!(Mood::from_value(text("happy")).is_err());
    assert!(Mood::from_value(text("Happy ")).is_err());
}

#[tokio::test]
async fn an_enum_round_trips_through_a_sqlite_text_column() {
    let engine = engine();
    query("CREATE TABLE moods (id INTEGER PRIMARY KEY, mood TEXT NOT NULL)")
        .execute(&engine)
        .await
        .unwrap();
    for mood in [Mood::Happy, Mood::Sad, Mood::VeryHappy, Mood::Sad] {
        query("INSERT INTO moods (mood) VALUES ($1)")
            .bind(mood)
            .execute(&engine)
            .await
            .unwrap();
    }
    let moods: Vec<Mood> = query_scalar("SELECT mood FROM moods ORDER BY id")
        .fetch_all(&engine)
        .await
        .unwrap();
    assert_eq!(moods, [Mood::Happy, Mood::Sad, Mood::VeryHappy, Mood::Sad]);

    // Stored as the plain text, and usable as a parameter anywhere.
    let stored: Vec<String> = query_scalar("SELECT mood FROM moods ORDER BY id")
        .fetch_all(&engine)
        .await
        .unwrap();
    assert_eq!(stored, ["Happy", "Sad", "VeryHappy", "Sad"]);
    let sad: i64 = query_scalar("SELECT count(*) FROM moods WHERE mood = $1")
        .bind(Mood::Sad)
        .fetch_one(&engine)
        .await
        .unwrap();
    assert_eq!(sad, 2);
}

#[tokio::test]
async fn enums_and_newtypes_are_fields_of_a_from_row_struct() {
    let engine = engine();
    query(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, mood TEXT NOT NULL, \
         status TEXT, email TEXT)",
    )
    .execute(&engine)
    .await
    .unwrap();
    query("INSERT INTO people (id, name, mood, status, email) VALUES ($1, $2, $3, $4, $5)")
        .bind(UserId(7))
        .bind("Ada")
        .bind(Mood::VeryHappy)
        .bind(Status::OnHold)
        .bind(Email {
            address: "ada@example.com".into(),
        })
        .execute(&engine)
        .await
        .unwrap();
    query("INSERT INTO people (id, name, mood, status, email) VALUES ($1, $2, $3, $4, $5)")
        .bind(UserId(8))
        .bind("Grace")
        .bind(Mood::Sad)
        .bind(None::<Status>)
        .bind(None::<Email>)
        .execute(&engine)
        .await
        .unwrap();

    let people: Vec<Person> = query_as("SELECT * FROM people ORDER BY id")
        .fetch_all(&engine)
        .await
        .unwrap();
    assert_eq!(
        people,
        [
            Person {
                id: UserId(7),
                name: "Ada".into(),
                mood: Mood::VeryHappy,
                status: Some(Status::OnHold),
                email: Some(Email {
                    address: "ada@example.com".into()
                }),
            },
            Person {
                id: UserId(8),
                name: "Grace".into(),
                mood: Mood::Sad,
                status: None,
                email: None,
            },
        ]
    );
    let raw: (i64, String) = query_as("SELECT id, status FROM people WHERE id = 7")
        .fetch_one(&engine)
        .await
        .unwrap();
    assert_eq!(raw, (7, "on_hold".to_string()));
}

#[test]
fn rename_all_names_every_variant_and_rename_wins() {
    assert_eq!(Status::Active.to_value(), text("active"));
    assert_eq!(Status::OnHold.to_value(), text("on_hold"));
    assert_eq!(Status::Deleted.to_value(), text("gone"));
    assert_eq!(Status::from_value(text("on_hold")).unwrap(), Status::OnHold);
    assert_eq!(Status::from_value(text("gone")).unwrap(), Status::Deleted);
    // Only the stored names: neither the Rust name nor what rename_all would have made of it.
    for rejected in ["OnHold", "Deleted", "deleted"] {
        let err = Status::from_value(text(rejected)).unwrap_err();
        assert_eq!(
            err.message(),
            format!(
                "cannot decode {rejected:?} into Status; expected one of \
                 [\"active\", \"on_hold\", \"gone\"]"
            )
        );
    }
}

macro_rules! rename_all_case {
    ($name:ident, $rule:literal, $first:literal, $second:literal) => {{
        #[derive(Type, Debug, PartialEq)]
        #[anysql(rename_all = $rule)]
        enum $name {
            OnHold,
            HttpError2,
            #[anysql(rename = "explicit")]
            Renamed,
        }
        assert_eq!($name::OnHold.to_value(), text($first), "{}", $rule);
        assert_eq!($name::HttpError2.to_value(), text($second), "{}", $rule);
        assert_eq!($name::Renamed.to_value(), text("explicit"), "{}", $rule);
        assert_eq!($name::from_value(text($first)).unwrap(), $name::OnHold);
        assert_eq!($name::from_value(text($second)).unwrap(), $name::HttpError2);
        assert_eq!($name::from_value(text("explicit")).unwrap(), $name::Renamed);
    }};
}

#[test]
fn every_rename_all_rule() {
    rename_all_case!(Snake, "snake_case", "on_hold", "http_error2");
    rename_all_case!(Camel, "camelCase", "onHold", "httpError2");
    rename_all_case!(Pascal, "PascalCase", "OnHold", "HttpError2");
    rename_all_case!(Screaming, "SCREAMING_SNAKE_CASE", "ON_HOLD", "HTTP_ERROR2");
    rename_all_case!(Kebab, "kebab-case", "on-hold", "http-error2");
    rename_all_case!(Lower, "lowercase", "onhold", "httperror2");
    rename_all_case!(Upper, "UPPERCASE", "ONHOLD", "HTTPERROR2");
}

#[tokio::test]
async fn rename_and_rename_all_against_sqlite() {
    let engine = engine();
    let got: Vec<Status> = query_scalar("SELECT 'gone' UNION ALL SELECT 'on_hold' ORDER BY 1")
        .fetch_all(&engine)
        .await
        .unwrap();
    assert_eq!(got, [Status::Deleted, Status::OnHold]);
    let back: String = query_scalar("SELECT $1")
        .bind(Status::Deleted)
        .fetch_one(&engine)
        .await
        .unwrap();
    assert_eq!(back, "gone");
}

#[tokio::test]
async fn an_unknown_text_is_a_decode_error_naming_the_type_the_text_and_the_names() {
    let engine = engine();
    let err = query_scalar::<Mood>("SELECT 'angry'")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message().ends_with(
            "cannot decode \"angry\" into Mood; expected one of [\"Happy\", \"Sad\", \"VeryHappy\"]"
        ),
        "{err}"
    );

    // In a FromRow struct, the field and the column come first.
    let err = query_as::<Person>(
        "SELECT 1 AS id, 'Ada' AS name, 'meh' AS mood, NULL AS status, NULL AS email",
    )
    .fetch_one(&engine)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(
        err.message(),
        "decoding field `mood` of Person: column 2 (\"mood\"): cannot decode \"meh\" into Mood; \
         expected one of [\"Happy\", \"Sad\", \"VeryHappy\"]"
    );

    // A value that is not text at all.
    let err = query_scalar::<Mood>("SELECT 3")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message()
            .ends_with("cannot decode a integer value into Mood"),
        "{err}"
    );
    let err = Mood::from_value(Value::Blob(b"Happy".to_vec())).unwrap_err();
    assert_eq!(err.message(), "cannot decode a blob value into Mood");
}

#[tokio::test]
async fn null_decodes_into_option_and_is_an_error_otherwise() {
    let engine = engine();
    let none: Option<Mood> = query_scalar("SELECT NULL")
        .fetch_one(&engine)
        .await
        .unwrap();
    assert_eq!(none, None);
    let some: Option<Mood> = query_scalar("SELECT 'Sad'")
        .fetch_one(&engine)
        .await
        .unwrap();
    assert_eq!(some, Some(Mood::Sad));
    let back: Option<String> = query_scalar("SELECT $1")
        .bind(None::<Mood>)
        .fetch_one(&engine)
        .await
        .unwrap();
    assert_eq!(back, None);

    let err = query_scalar::<Mood>("SELECT NULL")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message()
            .ends_with("unexpected NULL; decode into Option<Mood> to accept NULL"),
        "{err}"
    );
    assert_eq!(
        Mood::from_value(Value::Null).unwrap_err().message(),
        "unexpected NULL; decode into Option<Mood> to accept NULL"
    );
}

#[test]
fn a_transparent_newtype_is_its_field() {
    assert_eq!(UserId(5).to_value(), Value::Int(5));
    assert_eq!(UserId::from_value(Value::Int(5)).unwrap(), UserId(5));
    assert_eq!(UserId::from_value_ref(&Value::Int(-1)).unwrap(), UserId(-1));
    let email = Email {
        address: "a@b.c".into(),
    };
    assert_eq!(email.to_value(), text("a@b.c"));
    assert_eq!(Email::from_value(text("a@b.c")).unwrap(), email);

    // The field's errors, unchanged.
    for value in [text("seven"), Value::Null, Value::Float(1.5)] {
        let ours = UserId::from_value(value.clone()).unwrap_err();
        let field = i64::from_value(value).unwrap_err();
        assert_eq!(ours.kind(), ErrorKind::Decode);
        assert_eq!(ours.message(), field.message());
    }
}

#[tokio::test]
async fn a_transparent_newtype_binds_and_decodes_as_its_field_on_sqlite() {
    let engine = engine();
    query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
        .execute(&engine)
        .await
        .unwrap();
    for (id, address) in [(3, "c@example.com"), (1, "a@example.com")] {
        query("INSERT INTO users (id, email) VALUES ($1, $2)")
            .bind(UserId(id))
            .bind(Email {
                address: address.into(),
            })
            .execute(&engine)
            .await
            .unwrap();
    }
    let ids: Vec<UserId> = query_scalar("SELECT id FROM users ORDER BY id")
        .fetch_all(&engine)
        .await
        .unwrap();
    assert_eq!(ids, [UserId(1), UserId(3)]);
    let rows: Vec<(UserId, Email)> = query_as("SELECT id, email FROM users WHERE id > $1")
        .bind(UserId(2))
        .fetch_all(&engine)
        .await
        .unwrap();
    assert_eq!(
        rows,
        [(
            UserId(3),
            Email {
                address: "c@example.com".into()
            }
        )]
    );
    let stored: i64 = query_scalar("SELECT typeof(id) = 'integer' FROM users LIMIT 1")
        .fetch_one(&engine)
        .await
        .unwrap();
    assert_eq!(stored, 1);

    let err = query_scalar::<UserId>("SELECT email FROM users LIMIT 1")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message()
            .ends_with("cannot decode a text value into i64"),
        "{err}"
    );
}

#[tokio::test]
async fn a_generic_newtype_forwards_to_its_parameter() {
    assert_eq!(Wrapper(4i32).to_value(), Value::Int(4));
    assert_eq!(Wrapper("x".to_string()).to_value(), text("x"));
    assert_eq!(Wrapper(Mood::Sad).to_value(), text("Sad"));
    assert_eq!(
        Wrapper::<Mood>::from_value(text("Happy")).unwrap(),
        Wrapper(Mood::Happy)
    );
    assert_eq!(
        Wrapper::<Option<Mood>>::from_value(Value::Null).unwrap(),
        Wrapper(None)
    );
    assert!(Wrapper::<u8>::from_value(Value::Int(300)).is_err());

    let engine = engine();
    let got: Wrapper<String> = query_scalar("SELECT $1 || '!'")
        .bind(Wrapper("hi"))
        .fetch_one(&engine)
        .await
        .unwrap();
    assert_eq!(got, Wrapper("hi!".to_string()));
    let nested: Wrapper<Wrapper<UserId>> =
        query_scalar("SELECT 9").fetch_one(&engine).await.unwrap();
    assert_eq!(nested, Wrapper(Wrapper(UserId(9))));
}

#[test]
fn a_borrowing_newtype_binds() {
    #[derive(Type)]
    #[anysql(transparent)]
    struct Name<'a>(&'a str);

    let owned = String::from("Ada");
    assert_eq!(Name(&owned).to_value(), text("Ada"));
    assert_eq!(
        vec![Name("a"), Name("b")].to_value(),
        Value::Array(vec![text("a"), text("b")])
    );
}

#[test]
fn vectors_of_them_are_arrays() {
    assert_eq!(
        vec![Mood::Happy, Mood::VeryHappy].to_value(),
        Value::Array(vec![text("Happy"), text("VeryHappy")])
    );
    assert_eq!(
        [Status::OnHold, Status::Deleted].as_slice().to_value(),
        Value::Array(vec![text("on_hold"), text("gone")])
    );
    assert_eq!(
        vec![Some(Mood::Sad), None].to_value(),
        Value::Array(vec![text("Sad"), Value::Null])
    );
    assert_eq!(
        vec![UserId(1), UserId(2)].to_value(),
        Value::Array(vec![Value::Int(1), Value::Int(2)])
    );
    assert_eq!(
        vec![Wrapper(1.5f64)].to_value(),
        Value::Array(vec![Value::Float(1.5)])
    );

    let array = Value::Array(vec![text("Sad"), Value::Null, text("Happy")]);
    assert_eq!(
        Vec::<Option<Mood>>::from_value_ref(&array).unwrap(),
        [Some(Mood::Sad), None, Some(Mood::Happy)]
    );
    let err = Vec::<Mood>::from_value(array).unwrap_err();
    assert_eq!(
        err.message(),
        "array element 1: unexpected NULL; decode into Option<Mood> to accept NULL"
    );
    assert_eq!(
        Vec::<UserId>::from_value(Value::Array(vec![Value::Int(4)])).unwrap(),
        [UserId(4)]
    );
}

mod reexport {
    pub use anysql::core as db;
}

#[test]
fn the_crate_attribute_names_the_path_to_the_core() {
    #[derive(Type, Debug, PartialEq)]
    #[anysql(crate = "reexport::db", rename_all = "kebab-case")]
    enum Level {
        NotBad,
    }

    #[derive(Type, Debug, PartialEq)]
    #[anysql(transparent, crate = "reexport::db")]
    struct Score(u32);

    assert_eq!(Level::NotBad.to_value(), text("not-bad"));
    assert_eq!(Level::from_value(text("not-bad")).unwrap(), Level::NotBad);
    assert_eq!(Score(3).to_value(), Value::Int(3));
    assert_eq!(Score::from_value(Value::Int(3)).unwrap(), Score(3));
}

/// With only the prelude imported (no `use anysql::Type` in this module).
mod prelude_only {
    use anysql::prelude::*;

    #[derive(Type, Debug, PartialEq)]
    enum Switch {
        On,
    }

    #[test]
    fn the_prelude_brings_the_derive() {
        assert_eq!(Switch::On.to_value(), Value::Text("On".into()));
        assert_eq!(
            Switch::from_value(Value::Text("On".into())).unwrap(),
            Switch::On
        );
    }
}
