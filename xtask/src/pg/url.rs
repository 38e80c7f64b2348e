//! Just enough of libpq's connection-URI syntax to learn where a server should be listening.
//!
//! xtask depends on nothing but anyhow and xshell, so this is hand-written. It reads
//! `postgres[ql]://[user[:password]@][host][:port][/dbname][?param=value&...]`, bracketed IPv6 hosts,
//! percent-encoded parts, and the Unix-socket forms `?host=/dir` and `postgres://%2Fdir/db`.

use std::fmt;
use std::path::PathBuf;

/// Where a PostgreSQL server is expected to accept connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP host and port.
    Tcp {
        /// The host name or address.
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix socket lives at `<dir>/.s.PGSQL.<port>`.
    Socket {
        /// The socket directory.
        dir: PathBuf,
        /// The port, part of the socket's file name.
        port: u16,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Socket { dir, port } => write!(f, "{}", socket_path(dir, *port).display()),
        }
    }
}

/// The socket file a server with this socket directory and port creates.
pub fn socket_path(dir: &std::path::Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

/// The parts of a connection URL that xtask cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// Where the server listens.
    pub endpoint: Endpoint,
    /// The user name, if the URL gives one.
    pub user: Option<String>,
    /// The database name, if the URL gives one.
    pub dbname: Option<String>,
    /// Whether the URL carries a password (which xtask never prints).
    pub has_password: bool,
}

/// The socket directory libpq uses on Debian when a URL names no host.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;

/// Parses a `postgres://` or `postgresql://` URL.
pub fn parse(url: &str) -> Result<PgUrl, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| "the URL does not start with postgres:// or postgresql://".to_owned())?;
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));

    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut user = None;
    let mut has_password = false;
    if let Some(userinfo) = userinfo {
        let (name, password) = match userinfo.split_once(':') {
            Some((name, password)) => (name, Some(password)),
            None => (userinfo, None),
        };
        user = non_empty(decode(name)?);
        has_password = password.is_some();
    }

    // libpq accepts a comma-separated host list and tries them in order; the first one is enough here.
    let first = hosts.split(',').next().unwrap_or("");
    let (mut host, mut port) = split_host_port(first)?;
    let mut dbname = non_empty(decode(path)?);

    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        match key {
            "host" => host = value.split(',').next().unwrap_or("").to_owned(),
            "port" => port = Some(parse_port(value.split(',').next().unwrap_or(""))?),
            "user" => user = non_empty(value),
            "dbname" => dbname = non_empty(value),
            "password" => has_password = true,
            _ => {}
        }
    }

    let port = port.unwrap_or(DEFAULT_PORT);
    let endpoint = if host.is_empty() {
        Endpoint::Socket {
            dir: PathBuf::from(DEFAULT_SOCKET_DIR),
            port,
        }
    } else if host.starts_with('/') {
        Endpoint::Socket {
            dir: PathBuf::from(host),
            port,
        }
    } else {
        Endpoint::Tcp { host, port }
    };
    Ok(PgUrl {
        endpoint,
        user,
        dbname,
        has_password,
    })
}

/// The URL with any password replaced by `***`, for printing.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let after_scheme = &url[scheme_end..];
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    let mut out = url[..scheme_end].to_owned();
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) if userinfo.contains(':') => {
            let name = userinfo.split_once(':').map_or(userinfo, |(name, _)| name);
            out.push_str(&format!("{name}:***@{hosts}"));
        }
        _ => out.push_str(authority),
    }
    let tail = &after_scheme[authority_end..];
    // A password can also hide in the query string.
    match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| {
                    if pair.starts_with("password=") {
                        "password=***".to_owned()
                    } else {
                        pair.to_owned()
                    }
                })
                .collect();
            out.push_str(path);
            out.push('?');
            out.push_str(&query.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("unclosed `[` in host `{hostport}`"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(parse_port(port)?),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected `{after}` after host `[{host}]`")),
        };
        return Ok((host.to_owned(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((decode(host)?, Some(parse_port(port)?))),
        None => Ok((decode(hostport)?, None)),
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    port.parse()
        .map_err(|_| format!("`{port}` is not a port number"))
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Decodes `%XX` escapes.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("truncated `%` escape in `{text}`"))?;
            let byte = u8::from_str_radix(hex, 16)
                .map_err(|_| format!("bad `%{hex}` escape in `{text}`"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn the_default_service_url() {
        let url = parse("postgres://root@127.0.0.1:5432/test").unwrap();
        assert_eq!(url.endpoint, tcp("127.0.0.1", 5432));
        assert_eq!(url.user.as_deref(), Some("root"));
        assert_eq!(url.dbname.as_deref(), Some("test"));
        assert!(!url.has_password);
    }

    #[test]
    fn password_port_default_and_scheme_alias() {
        let url = parse("postgresql://me:s3cret@db.example.com/app").unwrap();
        assert_eq!(url.endpoint, tcp("db.example.com", 5432));
        assert_eq!(url.user.as_deref(), Some("me"));
        assert!(url.has_password);
    }

    #[test]
    fn ipv6_and_query_overrides() {
        let url = parse("postgres://[::1]:6543/db?user=alice&sslmode=disable").unwrap();
        assert_eq!(url.endpoint, tcp("::1", 6543));
        assert_eq!(url.endpoint.to_string(), "[::1]:6543");
        assert_eq!(url.user.as_deref(), Some("alice"));
        let url = parse("postgres://localhost/db?port=7000").unwrap();
        assert_eq!(url.endpoint, tcp("localhost", 7000));
    }

    #[test]
    fn unix_socket_forms() {
        let url = parse("postgres://root@/test?host=/var/run/postgresql&port=5433").unwrap();
        assert_eq!(
            url.endpoint,
            Endpoint::Socket {
                dir: "/var/run/postgresql".into(),
                port: 5433
            }
        );
        assert_eq!(
            url.endpoint.to_string(),
            "/var/run/postgresql/.s.PGSQL.5433"
        );
        let url = parse("postgres://%2Ftmp%2Fpg/test").unwrap();
        assert_eq!(
            url.endpoint,
            Endpoint::Socket {
                dir: "/tmp/pg".into(),
                port: 5432
            }
        );
        let url = parse("postgres:///test").unwrap();
        assert_eq!(
            url.endpoint,
            Endpoint::Socket {
                dir: DEFAULT_SOCKET_DIR.into(),
                port: 5432
            }
        );
    }

    #[test]
    fn first_of_several_hosts() {
        let url = parse("postgres://a:1111,b:2222/db").unwrap();
        assert_eq!(url.endpoint, tcp("a", 1111));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("mysql://localhost/db").is_err());
        assert!(parse("postgres://localhost:notaport/db").is_err());
        assert!(parse("postgres://[::1/db").is_err());
        assert!(parse("postgres://localhost/d%zzb").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://me:s3cret@host:1/db"),
            "postgres://me:***@host:1/db"
        );
        assert_eq!(
            redact("postgres://root@127.0.0.1:5432/test"),
            "postgres://root@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact("postgres://h/db?user=u&password=p&x=1"),
            "postgres://h/db?user=u&password=***&x=1"
        );
    }
}
