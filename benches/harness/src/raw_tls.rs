//! TLS for the raw tokio-postgres baseline of the TLS rows (P1t, P3t): tokio-postgres' own
//! `MakeTlsConnect` hook over tokio-rustls, checking the server's certificate as anysql's
//! `sslmode=verify-full` does (the CA file given, the host name), with the same ring provider.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::TlsConnector;

/// Connects the README way, over TLS checked against the CA in `ca`: `tokio_postgres::connect`
/// with `sslmode=require`, then `tokio::spawn(connection)`.
pub async fn connect(
    url: String,
    ca: std::path::PathBuf,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let joint = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{joint}sslmode=require");
    let tls = match MakeRustls::new(&ca) {
        Ok(tls) => tls,
        Err(why) => {
            eprintln!("raw TLS: {why}");
            // An unusable CA: the handshake fails, and so does the setup, with tokio-postgres' error.
            MakeRustls::empty()
        }
    };
    let (client, connection) = tokio_postgres::connect(&url, tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

/// Makes a TLS connector per connection, for the host tokio-postgres connects to.
#[derive(Clone)]
pub struct MakeRustls {
    connector: TlsConnector,
}

impl MakeRustls {
    /// A verify-full configuration trusting the CAs in `ca` (a PEM file).
    pub fn new(ca: &Path) -> Result<MakeRustls, String> {
        let mut roots = RootCertStore::empty();
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
        {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        MakeRustls::with_roots(roots)
    }

    /// Trusts nothing: every handshake fails.
    fn empty() -> MakeRustls {
        MakeRustls::with_roots(RootCertStore::empty()).expect("TLS 1.2 and 1.3 are supported")
    }

    fn with_roots(roots: RootCertStore) -> Result<MakeRustls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustls {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            connector: self.connector.clone(),
            name,
        })
    }
}

/// The connector for one connection.
pub struct RustlsConnect {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(stream))
        })
    }
}

/// The TLS stream tokio-postgres speaks over.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // The benchmark logs in with trust authentication: no SCRAM, no channel binding.
        ChannelBinding::none()
    }
}
