//! Choosing among several hosts, as libpq does: `target_session_attrs`, `load_balance_hosts`, and
//! the hosts of an engine's read replicas (`replica_hosts`).

use std::fmt;

use crate::options::{PgHost, DEFAULT_PORT};

/// Which kind of server a connection must reach: the `target_session_attrs` option, with libpq's
/// values and meaning.
///
/// The hosts are tried in order (or shuffled, with `load_balance_hosts=random`); a host that
/// answers but is not of the wanted kind is closed again and counts as a failed attempt, named in
/// the connect error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// Any server that accepts the login. The default.
    #[default]
    Any,
    /// A session that can write: `SHOW transaction_read_only` is `off`.
    ReadWrite,
    /// A read-only session: `SHOW transaction_read_only` is `on`.
    ReadOnly,
    /// A server that is not in recovery: `pg_is_in_recovery()` is false.
    Primary,
    /// A server in recovery (a standby): `pg_is_in_recovery()` is true.
    Standby,
    /// A standby if any host is one; else, on a second pass over the hosts, any server.
    PreferStandby,
}

impl TargetSessionAttrs {
    /// The option's spelling: `any`, `read-write`, `read-only`, `primary`, `standby` or
    /// `prefer-standby`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text.trim() {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            _ => return None,
        })
    }

    /// Whether a connection of this engine must be able to write: then a statement refused as
    /// read-only (`25006`, the server was demoted under it) marks the connection broken, so that
    /// the pool replaces it with one to the new primary.
    pub(crate) fn wants_writes(self) -> bool {
        matches!(
            self,
            TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary
        )
    }

    /// The checks of each pass over the hosts: `prefer-standby` looks for a standby first, then
    /// takes any server.
    pub(crate) fn passes(self) -> &'static [Check] {
        match self {
            TargetSessionAttrs::Any => &[Check::None],
            TargetSessionAttrs::ReadWrite => &[Check::Writable],
            TargetSessionAttrs::ReadOnly => &[Check::ReadOnly],
            TargetSessionAttrs::Primary => &[Check::Primary],
            TargetSessionAttrs::Standby => &[Check::Standby],
            TargetSessionAttrs::PreferStandby => &[Check::Standby, Check::None],
        }
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one pass over the hosts asks of a server once it has let the login in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    None,
    Writable,
    ReadOnly,
    Primary,
    Standby,
}

impl Check {
    /// The query that answers the check (one `bool`-like text column), if any.
    pub(crate) fn query(self) -> Option<&'static str> {
        match self {
            Check::None => None,
            Check::Writable | Check::ReadOnly => Some("SHOW transaction_read_only"),
            Check::Primary | Check::Standby => Some("SELECT pg_is_in_recovery()"),
        }
    }

    /// Whether the answer of [`query`](Self::query) (`on`/`off`, `t`/`f`) passes; `Err` says
    /// why not, for the connect error.
    pub(crate) fn judge(self, answer: &str) -> Result<(), String> {
        let yes = matches!(answer.trim(), "on" | "t" | "true");
        let (ok, why) = match self {
            Check::None => (true, ""),
            Check::Writable => (
                !yes,
                "the server is read-only (target_session_attrs=read-write)",
            ),
            Check::ReadOnly => (
                yes,
                "the server is not read-only (target_session_attrs=read-only)",
            ),
            Check::Primary => (
                !yes,
                "the server is a standby (target_session_attrs=primary)",
            ),
            Check::Standby => (
                yes,
                "the server is not a standby (target_session_attrs=standby or prefer-standby)",
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(why.to_owned())
        }
    }
}

/// In which order the hosts are tried: the `load_balance_hosts` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LoadBalanceHosts {
    /// In the order given. The default.
    #[default]
    Disable,
    /// In a random order, drawn anew for every connection, which spreads the connections of many
    /// clients over the hosts.
    Random,
}

/// The host-selection options, as parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Routing {
    pub(crate) target: TargetSessionAttrs,
    pub(crate) load_balance: LoadBalanceHosts,
    /// The read replicas' hosts, each its own pool (`replica_hosts`).
    pub(crate) replica_hosts: Vec<PgHost>,
}

