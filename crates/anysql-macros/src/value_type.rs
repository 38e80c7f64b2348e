//! `#[derive(Type)]`: `ToValue`, `FromValue` and `ArrayElement` for an enum of unit variants
//! (stored as text) or a transparent newtype (stored as its field).

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DataEnum, DataStruct, DeriveInput, Fields, Ident, Path};

use crate::attr::{key_of, mentions, push, set, string_value};
use crate::case::RenameRule;

const ENUM_KEYS: &str = "`rename_all` or `crate`";
const VARIANT_KEYS: &str = "`rename`";
const STRUCT_KEYS: &str = "`transparent` or `crate`";

/// The attributes of the enum or the struct; each keeps its key, for error spans.
#[derive(Default)]
struct ContainerAttrs {
    rename_all: Option<(Ident, RenameRule)>,
    transparent: Option<Ident>,
    krate: Option<(Ident, Path)>,
}

fn parse_container(input: &DeriveInput, is_enum: bool) -> syn::Result<ContainerAttrs> {
    let (allowed, place) = if is_enum {
        (ENUM_KEYS, "enum")
    } else {
        (STRUCT_KEYS, "struct")
    };
    let mut attrs = ContainerAttrs::default();
    let mut errors = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("anysql")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta, allowed, place)?;
            match (key.to_string().as_str(), is_enum) {
                ("crate", _) => {
                    let lit = string_value(&meta, &key, "anysql_core")?;
                    let path = lit.parse::<Path>()?;
                    set(&mut attrs.krate, &key, (key.clone(), path))
                }
                ("rename_all", true) => {
                    let lit = string_value(&meta, &key, "snake_case")?;
                    let rule = RenameRule::from_name(&lit.value()).ok_or_else(|| {
                        syn::Error::new_spanned(
                            &lit,
                            format!("unknown `rename_all` rule; expected {}", RenameRule::NAMES),
                        )
                    })?;
                    set(&mut attrs.rename_all, &key, (key.clone(), rule))
                }
                ("transparent", false) => {
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        return Err(
                            meta.error("`transparent` takes no value: #[anysql(transparent)]")
                        );
                    }
                    set(&mut attrs.transparent, &key, key.clone())
                }
                ("rename_all", false) => Err(syn::Error::new_spanned(
                    &key,
                    "`rename_all` renames the variants of an enum; a transparent struct is \
                     stored as its field",
                )),
                ("transparent", true) => Err(syn::Error::new_spanned(
                    &key,
                    "`transparent` is for a struct with one field; an enum is stored as the \
                     names of its variants",
                )),
                ("rename", true) => Err(syn::Error::new_spanned(
                    &key,
                    format!("`rename` is a variant attribute; the enum takes {ENUM_KEYS}"),
                )),
                (other, _) => Err(syn::Error::new_spanned(
                    &key,
                    format!("unknown anysql {place} attribute `{other}`; expected {allowed}"),
                )),
            }
        });
        if let Err(e) = result {
            push(&mut errors, e);
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(attrs),
    }
}

/// A variant's `rename`, with the literal for error spans.
fn parse_variant(variant: &syn::Variant) -> syn::Result<Option<syn::LitStr>> {
    let mut rename = None;
    let mut errors = None;
    for attr in variant.attrs.iter().filter(|a| a.path().is_ident("anysql")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta, VARIANT_KEYS, "variant")?;
            match key.to_string().as_str() {
                "rename" => {
                    let lit = string_value(&meta, &key, "name")?;
                    set(&mut rename, &key, lit)
                }
                other => Err(syn::Error::new_spanned(
                    &key,
                    if ENUM_KEYS.contains(&format!("`{other}`")) {
                        format!("`{other}` is an enum attribute; a variant takes {VARIANT_KEYS}")
                    } else {
                        format!(
                            "unknown anysql variant attribute `{other}`; expected {VARIANT_KEYS}"
                        )
                    },
                )),
            }
        });
        if let Err(e) = result {
            push(&mut errors, e);
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(rename),
    }
}

pub(crate) fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    match &input.data {
        Data::Enum(data) => {
            let attrs = parse_container(&input, true);
            expand_enum(&input, data, attrs)
        }
        Data::Struct(data) => {
            let attrs = parse_container(&input, false);
            expand_struct(&input, data, attrs)
        }
        Data::Union(data) => Err(syn::Error::new(
            data.union_token.span,
            "Type can be derived for an enum of unit variants or a struct with \
             #[anysql(transparent)], not a union",
        )),
    }
}

