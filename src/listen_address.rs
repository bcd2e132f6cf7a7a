//! `listen_address` (and `--listen-address`): the forms GitLab Runner's
//! `listen_address` takes, read into one `host:port`.
//!
//! - `host:port` (`127.0.0.1:9252`, `localhost:9252`, `monitor.example:9252`);
//! - `[v6]:port` (`[::1]:9252`, `[::]:9252`);
//! - `:port`: every IPv4 interface (`0.0.0.0:port`); write `[::]:port` for
//!   IPv6 as well;
//! - `host` or `[v6]` alone: port [`DEFAULT_PORT`] (9252, GitLab Runner's
//!   metrics port).
//!
//! An IPv6 address without brackets is refused (`::1:9252` is itself an
//! address), as are empty hosts and ports that are not 0 to 65535 (0: any
//! free port, as tests use it). Parsing is pure; [`ListenAddress::resolve`]
//! looks host names up, as the bind does.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};

/// The port of a `listen_address` that names none (GitLab Runner's
/// metrics port).
pub const DEFAULT_PORT: u16 = 9252;

/// A parsed `listen_address`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddress {
    /// A host name, an IPv4 address, or an IPv6 address (without brackets).
    host: String,
    port: u16,
}

/// Why a `listen_address` is refused: the expected forms follow the
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; expected `host:port`, `:port`, `host` (port {DEFAULT_PORT}) or `[ipv6]:port`")]
pub struct ListenAddressError {
    reason: String,
}

fn refused(reason: impl Into<String>) -> ListenAddressError {
    ListenAddressError {
        reason: reason.into(),
    }
}

impl ListenAddress {
    /// Reads one of the forms of the module documentation.
    pub fn parse(text: &str) -> Result<ListenAddress, ListenAddressError> {
        if text.is_empty() {
            return Err(refused("empty"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refused("contains a space or a control character"));
        }
        let (host, port) = match text.strip_prefix('[') {
            Some(bracketed) => {
                let (v6, rest) = bracketed
                    .split_once(']')
                    .ok_or_else(|| refused("`[` without its `]`"))?;
                v6.parse::<Ipv6Addr>()
                    .map_err(|_| refused(format!("`{v6}` is not an IPv6 address")))?;
                let port = match rest {
                    "" => None,
                    _ => Some(
                        rest.strip_prefix(':')
                            .ok_or_else(|| refused("expected `:port` after `]`"))?,
                    ),
                };
                (v6.to_string(), port)
            }
            None => match text.split_once(':') {
                None => (text.to_string(), None),
                Some((host, port)) if !port.contains(':') => {
                    let host = if host.is_empty() { "0.0.0.0" } else { host };
                    (host.to_string(), Some(port))
                }
                Some(_) if text.parse::<Ipv6Addr>().is_ok() => {
                    return Err(refused(format!(
                        "an IPv6 address needs brackets: `[{text}]:{DEFAULT_PORT}`"
                    )))
                }
                Some(_) => return Err(refused("more than one `:`")),
            },
        };
        if !host.contains(':') && !valid_host_name(&host) {
            return Err(refused(format!(
                "`{host}` is not a host name or an address"
            )));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| refused(format!("`{p}` is not a port (0 to 65535)")))?,
        };
        Ok(ListenAddress { host, port })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket addresses to bind: the host looked up as the bind does
    /// (`/etc/hosts`, then DNS for a name; nothing for an address).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("`{}` has no address", self.host),
            ));
        }
        Ok(addrs)
    }
}

/// Letters, digits, `-`, `_` and `.` (an IPv4 address is one too).
fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl fmt::Display for ListenAddress {
    /// `host:port`, an IPv6 host in brackets: what the bind is given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_runner_forms_are_read_into_host_and_port() {
        let table = [
            ("127.0.0.1:9252", "127.0.0.1:9252"),
            (":9252", "0.0.0.0:9252"),
            (":0", "0.0.0.0:0"),
            ("localhost", "localhost:9252"),
            ("localhost:9300", "localhost:9300"),
            ("monitor.example", "monitor.example:9252"),
            ("10.0.0.7", "10.0.0.7:9252"),
            ("[::1]:9252", "[::1]:9252"),
            ("[::]:9300", "[::]:9300"),
            ("[::1]", "[::1]:9252"),
            ("[fe80::1]:1", "[fe80::1]:1"),
        ];
        for (written, read) in table {
            let parsed = ListenAddress::parse(written);
            assert_eq!(
                parsed.as_ref().map(ToString::to_string).as_deref(),
                Ok(read),
                "{written}"
            );
            // What it is read into reads the same again.
            assert_eq!(
                parsed.and_then(|a| ListenAddress::parse(&a.to_string())),
                ListenAddress::parse(read),
                "{written}"
            );
        }
    }

    #[test]
    fn other_forms_are_refused_with_the_expected_ones() {
        for (written, why) in [
            ("", "empty"),
            ("::1", "needs brackets: `[::1]:9252`"),
            ("::1:9252", "needs brackets"),
            ("a:b:c", "more than one `:`"),
            ("localhost:http", "`http` is not a port"),
            ("localhost:65536", "`65536` is not a port"),
            ("localhost:", "`` is not a port"),
            ("[::1", "without its `]`"),
            ("[::1]9252", "expected `:port` after `]`"),
            ("[nope]:1", "`nope` is not an IPv6 address"),
            ("http://localhost:9252", "more than one `:`"),
            ("local host:1", "a space"),
            ("a/b:1", "`a/b` is not a host name"),
        ] {
            let e = ListenAddress::parse(written).expect_err(written);
            let text = e.to_string();
            assert!(text.contains(why), "{written}: {text}");
            assert!(text.contains("expected `host:port`, `:port`"), "{text}");
        }
    }

    #[test]
    fn loopback_names_resolve_to_loopback_addresses() {
        let addrs = ListenAddress::parse("localhost:0")
            .expect("parses")
            .resolve()
            .expect("localhost resolves");
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 0));
        let any = ListenAddress::parse(":9252").expect("parses").resolve();
        assert_eq!(
            any.expect("an address resolves"),
            vec!["0.0.0.0:9252".parse::<SocketAddr>().expect("address")]
        );
    }
}