/// The options [`Routing`] parses.
pub(crate) const ROUTING_OPTIONS: &[&str] = &[
    "target_session_attrs",
    "load_balance_hosts",
    "replica_hosts",
];

impl Routing {
    /// Applies one option of [`ROUTING_OPTIONS`]; `shown` is the value as messages may quote it.
    /// `Err` is the message of a configuration error.
    pub(crate) fn apply(&mut self, key: &str, value: &str, shown: &str) -> Result<(), String> {
        match key {
            "target_session_attrs" => {
                self.target = TargetSessionAttrs::parse(value).ok_or_else(|| {
                    format!(
                        "target_session_attrs {shown} is unknown; use any, read-write, read-only, \
                         primary, standby or prefer-standby"
                    )
                })?;
            }
            "load_balance_hosts" => {
                self.load_balance = match value.trim() {
                    "disable" => LoadBalanceHosts::Disable,
                    "random" => LoadBalanceHosts::Random,
                    _ => {
                        return Err(format!(
                            "load_balance_hosts {shown} is unknown; use disable or random"
                        ))
                    }
                }
            }
            "replica_hosts" => {
                self.replica_hosts = value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| parse_replica_host(item, shown))
                    .collect::<Result<_, _>>()?;
            }
            _ => unreachable!("only the routing options are applied here"),
        }
        Ok(())
    }

    /// The hosts in the order to try them.
    pub(crate) fn order<'h>(&self, hosts: &'h [PgHost]) -> Vec<&'h PgHost> {
        let mut order: Vec<&PgHost> = hosts.iter().collect();
        if self.load_balance == LoadBalanceHosts::Random {
            fastrand::shuffle(&mut order);
        }
        order
    }
}

