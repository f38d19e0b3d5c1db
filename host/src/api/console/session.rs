//! Who is looking at a page, and whether a form really came from one of ours.
//!
//! Four ways in, tried in this order:
//! - a trusted proxy (an SSO front such as oauth2-proxy) names the person in a header, honoured
//!   only from the addresses `[console] trusted_proxies` lists;
//! - an API token as a bearer header (scripts, curl);
//! - a session cookie, issued by the sign-in form in exchange for an API token: `HttpOnly`,
//!   `SameSite=Strict`, signed with a key derived from the configured tokens (so it survives a
//!   restart and is accepted by every replica with the same tokens, and changing a token signs
//!   everyone out), naming the token's holder and expiring after `session_ttl_ms`;
//! - nobody, when no token is configured at all: read-only, as the API itself is then.
//!
//! Every form carries a CSRF token: for a session, an HMAC of the session cookie; for a proxy
//! identity, an HMAC of the identity; for the sign-in form (no session yet), a random value also
//! set as a cookie (double submit). A POST whose `Origin` names another host is refused too.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::settings::ConsoleConfig;
use crate::access::Role;
use crate::api::Auth;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "euphrosyne_session";
/// The sign-in form's double-submit cookie.
pub const SIGN_IN_COOKIE: &str = "euphrosyne_sign_in";

/// How a person was recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Nobody signed in; no tokens are configured, so reading is open.
    Anonymous,
    /// An API token in the `Authorization` header (not ambient: no CSRF token needed).
    Token,
    /// The session cookie; forms carry this CSRF token.
    Session(String),
    /// A trusted proxy's identity header; forms carry this CSRF token.
    Proxy(String),
}

/// Someone looking at the console.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's holder, or the person the proxy named.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// How they were recognised.
    pub via: Via,
}

impl Identity {
    /// May they approve or reject suggested actions?
    pub fn may_approve(&self) -> bool {
        self.role >= Role::Approver && self.via != Via::Anonymous
    }

    /// The CSRF token their forms carry (empty when none is needed).
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session(t) | Via::Proxy(t) => t,
            Via::Anonymous | Via::Token => "",
        }
    }

    /// The credential the action record names (`token` of an approval).
    pub fn credential(&self) -> String {
        match self.via {
            Via::Proxy(_) => "trusted-proxy".into(),
            _ => self.name.clone(),
        }
    }
}

/// Issues and checks sessions and CSRF tokens.
pub struct Sessions {
    key: [u8; 32],
    ttl: Duration,
    secure: bool,
    proxies: Vec<IpAddr>,
    identity_header: http::HeaderName,
    proxy_roles: std::collections::BTreeMap<String, Role>,
    proxy_default_role: Option<Role>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Approver => "approver",
        Role::Operator => "operator",
    }
}

fn role_of(name: &str) -> Option<Role> {
    match name {
        "viewer" => Some(Role::Viewer),
        "approver" => Some(Role::Approver),
        "operator" => Some(Role::Operator),
        _ => None,
    }
}

impl Sessions {
    /// Sessions signed with `auth`'s session key, as `cfg` says.
    pub fn new(auth: &Auth, cfg: &ConsoleConfig) -> Self {
        Sessions {
            key: auth.session_key(),
            ttl: Duration::from_millis(cfg.session_ttl_ms),
            secure: cfg.secure_cookies,
            proxies: cfg.trusted_proxies.clone(),
            identity_header: http::HeaderName::from_bytes(cfg.identity_header.as_bytes())
                .unwrap_or(http::HeaderName::from_static("x-forwarded-email")),
            proxy_roles: cfg.proxy_roles.clone(),
            proxy_default_role: cfg.proxy_default_role,
        }
    }

