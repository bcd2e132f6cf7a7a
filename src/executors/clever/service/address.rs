//! Pure: where a service application's helper is reached.
//!
//! The rule: the application's first `vhosts[].fqdn` from the Clever API,
//! else the Python runner 1.1's `<app id with "_" → "-">.cleverapps.io`;
//! `https://` to it, plain `http://` only to a loopback host, and a
//! loopback host only when the Clever API itself is on one (the
//! simulator): against the real API a loopback vhost is not followed, so
//! that no application can make the runner send requests to its own host.
//!
//! The fqdn is hostile input, parsed strictly ([`parse_netloc`]): a host
//! (DNS name, dotted IPv4, bracketed IPv6) and an optional port, one
//! trailing `/` ignored, nothing else (no userinfo, path, query, fragment,
//! whitespace). What is accepted can be written into a URL as is.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest text looked at (a 253-byte name, `:`, a port, `/`, brackets).
pub const MAX_NETLOC_LEN: usize = 264;
/// Longest DNS name.
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;
/// The domain of the 1.1 rule.
pub const CLEVERAPPS_DOMAIN: &str = "cleverapps.io";
/// How much of a refused text an error quotes.
const QUOTED_CHARS: usize = 80;

/// Why a text is not a helper address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Empty, or only `/`.
    #[error("empty host")]
    Empty,
    /// Longer than [`MAX_NETLOC_LEN`].
    #[error("longer than {MAX_NETLOC_LEN} bytes")]
    TooLong,
    /// Not a DNS name, IPv4 or bracketed IPv6 address, optionally with a port.
    #[error("not a host[:port] ({0})")]
    Malformed(String),
    /// A port that is not 1 to 65535.
    #[error("invalid port ({0})")]
    Port(String),
    /// A loopback host while the Clever API is not on one.
    #[error("a loopback host, refused with a Clever API that is not on one ({0})")]
    Loopback(String),
}

/// A host as accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lowercased.
    Name(String),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    V6(Ipv6Addr),
}

/// A checked `host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netloc {
    /// The host.
    pub host: Host,
    /// The port, when given.
    pub port: Option<u16>,
}

impl fmt::Display for Netloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(n) => f.write_str(n)?,
            Host::V4(ip) => write!(f, "{ip}")?,
            Host::V6(ip) => write!(f, "[{ip}]")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

impl Netloc {
    /// A loopback address, or `localhost`.
    pub fn is_loopback(&self) -> bool {
        match &self.host {
            Host::Name(n) => n == "localhost",
            Host::V4(ip) => ip.is_loopback(),
            Host::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }

    /// The helper's base URL: `https://host[:port]`, `http://` for a
    /// loopback host.
    pub fn base_url(&self) -> String {
        let scheme = if self.is_loopback() { "http" } else { "https" };
        format!("{scheme}://{self}")
    }
}

/// A bounded, escaped quote of refused text.
fn quoted(text: &str) -> String {
    let mut q: String = text.chars().take(QUOTED_CHARS).collect();
    if text.chars().count() > QUOTED_CHARS {
        q.push('…');
    }
    format!("{:?}", q)
}

/// Parses `host[:port]` strictly (see the module documentation).
pub fn parse_netloc(text: &str) -> Result<Netloc, AddressError> {
    if text.len() > MAX_NETLOC_LEN {
        return Err(AddressError::TooLong);
    }
    let text = text.strip_suffix('/').unwrap_or(text);
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    let malformed = || AddressError::Malformed(quoted(text));
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(malformed)?;
        // No zone index (`%eth0`), no IPv4-style tricks: the standard form.
        let ip: Ipv6Addr = inside.parse().map_err(|_| malformed())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(malformed)?),
        };
        (Host::V6(ip), port)
    } else {
        let (name, port) = match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        };
        (host_of(name).ok_or_else(malformed)?, port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or_else(|| AddressError::Port(quoted(p)))?),
    };
    Ok(Netloc { host, port })
}

/// 1 to 65535, decimal digits only.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p > 0)
}

