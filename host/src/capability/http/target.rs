//! Where a request goes, parsed once from its URI: the policy checks this and the connector
//! connects to it, so the two cannot disagree about the host or the port.
//!
//! Strict on purpose: userinfo (`user@host`), an empty or non-numeric port, port 0, a host that is
//! neither an IP literal nor a DNS name (`%`-escapes, underscores, trailing junk) are refused
//! before any grant is looked at.

use std::fmt;
use std::net::IpAddr;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS (rustls, webpki roots).
    Https,
}

/// The host part of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal (`10.0.0.1`, `[::1]`).
    Ip(IpAddr),
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
}

/// The destination of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Scheme.
    pub scheme: Scheme,
    /// Host.
    pub host: Host,
    /// Port (the scheme's default when the URI has none).
    pub port: u16,
}

impl Target {
    /// Parse the scheme and authority of `uri`.
    pub fn of(uri: &http::Uri) -> Result<Target, String> {
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => return Err(format!("scheme `{other}` is not http or https")),
            None => return Err("the URI has no scheme".into()),
        };
        let authority = uri.authority().ok_or("the URI has no host")?.as_str();
        Target::parse_authority(scheme, authority)
    }

    /// Parse `host[:port]` (no userinfo) for `scheme`.
    pub fn parse_authority(scheme: Scheme, authority: &str) -> Result<Target, String> {
        if authority.contains('@') {
            return Err("userinfo (`user@host`) is not allowed in a request URI".into());
        }
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or("unclosed `[` in the host")?;
            let ip: std::net::Ipv6Addr = h.parse().map_err(|_| format!("`[{h}]` is not an IPv6 address"))?;
            (Host::Ip(IpAddr::V6(ip)), port_after(after)?)
        } else {
            let (h, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(parse_port(p)?)),
                None => (authority, None),
            };
            let host = match h.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => Host::Ip(IpAddr::V4(ip)),
                Err(_) if is_dns_name(h) => Host::Name(h.trim_end_matches('.').to_ascii_lowercase()),
                Err(_) => return Err(format!("`{h}` is not a host name or an IP address")),
            };
            (host, port)
        };
        let port = port.unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        Ok(Target { scheme, host, port })
    }
}

fn port_after(after: &str) -> Result<Option<u16>, String> {
    match after.strip_prefix(':') {
        Some(p) => Ok(Some(parse_port(p)?)),
        None if after.is_empty() => Ok(None),
        None => Err(format!("`{after}` after the IPv6 address")),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{p}` is not a port"));
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{p}` is not a port (1-65535)")),
        Ok(n) => Ok(n),
    }
}

/// A DNS name as RFC 1123 writes it: labels of letters, digits and inner hyphens, 1-63 bytes
/// each, 253 in all, an optional trailing dot, and not all-numeric in the last label (so
/// `127.1` or `0x7f.1` is never taken for a name the resolver would read as an address).
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels_ok = name.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !labels_ok {
        return false;
    }
    // Bytes, not string slices: a name is ASCII only once the labels are checked, and this must
    // never split a character (the `egress_authority` fuzz target's find: `hȥ` panicked here).
    let last = name.rsplit('.').next().unwrap_or("").as_bytes();
    let numeric_tail = last.iter().all(u8::is_ascii_digit)
        || (last.len() > 2 && last[..2].eq_ignore_ascii_case(b"0x") && last[2..].iter().all(u8::is_ascii_hexdigit));
    !numeric_tail
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(uri: &str) -> Result<Target, String> {
        Target::of(&uri.parse().map_err(|e| format!("{e}"))?)
    }

    #[test]
    fn parses_what_the_connector_uses() {
        let x = t("http://Example.COM./x").unwrap();
        assert_eq!((x.host, x.port), (Host::Name("example.com".into()), 80));
        let x = t("https://10.0.0.1:8443/").unwrap();
        assert_eq!(
            (x.host, x.port, x.scheme),
            (Host::Ip("10.0.0.1".parse().unwrap()), 8443, Scheme::Https)
        );
        let x = t("http://[::1]:9000/").unwrap();
        assert_eq!((x.host, x.port), (Host::Ip("::1".parse().unwrap()), 9000));
    }

    #[test]
    fn names_outside_ascii_are_refused_without_panicking() {
        // Found by the `egress_authority` fuzz target.
        for name in ["hȥ", "ȥ", "0ȥ", "a.0xȥ", "é.example.com"] {
            assert!(!is_dns_name(name), "{name}");
            assert!(Target::parse_authority(Scheme::Https, name).is_err(), "{name}");
        }
        assert!(super::super::HostPattern::parse("*.hȥ").is_err());
    }

    #[test]
    fn refuses_odd_authorities() {
        for uri in [
            "http://user@example.com/",
            "http://user:pw@example.com/",
            "http://example.com:0/",
            "http://example.com:99999/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://exa_mple.com/",
            "http://-x.com/",
            "ftp://example.com/",
            "http://[::1]x/",
        ] {
            assert!(t(uri).is_err(), "{uri} should be refused: {:?}", t(uri));
        }
    }
}
