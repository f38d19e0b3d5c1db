//! The console's settings (`[console]` in the host's configuration).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::access::Role;

/// `[console]`: the incident pages the host serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// A sign-in lasts this long, in milliseconds (default 8 hours).
    pub session_ttl_ms: u64,
    /// Mark the session cookie `Secure`: set it when people reach the host over HTTPS (a
    /// browser then never sends the cookie over plain HTTP).
    pub secure_cookies: bool,
    /// Incidents per list page.
    pub page_size: usize,
    /// Trusted-proxy sign-in: requests from these addresses (an SSO proxy such as oauth2-proxy)
    /// are signed in as the person `identity_header` names. From any other address the header
    /// is ignored. Empty (the default): no proxy is trusted. With several replicas, a follower
    /// forwards to the leader, which then sees the follower's address: point the proxy at the
    /// leader's address, or list the replicas' addresses too.
    pub trusted_proxies: Vec<IpAddr>,
    /// The header a trusted proxy names the person in.
    pub identity_header: String,
    /// A proxy-identified person's role, by identity (e-mail address)…
    pub proxy_roles: BTreeMap<String, Role>,
    /// …and everyone else's; unset (the default): people not listed are refused.
    pub proxy_default_role: Option<Role>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_ttl_ms: 8 * 3_600_000,
            secure_cookies: false,
            page_size: 50,
            trusted_proxies: vec![],
            identity_header: "x-forwarded-email".into(),
            proxy_roles: BTreeMap::new(),
            proxy_default_role: None,
        }
    }
}

impl ConsoleConfig {
    /// What can be checked before starting: `Err` says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.page_size == 0 || self.page_size > 1000 {
            return Err(format!("[console] page_size = {} must be 1 to 1000", self.page_size));
        }
        if self.session_ttl_ms < 60_000 {
            return Err(format!(
                "[console] session_ttl_ms = {} is under a minute; use at least 60000 (default 28800000, 8 h)",
                self.session_ttl_ms
            ));
        }
        if http::HeaderName::from_bytes(self.identity_header.as_bytes()).is_err() {
            return Err(format!(
                "[console] identity_header `{}` is not a valid header name",
                self.identity_header
            ));
        }
        Ok(())
    }
}