/// A dotted IPv4 address or a DNS name of letters, digits and inner `-`.
/// A name whose last label is all digits is only accepted as a dotted IPv4
/// address (URL parsers read `1.2.3` or `0x7f.1` as IPv4 shorthands).
fn host_of(text: &str) -> Option<Host> {
    if text.is_empty() || text.len() > MAX_NAME_LEN {
        return None;
    }
    let labels: Vec<&str> = text.split('.').collect();
    let valid_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL_LEN
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !labels.iter().all(valid_label) {
        return None;
    }
    let last_numeric = labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    let looks_hex = labels
        .last()
        .is_some_and(|l| l.len() > 2 && l.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")));
    if last_numeric || looks_hex {
        // Only the canonical dotted quad (no leading zeros: `Ipv4Addr`
        // refuses them).
        return text.parse::<Ipv4Addr>().ok().map(Host::V4);
    }
    Some(Host::Name(text.to_ascii_lowercase()))
}

/// The Python runner 1.1's address of application `app_id`:
/// `<app id with "_" → "-">.cleverapps.io`.
pub fn cleverapps_netloc(app_id: &str) -> Result<Netloc, AddressError> {
    parse_netloc(&format!("{}.{CLEVERAPPS_DOMAIN}", app_id.replace('_', "-")))
}

/// Where the helper of application `app_id` is, from its first vhost
/// `fqdn` when it is a usable address, else by the 1.1 rule. A loopback
/// host is usable only with `allow_loopback` (the Clever API is on one).
/// Also returns why the vhost was not used, when it was given but refused.
pub fn helper_netloc(
    fqdn: Option<&str>,
    app_id: &str,
    allow_loopback: bool,
) -> Result<(Netloc, Option<AddressError>), AddressError> {
    let refused = match fqdn.map(parse_netloc) {
        None => None,
        Some(Ok(n)) if allow_loopback || !n.is_loopback() => return Ok((n, None)),
        Some(Ok(n)) => Some(AddressError::Loopback(quoted(&n.to_string()))),
        Some(Err(e)) => Some(e),
    };
    let fallback = cleverapps_netloc(app_id)?;
    Ok((fallback, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        match parse_netloc(text) {
            Ok(n) => n.to_string(),
            Err(e) => panic!("{text:?} refused: {e}"),
        }
    }

    #[test]
    fn hosts_with_an_optional_port_are_accepted() {
        let table = [
            ("app-3f0c2a5e.cleverapps.io", "app-3f0c2a5e.cleverapps.io"),
            ("APP-1.CleverApps.IO/", "app-1.cleverapps.io"),
            ("127.0.0.1:40123", "127.0.0.1:40123"),
            ("127.0.0.1:40123/", "127.0.0.1:40123"),
            ("[::1]:8080", "[::1]:8080"),
            ("[::1]", "[::1]"),
            ("localhost:1", "localhost:1"),
            ("a", "a"),
            ("x.example:65535", "x.example:65535"),
        ];
        for (text, shown) in table {
            assert_eq!(ok(text), shown, "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let refused = [
            "",
            "/",
            "//",
            "https://app.cleverapps.io",
            "user@app.cleverapps.io",
            "user:pw@host",
            "host/path",
            "host?q=1",
            "host#frag",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "host:80:81",
            "host:8o",
            " host",
            "host ",
            "ho st",
            "host\n",
            "-host",
            "host-.example",
            "a..b",
            ".host",
            "host.",
            "under_score.example",
            "1.2.3",
            "0x7f.1",
            "127.0.0.01",
            "256.0.0.1",
            "4294967295",
            "[::1",
            "[::1]x",
            "[fe80::1%eth0]",
            "[127.0.0.1]",
            "ex\u{e4}mple.com",
            "host\u{202e}.com",
        ];
        for text in refused {
            assert!(parse_netloc(text).is_err(), "{text:?} accepted");
        }
        assert_eq!(
            parse_netloc(&"a".repeat(MAX_NETLOC_LEN + 1)),
            Err(AddressError::TooLong)
        );
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(parse_netloc(&long_label).is_err());
    }

    #[test]
    fn base_urls_are_https_but_to_loopback() {
        let base = |t: &str| parse_netloc(t).map(|n| n.base_url()).ok();
        assert_eq!(
            base("app-1.cleverapps.io").as_deref(),
            Some("https://app-1.cleverapps.io")
        );
        assert_eq!(base("10.0.0.1:80").as_deref(), Some("https://10.0.0.1:80"));
        assert_eq!(base("127.0.0.1:9").as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(base("127.1.2.3").as_deref(), Some("http://127.1.2.3"));
        assert_eq!(base("[::1]:9").as_deref(), Some("http://[::1]:9"));
        assert_eq!(
            base("[::ffff:127.0.0.1]").as_deref(),
            Some("http://[::ffff:127.0.0.1]")
        );
        assert_eq!(base("LocalHost").as_deref(), Some("http://localhost"));
    }

    #[test]
    fn the_first_vhost_else_the_cleverapps_rule() {
        let id = "app_3f0c2a5e-9b1d";
        let rule = "app-3f0c2a5e-9b1d.cleverapps.io";
        let got = |fqdn: Option<&str>, loopback: bool| {
            helper_netloc(fqdn, id, loopback)
                .map(|(n, refused)| (n.to_string(), refused.is_some()))
                .ok()
        };
        assert_eq!(got(None, false), Some((rule.into(), false)));
        assert_eq!(
            got(Some("custom.example/"), false),
            Some(("custom.example".into(), false))
        );
        assert_eq!(got(Some("bad/path"), false), Some((rule.into(), true)));
        assert_eq!(got(Some("127.0.0.1:5"), false), Some((rule.into(), true)));
        assert_eq!(
            got(Some("127.0.0.1:5"), true),
            Some(("127.0.0.1:5".into(), false))
        );
        assert!(helper_netloc(None, "app_with a space", false).is_err());
    }

    #[test]
    fn refusals_quote_a_bounded_escaped_excerpt() {
        let long = format!("{}\u{1b}[31m/x", "a".repeat(200));
        let Err(AddressError::Malformed(q)) = parse_netloc(&long) else {
            panic!("accepted");
        };
        assert!(q.chars().count() < 100, "{q}");
        assert!(!q.contains('\u{1b}'), "{q}");
    }
}