fn krate(attrs: &ContainerAttrs) -> TokenStream {
    match &attrs.krate {
        Some((_, path)) => path.to_token_stream(),
        None => quote!(::anysql::core),
    }
}

fn expand_enum(
    input: &DeriveInput,
    data: &DataEnum,
    attrs: syn::Result<ContainerAttrs>,
) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let mut errors = None;
    let attrs = attrs.unwrap_or_else(|e| {
        push(&mut errors, e);
        ContainerAttrs::default()
    });
    if data.variants.is_empty() {
        push(
            &mut errors,
            syn::Error::new_spanned(
                name,
                format!(
                    "Type needs at least one variant: {name} has none, so no value could \
                     decode into it"
                ),
            ),
        );
    }

    // Each variant's stored name; two variants with one name would make decoding ambiguous.
    let mut variants = Vec::new();
    let mut seen: HashMap<String, &Ident> = HashMap::new();
    for variant in &data.variants {
        let rename = match parse_variant(variant) {
            Ok(rename) => rename,
            Err(e) => {
                push(&mut errors, e);
                None
            }
        };
        if !matches!(variant.fields, Fields::Unit) {
            push(
                &mut errors,
                syn::Error::new_spanned(
                    &variant.fields,
                    format!(
                        "variant `{}` has fields; Type stores an enum as the name of its variant, \
                         so every variant must be a unit variant",
                        variant.ident
                    ),
                ),
            );
        }
        let ident = &variant.ident;
        let stored = match (&rename, &attrs.rename_all) {
            (Some(lit), _) => lit.value(),
            (None, Some((_, rule))) => rule.apply(&ident.unraw().to_string()),
            (None, None) => ident.unraw().to_string(),
        };
        if let Some(first) = seen.insert(stored.clone(), ident) {
            let at: &dyn ToTokens = match &rename {
                Some(lit) => lit,
                None => ident,
            };
            push(
                &mut errors,
                syn::Error::new_spanned(
                    at,
                    format!(
                        "variants `{first}` and `{ident}` are both stored as {stored:?}; each \
                         variant needs a name of its own (change one with \
                         #[anysql(rename = \"..\")])"
                    ),
                ),
            );
        }
        variants.push((ident, stored));
    }
    if let Some(e) = errors {
        return Err(e);
    }

    let krate = krate(&attrs);
    let type_name = name.to_string();
    let null = format!("unexpected NULL; decode into Option<{type_name}> to accept NULL");
    let expected = format!(
        "[{}]",
        variants
            .iter()
            .map(|(_, stored)| format!("{stored:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let to_arms = variants
        .iter()
        .map(|(ident, stored)| quote!(Self::#ident => #stored));
    let from_arms = variants
        .iter()
        .map(|(ident, stored)| quote!(#stored => ::core::result::Result::Ok(Self::#ident)));
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::ToValue for #name #ty_generics #where_clause {
            fn to_value(&self) -> #krate::Value {
                #krate::Value::Text(::std::string::String::from(match self {
                    #(#to_arms,)*
                }))
            }
        }

        #[automatically_derived]
        impl #impl_generics #krate::FromValue for #name #ty_generics #where_clause {
            fn from_value_ref(
                __anysql_value: &#krate::Value,
            ) -> ::core::result::Result<Self, #krate::Error> {
                match __anysql_value {
                    #krate::Value::Text(__anysql_text) => {
                        match ::std::string::String::as_str(__anysql_text) {
                            #(#from_arms,)*
                            _ => ::core::result::Result::Err(#krate::Error::decode(
                                ::std::format!(
                                    "cannot decode {:?} into {}; expected one of {}",
                                    __anysql_text,
                                    #type_name,
                                    #expected,
                                ),
                            )),
                        }
                    }
                    #krate::Value::Null => {
                        ::core::result::Result::Err(#krate::Error::decode(#null))
                    }
                    __anysql_other => ::core::result::Result::Err(#krate::Error::decode(
                        ::std::format!(
                            "cannot decode a {} value into {}",
                            __anysql_other.type_name(),
                            #type_name,
                        ),
                    )),
                }
            }
        }

        #[automatically_derived]
        impl #impl_generics #krate::ArrayElement for #name #ty_generics #where_clause {}
    })
}

