//! The rustls side: the client configuration each `sslmode` needs, the `SSLRequest` negotiation,
//! and [`TlsSocket`], the decrypted stream that the rest of the driver reads like a plain socket.
//!
//! The crypto provider is ring's, passed explicitly to every builder: rustls then never consults
//! its process-wide default, so an application whose dependency tree also enables aws-lc-rs (and
//! so has two providers and no default) cannot make a connection panic.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use anysql_core::{BoxSocket, Socket};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::TlsConnector;

use super::{SslMode, SslRootCert, TlsError, TlsOptions};
use crate::options::PgHost;

/// The `SSLRequest` message: length 8, then the request code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The rustls configuration of one engine's connections.
#[derive(Clone)]
pub(crate) struct TlsConfig {
    connector: TlsConnector,
    /// What the verifier checks, for messages.
    mode: SslMode,
    /// The CA file, for messages.
    root: Option<SslRootCert>,
}

/// The crypto provider: ring, whatever else the dependency tree enables.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// Reads the certificate files and builds the configuration for `options`' mode.
    pub(super) fn build(options: &TlsOptions) -> Result<TlsConfig, String> {
        let provider = provider();
        let mode = options.effective_mode();
        let verifier: Arc<dyn ServerCertVerifier> = match (&options.root_cert, mode) {
            (Some(SslRootCert::System), _) => Arc::new(
                rustls_platform_verifier::Verifier::new(Arc::clone(&provider)).map_err(|e| {
                    format!("the platform's certificate verifier could not be set up: {e}")
                })?,
            ),
            (Some(SslRootCert::File(path)), SslMode::VerifyFull) => {
                let roots = Arc::new(read_roots(path)?);
                WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                    .build()
                    .map_err(|e| format!("sslrootcert `{}`: {e}", path.display()))?
            }
            (Some(SslRootCert::File(path)), SslMode::VerifyCa) => Arc::new(ChainOnly {
                roots: read_roots(path)?,
                provider: Arc::clone(&provider),
            }),
            // `prefer`, `allow` and `require` without a CA file: encrypted, not authenticated.
            _ => Arc::new(Unverified {
                provider: Arc::clone(&provider),
            }),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("the TLS configuration is not usable: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&options.cert, &options.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    format!(
                        "sslkey `{}` holds no usable private key (a PEM file, PKCS#8, PKCS#1 or \
                         SEC1): {e}",
                        key.display()
                    )
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!(
                        "sslcert `{}` and sslkey do not make a client certificate: {e}",
                        cert.display()
                    )
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        // What libpq 17 sends; servers before 17 ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(TlsConfig {
            connector: TlsConnector::from(Arc::new(config)),
            mode,
            root: options.root_cert.clone(),
        })
    }

    /// Sends the `SSLRequest` on `socket` and, if the server agrees, runs the handshake.
    pub(super) async fn negotiate(
        &self,
        mut socket: BoxSocket,
        host: &PgHost,
        required: bool,
        options: &TlsOptions,
    ) -> Result<(BoxSocket, Option<super::CancelTls>), TlsError> {
        let PgHost::Tcp { host: name, .. } = host else {
            return Ok((socket, None));
        };
        match request_tls(&mut socket).await.map_err(TlsError::Io)? {
            b'S' => {}
            b'N' if !required => return Ok((socket, None)),
            b'N' => return Err(TlsError::Refused(options.mode)),
            other => return Err(TlsError::Unexpected(other)),
        }
        let server_name = server_name(name)?;
        let socket = self.handshake(socket, server_name.clone()).await?;
        let cancel = super::CancelTls {
            inner: CancelTls {
                config: self.clone(),
                name: server_name,
            },
        };
        Ok((socket, Some(cancel)))
    }

    async fn handshake(
        &self,
        socket: BoxSocket,
        name: ServerName<'static>,
    ) -> Result<BoxSocket, TlsError> {
        let shown = name.to_str().into_owned();
        let supported = socket.try_read_direct(&mut []).is_some();
        let stream = self
            .connector
            .connect(
                name,
                Raw {
                    socket,
                    direct: false,
                },
            )
            .await
            .map_err(|e| TlsError::Handshake(self.explain(&e, &shown)))?;
        Ok(Box::new(TlsSocket {
            stream: Mutex::new(stream),
            supported,
        }))
    }

    /// A handshake failure in words: which check failed, and what to look at.
    fn explain(&self, error: &io::Error, host: &str) -> String {
        let root = match &self.root {
            Some(SslRootCert::File(path)) => format!("sslrootcert `{}`", path.display()),
            Some(SslRootCert::System) => "the platform's trusted roots (sslrootcert=system)".into(),
            None => "sslrootcert".into(),
        };
        let Some(rustls_error) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return error.to_string();
        };
        match rustls_error {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "the server's certificate is not valid for the host name `{host}` \
                 (sslmode={} checks it; {rustls_error})",
                self.mode
            ),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "the server's certificate is not signed by a CA of {root} (sslmode={}; \
                 {rustls_error})",
                self.mode
            ),
            rustls::Error::InvalidCertificate(_) => format!(
                "the server's certificate was rejected (sslmode={}, {root}): {rustls_error}",
                self.mode
            ),
            rustls::Error::AlertReceived(_) => format!(
                "the server ended the handshake: {rustls_error} (does it require a client \
                 certificate, sslcert and sslkey, that it accepts?)"
            ),
            _ => rustls_error.to_string(),
        }
    }
}

