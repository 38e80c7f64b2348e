//! What the derives share: reading `#[anysql(..)]` keys, collecting errors, and finding the type
//! parameters a type mentions.

use proc_macro2::{TokenStream, TokenTree};
use syn::{Ident, LitStr};

/// Records an error, combining it with earlier ones so that every mistake is reported at once.
pub(crate) fn push(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(e) => e.combine(error),
        None => *errors = Some(error),
    }
}

/// Fills an attribute's slot; the same key twice is an error at the second.
pub(crate) fn set<T>(slot: &mut Option<T>, key: &Ident, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            key,
            format!("duplicate anysql attribute `{key}`"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// The string of `key = ".."`.
pub(crate) fn string_value(
    meta: &syn::meta::ParseNestedMeta<'_>,
    key: &Ident,
    example: &str,
) -> syn::Result<LitStr> {
    let input = meta.value()?;
    if !input.peek(LitStr) {
        return Err(input.error(format!(
            "`{key}` takes a string: #[anysql({key} = \"{example}\")]"
        )));
    }
    input.parse()
}

/// The key of one `#[anysql(..)]` item: a single identifier.
pub(crate) fn key_of(
    meta: &syn::meta::ParseNestedMeta<'_>,
    allowed: &str,
    place: &str,
) -> syn::Result<Ident> {
    match meta.path.get_ident() {
        Some(ident) => Ok(ident.clone()),
        None => Err(syn::Error::new_spanned(
            &meta.path,
            format!("unknown anysql {place} attribute; expected {allowed}"),
        )),
    }
}

/// Whether `tokens` mention one of the type (or const) parameters `params` or one of the
/// lifetimes `lifetimes`: such a field's type gets a bound.
pub(crate) fn mentions(tokens: TokenStream, params: &[&Ident], lifetimes: &[&Ident]) -> bool {
    let mut after_quote = false;
    tokens.into_iter().any(|tt| {
        let lifetime = std::mem::replace(&mut after_quote, false);
        match tt {
            TokenTree::Ident(ident) if lifetime => lifetimes.contains(&&ident),
            TokenTree::Ident(ident) => params.contains(&&ident),
            TokenTree::Group(group) => mentions(group.stream(), params, lifetimes),
            TokenTree::Punct(punct) => {
                after_quote = punct.as_char() == '\'';
                false
            }
            TokenTree::Literal(_) => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::mentions;
    use quote::{format_ident, quote};

    #[test]
    fn mentions_finds_type_parameters_and_lifetimes_at_any_depth() {
        let t = format_ident!("T");
        let a = format_ident!("a");
        assert!(mentions(quote!(Vec<Option<T>>), &[&t], &[]));
        assert!(mentions(quote!([u8; T]), &[&t], &[]));
        assert!(!mentions(quote!(Vec<U>), &[&t], &[]));
        assert!(mentions(quote!(&'a str), &[], &[&a]));
        // `a` as a type is not the lifetime `'a`, and `'T` is not the type `T`.
        assert!(!mentions(quote!(Vec<a>), &[], &[&a]));
        assert!(!mentions(quote!(&'T str), &[&t], &[]));
    }
}