/// One `replica_hosts` item: `host`, `host:port`, `[v6]:port` or a Unix socket directory
/// (`/run/postgresql`), the port defaulting to 5432.
fn parse_replica_host(item: &str, shown: &str) -> Result<PgHost, String> {
    let bad = || {
        format!(
            "replica_hosts {shown} is not a list of hosts; write host[:port] items separated by \
             commas, such as replica_hosts=r1:5432,r2:5432"
        )
    };
    if item.starts_with('/') {
        return Ok(PgHost::Unix {
            path: std::path::PathBuf::from(item).join(format!(".s.PGSQL.{DEFAULT_PORT}")),
        });
    }
    let (host, port) = if let Some(rest) = item.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match item.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (item, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(bad)?,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(PgHost::Tcp {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> PgHost {
        PgHost::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn every_libpq_value_of_target_session_attrs() {
        for name in [
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ] {
            let mut routing = Routing::default();
            routing.apply("target_session_attrs", name, "x").unwrap();
            assert_eq!(routing.target.as_str(), name);
        }
        let err = Routing::default()
            .apply("target_session_attrs", "master", "`master`")
            .unwrap_err();
        assert!(
            err.contains("`master`") && err.contains("prefer-standby"),
            "{err}"
        );
    }

    #[test]
    fn prefer_standby_makes_two_passes() {
        assert_eq!(
            TargetSessionAttrs::PreferStandby.passes(),
            &[Check::Standby, Check::None]
        );
        assert_eq!(TargetSessionAttrs::ReadWrite.passes(), &[Check::Writable]);
        assert!(TargetSessionAttrs::Primary.wants_writes());
        assert!(!TargetSessionAttrs::PreferStandby.wants_writes());
    }

    #[test]
    fn checks_judge_the_server_answers() {
        assert!(Check::Writable.judge("off").is_ok());
        assert!(Check::Writable
            .judge("on")
            .unwrap_err()
            .contains("read-only"));
        assert!(Check::ReadOnly.judge("on").is_ok());
        assert!(Check::ReadOnly.judge("off").is_err());
        assert!(Check::Primary.judge("f").is_ok());
        assert!(Check::Primary.judge("t").unwrap_err().contains("standby"));
        assert!(Check::Standby.judge("t").is_ok());
        assert!(Check::Standby.judge("f").is_err());
        assert!(Check::None.judge("anything").is_ok());
    }

    #[test]
    fn load_balance_shuffles_every_host_in() {
        let mut routing = Routing::default();
        let hosts: Vec<PgHost> = (1..=8).map(|p| tcp("h", p)).collect();
        let ordered: Vec<&PgHost> = hosts.iter().collect();
        assert_eq!(routing.order(&hosts), ordered);
        routing.apply("load_balance_hosts", "random", "x").unwrap();
        let mut seen_other_order = false;
        for _ in 0..50 {
            let mut order = routing.order(&hosts);
            seen_other_order |= order != ordered;
            order.sort_by_key(|h| h.to_string());
            assert_eq!(order, ordered);
        }
        assert!(seen_other_order, "50 shuffles of 8 hosts kept the order");
        assert!(Routing::default()
            .apply("load_balance_hosts", "round-robin", "`round-robin`")
            .unwrap_err()
            .contains("disable or random"));
    }

    #[test]
    fn replica_hosts_take_ports_brackets_and_socket_dirs() {
        let mut routing = Routing::default();
        routing
            .apply("replica_hosts", "r1:5433, r2,[::1]:6000,/run/pg", "x")
            .unwrap();
        assert_eq!(
            routing.replica_hosts,
            [
                tcp("r1", 5433),
                tcp("r2", 5432),
                tcp("::1", 6000),
                PgHost::Unix {
                    path: "/run/pg/.s.PGSQL.5432".into()
                }
            ]
        );
        for bad in ["r1:0", "r1:x", "[::1", ":5432", "[::1]x"] {
            let err = Routing::default()
                .apply("replica_hosts", bad, "(shown)")
                .unwrap_err();
            assert!(
                err.contains("(shown)") && err.contains("host[:port]"),
                "{bad}: {err}"
            );
        }
    }
}

#[cfg(test)]
mod option_tests {
    use anysql_core::{ConnectOptions, ErrorKind};

    use super::*;
    use crate::options::PgConnectOptions;

    fn parse(url: &str) -> Result<PgConnectOptions, anysql_core::Error> {
        PgConnectOptions::parse(&ConnectOptions::parse(url)?)
    }

    #[test]
    fn a_libpq_multi_host_url_with_routing_options() {
        let o = parse(
            "postgres://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write\
             &load_balance_hosts=random&replica_hosts=r1:6432,r2",
        )
        .unwrap();
        assert_eq!(o.hosts().len(), 2);
        assert_eq!(o.hosts()[1].to_string(), "h2:5433");
        assert_eq!(o.target_session_attrs(), TargetSessionAttrs::ReadWrite);
        assert_eq!(o.load_balance_hosts(), LoadBalanceHosts::Random);
        assert_eq!(o.replica_hosts().len(), 2);
        let replica = o.for_replica(&o.replica_hosts()[0]);
        assert_eq!(replica.hosts()[0].to_string(), "r1:6432");
        assert_eq!(replica.target_session_attrs(), TargetSessionAttrs::Any);
        assert!(replica.replica_hosts().is_empty());
        assert!(replica.has_password() && replica.user() == Some("u"));
        assert!(!replica.redacted().contains("pw"), "{}", replica.redacted());
        assert!(replica.redacted().contains("replica r1:6432"));
    }

    #[test]
    fn the_key_value_form_takes_them_too() {
        let o = parse("host=h1,h2 port=5432,5433 target_session_attrs=prefer-standby").unwrap();
        assert_eq!(o.hosts().len(), 2);
        assert_eq!(o.target_session_attrs(), TargetSessionAttrs::PreferStandby);
        let err = parse("host=h1 target_session_attrs=writable").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(err.message().contains("`writable`"), "{err}");
        // A value that may be part of a password is not quoted.
        let err = parse("host=h1 password=x load_balance_hosts=Zqxv").unwrap_err();
        assert!(
            err.message().contains("load_balance_hosts (not shown"),
            "{err}"
        );
    }
}
