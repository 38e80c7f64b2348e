//! TLS against a throwaway cluster with `ssl = on` that `cargo xtask test-matrix` starts for the
//! TLS cells (`<runtime> × postgres (tls)`), with a CA, server and client certificates made at run
//! time (`xtask/src/pg/tls.rs`). The cluster's URL and the certificates' directory come in
//! `ANYSQL_PG_TLS_URL` and `ANYSQL_PG_TLS_DIR`; without them the tests say so and pass, except
//! under `CI=true`, where they fail. The other cells skip the module `tls_only`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anysql::prelude::*;
use anysql_conformance::{block_on, spawn};

/// The `SSLRequest` message.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The TLS cluster: its port and the certificates' directory; `None` when not given (outside CI).
fn tls_server() -> Option<(u16, PathBuf)> {
    let url = std::env::var("ANYSQL_PG_TLS_URL").ok();
    let dir = std::env::var("ANYSQL_PG_TLS_DIR").ok();
    let (Some(url), Some(dir)) = (url, dir) else {
        let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
        assert!(
            !ci,
            "CI needs the TLS cluster: ANYSQL_PG_TLS_URL and ANYSQL_PG_TLS_DIR are set by the TLS \
             cells of `cargo xtask test-matrix`"
        );
        eprintln!("no TLS cluster (ANYSQL_PG_TLS_URL, ANYSQL_PG_TLS_DIR): not run");
        return None;
    };
    let port = url
        .rsplit_once(':')
        .and_then(|(_, tail)| tail.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no port in ANYSQL_PG_TLS_URL={url}"));
    Some((port, PathBuf::from(dir)))
}

/// A URL for `user` at `host:port` with the given query.
fn url(host: &str, port: u16, user: &str, query: &str) -> String {
    format!("postgres://{user}@{host}:{port}/test?max_size=1&shared=false&{query}")
}

/// Connects with `url` and reports whether the session uses TLS, as the server sees it.
async fn session_ssl(url: &str) -> Result<bool, Error> {
    let engine = anysql::builder(url).build()?;
    let mut conn = engine.acquire().await?;
    let ssl = query_scalar::<bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await;
    drop(conn);
    engine.close().await;
    ssl
}

/// The error and all its sources, as one line.
fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(" / ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn expect_connection_error(url: &str, needle: &str) {
    let url = url.to_owned();
    let err =
        block_on(async move { session_ssl(&url).await }).expect_err("the connection must fail");
    assert_eq!(err.kind(), anysql::ErrorKind::Connection, "{err:?}");
    let text = chain(&err);
    assert!(text.contains(needle), "expected `{needle}` in: {text}");
}

mod tls_only {
    use super::*;

    #[test]
    fn every_sslmode_uses_tls_where_it_should() {
        let Some((port, dir)) = tls_server() else {
            return;
        };
        let ca = dir.join("ca.pem").display().to_string();
        for (query, expected) in [
            ("sslmode=disable".to_owned(), false),
            // Plaintext first; the server accepts it.
            ("sslmode=allow".to_owned(), false),
            ("sslmode=prefer".to_owned(), true),
            // No sslmode: prefer, as in libpq.
            (String::new(), true),
            ("sslmode=require".to_owned(), true),
            (format!("sslmode=require&sslrootcert={ca}"), true),
            (format!("sslmode=verify-ca&sslrootcert={ca}"), true),
            (format!("sslmode=verify-full&sslrootcert={ca}"), true),
        ] {
            let url = url("localhost", port, "postgres", &query);
            let ssl = block_on({
                let url = url.clone();
                async move { session_ssl(&url).await }
            })
            .unwrap_or_else(|e| panic!("{query}: {}", chain(&e)));
            assert_eq!(ssl, expected, "pg_stat_ssl.ssl with {query}");
        }
    }

    #[test]
    fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
        let Some((port, dir)) = tls_server() else {
            return;
        };
        let ca = dir.join("ca.pem").display().to_string();
        // The certificate names 127.0.0.1 (an IP address: checked without SNI) and localhost.
        let full = url(
            "127.0.0.1",
            port,
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        );
        assert!(block_on(async move { session_ssl(&full).await }).unwrap());
        // The server also listens on 127.0.0.2, which its certificate does not name.
        let wrong = url(
            "127.0.0.2",
            port,
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        );
        expect_connection_error(
            &wrong,
            "the server's certificate is not valid for the host name `127.0.0.2`",
        );
        let chain_only = url(
            "127.0.0.2",
            port,
            "postgres",
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        );
        assert!(block_on(async move { session_ssl(&chain_only).await }).unwrap());
    }

    #[test]
    fn a_wrong_ca_fails_clearly() {
        let Some((port, dir)) = tls_server() else {
            return;
        };
        let other = dir.join("other-ca.pem").display().to_string();
        for mode in ["verify-full", "verify-ca", "require"] {
            let url = url(
                "localhost",
                port,
                "postgres",
                &format!("sslmode={mode}&sslrootcert={other}"),
            );
            expect_connection_error(&url, "the server's certificate is not signed by a CA of");
            expect_connection_error(&url, "other-ca.pem");
        }
    }

    #[test]
    fn require_against_a_server_without_tls_fails_clearly() {
        if tls_server().is_none() {
            return;
        }
        // A server that refuses TLS, as PostgreSQL with `ssl = off` does: it answers `N`.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0; 8];
            socket.read_exact(&mut request).unwrap();
            assert_eq!(request, SSL_REQUEST);
            socket.write_all(b"N").unwrap();
            // Wait for the client to give up.
            let _ = socket.read(&mut [0; 64]);
        });
        let url = url("127.0.0.1", port, "postgres", "sslmode=require");
        expect_connection_error(
            &url,
            "the server does not accept TLS connections (it refused the SSLRequest), and \
             sslmode=require requires TLS",
        );
        server.join().unwrap();
    }

    /// `prefer` against a server without TLS is a plaintext connection already: when the server
    /// refuses it (a wrong password, say), trying plaintext again would only repeat it.
    #[test]
    fn prefer_does_not_repeat_a_refused_plaintext_login() {
        if tls_server().is_none() {
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        thread::spawn(move || {
            for socket in listener.incoming().take(4) {
                let Ok(mut socket) = socket else { return };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut request = [0; 8];
                if socket.read_exact(&mut request).is_err() || request != SSL_REQUEST {
                    continue;
                }
                let _ = socket.write_all(b"N");
                // The startup message: its length, then the rest.
                let mut length = [0; 4];
                if socket.read_exact(&mut length).is_err() {
                    continue;
                }
                let mut rest = vec![0; u32::from_be_bytes(length) as usize - 4];
                let _ = socket.read_exact(&mut rest);
                let mut fields = Vec::new();
                for (code, text) in [
                    (b'S', "FATAL"),
                    (b'C', "28P01"),
                    (b'M', "password authentication failed"),
                ] {
                    fields.push(code);
                    fields.extend_from_slice(text.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut message = vec![b'E'];
                message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                message.extend_from_slice(&fields);
                let _ = socket.write_all(&message);
            }
        });
        let url = url("127.0.0.1", port, "postgres", "sslmode=prefer");
        expect_connection_error(&url, "password authentication failed");
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one connection, not a second plaintext one"
        );
    }

    #[test]
    fn a_client_certificate_is_accepted() {
        let Some((port, dir)) = tls_server() else {
            return;
        };
        let files = format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            dir.join("ca.pem").display(),
            dir.join("client.pem").display(),
            dir.join("client.key").display()
        );
        let with_cert = url("localhost", port, "anysql_cert", &files);
        let user = block_on(async move {
            let engine = anysql::builder(&with_cert).build()?;
            let user = query_scalar::<String>("SELECT current_user::text")
                .fetch_one(&engine)
                .await;
            engine.close().await;
            user
        })
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert_eq!(user, "anysql_cert");
        // Without the certificate the server refuses the role (its pg_hba.conf line is `cert`).
        let without = url(
            "localhost",
            port,
            "anysql_cert",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                dir.join("ca.pem").display()
            ),
        );
        expect_connection_error(&without, "certificate");
    }

    #[test]
    fn allow_retries_with_tls_and_prefer_falls_back_to_plaintext() {
        let Some((port, _)) = tls_server() else {
            return;
        };
        // `anysql_tls_only` may only connect over TLS: `allow` tries plaintext, is refused by
        // the server and retries with TLS.
        let allow = url("localhost", port, "anysql_tls_only", "sslmode=allow");
        assert!(block_on(async move { session_ssl(&allow).await }).unwrap());
        let disable = url("localhost", port, "anysql_tls_only", "sslmode=disable");
        expect_connection_error(&disable, "pg_hba.conf rejects connection");
        // `anysql_plain_only` may only connect in plaintext: `prefer` is refused over TLS and
        // falls back.
        let prefer = url("localhost", port, "anysql_plain_only", "sslmode=prefer");
        assert!(!block_on(async move { session_ssl(&prefer).await }).unwrap());
        let require = url("localhost", port, "anysql_plain_only", "sslmode=require");
        expect_connection_error(&require, "pg_hba.conf rejects connection");
    }

    #[test]
    fn cancel_requests_travel_over_tls() {
        let Some((port, dir)) = tls_server() else {
            return;
        };
        let proxy = Proxy::start(port);
        let url = url(
            "127.0.0.1",
            proxy.port,
            "postgres",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                dir.join("ca.pem").display()
            ),
        );
        block_on(async move {
            let engine = anysql::builder(&url).build()?;
            let mut conn = engine.acquire().await?;
            let cancel = conn.cancel_handle().expect("PostgreSQL can cancel");
            let canceller = spawn(async move {
                anysql_conformance::sleep(Duration::from_millis(200)).await;
                cancel.cancel().await
            });
            let err = query("SELECT pg_sleep(10)")
                .execute(&mut conn)
                .await
                .unwrap_err();
            canceller.await?;
            assert_eq!(err.code(), Some("57014"), "query_canceled, got {err:?}");
            drop(conn);
            engine.close().await;
            Ok::<_, Error>(())
        })
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let firsts = proxy.firsts.lock().unwrap().clone();
        assert!(
            firsts.len() >= 2,
            "the connection and its cancel request: {firsts:?}"
        );
        for first in firsts {
            assert_eq!(
                first, SSL_REQUEST,
                "every connection starts with an SSLRequest"
            );
        }
    }
}

/// A loopback TCP proxy to the TLS cluster that records the first 8 bytes each client sends.
struct Proxy {
    port: u16,
    firsts: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let firsts = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&firsts);
        thread::spawn(move || {
            // Bounded: the test makes a handful of connections.
            for client in listener.incoming().take(16) {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                let (Ok(mut client_back), Ok(mut server_back)) =
                    (client.try_clone(), server.try_clone())
                else {
                    return;
                };
                let record = Arc::clone(&record);
                thread::spawn(move || {
                    let mut first = Vec::new();
                    let mut buf = [0; 16 * 1024];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if first.len() < 8 {
                            let take = n.min(8 - first.len());
                            first.extend_from_slice(&buf[..take]);
                            if first.len() == 8 {
                                record.lock().unwrap().push(first.clone());
                            }
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(Shutdown::Write);
                });
                thread::spawn(move || {
                    let _ = std::io::copy(&mut server_back, &mut client_back);
                    let _ = client_back.shutdown(Shutdown::Write);
                });
            }
        });
        Proxy { port, firsts }
    }
}