fn expand_struct(
    input: &DeriveInput,
    data: &DataStruct,
    attrs: syn::Result<ContainerAttrs>,
) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let mut errors = None;
    let attrs = attrs.unwrap_or_else(|e| {
        push(&mut errors, e);
        ContainerAttrs::default()
    });
    for field in data.fields.iter() {
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("anysql")) {
            push(
                &mut errors,
                syn::Error::new_spanned(
                    attr,
                    "the field of a transparent struct takes no anysql attributes; put them on \
                     the struct",
                ),
            );
        }
    }
    let Some(transparent) = &attrs.transparent else {
        // A mistake in the attributes (`#[anysql(transparent = true)]`, a misspelt key) is
        // reported alone: it explains more than this would.
        return Err(errors.unwrap_or_else(|| {
            syn::Error::new_spanned(
                name,
                format!(
                    "Type on a struct needs #[anysql(transparent)]: {name} is then stored as its \
                     one field (an enum of unit variants is stored as text)"
                ),
            )
        }));
    };
    let count = data.fields.len();
    if count != 1 {
        let message = format!(
            "`transparent` needs a struct with exactly one field, the one {name} is stored as; \
             {name} has {count}"
        );
        push(
            &mut errors,
            if count == 0 {
                syn::Error::new_spanned(transparent, message)
            } else {
                syn::Error::new_spanned(&data.fields, message)
            },
        );
    }
    if let Some(e) = errors {
        return Err(e);
    }
    let field = data.fields.iter().next().ok_or_else(|| {
        syn::Error::new_spanned(transparent, "`transparent` needs a struct with one field")
    })?;

    let krate = krate(&attrs);
    let ty = &field.ty;
    let inner = match &field.ident {
        Some(ident) => quote!(#ident),
        None => quote!(0),
    };
    let construct = |value: TokenStream| match &field.ident {
        Some(ident) => quote!(Self { #ident: #value }),
        None => quote!(Self(#value)),
    };

    // A field whose type mentions the struct's parameters gets the bound it needs on each impl. A
    // field of a concrete type needs none for `ToValue` and `FromValue` (a type that is not one is
    // an error here, at the field), but `ArrayElement` is only for fields whose type is one: its
    // bound is made higher-ranked, which rustc checks where the impl is used, not where it is
    // written (a plain `u8: ArrayElement` would be an error here).
    let params: Vec<&Ident> = input
        .generics
        .type_params()
        .map(|p| &p.ident)
        .chain(input.generics.const_params().map(|p| &p.ident))
        .collect();
    let lifetimes: Vec<&Ident> = input
        .generics
        .lifetimes()
        .map(|p| &p.lifetime.ident)
        .collect();
    let generic = mentions(ty.to_token_stream(), &params, &lifetimes);
    let bound = |tr: &TokenStream, always: bool| match (generic, always) {
        (true, _) => Some(quote!(#ty: #tr)),
        (false, true) => Some(quote!(for<'__anysql> #ty: #tr)),
        (false, false) => None,
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let impl_for = |tr: TokenStream, always: bool, body: TokenStream| {
        let mut predicates: Vec<TokenStream> = where_clause
            .map(|w| w.predicates.iter().map(ToTokens::to_token_stream).collect())
            .unwrap_or_default();
        predicates.extend(bound(&tr, always));
        let where_clause = if predicates.is_empty() {
            quote!()
        } else {
            quote!(where #(#predicates),*)
        };
        quote! {
            #[automatically_derived]
            impl #impl_generics #tr for #name #ty_generics #where_clause {
                #body
            }
        }
    };

    let to_value = quote_spanned!(ty.span()=> <#ty as #krate::ToValue>::to_value(&self.#inner));
    let from_ref = construct(quote_spanned! {ty.span()=>
        <#ty as #krate::FromValue>::from_value_ref(__anysql_value)?
    });
    let from_owned = construct(quote_spanned! {ty.span()=>
        <#ty as #krate::FromValue>::from_value(__anysql_value)?
    });
    let to_impl = impl_for(
        quote!(#krate::ToValue),
        false,
        quote! {
            fn to_value(&self) -> #krate::Value {
                #to_value
            }
        },
    );
    let from_impl = impl_for(
        quote!(#krate::FromValue),
        false,
        quote! {
            fn from_value_ref(
                __anysql_value: &#krate::Value,
            ) -> ::core::result::Result<Self, #krate::Error> {
                ::core::result::Result::Ok(#from_ref)
            }

            fn from_value(__anysql_value: #krate::Value) -> ::core::result::Result<Self, #krate::Error> {
                ::core::result::Result::Ok(#from_owned)
            }
        },
    );
    let array_impl = impl_for(quote!(#krate::ArrayElement), true, quote!());
    Ok(quote! {
        #to_impl
        #from_impl
        #array_impl
    })
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    fn expand(input: TokenStream) -> syn::Result<TokenStream> {
        super::expand(syn::parse2(input).expect("a derive input"))
    }

    /// The generated code with the spacing squeezed out, for `contains` checks.
    fn expanded(input: TokenStream) -> String {
        let tokens = expand(input).unwrap_or_else(|e| panic!("{e}"));
        tokens.to_string().replace(' ', "")
    }

    /// Every error the input gives, in order.
    fn errors(input: TokenStream) -> Vec<String> {
        match expand(input) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn error(input: TokenStream) -> String {
        let all = errors(input);
        assert_eq!(all.len(), 1, "{all:?}");
        all.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn an_enum_gets_text_arms_with_renames_and_the_three_impls() {
        let code = expanded(quote! {
            #[anysql(rename_all = "snake_case")]
            enum Mood {
                VeryHappy,
                #[anysql(rename = "down")]
                Sad,
            }
        });
        for part in [
            "impl::anysql::core::ToValueforMood",
            "impl::anysql::core::FromValueforMood",
            "impl::anysql::core::ArrayElementforMood{}",
            "Self::VeryHappy=>\"very_happy\"",
            "Self::Sad=>\"down\"",
            "\"very_happy\"=>::core::result::Result::Ok(Self::VeryHappy)",
            "\"[\\\"very_happy\\\",\\\"down\\\"]\"",
            "\"unexpectedNULL;decodeintoOption<Mood>toacceptNULL\"",
        ] {
            assert!(code.contains(part), "{part} not in {code}");
        }
    }

    #[test]
    fn a_concrete_newtype_bounds_only_array_element_and_higher_ranked() {
        let code = expanded(quote! {
            #[anysql(transparent)]
            struct UserId(i64);
        });
        assert!(
            code.contains("impl::anysql::core::ToValueforUserId{"),
            "{code}"
        );
        assert!(
            code.contains("impl::anysql::core::FromValueforUserId{"),
            "{code}"
        );
        assert!(
            code.contains(
                "impl::anysql::core::ArrayElementforUserIdwherefor<'__anysql>i64:::anysql::core::ArrayElement{}"
            ),
            "{code}"
        );
        assert!(
            code.contains("<i64as::anysql::core::ToValue>::to_value(&self.0)"),
            "{code}"
        );

        let code = expanded(quote! {
            #[anysql(transparent, crate = "db")]
            struct Email { address: String }
        });
        assert!(
            code.contains("Self{address:<Stringasdb::FromValue>::from_value(__anysql_value)?}"),
            "{code}"
        );
        assert!(!code.contains("::anysql::core"), "{code}");
    }

    #[test]
    fn a_generic_newtype_forwards_its_bounds_and_adds_the_field_s() {
        let code = expanded(quote! {
            #[anysql(transparent)]
            struct Wrapper<T: Clone>(Vec<T>) where T: Copy;
        });
        for part in [
            "impl<T:Clone>::anysql::core::ToValueforWrapper<T>whereT:Copy,Vec<T>:::anysql::core::ToValue{",
            "impl<T:Clone>::anysql::core::FromValueforWrapper<T>whereT:Copy,Vec<T>:::anysql::core::FromValue{",
            "impl<T:Clone>::anysql::core::ArrayElementforWrapper<T>whereT:Copy,Vec<T>:::anysql::core::ArrayElement{}",
        ] {
            assert!(code.contains(part), "{part} not in {code}");
        }
        let code = expanded(quote! {
            #[anysql(transparent)]
            struct Name<'a>(&'a str);
        });
        assert!(code.contains("impl<'a>::anysql::core::FromValueforName<'a>where&'astr:::anysql::core::FromValue{"), "{code}");
    }

    #[test]
    fn enum_mistakes() {
        assert!(error(quote!(
            enum Shape {
                Circle(f64),
                Square,
            }
        ))
        .starts_with("variant `Circle` has fields"));
        assert!(error(quote!(
            enum Shape {
                Point { x: i64 },
            }
        ))
        .starts_with("variant `Point` has fields"));
        assert!(error(quote!(
            enum Never {}
        ))
        .starts_with("Type needs at least one variant: Never has none"));
        assert_eq!(
            error(quote!(
                enum E {
                    A,
                    #[anysql(rename = "A")]
                    B,
                }
            )),
            "variants `A` and `B` are both stored as \"A\"; each variant needs a name of its own \
             (change one with #[anysql(rename = \"..\")])"
        );
        assert!(error(quote!(
            #[anysql(rename_all = "lowercase")]
            enum E {
                Ab,
                AB,
            }
        ))
        .starts_with("variants `Ab` and `AB` are both stored as \"ab\""));
        assert!(error(quote!(
            #[anysql(rename_all = "camel")]
            enum E {
                A,
            }
        ))
        .starts_with("unknown `rename_all` rule; expected \"snake_case\""));
        assert_eq!(
            error(quote!(
                #[anysql(renamed_all = "camelCase")]
                enum E {
                    A,
                }
            )),
            "unknown anysql enum attribute `renamed_all`; expected `rename_all` or `crate`"
        );
        assert!(error(quote!(
            #[anysql(transparent)]
            enum E {
                A,
            }
        ))
        .starts_with("`transparent` is for a struct"));
        assert!(error(quote!(
            #[anysql(rename = "x")]
            enum E {
                A,
            }
        ))
        .starts_with("`rename` is a variant attribute"));
        assert!(error(quote!(
            enum E {
                #[anysql(rename_all = "camelCase")]
                A,
            }
        ))
        .starts_with("`rename_all` is an enum attribute; a variant takes `rename`"));
        assert_eq!(
            error(quote!(
                enum E {
                    #[anysql(skip)]
                    A,
                }
            )),
            "unknown anysql variant attribute `skip`; expected `rename`"
        );
        assert_eq!(
            error(quote!(
                enum E {
                    #[anysql(rename = "a", rename = "b")]
                    A,
                }
            )),
            "duplicate anysql attribute `rename`"
        );
        assert!(error(quote!(
            enum E {
                #[anysql(rename = a)]
                A,
            }
        ))
        .starts_with("`rename` takes a string"));
        assert!(error(quote!(
            #[anysql(crate = "not a path")]
            enum E {
                A,
            }
        ))
        .contains("expected"));
    }

    #[test]
    fn struct_and_union_mistakes() {
        assert!(error(quote!(
            struct UserId(i64);
        ))
        .starts_with("Type on a struct needs #[anysql(transparent)]"));
        assert_eq!(
            error(quote!(
                #[anysql(transparent)]
                struct Nothing;
            )),
            "`transparent` needs a struct with exactly one field, the one Nothing is stored as; \
             Nothing has 0"
        );
        assert!(error(quote!(
            #[anysql(transparent)]
            struct Empty {}
        ))
        .ends_with("Empty has 0"));
        assert!(error(quote!(
            #[anysql(transparent)]
            struct Pair(i64, i64);
        ))
        .ends_with("Pair has 2"));
        assert!(error(quote!(
            #[anysql(transparent)]
            struct P {
                a: i64,
                b: i64,
            }
        ))
        .ends_with("P has 2"));
        assert_eq!(
            error(quote!(
                #[anysql(transparent = true)]
                struct Id(i64);
            )),
            "`transparent` takes no value: #[anysql(transparent)]"
        );
        assert_eq!(
            error(quote!(
                #[anysql(transparent, transparent)]
                struct Id(i64);
            )),
            "duplicate anysql attribute `transparent`"
        );
        assert!(error(quote!(
            #[anysql(transparent, rename_all = "snake_case")]
            struct Id(i64);
        ))
        .starts_with("`rename_all` renames the variants of an enum"));
        assert_eq!(
            error(quote!(
                #[anysql(transparent, flatten)]
                struct Id(i64);
            )),
            "unknown anysql struct attribute `flatten`; expected `transparent` or `crate`"
        );
        assert!(error(quote!(
            #[anysql(transparent)]
            struct Id(#[anysql(rename = "id")] i64);
        ))
        .starts_with("the field of a transparent struct takes no anysql attributes"));
        assert!(error(quote!(union Bits { a: u32, b: f32 })).ends_with("not a union"));
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let all = errors(quote! {
            #[anysql(rename_all = "camel")]
            enum E {
                A(i64),
                #[anysql(wat)]
                B,
            }
        });
        assert_eq!(all.len(), 3, "{all:?}");
        let all = errors(quote! {
            #[anysql(transparent)]
            struct Pair(#[anysql(rename = "a")] i64, i64);
        });
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[1].ends_with("Pair has 2"), "{all:?}");
        // A misspelt `transparent` is reported as such, not also as a missing one.
        assert_eq!(
            errors(quote!(
                #[anysql(transparnt)]
                struct Id(i64);
            )),
            ["unknown anysql struct attribute `transparnt`; expected `transparent` or `crate`"]
        );
    }
}
