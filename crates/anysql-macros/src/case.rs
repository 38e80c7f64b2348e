//! The `rename_all` rules: how a field's name becomes a column name (FromRow) and a variant's the
//! text it is stored as (Type).

/// A `rename_all` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameRule {
    Snake,
    Camel,
    Pascal,
    ScreamingSnake,
    Kebab,
    Lower,
    Upper,
}

impl RenameRule {
    /// The names `rename_all` accepts, for error messages.
    pub(crate) const NAMES: &'static str = "\"snake_case\", \"camelCase\", \"PascalCase\", \
         \"SCREAMING_SNAKE_CASE\", \"kebab-case\", \"lowercase\" or \"UPPERCASE\"";

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "snake_case" => RenameRule::Snake,
            "camelCase" => RenameRule::Camel,
            "PascalCase" => RenameRule::Pascal,
            "SCREAMING_SNAKE_CASE" => RenameRule::ScreamingSnake,
            "kebab-case" => RenameRule::Kebab,
            "lowercase" => RenameRule::Lower,
            "UPPERCASE" => RenameRule::Upper,
            _ => return None,
        })
    }

    /// The column name for a field (or the stored name for a variant) called `name`: a Rust
    /// identifier, raw prefix removed.
    pub(crate) fn apply(self, name: &str) -> String {
        match self {
            RenameRule::Lower => name.to_lowercase(),
            RenameRule::Upper => name.to_uppercase(),
            RenameRule::Snake => join(name, "_", str::to_lowercase),
            RenameRule::ScreamingSnake => join(name, "_", str::to_uppercase),
            RenameRule::Kebab => join(name, "-", str::to_lowercase),
            RenameRule::Pascal => join(name, "", capitalize),
            RenameRule::Camel => {
                let mut out = String::new();
                for (i, word) in words(name).into_iter().enumerate() {
                    if i == 0 {
                        out.push_str(&word.to_lowercase());
                    } else {
                        out.push_str(&capitalize(word));
                    }
                }
                out
            }
        }
    }
}

fn join(name: &str, separator: &str, case: fn(&str) -> String) -> String {
    words(name)
        .into_iter()
        .map(case)
        .collect::<Vec<_>>()
        .join(separator)
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The words of an identifier: split at underscores and where a lowercase letter or a digit is
/// followed by an uppercase one (`user_id`, `userId` and `UserId` are all `user`, `id`).
fn words(name: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut start = 0;
        let mut prev: Option<char> = None;
        for (i, c) in part.char_indices() {
            if let Some(p) = prev {
                if c.is_uppercase() && (p.is_lowercase() || p.is_ascii_digit()) {
                    words.push(&part[start..i]);
                    start = i;
                }
            }
            prev = Some(c);
        }
        words.push(&part[start..]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::RenameRule::{self, *};

    fn all(name: &str) -> Vec<String> {
        [Snake, Camel, Pascal, ScreamingSnake, Kebab, Lower, Upper]
            .iter()
            .map(|rule| rule.apply(name))
            .collect()
    }

    #[test]
    fn every_rule_on_a_snake_case_field() {
        assert_eq!(
            all("user_id2_x"),
            [
                "user_id2_x",
                "userId2X",
                "UserId2X",
                "USER_ID2_X",
                "user-id2-x",
                "user_id2_x",
                "USER_ID2_X"
            ]
        );
        assert_eq!(all("id"), ["id", "id", "Id", "ID", "id", "id", "ID"]);
    }

    #[test]
    fn camel_case_fields_are_split_into_words_too() {
        assert_eq!(Snake.apply("userId"), "user_id");
        assert_eq!(Kebab.apply("UserID"), "user-id");
        assert_eq!(Camel.apply("_leading__double_"), "leadingDouble");
    }

    #[test]
    fn rule_names_round_trip() {
        for name in [
            "snake_case",
            "camelCase",
            "PascalCase",
            "SCREAMING_SNAKE_CASE",
            "kebab-case",
            "lowercase",
            "UPPERCASE",
        ] {
            assert!(RenameRule::from_name(name).is_some(), "{name}");
            assert!(RenameRule::NAMES.contains(&format!("{name:?}")), "{name}");
        }
        assert_eq!(RenameRule::from_name("snake"), None);
    }
}
