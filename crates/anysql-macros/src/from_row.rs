//! `#[derive(FromRow)]`: attribute parsing and code generation.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, Path, Type, WherePredicate};

use crate::attr::{key_of, mentions, push, set, string_value};
use crate::case::RenameRule;

const CONTAINER_KEYS: &str = "`rename_all` or `crate`";
const FIELD_KEYS: &str = "`rename`, `default`, `flatten`, `try_from` or `skip`";

/// The struct's attributes.
#[derive(Default)]
struct ContainerAttrs {
    rename_all: Option<(Ident, RenameRule)>,
    krate: Option<(Ident, Path)>,
}

/// A field's attributes; each keeps the key's identifier, for error spans.
#[derive(Default)]
struct FieldAttrs {
    rename: Option<(Ident, String)>,
    default: Option<Ident>,
    flatten: Option<Ident>,
    try_from: Option<(Ident, Type)>,
    skip: Option<Ident>,
}

fn parse_container(input: &DeriveInput) -> syn::Result<ContainerAttrs> {
    let mut attrs = ContainerAttrs::default();
    let mut errors = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("anysql")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta, CONTAINER_KEYS, "struct")?;
            match key.to_string().as_str() {
                "rename_all" => {
                    let lit = string_value(&meta, &key, "snake_case")?;
                    let rule = RenameRule::from_name(&lit.value()).ok_or_else(|| {
                        syn::Error::new_spanned(
                            &lit,
                            format!("unknown `rename_all` rule; expected {}", RenameRule::NAMES),
                        )
                    })?;
                    set(&mut attrs.rename_all, &key, (key.clone(), rule))
                }
                "crate" => {
                    let lit = string_value(&meta, &key, "anysql_core")?;
                    let path = lit.parse::<Path>()?;
                    set(&mut attrs.krate, &key, (key.clone(), path))
                }
                other => Err(syn::Error::new_spanned(
                    &key,
                    if FIELD_KEYS.contains(&format!("`{other}`")) {
                        format!("`{other}` is a field attribute; the struct takes {CONTAINER_KEYS}")
                    } else {
                        format!(
                            "unknown anysql struct attribute `{other}`; expected {CONTAINER_KEYS}"
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
        None => Ok(attrs),
    }
}

fn parse_field(field: &syn::Field, named: bool) -> syn::Result<FieldAttrs> {
    let mut attrs = FieldAttrs::default();
    let mut errors = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("anysql")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta, FIELD_KEYS, "field")?;
            match key.to_string().as_str() {
                "rename" => {
                    let lit = string_value(&meta, &key, "column_name")?;
                    if !named {
                        return Err(syn::Error::new_spanned(
                            &key,
                            "`rename` needs a named field: the fields of a tuple struct are read \
                             by position",
                        ));
                    }
                    set(&mut attrs.rename, &key, (key.clone(), lit.value()))
                }
                "try_from" => {
                    let lit = string_value(&meta, &key, "i64")?;
                    let ty = lit.parse::<Type>()?;
                    set(&mut attrs.try_from, &key, (key.clone(), ty))
                }
                "default" => set(&mut attrs.default, &key, key.clone()),
                "skip" => set(&mut attrs.skip, &key, key.clone()),
                "flatten" => {
                    if !named {
                        return Err(syn::Error::new_spanned(
                            &key,
                            "`flatten` needs a named field: a flattened struct reads its columns by \
                             name",
                        ));
                    }
                    set(&mut attrs.flatten, &key, key.clone())
                }
                other => Err(syn::Error::new_spanned(
                    &key,
                    if CONTAINER_KEYS.contains(&format!("`{other}`")) {
                        format!("`{other}` is a struct attribute; a field takes {FIELD_KEYS}")
                    } else {
                        format!("unknown anysql field attribute `{other}`; expected {FIELD_KEYS}")
                    },
                )),
            }
        });
        if let Err(e) = result {
            push(&mut errors, e);
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    // Combinations that mean nothing.
    let conflict = |a: &Ident, b: &str, why: &str| {
        Err(syn::Error::new_spanned(
            a,
            format!("`{a}` cannot be combined with `{b}`: {why}"),
        ))
    };
    if let Some(skip) = &attrs.skip {
        let other = [
            attrs.rename.as_ref().map(|(k, _)| k),
            attrs.default.as_ref(),
            attrs.flatten.as_ref(),
            attrs.try_from.as_ref().map(|(k, _)| k),
        ];
        if let Some(other) = other.into_iter().flatten().next() {
            return conflict(other, &skip.to_string(), "a skipped field reads no column");
        }
    }
    if let Some(flatten) = &attrs.flatten {
        let why = "a flattened field reads no column of its own; its type's FromRow reads them";
        if let Some((key, _)) = &attrs.rename {
            return conflict(key, &flatten.to_string(), why);
        }
        if let Some((key, _)) = &attrs.try_from {
            return conflict(key, &flatten.to_string(), why);
        }
        if let Some(key) = &attrs.default {
            return conflict(key, &flatten.to_string(), why);
        }
    }
    Ok(attrs)
}

/// A type as written, for messages: `Option<u8>` rather than `Option < u8 >`.
fn type_name(ty: &Type) -> String {
    let mut s = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        s = s.replace(from, to);
    }
    s
}