    fn mac(&self, domain: &str, data: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(domain.as_bytes());
        m.update(b"\0");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    fn attributes(&self, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// The `Set-Cookie` value that signs `name` in with `role`.
    pub fn issue(&self, name: &str, role: Role) -> String {
        let expires = now_unix() + self.ttl.as_secs();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let body = format!("{}.{}.{expires}.{nonce}", B64.encode(name), role_name(role));
        let sig = B64.encode(self.mac("session", body.as_bytes()));
        format!("{SESSION_COOKIE}={body}.{sig}{}", self.attributes(self.ttl.as_secs()))
    }

    /// The `Set-Cookie` value that signs out.
    pub fn clear(&self) -> String {
        format!("{SESSION_COOKIE}={}", self.attributes(0))
    }

    /// A sign-in form's double-submit value and the `Set-Cookie` that goes with it.
    pub fn sign_in_token(&self) -> (String, String) {
        let value = uuid::Uuid::new_v4().simple().to_string();
        let cookie = format!("{SIGN_IN_COOKIE}={value}{}", self.attributes(3600));
        (value, cookie)
    }

    /// Did the sign-in form come back with the value its cookie holds?
    pub fn sign_in_ok(&self, headers: &HeaderMap, presented: &str) -> bool {
        cookie(headers, SIGN_IN_COOKIE)
            .is_some_and(|c| !c.is_empty() && crate::access::same(c.as_bytes(), presented.as_bytes()))
    }

    /// The holder and role a session cookie names, if it is ours, unexpired, and its token is
    /// still configured (with, at most, the role the token has now).
    fn session(&self, value: &str, auth: &Auth) -> Option<(String, Role)> {
        let (body, sig) = value.rsplit_once('.')?;
        let sig = B64.decode(sig).ok()?;
        if !crate::access::same(&sig, &self.mac("session", body.as_bytes())) {
            return None;
        }
        let mut parts = body.split('.');
        let name = String::from_utf8(B64.decode(parts.next()?).ok()?).ok()?;
        let role = role_of(parts.next()?)?;
        let expires: u64 = parts.next()?.parse().ok()?;
        if expires <= now_unix() {
            return None;
        }
        let token = auth.by_name(&name)?;
        Some((name, role.min(token.role)))
    }

    /// Who sent this request (see the module's docs for the order); `None`: nobody, and
    /// tokens are configured, so they must sign in.
    pub fn identify(&self, auth: &Auth, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<Identity> {
        if let Some(peer) = peer.filter(|p| self.proxies.contains(p))
            && let Some(name) = headers.get(&self.identity_header).and_then(|v| v.to_str().ok())
        {
            let name = name.trim();
            let role = self.proxy_roles.get(name).copied().or(self.proxy_default_role);
            return match role {
                Some(role) if !name.is_empty() => Some(Identity {
                    name: name.to_string(),
                    role,
                    via: Via::Proxy(B64.encode(self.mac("proxy-csrf", name.as_bytes()))),
                }),
                _ => {
                    tracing::info!(%peer, "trusted proxy named someone with no console role");
                    None
                }
            };
        }
        if let Some(t) = auth.token(headers) {
            return Some(Identity {
                name: t.name.clone(),
                role: t.role,
                via: Via::Token,
            });
        }
        if let Some(value) = cookie(headers, SESSION_COOKIE)
            && let Some((name, role)) = self.session(value, auth)
        {
            let csrf = B64.encode(self.mac("csrf", value.as_bytes()));
            return Some(Identity {
                name,
                role,
                via: Via::Session(csrf),
            });
        }
        if !auth.has_tokens() {
            return Some(Identity {
                name: "anonymous".into(),
                role: Role::Viewer,
                via: Via::Anonymous,
            });
        }
        None
    }

    /// Is `presented` the CSRF token `who`'s forms carry?
    pub fn csrf_ok(&self, who: &Identity, presented: &str) -> bool {
        match &who.via {
            Via::Token => true,
            Via::Anonymous => false,
            Via::Session(t) | Via::Proxy(t) => crate::access::same(t.as_bytes(), presented.as_bytes()),
        }
    }
}

/// Does the request's `Origin` (when a browser sent one) name this host?
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    // A request a follower replica forwarded: the host the browser addressed is the follower's.
    let forwarded = headers
        .contains_key(crate::api::forward::FORWARDED_BY)
        .then(|| headers.get(crate::api::forward::FORWARDED_HOST))
        .flatten();
    let Some(host) = forwarded
        .or_else(|| headers.get(http::header::HOST))
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> (Sessions, Auth) {
        let auth = Auth::for_tests(&[("alice", Role::Operator, "s3cret"), ("bob", Role::Viewer, "other")]);
        (Sessions::new(&auth, &ConsoleConfig::default()), auth)
    }

    fn with_cookie(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, format!("other=1; {pair}").parse().unwrap());
        h
    }

    #[test]
    fn a_session_names_its_holder_and_carries_a_csrf_token() {
        let (s, auth) = sessions();
        let set = s.issue("alice", Role::Operator);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
        let who = s.identify(&auth, &with_cookie(&set), None).expect("signed in");
        assert_eq!((who.name.as_str(), who.role), ("alice", Role::Operator));
        assert!(!who.csrf().is_empty());
        assert!(s.csrf_ok(&who, who.csrf()));
        assert!(!s.csrf_ok(&who, ""));
        assert!(!s.csrf_ok(&who, "forged"));
    }

    #[test]
    fn a_tampered_or_foreign_cookie_is_nobody() {
        let (s, auth) = sessions();
        let set = s.issue("bob", Role::Viewer);
        // Claim operator with bob's signature.
        let forged = set.replacen(".viewer.", ".operator.", 1);
        assert!(s.identify(&auth, &with_cookie(&forged), None).is_none());
        // Signed by a host with other tokens.
        let other = Auth::for_tests(&[("alice", Role::Operator, "different")]);
        let theirs = Sessions::new(&other, &ConsoleConfig::default()).issue("alice", Role::Operator);
        assert!(s.identify(&auth, &with_cookie(&theirs), None).is_none());
        // A holder whose token is gone.
        let gone = s.issue("carol", Role::Operator);
        assert!(s.identify(&auth, &with_cookie(&gone), None).is_none());
        // A session never has more than the token's role now.
        let inflated = s.issue("bob", Role::Operator);
        assert_eq!(
            s.identify(&auth, &with_cookie(&inflated), None).unwrap().role,
            Role::Viewer
        );
    }

    #[test]
    fn the_proxy_header_counts_only_from_a_trusted_address() {
        let auth = Auth::for_tests(&[("alice", Role::Operator, "s3cret")]);
        let cfg = ConsoleConfig {
            trusted_proxies: vec!["10.0.0.7".parse().unwrap()],
            proxy_roles: [("oncall@example.com".to_string(), Role::Approver)].into(),
            ..ConsoleConfig::default()
        };
        let s = Sessions::new(&auth, &cfg);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-email", "oncall@example.com".parse().unwrap());
        let who = s.identify(&auth, &h, Some("10.0.0.7".parse().unwrap())).unwrap();
        assert_eq!((who.name.as_str(), who.role), ("oncall@example.com", Role::Approver));
        assert!(s.identify(&auth, &h, Some("10.0.0.8".parse().unwrap())).is_none());
        // Not listed, and no default role: refused.
        h.insert("x-forwarded-email", "stranger@example.com".parse().unwrap());
        assert!(s.identify(&auth, &h, Some("10.0.0.7".parse().unwrap())).is_none());
    }

    #[test]
    fn origin_must_be_this_host() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(http::header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(http::header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
