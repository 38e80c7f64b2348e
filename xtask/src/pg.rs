//! Finding a PostgreSQL server for the PostgreSQL cells.
//!
//! In order:
//! 1. `ANYSQL_PG_URL`, if set and something listens there. When it is set but closed, the default
//!    service is *not* tried: the user asked for a specific server, and falling back to another one
//!    silently would test the wrong thing.
//! 2. Otherwise `postgres://root@127.0.0.1:5432/test`, the service on the development machines, if it
//!    accepts that login (checked with a startup handshake: a Debian package's fresh cluster listens on
//!    5432 too, but has no `root` role).
//! 3. Otherwise a throwaway cluster in `target/`, if `initdb` and `pg_ctl` can be found.
//! 4. Otherwise the cells are skipped, with the reasons collected along the way.

pub mod cluster;
pub mod pgbouncer;
pub mod replica;
pub mod tls;
pub mod url;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Result};

pub use cluster::{Cluster, ServerBinaries};
pub use url::{parse as parse_url, redact, Endpoint};

/// The service on the development machines: trust authentication for `root`, database `test`.
pub const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/test";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// `--pg`: where the PostgreSQL cells get their server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PgMode {
    /// `ANYSQL_PG_URL`, else the default service, else a throwaway cluster.
    #[default]
    Auto,
    /// Always start a throwaway cluster, even if a server is reachable.
    Throwaway,
    /// Skip the PostgreSQL cells.
    None,
}

impl FromStr for PgMode {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<PgMode> {
        match text {
            "auto" => Ok(PgMode::Auto),
            "throwaway" => Ok(PgMode::Throwaway),
            "none" => Ok(PgMode::None),
            other => bail!("unknown --pg value `{other}`; expected auto, throwaway or none"),
        }
    }
}

/// A server the PostgreSQL cells can use; stops the throwaway cluster, if any, when shut down or dropped.
#[derive(Debug)]
pub struct PgServer {
    /// Handed to the cells as `ANYSQL_PG_URL`.
    pub url: String,
    /// Handed to the cells as `ANYSQL_PG_SOCKET_DIR`, for the Unix-socket tests. `None` leaves the
    /// variable as it is (the tests default to `/var/run/postgresql`, where the service's socket is).
    pub socket_dir: Option<PathBuf>,
    /// Where the server came from, for the log.
    pub origin: String,
    cluster: Option<Cluster>,
}

impl PgServer {
    /// Stops the throwaway cluster, if this server is one, and checks that no server process is left.
    pub fn shut_down(mut self) -> Result<()> {
        match self.cluster.take() {
            Some(mut cluster) => cluster.stop(),
            None => Ok(()),
        }
    }
}

/// The answer to "where is PostgreSQL?".
#[derive(Debug)]
pub enum PgSupply {
    /// A server to use.
    Ready(Box<PgServer>),
    /// Nothing to use; the cells are skipped (failed under CI) with this reason.
    Unavailable(String),
    /// Server binaries exist but a throwaway cluster would not start: a real failure.
    Broken(String),
}

/// Finds or starts a server according to `mode`. `target_dir` is where a throwaway cluster lives.
pub fn acquire(mode: PgMode, target_dir: &Path) -> PgSupply {
    let mut tried = Vec::new();
    match mode {
        PgMode::None => {
            return PgSupply::Unavailable("PostgreSQL disabled with --pg none".to_owned())
        }
        PgMode::Throwaway => {}
        PgMode::Auto => match std::env::var("ANYSQL_PG_URL") {
            Ok(url) if !url.trim().is_empty() => {
                match parse_url(&url).and_then(|parsed| reachable(&parsed.endpoint)) {
                    Ok(()) => {
                        return PgSupply::Ready(Box::new(PgServer {
                            origin: format!("ANYSQL_PG_URL ({})", redact(&url)),
                            url,
                            socket_dir: None,
                            cluster: None,
                        }))
                    }
                    Err(why) => tried.push(format!("ANYSQL_PG_URL={}: {why}", redact(&url))),
                }
            }
            _ => match usable_default() {
                Ok(()) => {
                    return PgSupply::Ready(Box::new(PgServer {
                        url: DEFAULT_URL.to_owned(),
                        socket_dir: None,
                        origin: format!("the default service ({DEFAULT_URL})"),
                        cluster: None,
                    }))
                }
                Err(why) => tried.push(format!("{DEFAULT_URL}: {why}")),
            },
        },
    }
    for line in &tried {
        println!("PostgreSQL: {line}");
    }

    let Some(binaries) = ServerBinaries::find() else {
        tried.push(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin".to_owned(),
        );
        return PgSupply::Unavailable(tried.join("; "));
    };
    println!(
        "PostgreSQL: starting a throwaway cluster with {}",
        binaries.dir().display()
    );
    match Cluster::start(binaries, target_dir) {
        Ok(cluster) => PgSupply::Ready(Box::new(PgServer {
            url: cluster.url(),
            socket_dir: cluster.socket_dir().map(Path::to_owned),
            origin: format!(
                "a throwaway cluster on 127.0.0.1:{} ({})",
                cluster.port(),
                cluster.data_dir().display()
            ),
            cluster: Some(cluster),
        })),
        Err(error) => PgSupply::Broken(format!("the throwaway cluster did not start: {error:#}")),
    }
}

