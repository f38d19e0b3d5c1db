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

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RecipeError;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// What went wrong. A host outside the allow-list shows as a refused connection here and as
    /// a denial in the run's result.
    pub message: String,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http: {}", self.message)
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for RecipeError {
    fn from(e: HttpError) -> Self {
        RecipeError::new(e.to_string())
    }
}

fn err(message: impl Into<String>) -> HttpError {
    HttpError {
        message: message.into(),
    }
}

/// An outgoing request. Build it, then [`send`](Request::send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whole-request timeout in milliseconds (connect and first byte).
    pub timeout_ms: u64,
}

impl Request {
    /// A request with `method` to `url`.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_uppercase(),
            url: url.into(),
            headers: vec![],
            body: vec![],
            timeout_ms: 10_000,
        }
    }
    /// A GET request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }
    /// A POST request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }
    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
    /// HTTP basic authentication.
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        let token = base64(format!("{user}:{password}").as_bytes());
        self.header("authorization", &format!("Basic {token}"))
    }
    /// A bearer token.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    /// A JSON body (sets `content-type`).
    pub fn json(mut self, value: &impl Serialize) -> Self {
        self.body = serde_json::to_vec(value).unwrap_or_default();
        self.header("content-type", "application/json")
    }
    /// A raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    /// Timeout for connecting and for the first byte of the response.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }
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

/// A response, read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status` and `body`, for tests.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![],
            body: body.into(),
        }
    }
    /// 2xx?
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| err(format!("response is not the expected JSON: {e}")))
    }
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
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

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
