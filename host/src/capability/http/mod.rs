//! HTTP egress: standard `wasi:http` with the host enforcing the manifest's allow-list.
//!
//! Every request, in `send_request`, before anything leaves the host:
//! 1. the URI's scheme and authority are parsed once, strictly, into a [`Target`] (http or
//!    https; no userinfo; a real port; a DNS name or an IP literal) — the grant check and the
//!    connector both use this one value;
//! 2. the target matches a grant ([`HostPattern`]): `host` (ports 80/443), `host:port`,
//!    `*.domain[:port]` (subdomains only), or an IP literal;
//! 3. the name is resolved **once**, and unless the grant names the host exactly (an exact
//!    hostname or IP literal, never a wildcard) every address must be public unicast
//!    ([`addresses::restriction`]: the IANA special-purpose registries, multicast, and IPv4
//!    carried inside IPv6);
//! 4. the connection goes to one of exactly those addresses ([`connect`]): no second lookup, so
//!    DNS rebinding has nothing to rebind; TCP, TLS and the HTTP handshake run under one connect
//!    deadline;
//! 5. per run, at most [`EgressLimits::max_open`] connections are open at once and
//!    [`EgressLimits::max_connections`] are made in all; request bodies are capped at
//!    `max_request_bytes` and responses at `max_response_bytes`.
//!
//! A refusal is recorded in the run's denials (the run ends `denied`, or `limit-exceeded` for
//! the connection caps); the recipe sees `HTTP-request-denied`, `HTTP-request-URI-invalid`,
//! `destination-IP-prohibited` or `connection-limit-reached`.

pub mod addresses;
mod connect;
mod grant;
mod target;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error as E, WasiBody, WasiHttpHooks};

pub use self::grant::HostPattern;
pub use self::target::{Host, Scheme, Target};
use super::{Denials, LimitHit};

/// The per-run egress limits.
#[derive(Debug, Clone, Copy)]
pub struct EgressLimits {
    /// Response body bytes per response.
    pub max_response_bytes: usize,
    /// Request body bytes per request.
    pub max_request_bytes: usize,
    /// Connections open at the same time.
    pub max_open: usize,
    /// Connections made over the whole run.
    pub max_connections: u32,
    /// DNS + TCP + TLS + HTTP handshake, per request.
    pub connect_timeout: Duration,
}

impl Default for EgressLimits {
    fn default() -> Self {
        EgressLimits {
            max_response_bytes: 1 << 20,
            max_request_bytes: 1 << 20,
            max_open: 8,
            max_connections: 256,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The egress policy of one run: its grants, its limits, and where refusals go.
#[derive(Clone)]
pub struct EgressPolicy {
    grants: Arc<Vec<HostPattern>>,
    limits: EgressLimits,
    open: Arc<Semaphore>,
    made: Arc<AtomicU32>,
    denials: Denials,
    limit: LimitHit,
    /// A preview (dry run): only requests that change nothing (GET, HEAD, OPTIONS) go out.
    read_only: bool,
}

impl EgressPolicy {
    /// A policy for these grants (already validated by the manifest; invalid ones are dropped).
    pub fn new(grants: &[String], limits: EgressLimits, denials: Denials, limit: LimitHit) -> Self {
        let grants = grants.iter().filter_map(|g| HostPattern::parse(g).ok()).collect();
        EgressPolicy {
            grants: Arc::new(grants),
            open: Arc::new(Semaphore::new(limits.max_open)),
            made: Arc::new(AtomicU32::new(0)),
            limits,
            denials,
            limit,
            read_only: false,
        }
    }

    /// For a preview: requests other than GET, HEAD and OPTIONS are refused (a dry run of an
    /// action must not open the ticket or page the human it would).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// In a preview, a request that may change something is refused (and the denial recorded).
    fn refuses_in_preview(&self, method: &http::Method, target: &Target) -> bool {
        let safe = matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS);
        if self.read_only && !safe {
            self.denials.record(format!(
                "http: {method} {target}: a preview (dry run) sends only GET, HEAD and OPTIONS; the actor must report what it would send instead"
            ));
        }
        self.read_only && !safe
    }

    /// The grant that allows `target`, if any.
    pub fn grant_for(&self, target: &Target) -> Option<&HostPattern> {
        self.grants.iter().find(|g| g.matches(target))
    }
}

/// Resolve `target` once and check every address; the addresses to connect to, or why not.
async fn resolve(target: &Target, exact: bool, timeout: Duration) -> Result<Vec<SocketAddr>, (E, String)> {
    let addrs: Vec<SocketAddr> = match &target.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
        Host::Name(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), target.port));
            match tokio::time::timeout(timeout, lookup).await {
                Err(_) => return Err((E::DnsTimeout, format!("resolving {name} took longer than {timeout:?}"))),
                Ok(Err(e)) => return Err((E::DestinationNotFound, format!("cannot resolve {name}: {e}"))),
                Ok(Ok(a)) => a.collect(),
            }
        }
    };
    if addrs.is_empty() {
        return Err((E::DestinationNotFound, format!("{target} resolves to no address")));
    }
    if !exact {
        for a in &addrs {
            if let Some(block) = addresses::restriction(a.ip()) {
                return Err((
                    E::DestinationIpProhibited,
                    format!(
                        "{target} resolves to {}, in {block}: a wildcard grant reaches public addresses only",
                        a.ip()
                    ),
                ));
            }
        }
    }
    Ok(addrs)
}