/// The name the certificate must hold: a DNS name, or an IP address (which gets no SNI).
fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| {
        TlsError::Handshake(format!(
            "`{host}` is neither a DNS name nor an IP address that a certificate can name"
        ))
    })
}

/// Writes the `SSLRequest` and reads the server's one-byte answer. Nothing else is read: bytes
/// the server sent after its `S` belong to the handshake, where a man in the middle's injected
/// plaintext makes it fail.
async fn request_tls(socket: &mut BoxSocket) -> io::Result<u8> {
    socket.write_all(&SSL_REQUEST).await?;
    socket.flush().await?;
    let mut answer = [0_u8; 1];
    socket.read_exact(&mut answer).await?;
    Ok(answer[0])
}

fn read_file(path: &Path, option: &str) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{option} `{}` cannot be read: {e}", path.display()))
}

fn read_certs(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(path, option)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{option} `{}` is not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{option} `{}` holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, "sslrootcert")? {
        roots.add(cert).map_err(|e| {
            format!(
                "sslrootcert `{}` holds a certificate that cannot be a CA: {e}",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted CA; the names in the certificate are not looked
/// at.
#[derive(Debug)]
struct ChainOnly {
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `prefer`, `allow` and `require` (without a CA file): any certificate is taken, as libpq does
/// in these modes. The handshake's signatures are still checked, so the session is bound to the
/// key of the certificate presented.
#[derive(Debug)]
struct Unverified {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How a connection that went over TLS sends its cancel requests: over TLS to the same name,
/// checked the same way.
#[derive(Clone)]
pub(crate) struct CancelTls {
    config: TlsConfig,
    name: ServerName<'static>,
}

impl CancelTls {
    pub(crate) async fn secure(
        &self,
        mut socket: BoxSocket,
        host: &PgHost,
    ) -> io::Result<BoxSocket> {
        let fail = |e: TlsError| io::Error::other(format!("{host}: {e}"));
        match request_tls(&mut socket).await? {
            b'S' => {}
            b'N' => return Err(fail(TlsError::Refused(SslMode::Require))),
            other => return Err(fail(TlsError::Unexpected(other))),
        }
        self.config
            .handshake(socket, self.name.clone())
            .await
            .map_err(fail)
    }
}

/// The runtime's socket under rustls. In direct mode (only while [`TlsSocket::try_read_direct`]
/// runs) a read goes straight to the operating system and finds nothing without registering with
/// the reactor, as [`PgSocket`](crate::socket::PgSocket) does in plaintext.
#[derive(Debug)]
struct Raw {
    socket: BoxSocket,
    direct: bool,
}

impl AsyncRead for Raw {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.direct {
            return match self.socket.try_read_direct(buf.initialize_unfilled()) {
                Some(Ok(n)) => {
                    buf.advance(n);
                    Poll::Ready(Ok(()))
                }
                Some(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    Poll::Pending
                }
                Some(Err(e)) => Poll::Ready(Err(e)),
                // Direct mode is only turned on for sockets that support it.
                None => Poll::Pending,
            };
        }
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Raw {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// A TLS session over the runtime's socket, as a [`Socket`]: reads give plaintext, writes are
/// encrypted. [`Socket::try_read_direct`] reads the socket directly and decrypts what came, so
/// busy-polling works over TLS too.
struct TlsSocket {
    /// Behind a mutex only for `try_read_direct`, which gets `&self`; every other access goes
    /// through `&mut self` and takes no lock.
    stream: Mutex<tokio_rustls::client::TlsStream<Raw>>,
    /// Whether the runtime's socket can be read directly.
    supported: bool,
}

impl TlsSocket {
    fn stream(self: Pin<&mut Self>) -> Pin<&mut tokio_rustls::client::TlsStream<Raw>> {
        Pin::new(
            self.get_mut()
                .stream
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

impl Socket for TlsSocket {
    fn try_read_direct(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        if !self.supported {
            return None;
        }
        let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        stream.get_mut().0.direct = true;
        let mut read = ReadBuf::new(buf);
        // A noop waker: a read that finds nothing registers no interest (direct mode), and the
        // caller registers its own waker with a normal read before it sleeps.
        let polled =
            Pin::new(&mut *stream).poll_read(&mut Context::from_waker(Waker::noop()), &mut read);
        stream.get_mut().0.direct = false;
        Some(match polled {
            Poll::Ready(Ok(())) => Ok(read.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        })
    }
}

impl fmt::Debug for TlsSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        let (raw, session) = stream.get_ref();
        f.debug_struct("TlsSocket")
            .field("socket", &raw.socket)
            .field("protocol", &session.protocol_version())
            .field("cipher_suite", &session.negotiated_cipher_suite())
            .finish()
    }
}
