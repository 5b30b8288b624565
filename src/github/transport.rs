//! The GitHub API client's HTTP stack, routed by the job's proxy settings.
//!
//! `OctocrabBuilder::build` makes its connector itself (hyper, rustls with
//! ring and the compiled-in Mozilla roots, connect and read timeouts) and
//! offers no way to send it through a proxy. So [`github_client`] assembles
//! the same stack from octocrab's public parts (`new_empty().with_service`
//! and its middleware layers: user agent, base URI, token), with one
//! connector of our own underneath, [`ProxyConnector`], that asks the proxy
//! rules where each connection goes:
//!
//! - directly to the destination (no proxy, or a `NO_PROXY` host);
//! - `https://`: through a CONNECT tunnel opened at the proxy, TLS to the
//!   destination on top of it, end to end (the proxy sees only the host);
//! - `http://`: to the proxy itself, with the request in absolute form
//!   (`GET http://host/path`) and the proxy's credentials, if any, in
//!   `Proxy-Authorization`.
//!
//! An `https://` proxy is reached over TLS (the same roots). Without a
//! proxy every connection is direct, exactly as octocrab's own stack makes
//! it; the one stack serves both so the GitHub tests cover it either way.
//!
//! Kept as in `OctocrabBuilder::build` with this crate's features: no retry
//! layer (`api.rs` retries reads itself), no redirect following, no cache,
//! HTTP/1 only, the `octocrab` user agent.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::header::{HeaderValue, PROXY_AUTHORIZATION, USER_AGENT};
use hyper::http::uri::Scheme;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::{Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use octocrab::service::middleware::auth_header::AuthHeaderLayer;
use octocrab::service::middleware::base_uri::BaseUriLayer;
use octocrab::service::middleware::extra_headers::ExtraHeadersLayer;
use octocrab::{AuthState, OctoBody, Octocrab, OctocrabBuilder};
use tokio::net::TcpStream;
use tower::{BoxError, Service, ServiceExt};

use crate::proxy::{ProxySettings, ProxyUrl};

/// Why the client could not be built: each is a setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The token cannot be sent as a header (a control character, a line
    /// break from a secret pasted with its newline in the middle).
    #[error("the token is not a valid HTTP header value")]
    Token,
    /// rustls refused its own configuration (no usable protocol version).
    #[error("the TLS configuration cannot be built: {0}")]
    Tls(#[from] rustls::Error),
    /// The proxy rules did not take a proxy the settings hold: going around
    /// it silently would defeat it.
    #[error("the proxy {0} cannot be used")]
    Proxy(String),
}

/// The bounds on one connection: octocrab's `set_connect_timeout` and
/// `set_read_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
}

/// An octocrab client for the API at `base_uri`, authenticated with
/// `token`, connecting as `proxy` says. Must run inside a Tokio runtime:
/// octocrab spawns its request buffer task while building.
pub fn github_client(
    base_uri: Uri,
    token: &str,
    timeouts: Timeouts,
    proxy: &ProxySettings,
) -> Result<Octocrab, TransportError> {
    let mut bearer =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| TransportError::Token)?;
    bearer.set_sensitive(true);
    let matcher = Arc::new(proxy_matcher(proxy)?);

    // octocrab's choice of crypto provider: an installed process default,
    // else ring (the one its `rustls-ring` feature links).
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut tcp = HttpConnector::new();
    // The TLS wrappers below decide by scheme; the TCP connector must accept
    // https:// destinations to connect them.
    tcp.enforce_http(false);
    let to_proxy = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::clone(&provider))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp.clone());
    let routed = ProxyConnector {
        direct: tcp,
        to_proxy,
        matcher: Arc::clone(&matcher),
    };
    let tls = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(routed);
    // Outermost, so the connect timeout covers the tunnel and both TLS
    // handshakes, as it covers the handshake in octocrab's own stack.
    let mut timed = TimeoutConnector::new(tls);
    timed.set_connect_timeout(Some(timeouts.connect));
    timed.set_read_timeout(Some(timeouts.read));
    let client = Client::builder(TokioExecutor::new())
        .build(timed)
        .map_request(move |mut request: Request<OctoBody>| {
            add_proxy_authorization(&matcher, &mut request);
            request
        });

    let octocrab = OctocrabBuilder::new_empty()
        .with_service(client)
        .with_layer(&ExtraHeadersLayer::new(Arc::new(vec![(
            USER_AGENT,
            HeaderValue::from_static("octocrab"),
        )])))
        .with_layer(&BaseUriLayer::new(base_uri.clone()))
        // The token goes only to the API's own host (octocrab's rule): the
        // upload host is the API's too, as nothing is uploaded.
        .with_layer(&AuthHeaderLayer::new(
            Some(bearer),
            base_uri.clone(),
            base_uri,
        ))
        .with_auth(AuthState::None)
        .build();
    match octocrab {
        Ok(octocrab) => Ok(octocrab),
        Err(never) => match never {},
    }
}

