//! `migrate!("dir")`: embeds a directory of migration files at compile time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::LitStr;

/// One migration's files.
#[derive(Default)]
struct Files {
    name: String,
    up: Option<PathBuf>,
    down: Option<PathBuf>,
}

pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let dir = if input.is_empty() {
        LitStr::new("migrations", Span::call_site())
    } else {
        syn::parse2::<LitStr>(input)?
    };
    let error = |message: String| syn::Error::new(dir.span(), message);
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| error("CARGO_MANIFEST_DIR is not set: build with cargo".into()))?;
    let path = root.join(dir.value());
    let entries = std::fs::read_dir(&path).map_err(|e| {
        error(format!(
            "cannot read the migrations directory {}: {e}",
            path.display()
        ))
    })?;

    let mut by_version: BTreeMap<i64, Files> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| error(format!("reading {}: {e}", path.display())))?;
        let file_path = entry.path();
        if !file_path.is_file() {
            continue;
        }
        let Some(file) = file_path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((version, name, down)) = parse(file).map_err(error)? else {
            continue;
        };
        let files = by_version.entry(version).or_default();
        let slot = if down { &mut files.down } else { &mut files.up };
        if slot.is_some() || (!files.name.is_empty() && files.name != name) {
            return Err(error(format!(
                "two migration files share the version {version} in {}; give each migration its \
                 own version",
                path.display()
            )));
        }
        *slot = Some(absolute(&file_path));
        files.name = name;
    }

    let mut items = Vec::new();
    for (version, files) in by_version {
        let name = files.name;
        let Some(up) = files.up else {
            return Err(error(format!(
                "the migration {version}_{name}.down.sql has no {version}_{name}.sql to go with it"
            )));
        };
        let up = up.to_string_lossy().into_owned();
        let down = match files.down {
            Some(down) => {
                let down = down.to_string_lossy().into_owned();
                quote!(::core::option::Option::Some(::core::include_str!(#down)))
            }
            None => quote!(::core::option::Option::None),
        };
        items.push(quote!((#version, #name, ::core::include_str!(#up), #down)));
    }
    Ok(quote!(::anysql::migrate::Migrator::__embedded(&[#(#items),*])))
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `<version>_<name>.sql` or `<version>_<name>.down.sql`; `Ok(None)` for a file that is not SQL.
/// The same rules as `anysql::migrate::parse_file_name`, checked at compile time.
fn parse(file: &str) -> Result<Option<(i64, String, bool)>, String> {
    let Some(stem) = file.strip_suffix(".sql") else {
        return Ok(None);
    };
    let (stem, down) = match stem.strip_suffix(".down") {
        Some(stem) => (stem, true),
        None => (stem, false),
    };
    let bad = |why: &str| {
        format!(
            "the migration file {file:?} {why}: name migration files `<version>_<name>.sql` (and \
             `<version>_<name>.down.sql` to revert), with an integer version such as \
             20260102030405"
        )
    };
    let Some((version, name)) = stem.split_once('_') else {
        return Err(bad("has no `_` between its version and its name"));
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("does not start with an integer version"));
    }
    let version: i64 = version
        .parse()
        .map_err(|_| bad("has a version too large for a 64-bit integer"))?;
    if name.is_empty() {
        return Err(bad("has no name after its version"));
    }
    Ok(Some((version, name.to_owned(), down)))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_parse_as_the_runtime_reader_parses_them() {
        assert_eq!(parse("7_a_b.sql"), Ok(Some((7, "a_b".into(), false))));
        assert_eq!(parse("7_a.down.sql"), Ok(Some((7, "a".into(), true))));
        assert_eq!(parse("notes.md"), Ok(None));
        assert!(parse("a_7.sql").unwrap_err().contains("integer version"));
        assert!(parse("7.sql").unwrap_err().contains("no `_`"));
    }
}
