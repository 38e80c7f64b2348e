//! TLS: the `sslmode`, `sslrootcert`, `sslcert` and `sslkey` options, and how a connection
//! attempt uses them.
//!
//! The driver negotiates TLS itself, as libpq does: on a fresh TCP socket it sends the
//! `SSLRequest` message and reads the server's one-byte answer (`S`: go ahead, `N`: no TLS here).
//! After an `S` the rustls handshake runs over the runtime's socket, and the stream handed to
//! tokio-postgres (which is configured without TLS of its own) is the decrypted one, so the
//! driver's framing, status tracking and busy-polling see the protocol exactly as in plaintext.
//!
//! Without the `tls` feature, `disable`, `allow` and `prefer` connect in plaintext (as a libpq
//! built without SSL support does), and the modes that need TLS are configuration errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

use anysql_core::BoxSocket;

use crate::options::PgHost;

#[cfg(feature = "tls")]
mod stream;

/// The `sslmode` option: whether a connection uses TLS, and what it checks. The meanings are
/// libpq's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS if the server refuses the plaintext connection (such as a
    /// `pg_hba.conf` that only has `hostssl` lines for this user).
    Allow,
    /// TLS if the server offers it, else plaintext; also plaintext if the server refuses the
    /// connection over TLS. The server's certificate is not checked. The default, as in libpq.
    #[default]
    Prefer,
    /// TLS or no connection. The certificate is not checked, unless `sslrootcert` names a file:
    /// then, as in libpq, it behaves as `verify-ca`.
    Require,
    /// TLS, with the server's certificate chain checked against the `sslrootcert` CA.
    VerifyCa,
    /// TLS, with the chain checked and the certificate's names matched against the host name
    /// (or IP address) connected to.
    VerifyFull,
}

impl SslMode {
    /// The option's spelling: `"disable"`, `"allow"`, `"prefer"`, `"require"`, `"verify-ca"` or
    /// `"verify-full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Whether a connection in this mode fails rather than go without TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `sslrootcert` option: which certificate authorities the server's certificate must chain
/// to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SslRootCert {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trusted roots, through the platform's verifier.
    System,
}

/// The TLS settings of a connection, checked when the options are parsed.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    /// The mode as given (or the default).
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<SslRootCert>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    /// The rustls configuration, built once per engine when TLS may be used.
    #[cfg(feature = "tls")]
    pub(crate) config: Option<stream::TlsConfig>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

/// How one try of a host goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// No `SSLRequest`: plaintext.
    Plain,
    /// `SSLRequest`; a server that says no is used in plaintext (`prefer`).
    TlsIfOffered,
    /// `SSLRequest`; a server that says no fails the try.
    TlsOnly,
}

impl TlsOptions {
    /// Checks the combination and builds the rustls configuration; the error is the message of
    /// a configuration error.
    pub(crate) fn finish(mut self, mode_given: bool) -> Result<TlsOptions, String> {
        if !mode_given && self.root_cert == Some(SslRootCert::System) {
            // libpq: `sslrootcert=system` makes `verify-full` the default.
            self.mode = SslMode::VerifyFull;
        }
        if self.root_cert == Some(SslRootCert::System) && self.mode != SslMode::VerifyFull {
            return Err(format!(
                "sslmode={} may not be used with sslrootcert=system, which trusts every CA of the \
                 platform; use sslmode=verify-full",
                self.mode
            ));
        }
        if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) && self.root_cert.is_none()
        {
            return Err(format!(
                "sslmode={} checks the server's certificate and needs the CA to check it against: \
                 give sslrootcert=<path of a PEM file>, or sslrootcert=system for the platform's \
                 trusted roots, or use sslmode=require (TLS without checking the certificate)",
                self.mode
            ));
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => {
                return Err(
                    "sslcert is given without sslkey: give the client certificate's \
                            private key too"
                        .to_owned(),
                )
            }
            (None, Some(_)) => {
                return Err(
                    "sslkey is given without sslcert: give the client certificate too".to_owned(),
                )
            }
            _ => {}
        }
        #[cfg(feature = "tls")]
        {
            if self.mode != SslMode::Disable {
                self.config = Some(stream::TlsConfig::build(&self)?);
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            if self.mode.requires_tls() {
                return Err(format!(
                    "sslmode={} needs TLS, and anysql-postgres was built without its `tls` feature \
                     (on by default; the anysql facade's `postgres` feature includes it, `postgres-plaintext` does not)",
                    self.mode
                ));
            }
        }
        Ok(self)
    }

