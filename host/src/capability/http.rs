//! HTTP egress: standard `wasi:http` with the host enforcing the manifest's allow-list.
//!
//! Checked for every request, in `send_request` before anything leaves the host:
//! 1. the scheme is http or https;
//! 2. `host:port` matches a grant — `host` (ports 80/443), `host:port`, `*.domain[:port]`
//!    (subdomains only), or an IP literal;
//! 3. after DNS resolution, no address is loopback, private, link-local (this includes the cloud
//!    metadata address 169.254.169.254), unspecified or otherwise non-global, unless the grant
//!    names that host exactly (an exact hostname or IP literal, never a wildcard);
//! 4. the response body is capped.
//!
//! A refusal is recorded in the run's denials (the run ends `denied`); the recipe sees
//! `HTTP-request-denied` or `destination-IP-prohibited`.
//!
//! Known gap: the address is checked, then the default sender resolves the name again to connect,
//! so a DNS answer that changes in between (rebinding) is not caught for hostname grants.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

use super::Denials;

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// Parse `host`, `host:port`, `*.domain`, `*.domain:port`, `1.2.3.4:80`, `[::1]:8080`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        let bad = |why: &str| format!("`{text}`: {why}");
        if t.contains("://") || t.contains('/') {
            return Err(bad("write a host or host:port, not a URL"));
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().map_err(|_| bad("bad port"))?),
                None if after.is_empty() => None,
                None => return Err(bad("junk after ]")),
            };
            (h.to_string(), port)
        } else if t.matches(':').count() == 1 {
            let (h, p) = t.split_once(':').unwrap_or_default();
            (h.to_string(), Some(p.parse().map_err(|_| bad("bad port"))?))
        } else {
            (t.clone(), None)
        };
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(h) => (true, h.to_string()),
            None => (false, host),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad("a wildcard is only allowed as a leading `*.`"));
        }
        if host.parse::<IpAddr>().is_err() && !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(bad("not a host name"));
        }
        Ok(HostPattern { host, wildcard, port })
    }

    /// Does `host:port` match? Without a port in the pattern, 80 and 443 match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        };
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1 && host.ends_with(&format!(".{}", self.host))
        } else {
            host == self.host
        };
        port_ok && host_ok
    }

    /// May this grant reach non-global addresses? Only an exact name or IP literal may.
    pub fn names_exactly(&self) -> bool {
        !self.wildcard
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Addresses a recipe reaches only when the grant names them exactly.
pub fn is_restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // CGNAT 100.64/10
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_restricted(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.segments()[0] == 0xfd00 // fd00:ec2::254, AWS IMDS over IPv6
        }
    }
}

/// The egress policy of one run: its grants, the response cap, and where denials go.
#[derive(Clone)]
pub struct EgressPolicy {
    grants: Arc<Vec<HostPattern>>,
    max_response_bytes: usize,
    connect_timeout: Duration,
    denials: Denials,
}

impl EgressPolicy {
    /// A policy for these grants (already validated by the manifest).
    pub fn new(grants: &[String], max_response_bytes: usize, connect_timeout: Duration, denials: Denials) -> Self {
        let grants = grants.iter().filter_map(|g| HostPattern::parse(g).ok()).collect();
        EgressPolicy {
            grants: Arc::new(grants),
            max_response_bytes,
            connect_timeout,
            denials,
        }
    }

    /// The grant that allows `host:port`, if any.
    pub fn grant_for(&self, host: &str, port: u16) -> Option<&HostPattern> {
        self.grants.iter().find(|g| g.matches(host, port))
    }
}

/// Check resolved addresses; `Err` names the first restricted one.
async fn check_resolved(host: &str, port: u16, exact: bool) -> Result<(), String> {
    if exact {
        return Ok(());
    }
    let addrs = tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    for a in addrs {
        if is_restricted(a.ip()) {
            return Err(format!(
                "{host}:{port} resolves to {}, a non-public address that a wildcard grant may not reach",
                a.ip()
            ));
        }
    }
    Ok(())
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for EgressPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        use wasmtime_wasi_http::Error as E;
        drop(fut);
        let uri = request.uri().clone();
        let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
        let host = uri.host().unwrap_or("").to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let grant = if scheme_ok {
            self.grant_for(&host, port).cloned()
        } else {
            None
        };
        let denials = self.denials.clone();
        let cap = self.max_response_bytes;
        let mut options = options.unwrap_or_default();
        options.connect_timeout = Some(
            options
                .connect_timeout
                .map_or(self.connect_timeout, |t| t.min(self.connect_timeout)),
        );
        Box::new(async move {
            let Some(grant) = grant else {
                denials.record(format!("http: {} {uri} is not in capabilities.http", request.method()));
                return Err(E::HttpRequestDenied);
            };
            if let Err(why) = check_resolved(&host, port, grant.names_exactly()).await {
                denials.record(format!("http: {why}"));
                return Err(E::DestinationIpProhibited);
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let response = response.map(|body| {
                http_body_util::Limited::new(body, cap)
                    .map_err(|e| match e.downcast::<E>() {
                        Ok(inner) => *inner,
                        Err(_) => E::HttpResponseBodySize(None),
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = |s: &str| HostPattern::parse(s).unwrap();
        assert!(p("jira.example.com").matches("jira.example.com", 443));
        assert!(p("jira.example.com").matches("JIRA.example.com", 80));
        assert!(!p("jira.example.com").matches("jira.example.com", 8080));
        assert!(p("*.svc.cluster.local:8080").matches("prom.monitoring.svc.cluster.local", 8080));
        assert!(!p("*.svc.cluster.local:8080").matches("svc.cluster.local", 8080));
        assert!(!p("*.example.com").matches("evilexample.com", 443));
        assert!(p("127.0.0.1:9000").matches("127.0.0.1", 9000));
        assert!(p("[::1]:9000").matches("[::1]", 9000));
        for bad in ["http://x", "a*.b", "x:y", "a b", "*."] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn restricted_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_restricted(a.parse().unwrap()), "{a}");
        }
        for a in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_restricted(a.parse().unwrap()), "{a}");
        }
    }
}
