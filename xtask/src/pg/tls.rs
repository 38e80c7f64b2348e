//! A throwaway cluster with TLS on, and the certificates it needs, made at run time with rcgen: a CA,
//! a server certificate for `localhost` and `127.0.0.1`, a client certificate for the role
//! [`CERT_USER`], and a second CA that signed nothing the server has (for the wrong-CA tests).
//!
//! The server listens on `127.0.0.1` and `127.0.0.2`. Its certificate names only the first, so a
//! `verify-full` connection to `127.0.0.2` meets a certificate for another host.
//!
//! `pg_hba.conf` has, besides trust for everyone:
//! - [`CERT_USER`]: over TLS with a client certificate only (`cert`);
//! - [`TLS_ONLY_USER`]: over TLS only (`sslmode=allow` must retry with TLS);
//! - [`PLAIN_ONLY_USER`]: over plaintext only (`sslmode=prefer` must fall back to plaintext).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use xshell::{cmd, Shell};

use super::{Cluster, ServerBinaries};

/// The role that logs in with its client certificate (whose common name it is).
pub const CERT_USER: &str = "anysql_cert";
/// The role that may only connect over TLS.
pub const TLS_ONLY_USER: &str = "anysql_tls_only";
/// The role that may only connect in plaintext.
pub const PLAIN_ONLY_USER: &str = "anysql_plain_only";

/// The environment variables the TLS tests read.
pub const URL_VAR: &str = "ANYSQL_PG_TLS_URL";
/// The directory of `ca.pem`, `other-ca.pem`, `client.pem` and `client.key`.
pub const DIR_VAR: &str = "ANYSQL_PG_TLS_DIR";

/// A running cluster with `ssl = on`. Dropping it stops the server.
#[derive(Debug)]
pub struct TlsCluster {
    cluster: Cluster,
    certs: PathBuf,
}

impl TlsCluster {
    /// Makes the certificates and starts the cluster in `<target_dir>/anysql-pg-tls`.
    pub fn start(binaries: ServerBinaries, target_dir: &Path) -> Result<TlsCluster> {
        let certs_of = |base: &Path| base.join("tls");
        let cluster = Cluster::start_with(binaries, target_dir, "anysql-pg-tls", &|base, data| {
            let dir = certs_of(base);
            write_certificates(&dir)?;
            fs::write(data.join("pg_hba.conf"), HBA)
                .with_context(|| format!("failed to write {}/pg_hba.conf", data.display()))?;
            let quoted = |file: &str| dir.join(file).display().to_string().replace('\'', "''");
            Ok(format!(
                "\n# The TLS cluster of `cargo xtask`.\n\
                 listen_addresses = '127.0.0.1,127.0.0.2'\n\
                 ssl = on\n\
                 ssl_cert_file = '{}'\n\
                 ssl_key_file = '{}'\n\
                 ssl_ca_file = '{}'\n",
                quoted("server.pem"),
                quoted("server.key"),
                quoted("ca.pem"),
            ))
        })?;
        let certs = cluster
            .data_dir()
            .parent()
            .map(certs_of)
            .context("the TLS cluster's data directory has no parent")?;
        let tls = TlsCluster { cluster, certs };
        tls.create_roles()?;
        Ok(tls)
    }

    /// The URL of the cluster, without any TLS option: `postgres://postgres@localhost:<port>/test`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@localhost:{}/test", self.cluster.port())
    }

    /// The port the server listens on, at `127.0.0.1` and `127.0.0.2`.
    pub fn port(&self) -> u16 {
        self.cluster.port()
    }

    /// The directory of the certificates (see [`DIR_VAR`]).
    pub fn cert_dir(&self) -> &Path {
        &self.certs
    }

    /// The variables the TLS tests read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (URL_VAR, self.url()),
            (DIR_VAR, self.certs.display().to_string()),
        ]
    }

    /// Stops the server and checks that none of its processes is left.
    pub fn stop(&mut self) -> Result<()> {
        self.cluster.stop()
    }

    fn create_roles(&self) -> Result<()> {
        let sh = Shell::new()?;
        let psql = self.cluster.binaries().tool("psql");
        let port = self.cluster.port().to_string();
        for role in [CERT_USER, TLS_ONLY_USER, PLAIN_ONLY_USER] {
            let sql = format!("CREATE ROLE {role} LOGIN");
            cmd!(
                sh,
                "{psql} -X -q -h 127.0.0.1 -p {port} -U postgres -d test -c {sql}"
            )
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| format!("failed to create the role {role} on the TLS cluster"))?;
        }
        Ok(())
    }
}

/// First match wins.
const HBA: &str = "\
# Written by `cargo xtask` for the TLS cluster.
local     all all                             trust
hostssl   all anysql_cert       127.0.0.0/8   cert
host      all anysql_cert       127.0.0.0/8   reject
hostssl   all anysql_tls_only   127.0.0.0/8   trust
host      all anysql_tls_only   127.0.0.0/8   reject
hostnossl all anysql_plain_only 127.0.0.0/8   trust
host      all anysql_plain_only 127.0.0.0/8   reject
host      all all               127.0.0.0/8   trust
";

/// Writes `ca.pem`, `other-ca.pem`, `server.pem`, `server.key`, `client.pem` and `client.key`
/// into `dir`.
pub fn write_certificates(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let (ca_pem, ca) = certificate_authority("anysql test CA")?;
    let (other_pem, _) = certificate_authority("anysql other CA")?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_pem = server.signed_by(&server_key, &ca)?.pem();

    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, CERT_USER);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_pem = client.signed_by(&client_key, &ca)?.pem();

    let write = |name: &str, text: &str, private: bool| -> Result<()> {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("failed to write {}", path.display()))?;
        if private {
            // The server refuses a key file that others may read.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .with_context(|| format!("failed to restrict {}", path.display()))?;
        }
        Ok(())
    };
    write("ca.pem", &ca_pem, false)?;
    write("other-ca.pem", &other_pem, false)?;
    write("server.pem", &server_pem, false)?;
    write("server.key", &server_key.serialize_pem(), true)?;
    write("client.pem", &client_pem, false)?;
    write("client.key", &client_key.serialize_pem(), true)?;
    Ok(())
}

/// A self-signed CA: its PEM, and the issuer that signs with it.
fn certificate_authority(name: &str) -> Result<(String, Issuer<'static, KeyPair>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params.self_signed(&key)?.pem();
    Ok((pem, Issuer::new(params, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_written() {
        let dir = std::env::temp_dir().join(format!("anysql-certs-{}", std::process::id()));
        write_certificates(&dir).unwrap();
        for file in ["ca.pem", "other-ca.pem", "server.pem", "client.pem"] {
            let text = fs::read_to_string(dir.join(file)).unwrap();
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{file}");
        }
        let key = fs::read_to_string(dir.join("server.key")).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let _ = fs::remove_dir_all(&dir);
    }
}
