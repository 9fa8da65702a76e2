//! The small HTTP(S) client behind JWKS fetches and token introspection: rustls with the
//! Mozilla roots (no system TLS library), an overall timeout per request, a cap on the body
//! read, and plain `http://` only for loopback hosts unless the host opts in.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::ConfigError;

/// Why a backend HTTP call failed. Never holds a credential or a response body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(#[source] hyper_util::client::legacy::Error),
    #[error("the answer's body is larger than {0} bytes, or could not be read")]
    Body(usize),
}

/// A shared HTTP(S) client with a per-request timeout and a response body cap.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

impl HttpClient {
    pub(crate) fn new(timeout: Duration, max_body: usize) -> Self {
        // The provider is passed explicitly, so a host that links another rustls provider (or
        // none) never trips rustls' process-wide default selection.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(crate::tls::provider())
            .expect("the provider supports rustls' default protocol versions")
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            timeout,
            max_body,
        }
    }

    /// Sends `request` and reads the whole answer, within the timeout and the body cap.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, FetchError> {
        let max = self.max_body;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(FetchError::Request)?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, max)
                .collect()
                .await
                .map_err(|_| FetchError::Body(max))?
                .to_bytes();
            Ok(Response::from_parts(parts, bytes))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }
}

/// Checks a backend URL: `https`, or `http` to a loopback host, or `http` anywhere when
/// `allow_http` (a deployment whose TLS ends elsewhere, e.g. a sidecar).
pub(crate) fn check_url(
    field: &'static str,
    url: &str,
    allow_http: bool,
) -> Result<Uri, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { field, message };
    let uri: Uri = url
        .parse()
        .map_err(|e| invalid(format!("`{url}` is not a URL: {e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| invalid(format!("`{url}` has no host")))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_http || is_loopback(host) => Ok(uri),
        Some("http") => Err(invalid(format!(
            "`{url}` is plain http to a remote host; use https (or allow plain http explicitly)"
        ))),
        _ => Err(invalid(format!("`{url}` is not an http(s) URL"))),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_accepted() {
        assert!(check_url("u", "https://idp.example.com/certs", false).is_ok());
        assert!(check_url("u", "http://127.0.0.1:8080/certs", false).is_ok());
        assert!(check_url("u", "http://[::1]:8080/certs", false).is_ok());
        assert!(check_url("u", "http://localhost/certs", false).is_ok());
        assert!(check_url("u", "http://idp.example.com/certs", false).is_err());
        assert!(check_url("u", "http://idp.example.com/certs", true).is_ok());
        assert!(check_url("u", "ftp://idp.example.com/certs", true).is_err());
        assert!(check_url("u", "/certs", true).is_err());
    }
}
