//! One `capabilities.http` entry and how it matches a [`Target`].

use std::fmt;
use std::net::IpAddr;

use super::target::{Host, Target, is_dns_name};

/// One allow-list entry: `host`, `host:port`, `*.domain[:port]`, an IPv4 literal or a bracketed
/// IPv6 literal, with an optional port. Without a port, 80 and 443 match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: PatternHost,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternHost {
    Ip(IpAddr),
    Name(String),
    /// `*.domain`: strict subdomains of the domain.
    Wildcard(String),
}

impl HostPattern {
    /// Parse `host`, `host:port`, `*.domain`, `*.domain:port`, `1.2.3.4:80`, `[::1]:8080`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        let bad = |why: &str| format!("`{text}`: {why}");
        if t.contains("://") || t.contains('/') {
            return Err(bad("write a host or host:port, not a URL"));
        }
        let port_of = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad("bad port")),
            Ok(p) => Ok(p),
        };
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(port_of(p)?),
                None if after.is_empty() => None,
                None => return Err(bad("junk after ]")),
            };
            let ip: std::net::Ipv6Addr = h.parse().map_err(|_| bad("not an IPv6 address"))?;
            (PatternHost::Ip(IpAddr::V6(ip)), port)
        } else {
            let (h, port) = match t.split_once(':') {
                Some((h, p)) => (h, Some(port_of(p)?)),
                None => (t.as_str(), None),
            };
            let host = if let Ok(ip) = h.parse::<std::net::Ipv4Addr>() {
                PatternHost::Ip(IpAddr::V4(ip))
            } else if let Some(domain) = h.strip_prefix("*.") {
                if !is_dns_name(domain) {
                    return Err(bad("a wildcard is only allowed as a leading `*.` before a domain"));
                }
                PatternHost::Wildcard(domain.trim_end_matches('.').to_string())
            } else if is_dns_name(h) {
                PatternHost::Name(h.trim_end_matches('.').to_string())
            } else {
                return Err(bad("not a host name or an IP address"));
            };
            (host, port)
        };
        Ok(HostPattern { host, port })
    }

    /// Does the target match? IP literals compare as addresses (`[::ffff:a.b.c.d]` is not
    /// `a.b.c.d`); names compare lower-cased; a name never matches an IP literal or the reverse.
    pub fn matches(&self, target: &Target) -> bool {
        let port_ok = match self.port {
            Some(p) => p == target.port,
            None => target.port == 80 || target.port == 443,
        };
        let host_ok = match (&self.host, &target.host) {
            (PatternHost::Ip(p), Host::Ip(t)) => p == t,
            (PatternHost::Name(p), Host::Name(t)) => p == t,
            (PatternHost::Wildcard(d), Host::Name(t)) => {
                t.len() > d.len() + 1 && t.ends_with(d.as_str()) && t.as_bytes()[t.len() - d.len() - 1] == b'.'
            }
            _ => false,
        };
        port_ok && host_ok
    }

    /// May this grant reach non-public addresses? Only an exact name or IP literal may.
    pub fn names_exactly(&self) -> bool {
        !matches!(self.host, PatternHost::Wildcard(_))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            PatternHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            PatternHost::Ip(ip) => write!(f, "{ip}")?,
            PatternHost::Name(n) => f.write_str(n)?,
            PatternHost::Wildcard(d) => write!(f, "*.{d}")?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::target::Scheme;
    use super::*;

    fn target(a: &str) -> Target {
        Target::parse_authority(Scheme::Http, a).unwrap()
    }

    #[test]
    fn patterns() {
        let p = |s: &str| HostPattern::parse(s).unwrap();
        assert!(p("jira.example.com").matches(&target("jira.example.com:443")));
        assert!(p("jira.example.com").matches(&target("JIRA.example.com")));
        assert!(!p("jira.example.com").matches(&target("jira.example.com:8080")));
        assert!(p("*.svc.cluster.local:8080").matches(&target("prom.monitoring.svc.cluster.local:8080")));
        assert!(!p("*.svc.cluster.local:8080").matches(&target("svc.cluster.local:8080")));
        assert!(!p("*.example.com").matches(&target("evilexample.com")));
        assert!(p("127.0.0.1:9000").matches(&target("127.0.0.1:9000")));
        assert!(p("[::1]:9000").matches(&target("[::1]:9000")));
        assert!(p("[0:0:0:0:0:0:0:1]:9000").matches(&target("[::1]:9000")));
        assert!(!p("127.0.0.1:9000").matches(&target("[::ffff:127.0.0.1]:9000")));
        for bad in ["http://x", "a*.b", "x:y", "a b", "*.", "x:0", "*.1.2", "[::1"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