/// The proxy connections to `destination` go through (its URL without
/// credentials), or `None` when they go directly: for messages.
pub fn proxy_route(destination: &Uri, proxy: &ProxySettings) -> Option<String> {
    let matcher = proxy_matcher(proxy).ok()?;
    let proxy = matcher.intercept(destination)?;
    Some(proxy.uri().to_string())
}

/// The proxy rules of `proxy`, in hyper-util's matcher (curl's `NO_PROXY`
/// syntax, the same the AWS SDK's connector uses).
fn proxy_matcher(proxy: &ProxySettings) -> Result<Matcher, TransportError> {
    let mut builder = Matcher::builder().no(proxy.bypass_rules());
    if let Some(url) = &proxy.https {
        builder = builder.https(url.as_str());
    }
    if let Some(url) = &proxy.http {
        builder = builder.http(url.as_str());
    }
    let matcher = builder.build();
    // The matcher drops a proxy URL it cannot read without a word; the
    // settings were validated with the same rules, so this only guards
    // against the two drifting apart.
    let takes = |url: &ProxyUrl, probe: &str| {
        let rules = Matcher::builder().all(url.as_str()).build();
        match probe.parse::<Uri>() {
            Ok(probe) if rules.intercept(&probe).is_some() => Ok(()),
            _ => Err(TransportError::Proxy(url.to_string())),
        }
    };
    if let Some(url) = &proxy.https {
        takes(url, "https://api.github.com/")?;
    }
    if let Some(url) = &proxy.http {
        takes(url, "http://api.github.com/")?;
    }
    Ok(matcher)
}

/// A request that goes to an HTTP proxy in absolute form carries the
/// proxy's credentials itself; a tunnelled (https://) one must not, as the
/// destination would see them, and the CONNECT carried them instead.
fn add_proxy_authorization(matcher: &Matcher, request: &mut Request<OctoBody>) {
    if request.uri().scheme() != Some(&Scheme::HTTP) {
        return;
    }
    let credentials = matcher
        .intercept(request.uri())
        .and_then(|proxy| proxy.basic_auth().cloned());
    if let Some(credentials) = credentials {
        request
            .headers_mut()
            .insert(PROXY_AUTHORIZATION, credentials);
    }
}

/// A TCP connection, to the destination or to the proxy, and over TLS when
/// the proxy is `https://`.
type ProxyIo = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Connects each destination as the proxy rules say (see the module docs).
/// The TLS to an `https://` destination is not made here: the outer
/// `HttpsConnector` makes it over whatever this returns.
#[derive(Clone)]
struct ProxyConnector {
    /// Plain TCP, for destinations reached directly.
    direct: HttpConnector,
    /// TCP, then TLS for an `https://` proxy: the way to the proxy.
    to_proxy: HttpsConnector<HttpConnector>,
    matcher: Arc<Matcher>,
}

impl Service<Uri> for ProxyConnector {
    type Response = Routed;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Routed, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call drives clones of the inner connectors to readiness itself
        // (`oneshot`); hyper's HttpConnector is always ready anyway.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let direct = self.direct.clone();
        let to_proxy = self.to_proxy.clone();
        let proxy = self.matcher.intercept(&destination);
        Box::pin(async move {
            let Some(proxy) = proxy else {
                let tcp = direct.oneshot(destination).await?;
                return Ok(Routed {
                    io: MaybeHttpsStream::Http(tcp),
                    forwarded: false,
                });
            };
            if destination.scheme() == Some(&Scheme::HTTPS) {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), to_proxy);
                if let Some(credentials) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(credentials.clone());
                }
                let io = tunnel.oneshot(destination).await?;
                Ok(Routed {
                    io,
                    forwarded: false,
                })
            } else {
                let io = to_proxy.oneshot(proxy.uri().clone()).await?;
                Ok(Routed {
                    io,
                    forwarded: true,
                })
            }
        })
    }
}

