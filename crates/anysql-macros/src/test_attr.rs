//! `#[anysql::test]`: a `#[test]` that runs an async body on a fresh database.

use proc_macro2::{Delimiter, Ident, Span, TokenStream, TokenTree};
use quote::quote;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let runtime = parse_runtime(args)?;
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();

    // The outer attributes (`#[should_panic]`, doc comments) stay on the `#[test]` function.
    let mut at = 0;
    let mut attrs = TokenStream::new();
    while let (Some(TokenTree::Punct(p)), Some(TokenTree::Group(g))) =
        (tokens.get(at), tokens.get(at + 1))
    {
        if p.as_char() != '#' || g.delimiter() != Delimiter::Bracket {
            break;
        }
        attrs.extend([tokens[at].clone(), tokens[at + 1].clone()]);
        at += 2;
    }
    let rest: TokenStream = tokens[at..].iter().cloned().collect();

    // `[pub[(..)]] async fn NAME`: the name is the identifier after `fn`.
    let mut name: Option<Ident> = None;
    let mut is_async = false;
    let mut iter = tokens[at..].iter();
    while let Some(tree) = iter.next() {
        if let TokenTree::Ident(ident) = tree {
            if ident == "async" {
                is_async = true;
            } else if ident == "fn" {
                if let Some(TokenTree::Ident(n)) = iter.next() {
                    name = Some(n.clone());
                }
                break;
            }
        }
    }
    let Some(name) = name else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[anysql::test] goes on a function: `async fn name(engine: anysql::Engine)`",
        ));
    };
    if !is_async {
        return Err(syn::Error::new(
            name.span(),
            "#[anysql::test] needs an `async fn name(engine: anysql::Engine)`",
        ));
    }

    let body = quote!(::anysql::testing::__run_test(#name));
    let run = match runtime.as_str() {
        "tokio" => quote! {
            ::tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for the test")
                .block_on(#body)
        },
        "smol" => quote!(::smol::block_on(#body)),
        _ => quote!(::async_std::task::block_on(#body)),
    };
    Ok(quote! {
        #attrs
        #[::core::prelude::v1::test]
        fn #name() {
            #rest
            #run
        }
    })
}

/// `runtime = "tokio" | "smol" | "async-std"`, tokio when absent.
fn parse_runtime(args: TokenStream) -> syn::Result<String> {
    if args.is_empty() {
        return Ok("tokio".into());
    }
    let mut runtime = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("runtime") {
            let value: syn::LitStr = meta.value()?.parse()?;
            match value.value().as_str() {
                v @ ("tokio" | "smol" | "async-std") => {
                    runtime = Some(v.to_owned());
                    Ok(())
                }
                other => Err(syn::Error::new(
                    value.span(),
                    format!(
                        "unknown runtime {other:?}: expected \"tokio\", \"smol\" or \"async-std\""
                    ),
                )),
            }
        } else {
            Err(meta.error("expected `runtime = \"tokio\" | \"smol\" | \"async-std\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    Ok(runtime.unwrap_or_else(|| "tokio".into()))
}