/// `body` cut off with `over` past `max` bytes (its own errors pass through).
fn capped<B>(body: B, max: usize, over: impl Fn() -> E + Send + 'static) -> WasiBody
where
    B: http_body::Body<Data = bytes::Bytes, Error = E> + Send + 'static,
{
    http_body_util::Limited::new(body, max)
        .map_err(move |e| match e.downcast::<E>() {
            Ok(inner) => *inner,
            Err(_) => over(),
        })
        .boxed_unsync()
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
        drop(fut);
        let policy = self.clone();
        Box::new(async move {
            let method = request.method().clone();
            let uri = request.uri().to_string();
            let denials = &policy.denials;
            let target = match Target::of(request.uri()) {
                Ok(t) => t,
                Err(why) => {
                    denials.record(format!("http: {method} {uri}: {why}"));
                    return Err(E::HttpRequestUriInvalid);
                }
            };
            let Some(grant) = policy.grant_for(&target).cloned() else {
                denials.record(format!("http: {method} {uri} is not in capabilities.http"));
                return Err(E::HttpRequestDenied);
            };
            if policy.refuses_in_preview(&method, &target) {
                return Err(E::HttpRequestDenied);
            }
            let limits = policy.limits;
            // Past a connection cap: the run's limit is hit, the request refused.
            let over = |limit: String, why: String| {
                policy.limit.set(format!("connection limit: {limit}"));
                denials.record(format!("http: {method} {target}: {why} (the limit per run)"));
                Err(E::ConnectionLimitReached)
            };
            let Ok(permit) = policy.open.clone().try_acquire_owned() else {
                return over(
                    format!("more than {} HTTP connections open at once", limits.max_open),
                    format!("{} connections already open", limits.max_open),
                );
            };
            if policy.made.fetch_add(1, Ordering::Relaxed) >= limits.max_connections {
                return over(
                    format!("more than {} HTTP connections in one run", limits.max_connections),
                    format!("{} connections made already", limits.max_connections),
                );
            }
            let options = options.unwrap_or_default();
            let cap = |t: Option<Duration>| t.map_or(limits.connect_timeout, |t| t.min(limits.connect_timeout));
            let timeouts = connect::Timeouts {
                connect: cap(options.connect_timeout),
                first_byte: options.first_byte_timeout.unwrap_or(Duration::from_secs(600)),
                between_bytes: options.between_bytes_timeout.unwrap_or(Duration::from_secs(600)),
            };
            let addrs = match resolve(&target, grant.names_exactly(), timeouts.connect).await {
                Ok(a) => a,
                Err((code, why)) => {
                    if matches!(code, E::DestinationIpProhibited) {
                        denials.record(format!("http: {why}"));
                    }
                    return Err(code);
                }
            };
            let max_request = limits.max_request_bytes;
            let request = request.map(|body| {
                capped(body, max_request, move || {
                    E::HttpRequestBodySize(Some(max_request as u64))
                })
            });
            let (response, io) = connect::send(&target, &addrs, request, timeouts).await?;
            let response =
                response.map(|body| capped(body, limits.max_response_bytes, || E::HttpResponseBodySize(None)));
            // The permit lives as long as the connection.
            let io = Box::into_pin(io);
            let io = async move {
                let r = io.await;
                drop(permit);
                r
            };
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send(policy: &mut EgressPolicy, method: &str) -> SendResult {
        let empty = http_body_util::Empty::<bytes::Bytes>::new().map_err(|never| match never {});
        let body = capped(empty, 0, || E::HttpRequestDenied);
        let req = http::Request::builder()
            .method(method)
            .uri("http://127.0.0.1:9/issue")
            .body(body)
            .unwrap();
        Box::into_pin(policy.send_request(req, None, Box::new(async { Ok(()) }))).await
    }

    #[tokio::test]
    async fn a_preview_sends_only_requests_that_change_nothing() {
        let denials = Denials::default();
        let grants = ["127.0.0.1:9".to_string()];
        let policy = |read_only| {
            EgressPolicy::new(&grants, EgressLimits::default(), denials.clone(), LimitHit::default())
                .read_only(read_only)
        };
        let mut preview = policy(true);
        for m in ["POST", "PUT", "PATCH", "DELETE"] {
            assert!(matches!(send(&mut preview, m).await, Err(E::HttpRequestDenied)), "{m}");
        }
        let kept = denials.list();
        assert_eq!(kept.len(), 4, "{kept:?}");
        assert!(
            kept[0].contains("POST") && kept[0].contains("a preview (dry run) sends only GET"),
            "{kept:?}"
        );
        // A GET goes out (here: to a closed port, so it fails connecting, not by policy); so does
        // a POST from a run that is not a preview.
        assert!(!matches!(send(&mut preview, "GET").await, Err(E::HttpRequestDenied)));
        assert!(!matches!(
            send(&mut policy(false), "POST").await,
            Err(E::HttpRequestDenied)
        ));
        assert_eq!(denials.list().len(), 4);
    }
}
