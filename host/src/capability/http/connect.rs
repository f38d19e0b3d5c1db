//! The connector: one request to one address the policy already checked.
//!
//! Unlike `wasmtime_wasi_http::default_send_request`, nothing here resolves a name: the TCP
//! connection goes to a [`SocketAddr`] the caller checked, so a DNS answer that changes between
//! the check and the connection (rebinding) changes nothing. The TLS handshake runs under the
//! same connect deadline as the TCP connect, so a server that accepts and then stalls is a
//! connect timeout, not a run timeout.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::Error;

use super::target::{Host, Scheme, Target};

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Timeouts of one request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake plus HTTP handshake, over every address tried.
    pub connect: Duration,
    /// Until the response head.
    pub first_byte: Duration,
    /// Between body frames.
    pub between_bytes: Duration,
}

static TLS: LazyLock<tokio_rustls::TlsConnector> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
});

/// The response and the future that drives the connection until the body is read.
pub type Sent = (
    http::Response<Incoming>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// Connect to the first of `addrs` that answers (all checked by the caller), then send.
pub async fn send<B>(
    target: &Target,
    addrs: &[SocketAddr],
    mut request: http::Request<B>,
    timeouts: Timeouts,
) -> Result<Sent, Error>
where
    B: http_body::Body<Data = bytes::Bytes, Error = Error> + Send + 'static,
{
    let deadline = Instant::now() + timeouts.connect;
    let stream = tokio::time::timeout_at(deadline.into(), connect(target, addrs))
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let (mut sender, conn) = tokio::time::timeout_at(
        deadline.into(),
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(Error::from)?;
    // Origin-form on the wire: the scheme and authority went into the connection, not the line.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let mut conn = Some(Box::pin(conn));
    let send = tokio::time::timeout(timeouts.first_byte, sender.send_request(request));
    tokio::pin!(send);
    // Drive the connection while waiting for the head; if it ends first, the head is either
    // there already or never coming.
    let response = tokio::select! {
        r = &mut send => r,
        r = async { conn.as_mut().expect("not yet finished").await } => {
            conn = None;
            r.map_err(Error::from)?;
            send.await
        }
    };
    let response = response
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let mut timeout = tokio::time::interval(timeouts.between_bytes.max(Duration::from_millis(1)));
    timeout.reset();
    let response = response.map(|incoming| Incoming { incoming, timeout });
    let io = async move {
        let Some(conn) = conn else { return Ok(()) };
        match conn.await {
            Ok(()) => Ok(()),
            Err(e) if e.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(e) => Err(Error::from(e)),
        }
    };
    Ok((response, Box::new(io)))
}

/// A response body with the between-bytes timeout.
pub struct Incoming {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for Incoming {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) if e.is_timeout() => Poll::Ready(Some(Err(Error::HttpResponseTimeout))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                std::task::ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

async fn connect(target: &Target, addrs: &[SocketAddr]) -> Result<Box<dyn Stream>, Error> {
    let mut last = Error::DestinationNotFound;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return match target.scheme {
                    Scheme::Http => Ok(Box::new(tcp)),
                    Scheme::Https => {
                        let name = match &target.host {
                            Host::Ip(ip) => rustls::pki_types::ServerName::from(*ip),
                            Host::Name(n) => rustls::pki_types::ServerName::try_from(n.clone())
                                .map_err(|_| Error::HttpRequestUriInvalid)?,
                        };
                        let tls = TLS.connect(name, tcp).await.map_err(Error::Tls)?;
                        Ok(Box::new(tls))
                    }
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => last = Error::ConnectionRefused,
            Err(e) => last = Error::Connect(e),
        }
    }
    Err(last)
}