/// Whether the default service is up and lets `root` into `test` without a password.
fn usable_default() -> Result<(), String> {
    let url = parse_url(DEFAULT_URL)?;
    reachable(&url.endpoint)?;
    probe_login(
        &url.endpoint,
        url.user.as_deref().unwrap_or("root"),
        url.dbname.as_deref().unwrap_or("test"),
    )
}

/// Whether something accepts connections at `endpoint` within about a second.
pub fn reachable(endpoint: &Endpoint) -> Result<(), String> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let addrs = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}: {e}"))?;
            let mut last_error = format!("{host} resolves to no address");
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                    Ok(_) => return Ok(()),
                    Err(e) => last_error = format!("nothing answers on {addr} ({e})"),
                }
            }
            Err(last_error)
        }
        Endpoint::Socket { .. } => {
            let path = endpoint.to_string();
            if Path::new(&path).exists() {
                Ok(())
            } else {
                Err(format!("no socket file {path}"))
            }
        }
    }
}

/// Sends a protocol 3.0 startup message and reports whether the server lets `user` into `dbname` at once
/// (AuthenticationOk). Anything else, a password request or an error such as an unknown role, is `Err`.
fn probe_login(endpoint: &Endpoint, user: &str, dbname: &str) -> Result<(), String> {
    let io_error = |e: std::io::Error| format!("the login handshake failed ({e})");
    let mut stream: Box<dyn ReadWrite> = match endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = TcpStream::connect((host.as_str(), *port)).map_err(io_error)?;
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(io_error)?;
            Box::new(stream)
        }
        Endpoint::Socket { .. } => {
            let stream = UnixStream::connect(endpoint.to_string()).map_err(io_error)?;
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(io_error)?;
            Box::new(stream)
        }
    };

    stream
        .write_all(&startup_message(user, dbname))
        .map_err(io_error)?;
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).map_err(io_error)?;
    let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if !(4..=1 << 16).contains(&length) {
        return Err("the server on this port does not speak the PostgreSQL protocol".to_owned());
    }
    let mut body = vec![0u8; length - 4];
    stream.read_exact(&mut body).map_err(io_error)?;
    // Terminate, so the server does not log an unexpected EOF; a failure here changes nothing.
    let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);

    match head[0] {
        b'R' if body.starts_with(&[0, 0, 0, 0]) => Ok(()),
        b'R' => Err(format!(
            "the server wants a password for `{user}`, which the default URL does not have"
        )),
        b'E' => Err(format!(
            "the server refused `{user}` on `{dbname}`: {}",
            error_message(&body)
        )),
        other => Err(format!(
            "unexpected reply `{}` to the startup message",
            char::from(other)
        )),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn startup_message(user: &str, dbname: &str) -> Vec<u8> {
    const PROTOCOL_3_0: u32 = 3 << 16;
    let mut message = vec![0; 4];
    message.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    for (key, value) in [("user", user), ("database", dbname)] {
        message.extend_from_slice(key.as_bytes());
        message.push(0);
        message.extend_from_slice(value.as_bytes());
        message.push(0);
    }
    message.push(0);
    let length = u32::try_from(message.len()).expect("a startup message is small");
    message[..4].copy_from_slice(&length.to_be_bytes());
    message
}

/// The `M` (message) field of an ErrorResponse body.
fn error_message(body: &[u8]) -> String {
    let mut fields = body.split(|&b| b == 0);
    let message = fields
        .find_map(|field| field.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned());
    message.unwrap_or_else(|| "no message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn pg_modes() {
        assert_eq!("auto".parse::<PgMode>().unwrap(), PgMode::Auto);
        assert_eq!("throwaway".parse::<PgMode>().unwrap(), PgMode::Throwaway);
        assert_eq!("none".parse::<PgMode>().unwrap(), PgMode::None);
        assert!("docker".parse::<PgMode>().is_err());
    }

    #[test]
    fn startup_message_layout() {
        let message = startup_message("root", "test");
        assert_eq!(&message[..4], &(message.len() as u32).to_be_bytes());
        assert_eq!(&message[4..8], &[0, 3, 0, 0]);
        assert_eq!(&message[8..], b"user\0root\0database\0test\0\0");
    }

    #[test]
    fn closed_port_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let endpoint = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert!(reachable(&endpoint).is_err());
    }

    /// A fake server that answers the startup message with `reply`.
    fn fake_server(reply: Vec<u8>) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut length = [0u8; 4];
            socket.read_exact(&mut length).unwrap();
            let mut rest = vec![0u8; u32::from_be_bytes(length) as usize - 4];
            socket.read_exact(&mut rest).unwrap();
            socket.write_all(&reply).unwrap();
        });
        Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn probe_accepts_authentication_ok() {
        let endpoint = fake_server(vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
        assert_eq!(probe_login(&endpoint, "root", "test"), Ok(()));
    }

    #[test]
    fn probe_reports_password_requests_and_errors() {
        let endpoint = fake_server(vec![b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
        assert!(probe_login(&endpoint, "root", "test")
            .unwrap_err()
            .contains("password"));

        let mut body = b"SFATAL\0C28000\0Mrole \"root\" does not exist\0\0".to_vec();
        let mut reply = vec![b'E'];
        reply.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        reply.append(&mut body);
        let endpoint = fake_server(reply);
        let error = probe_login(&endpoint, "root", "test").unwrap_err();
        assert!(error.contains("role \"root\" does not exist"), "{error}");
    }

    #[test]
    fn probe_rejects_other_protocols() {
        let endpoint = fake_server(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
        assert!(probe_login(&endpoint, "root", "test").is_err());
    }
}
