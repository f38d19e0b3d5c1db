//! The values that cross between a recipe and its host — or, in a native `cargo test`, the
//! [`crate::testing`] double: HTTP requests and responses, and the errors and log levels of each
//! interface. Re-exported by [`crate::http`], [`crate::kube`] and [`crate::log`], whose calls
//! send them; a leaf, so the double can use them without importing the interfaces that call it.

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

pub(crate) fn err(message: impl Into<String>) -> HttpError {
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

/// Why a Kubernetes call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeError {
    /// The verb is not granted to this recipe; the host recorded the denial.
    Denied(String),
    /// The object does not exist.
    NotFound(String),
    /// The API server refused or failed.
    Api(String),
    /// The request was malformed.
    Invalid(String),
    /// The object changed since the `resourceVersion` the write was pinned to (by the recipe,
    /// or by the host to the preview a person approved), or a PodDisruptionBudget refuses an
    /// eviction now. Nothing was written: report it, do not retry blindly.
    Conflict(String),
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeError::Denied(m) => write!(f, "kubernetes: denied: {m}"),
            KubeError::NotFound(m) => write!(f, "kubernetes: not found: {m}"),
            KubeError::Api(m) => write!(f, "kubernetes: API error: {m}"),
            KubeError::Invalid(m) => write!(f, "kubernetes: invalid request: {m}"),
            KubeError::Conflict(m) => write!(f, "kubernetes: conflict: {m}"),
        }
    }
}

impl std::error::Error for KubeError {}

impl From<KubeError> for RecipeError {
    fn from(e: KubeError) -> Self {
        RecipeError::new(e.to_string())
    }
}

/// Log levels, most to least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Diagnostic.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the recipe handled.
    Warn,
    /// Something the recipe could not handle.
    Error,
}

/// Standard base64 with padding (for basic auth).
pub(crate) fn base64(input: &[u8]) -> String {
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

/// How [`crate::kube::patch_with`] reads its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// JSON merge patch (RFC 7386): lists are replaced whole.
    Merge,
    /// Kubernetes strategic merge patch: containers, ports, volumes, env merge by name.
    Strategic,
    /// JSON patch (RFC 6902): a list of operations.
    Json,
    /// Server-side apply: the body is the fields this field manager owns.
    Apply,
}

/// Options of one write. `Default` is what the plain helpers send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Ask for `dryRun=All` (the host forces it for every write of a preview anyway).
    pub dry_run: bool,
    /// Write only if the object is still at this `resourceVersion`, else [`KubeError::Conflict`].
    pub resource_version: Option<String>,
    /// The field manager recorded in `managedFields` ([`crate::kube::apply`] needs one).
    pub field_manager: Option<String>,
}