/// A connection made by [`ProxyConnector`]. `forwarded` marks one to an
/// HTTP proxy that requests are sent to in absolute form: hyper's client
/// writes them so for a connection whose `Connected` says `proxy`.
struct Routed {
    io: ProxyIo,
    forwarded: bool,
}

impl Connection for Routed {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forwarded)
    }
}

impl Read for Routed {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(context, buffer)
    }
}

impl Write for Routed {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(context)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(context, buffers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Environment;
    use crate::proxy::resolve_proxy;

    fn settings(input: Option<&str>, variables: &[(&str, &str)]) -> ProxySettings {
        resolve_proxy(input, &Environment::from_pairs(variables.iter().copied())).unwrap()
    }

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn each_destination_goes_the_way_the_rules_say() {
        let proxy = settings(
            None,
            &[
                ("HTTPS_PROXY", "http://secure:3128"),
                ("HTTP_PROXY", "http://plain:8080"),
                ("NO_PROXY", ".internal,10.0.0.0/8"),
            ],
        );
        let cases = [
            ("https://api.github.com/repos", Some("http://secure:3128/")),
            ("http://ghes.example.com/api/v3", Some("http://plain:8080/")),
            ("https://ghes.internal/api/v3", None),
            ("http://10.1.2.3:8080/", None),
            // The metadata addresses never go through a proxy.
            ("http://169.254.169.254/latest/meta-data", None),
            ("http://[fd00:ec2::254]/latest", None),
        ];
        for (destination, expected) in cases {
            assert_eq!(
                proxy_route(&uri(destination), &proxy).as_deref(),
                expected,
                "{destination}"
            );
        }
        assert_eq!(
            proxy_route(&uri("https://api.github.com/"), &ProxySettings::default()),
            None
        );
        // The route shown never carries the proxy's credentials.
        let with_credentials = settings(Some("http://user:s3cret@proxy:3128"), &[]);
        assert_eq!(
            proxy_route(&uri("https://api.github.com/"), &with_credentials).as_deref(),
            Some("http://proxy:3128/")
        );
    }

    #[test]
    fn proxy_credentials_go_only_on_requests_sent_to_the_proxy_itself() {
        let matcher = proxy_matcher(&settings(
            Some("http://user:pass@proxy:3128"),
            &[("NO_PROXY", "direct.example.com")],
        ))
        .unwrap();
        let cases = [
            // Absolute form to the proxy: it needs them.
            ("http://ghes.example.com/api/v3", Some("Basic dXNlcjpwYXNz")),
            // Tunnelled: the CONNECT carried them; the destination must not
            // see them.
            ("https://api.github.com/repos", None),
            // Not through the proxy at all.
            ("http://direct.example.com/", None),
        ];
        for (destination, expected) in cases {
            let mut request = Request::builder()
                .uri(destination)
                .body(OctoBody::empty())
                .unwrap();
            add_proxy_authorization(&matcher, &mut request);
            assert_eq!(
                request
                    .headers()
                    .get(PROXY_AUTHORIZATION)
                    .map(|value| value.to_str().unwrap()),
                expected,
                "{destination}"
            );
        }
    }

    #[tokio::test]
    async fn the_client_builds_with_and_without_a_proxy_and_refuses_a_bad_token() {
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            read: Duration::from_secs(1),
        };
        let base = uri("https://api.github.com");
        for proxy in [
            ProxySettings::default(),
            settings(Some("https://user:pw@proxy:8443"), &[]),
        ] {
            assert!(github_client(base.clone(), "token", timeouts, &proxy).is_ok());
        }
        assert!(matches!(
            github_client(base, "to\nken", timeouts, &ProxySettings::default()),
            Err(TransportError::Token)
        ));
    }
}