pub(crate) fn expand(mut input: DeriveInput) -> syn::Result<TokenStream> {
    let fields = match &input.data {
        Data::Struct(data) => &data.fields,
        Data::Enum(data) => {
            return Err(syn::Error::new(
                data.enum_token.span,
                "FromRow can be derived for structs only, not enums",
            ))
        }
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span,
                "FromRow can be derived for structs only, not unions",
            ))
        }
    };
    let container = parse_container(&input);
    let named = matches!(fields, Fields::Named(_));
    let mut errors = None;
    let mut parsed = Vec::new();
    for field in fields.iter() {
        match parse_field(field, named) {
            Ok(attrs) => parsed.push((field, attrs)),
            Err(e) => push(&mut errors, e),
        }
    }
    let container = match container {
        Ok(c) => c,
        Err(e) => {
            push(&mut errors, e);
            ContainerAttrs::default()
        }
    };
    if let (Some((key, _)), false) = (&container.rename_all, named) {
        push(
            &mut errors,
            syn::Error::new_spanned(
                key,
                "`rename_all` needs named fields: the fields of a tuple struct are read by position",
            ),
        );
    }
    if let Some(e) = errors {
        return Err(e);
    }

    let krate: TokenStream = match &container.krate {
        Some((_, path)) => path.to_token_stream(),
        None => quote!(::anysql::core),
    };
    let name = &input.ident;
    let struct_name = name.to_string();
    let params: Vec<&Ident> = input.generics.type_params().map(|p| &p.ident).collect();
    let generic = |ty: &Type| mentions(ty.to_token_stream(), &params, &[]);
    let mut bounds: Vec<WherePredicate> = Vec::new();
    let mut bound = |tokens: TokenStream| -> syn::Result<()> {
        bounds.push(syn::parse2(tokens)?);
        Ok(())
    };

    let row = quote!(__anysql_row);
    let ok = quote!(::core::result::Result::Ok);
    let err = quote!(::core::result::Result::Err);
    let default = quote!(::core::default::Default::default());
    let mut statements = Vec::new();
    let mut inits = Vec::new();
    let mut columns_seen: HashMap<String, String> = HashMap::new();
    let mut position = 0usize;
    let mut column_errors = None;

    for (i, (field, attrs)) in parsed.iter().enumerate() {
        let ty = &field.ty;
        let var = Ident::new(&format!("__anysql_field{i}"), Span::call_site());
        let label = match &field.ident {
            Some(ident) => format!("`{}`", ident.unraw()),
            None => i.to_string(),
        };
        let context = format!("decoding field {label} of {struct_name}");
        inits.push(match &field.ident {
            Some(ident) => quote!(#ident: #var),
            None => quote!(#var),
        });

        if attrs.skip.is_some() {
            if generic(ty) {
                bound(quote!(#ty: ::core::default::Default))?;
            }
            statements.push(quote!(let #var: #ty = #default;));
            continue;
        }
        if attrs.flatten.is_some() {
            if generic(ty) {
                bound(quote!(#ty: #krate::FromRow))?;
            }
            statements.push(quote_spanned! {ty.span()=>
                let #var: #ty = <#ty as #krate::FromRow>::from_row_mut(#row)
                    .map_err(|e| e.context(#context))?;
            });
            continue;
        }

        // The type read from the column, and how it becomes the field.
        let (read_ty, convert) = match &attrs.try_from {
            Some((_, from)) => {
                if generic(from) {
                    bound(quote!(#from: #krate::FromValue))?;
                }
                if generic(from) || generic(ty) {
                    bound(quote!(#ty: ::core::convert::TryFrom<#from>))?;
                    bound(
                        quote!(<#ty as ::core::convert::TryFrom<#from>>::Error: ::core::fmt::Display),
                    )?;
                }
                let message = format!(
                    "{{}}: column {{}} ({{:?}}): cannot convert the {} into {}: {{}}",
                    type_name(from),
                    type_name(ty)
                );
                (
                    from,
                    quote_spanned! {ty.span()=>
                        match <#ty as ::core::convert::TryFrom<#from>>::try_from(value) {
                            #ok(value) => value,
                            #err(e) => return #err(#krate::Error::decode(::std::format!(
                                #message,
                                #context,
                                index,
                                #row.columns().name(index).unwrap_or(""),
                                e,
                            ))),
                        }
                    },
                )
            }
            None => {
                if generic(ty) {
                    bound(quote!(#ty: #krate::FromValue))?;
                }
                (ty, quote!(value))
            }
        };
        if attrs.default.is_some() && generic(ty) {
            bound(quote!(#ty: ::core::default::Default))?;
        }
        let read = quote_spanned! {read_ty.span()=>
            let value = #row.take::<#read_ty>(index).map_err(|e| e.context(#context))?;
        };

        match &field.ident {
            Some(ident) => {
                let column = match (&attrs.rename, &container.rename_all) {
                    (Some((_, column)), _) => column.clone(),
                    (None, Some((_, rule))) => rule.apply(&ident.unraw().to_string()),
                    (None, None) => ident.unraw().to_string(),
                };
                if let Some(first) = columns_seen.insert(column.clone(), label.clone()) {
                    let at: &dyn ToTokens = match &attrs.rename {
                        Some((key, _)) => key,
                        None => ident,
                    };
                    push(
                        &mut column_errors,
                        syn::Error::new_spanned(
                            at,
                            format!(
                                "field {label} reads column {column:?}, which field {first} reads \
                                 already (each column is moved into one field)"
                            ),
                        ),
                    );
                }
                let missing = if attrs.default.is_some() {
                    quote!(#default)
                } else {
                    quote! {
                        return #err(#krate::Error::decode(::std::format!(
                            "{}: no column named {:?}; the row has {:?}",
                            #context,
                            #column,
                            #row.columns().names().collect::<::std::vec::Vec<&str>>(),
                        )))
                    }
                };
                statements.push(quote! {
                    let #var: #ty = match #row.columns().index_of(#column) {
                        ::core::option::Option::Some(index) => {
                            #read
                            #convert
                        }
                        ::core::option::Option::None => #missing,
                    };
                });
            }
            None => {
                let index = position;
                let body = quote! {{
                    let index: usize = #index;
                    #read
                    #convert
                }};
                statements.push(if attrs.default.is_some() {
                    quote!(let #var: #ty = if #index < #row.len() #body else { #default };)
                } else {
                    quote!(let #var: #ty = #body;)
                });
            }
        }
        position += 1;
    }
    if let Some(e) = column_errors {
        return Err(e);
    }

    // A tuple struct reads columns 0.., like a tuple; more columns than it reads is a mistake in
    // the query.
    let arity = if !matches!(fields, Fields::Unnamed(_)) {
        quote!()
    } else {
        let message = format!(
            "cannot decode a row of {{}} column{{}} into {struct_name}, which reads {position}"
        );
        quote! {
            if #row.len() > #position {
                return #err(#krate::Error::decode(::std::format!(
                    #message,
                    #row.len(),
                    if #row.len() == 1 { "" } else { "s" },
                )));
            }
        }
    };
    let construct = match fields {
        Fields::Named(_) => quote!(Self { #(#inits),* }),
        Fields::Unnamed(_) => quote!(Self ( #(#inits),* )),
        Fields::Unit => quote!(Self),
    };

    if !bounds.is_empty() {
        input.generics.make_where_clause().predicates.extend(bounds);
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::FromRow for #name #ty_generics #where_clause {
            fn from_row(mut #row: #krate::Row) -> ::core::result::Result<Self, #krate::Error> {
                <Self as #krate::FromRow>::from_row_mut(&mut #row)
            }

            fn from_row_mut(#row: &mut #krate::Row) -> ::core::result::Result<Self, #krate::Error> {
                #arity
                #(#statements)*
                #ok(#construct)
            }
        }
    })
}
