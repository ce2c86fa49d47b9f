//! Endpoint strings: parsing `host:port` with an optional scheme, choosing the TLS server
//! name, and resolving to socket addresses.

use crate::error::ClientError;
use crate::limits::NATIVE_PORT_DEFAULT;
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};

/// Schemes accepted in front of an endpoint and ignored: etcd users write `https://` or
/// `http://`; the transport is QUIC with TLS either way.
const IGNORED_SCHEMES: [&str; 3] = ["https://", "http://", "quic://"];
/// Server name used for an IP endpoint when none is configured; development certificates
/// carry it.
const SERVER_NAME_FOR_IP: &str = "localhost";

/// A parsed endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The endpoint as configured.
    pub endpoint: String,
    /// The host: a DNS name or an IP address (without brackets).
    pub host: String,
    /// The UDP port.
    pub port: u16,
    /// The name the server's certificate must carry.
    pub server_name: String,
}

/// Parses `endpoint` (`host:port`, `[v6]:port`, optionally after `https://`). The server name
/// is `server_name` if given, else the host if it is a DNS name, else `"localhost"`.
pub fn parse_endpoint(endpoint: &str, server_name: Option<&str>) -> Result<Target, ClientError> {
    let bad = |reason: &str| ClientError::Config {
        reason: format!(
            "endpoint {endpoint:?} {reason}; write it as host:port, e.g. 127.0.0.1:2379"
        ),
    };
    let mut rest = endpoint.trim();
    for scheme in IGNORED_SCHEMES {
        if rest.len() >= scheme.len() && rest[..scheme.len()].eq_ignore_ascii_case(scheme) {
            rest = &rest[scheme.len()..];
        }
    }
    if rest.contains("://") {
        return Err(bad("has an unsupported scheme"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err(bad("has a path"));
    }
    let (host, port) = split_host_port(rest).ok_or_else(|| bad("is not host:port"))?;
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port = match port {
        None => NATIVE_PORT_DEFAULT,
        Some(p) => {
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("has a bad port"))?
        }
    };
    let server_name = match server_name {
        Some(name) => name.to_string(),
        None if host.parse::<IpAddr>().is_ok() => SERVER_NAME_FOR_IP.to_string(),
        None => host.to_string(),
    };
    if ServerName::try_from(server_name.clone()).is_err() {
        return Err(ClientError::Config {
            reason: format!("server name {server_name:?} is not a valid DNS name or IP address"),
        });
    }
    Ok(Target { endpoint: endpoint.to_string(), host: host.to_string(), port, server_name })
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 address.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((s, None));
    }
    match s.split_once(':') {
        None => Some((s, None)),
        Some((_, port)) if port.contains(':') => None,
        Some((host, port)) => Some((host, Some(port))),
    }
}

impl Target {
    /// Resolves the host, IPv4 addresses first (servers listen on IPv4 by default, and a
    /// QUIC dial to an address nobody listens on only fails after the dial timeout).
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, ClientError> {
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| ClientError::Connect {
                endpoint: self.endpoint.clone(),
                reason: format!("cannot resolve {}: {e}", self.host),
            })?
            .collect();
        addrs.sort_by_key(|a| a.is_ipv6());
        addrs.dedup();
        if addrs.is_empty() {
            return Err(ClientError::Connect {
                endpoint: self.endpoint.clone(),
                reason: format!("{} resolves to no address", self.host),
            });
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn must_parse(s: &str) -> Target {
        parse_endpoint(s, None).expect("endpoint parses")
    }

    #[test]
    fn endpoints_parse_with_and_without_scheme() {
        let t = must_parse("https://127.0.0.1:2379");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 2379));
        assert_eq!(t.server_name, "localhost");
        assert_eq!(t.endpoint, "https://127.0.0.1:2379");
        let t = must_parse("localhost:2379");
        assert_eq!(
            (t.host.as_str(), t.port, t.server_name.as_str()),
            ("localhost", 2379, "localhost")
        );
        let t = must_parse("HTTP://node-1.example.com:7/");
        assert_eq!((t.host.as_str(), t.port), ("node-1.example.com", 7));
        assert_eq!(t.server_name, "node-1.example.com");
        let t = must_parse("[::1]:2379");
        assert_eq!((t.host.as_str(), t.port, t.server_name.as_str()), ("::1", 2379, "localhost"));
        let t = must_parse("::1");
        assert_eq!((t.host.as_str(), t.port), ("::1", NATIVE_PORT_DEFAULT));
        let t = must_parse("10.0.0.1");
        assert_eq!(t.port, NATIVE_PORT_DEFAULT);
    }

    #[test]
    fn configured_server_name_wins() {
        let t = parse_endpoint("127.0.0.1:1", Some("node-3")).expect("parses");
        assert_eq!(t.server_name, "node-3");
    }

    #[test]
    fn bad_endpoints_say_how_to_write_one() {
        for bad in
            ["", ":2379", "host:0", "host:99999", "host:x", "unix:///tmp/s", "h:1/path", "[::1"]
        {
            let err = parse_endpoint(bad, None).expect_err(bad).to_string();
            assert!(err.contains("host:port"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn ip_endpoints_resolve_to_themselves() {
        let addrs = must_parse("127.0.0.1:2379").resolve().await.expect("resolves");
        assert_eq!(addrs, vec!["127.0.0.1:2379".parse().expect("addr")]);
    }
}
