//! Outbound HTTP through standard `wasi:http`, to the hosts in the manifest's
//! `capabilities.http` allow-list only. The host checks every request (scheme, host, port,
//! resolved address) and records denials in the run's result; the recipe sees an error.
//!
//! ```no_run
//! # use recipe_sdk::http;
//! let resp = http::Request::get("https://status.example.com/health").timeout_ms(2_000).send()?;
//! assert!(resp.is_success());
//! # Ok::<(), http::HttpError>(())
//! ```

use crate::wire::err;
pub use crate::wire::{HttpError, Request, Response};

impl Request {
    /// Send the request and read the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        let url = Url::parse(&self.url)?;
        #[cfg(target_arch = "wasm32")]
        return wasi_send(&self, &url);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = url;
            crate::testing::mock(|m| m.http_send(&self))
        }
    }
}

/// A GET to `url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::get(url).send()
}

/// The parts of an absolute URL that `wasi:http` wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// `/path?query`.
    pub path_with_query: String,
}

impl Url {
    /// Parse an absolute `http(s)://` URL.
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| err(format!("`{url}` is not an absolute URL")))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(err(format!("`{url}`: only http and https are supported")));
        }
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(err(format!(
                "`{url}`: missing host, or credentials in the URL (use basic_auth)"
            )));
        }
        let path = path.split('#').next().unwrap_or("");
        let path_with_query = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Ok(Url {
            scheme,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

#[cfg(target_arch = "wasm32")]
fn wasi_send(req: &Request, url: &Url) -> Result<Response, HttpError> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{
        ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };
    use wasi::io::streams::StreamError;

    let entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&entries).map_err(|e| err(format!("bad header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match req.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    let bad = |what: &str| err(format!("invalid {what} in `{}`", req.url));
    outgoing.set_method(&method).map_err(|_| bad("method"))?;
    let scheme = if url.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    outgoing
        .set_authority(Some(&url.authority))
        .map_err(|_| bad("authority"))?;
    outgoing
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|_| bad("path"))?;
    let body = outgoing.body().map_err(|_| err("request body already taken"))?;
    if !req.body.is_empty() {
        let stream = body.write().map_err(|_| err("request body stream unavailable"))?;
        for chunk in req.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| err(format!("writing body: {e:?}")))?;
        }
        drop(stream);
    }
    let options = RequestOptions::new();
    let timeout = wasi::clocks::monotonic_clock::Duration::from(req.timeout_ms.saturating_mul(1_000_000));
    let _ = options.set_connect_timeout(Some(timeout));
    let _ = options.set_first_byte_timeout(Some(timeout));
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|e: ErrorCode| err(describe(&e)))?;
    OutgoingBody::finish(body, None).map_err(|e| err(describe(&e)))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(err(describe(&e))),
        Some(Err(())) | None => return Err(err("response already taken")),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response.consume().map_err(|_| err("response body already taken"))?;
    let stream = incoming.stream().map_err(|_| err("response body stream unavailable"))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(err(format!("reading response: {}", e.to_debug_string())));
            }
        }
    }
    drop(stream);
    let _ = IncomingBody::finish(incoming);
    Ok(Response { status, headers, body })
}

#[cfg(target_arch = "wasm32")]
fn describe(e: &wasi::http::types::ErrorCode) -> String {
    use wasi::http::types::ErrorCode as E;
    match e {
        E::HttpRequestDenied => {
            "request denied by the host: the destination is not in this recipe's http allow-list".into()
        }
        E::ConnectionRefused => "connection refused".into(),
        E::ConnectionTimeout => "connection timed out".into(),
        E::DestinationIpProhibited => "destination address prohibited by the host (private or metadata address)".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("https://example.com:8443/a/b?x=1#frag").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.authority.as_str(), u.path_with_query.as_str()),
            ("https", "example.com:8443", "/a/b?x=1")
        );
        assert_eq!(Url::parse("http://h").unwrap().path_with_query, "/");
        assert!(Url::parse("ftp://h/").is_err());
        assert!(Url::parse("http://user:pw@h/").is_err());
        assert!(Url::parse("h/x").is_err());
    }

    #[test]
    fn encodes_basic_auth() {
        assert_eq!(crate::wire::base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(crate::wire::base64(b"a"), "YQ==");
        assert_eq!(crate::wire::base64(b"ab"), "YWI=");
    }
}