    /// The mode in force: `require` with a CA file is `verify-ca`, as in libpq.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn effective_mode(&self) -> SslMode {
        match (self.mode, &self.root_cert) {
            (SslMode::Require, Some(SslRootCert::File(_))) => SslMode::VerifyCa,
            (mode, _) => mode,
        }
    }

    /// The tries for one host, in order. Unix sockets never use TLS (libpq does not either).
    pub(crate) fn plan(&self, host: &PgHost) -> &'static [Step] {
        if matches!(host, PgHost::Unix { .. }) || !cfg!(feature = "tls") {
            return &[Step::Plain];
        }
        match self.mode {
            SslMode::Disable => &[Step::Plain],
            SslMode::Allow => &[Step::Plain, Step::TlsOnly],
            SslMode::Prefer => &[Step::TlsIfOffered, Step::Plain],
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[Step::TlsOnly],
        }
    }

    /// Runs the TLS part of `step` on a freshly opened `socket` to `host`: the socket to speak
    /// the protocol over, and how to secure a cancel request the same way (`None`: plaintext).
    pub(crate) async fn secure(
        &self,
        socket: BoxSocket,
        host: &PgHost,
        step: Step,
    ) -> Result<(BoxSocket, Option<CancelTls>), TlsError> {
        match step {
            Step::Plain => Ok((socket, None)),
            #[cfg(feature = "tls")]
            Step::TlsIfOffered | Step::TlsOnly => {
                let Some(config) = &self.config else {
                    return Ok((socket, None));
                };
                config
                    .negotiate(socket, host, step == Step::TlsOnly, self)
                    .await
            }
            #[cfg(not(feature = "tls"))]
            Step::TlsIfOffered | Step::TlsOnly => {
                let _ = host;
                Ok((socket, None))
            }
        }
    }
}

/// Why the TLS part of a try failed.
#[derive(Debug)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) enum TlsError {
    /// Writing the `SSLRequest` or reading the answer failed.
    Io(io::Error),
    /// The server answered the `SSLRequest` with `N`, and the mode requires TLS.
    Refused(SslMode),
    /// The server answered something else than `S` or `N`.
    Unexpected(u8),
    /// The handshake failed (the message explains why, such as a certificate that does not
    /// check out).
    Handshake(String),
}

impl TlsError {
    /// Whether the next step of the plan may still be tried after this failure (`prefer` falls
    /// back to plaintext when the handshake fails, not when the socket does).
    pub(crate) fn allows_fallback(&self) -> bool {
        matches!(self, TlsError::Handshake(_) | TlsError::Unexpected(_))
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io(e) => write!(f, "the TLS negotiation (SSLRequest) failed: {e}"),
            TlsError::Refused(mode) => write!(
                f,
                "the server does not accept TLS connections (it refused the SSLRequest), and \
                 sslmode={mode} requires TLS; turn `ssl = on` in the server's configuration, or \
                 use sslmode=prefer"
            ),
            TlsError::Unexpected(byte) => write!(
                f,
                "the server answered the SSLRequest with {byte:#04x} instead of `S` or `N`: is \
                 this a PostgreSQL server?"
            ),
            TlsError::Handshake(why) => write!(f, "the TLS handshake failed: {why}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// How a cancel request reaches the server over TLS when its connection did.
#[derive(Clone)]
pub(crate) struct CancelTls {
    #[cfg(feature = "tls")]
    pub(crate) inner: stream::CancelTls,
}

impl CancelTls {
    /// Secures `socket`, freshly opened to `host`, for a cancel request.
    pub(crate) async fn secure(&self, socket: BoxSocket, host: &PgHost) -> io::Result<BoxSocket> {
        #[cfg(feature = "tls")]
        {
            self.inner.secure(socket, host).await
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = host;
            Ok(socket)
        }
    }
}

impl fmt::Debug for CancelTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelTls").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(mode: SslMode, root: Option<SslRootCert>) -> TlsOptions {
        TlsOptions {
            mode,
            root_cert: root,
            ..TlsOptions::default()
        }
    }

    #[test]
    fn modes_round_trip() {
        for mode in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(SslMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(SslMode::parse("Require"), None);
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_the_feature_the_modes_that_need_tls_are_configuration_errors() {
        for mode in [SslMode::Require, SslMode::VerifyFull] {
            let root = Some(SslRootCert::File("ca.pem".into()));
            let err = options(mode, root).finish(true).unwrap_err();
            assert!(err.contains("without its `tls` feature"), "{err}");
        }
        for mode in [SslMode::Disable, SslMode::Allow, SslMode::Prefer] {
            assert!(options(mode, None).finish(true).is_ok());
        }
    }

    #[test]
    fn require_with_a_ca_file_is_verify_ca() {
        let o = options(SslMode::Require, Some(SslRootCert::File("ca.pem".into())));
        assert_eq!(o.effective_mode(), SslMode::VerifyCa);
        assert_eq!(
            options(SslMode::Require, None).effective_mode(),
            SslMode::Require
        );
    }

    #[test]
    fn plans_follow_libpq() {
        let tcp = PgHost::Tcp {
            host: "h".into(),
            port: 1,
        };
        let unix = PgHost::Unix {
            path: "/tmp/.s.PGSQL.1".into(),
        };
        let plan = |mode| options(mode, None).plan(&tcp);
        assert_eq!(plan(SslMode::Disable), &[Step::Plain]);
        if cfg!(feature = "tls") {
            assert_eq!(plan(SslMode::Allow), &[Step::Plain, Step::TlsOnly]);
            assert_eq!(plan(SslMode::Prefer), &[Step::TlsIfOffered, Step::Plain]);
            assert_eq!(plan(SslMode::VerifyFull), &[Step::TlsOnly]);
        }
        assert_eq!(
            options(SslMode::Require, None).plan(&unix),
            &[Step::Plain],
            "libpq never uses TLS over a Unix socket"
        );
    }
}
