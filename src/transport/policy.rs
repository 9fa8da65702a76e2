//! [`TransportPolicy`]: when plain HTTP is refused, and how the scheme of a request is found.

use std::net::IpAddr;

use http::{Extensions, HeaderMap, HeaderName};
use serde::Deserialize;

use super::ConnectionScheme;
use crate::client_ip::{ClientIpResolver, ForwardedHeader, parse_node, peer_addr_of, rsplit_items};

/// Which plain-HTTP requests the guard refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequireTls {
    /// Requests that carry a credential (the default): a request without one, such as a load
    /// balancer's health check or a public route, is served over plain HTTP.
    #[default]
    Credentials,
    /// Every request, with or without a credential.
    AllRequests,
}

/// When the transport guard refuses plain HTTP. See the [module docs](crate::transport).
///
/// In a configuration file, the `transport` section:
/// `{require_tls: credentials, allow_plain_http_from_loopback: false, credential_headers:
/// [x-session], insecure_allow_plain_http: false}` (each optional).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportPolicy {
    /// Which plain-HTTP requests are refused.
    require_tls: RequireTls,
    /// Whether a client on this machine (a loopback address) may use plain HTTP.
    allow_plain_http_from_loopback: bool,
    /// Headers besides `Authorization` (and the stack's authenticators' own) that carry a
    /// credential.
    #[serde(deserialize_with = "header_names")]
    credential_headers: Vec<HeaderName>,
    /// The guard is off: credentials are accepted over plain HTTP. Unsafe.
    insecure_allow_plain_http: bool,
}

impl TransportPolicy {
    /// The default: credentials over plain HTTP are refused, from every client.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses every plain-HTTP request, with or without a credential (a load balancer's
    /// plain-HTTP health check too).
    #[must_use]
    pub fn require_tls_for_all_requests(mut self) -> Self {
        self.require_tls = RequireTls::AllRequests;
        self
    }

    /// Lets clients on this machine (the resolved client address is a loopback address) use
    /// plain HTTP: for development. Behind a proxy on the same machine that the stack does not
    /// trust, every request looks local: trust the proxy (its forwarded header then names the
    /// real client), or leave this off.
    #[must_use]
    pub fn allow_plain_http_from_loopback(mut self) -> Self {
        self.allow_plain_http_from_loopback = true;
        self
    }

    /// Treats header `name` as a credential too (a session or custom token header), besides
    /// `Authorization` and what the stack's authenticators recognise.
    #[must_use]
    pub fn credential_header(mut self, name: HeaderName) -> Self {
        self.credential_headers.push(name);
        self
    }

    /// Turns the guard off: credentials are accepted over plain HTTP, where anyone on the path
    /// can read and replay them. **Unsafe**: only for a host that is reached over TLS in a way
    /// palisade cannot see and cannot be told about. Logged as a warning when the stack is
    /// built.
    #[must_use]
    pub fn with_insecure_plain_http(mut self) -> Self {
        self.insecure_allow_plain_http = true;
        self
    }

    /// Which plain-HTTP requests are refused.
    #[must_use]
    pub fn require_tls(&self) -> RequireTls {
        self.require_tls
    }

    /// Whether the guard is off ([`with_insecure_plain_http`](Self::with_insecure_plain_http)).
    #[must_use]
    pub fn is_off(&self) -> bool {
        self.insecure_allow_plain_http
    }

    /// Whether clients on this machine may use plain HTTP.
    #[must_use]
    pub fn allows_loopback(&self) -> bool {
        self.allow_plain_http_from_loopback
    }

    /// The extra credential headers.
    #[must_use]
    pub fn credential_headers(&self) -> &[HeaderName] {
        &self.credential_headers
    }
}

fn header_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<HeaderName>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a header name")))
        })
        .collect()
}

/// How the scheme of a request was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scheme {
    /// Whether the client's connection is TLS.
    pub(crate) secure: bool,
    /// The resolved client address, when the peer is known.
    pub(crate) client: Option<IpAddr>,
}

/// At most this many forwarded elements are examined, right to left.
const MAX_HOPS: usize = 32;

/// The scheme of a request: a trusted proxy's forwarded scheme when the peer is one and says
/// it, else the connection's ([`ConnectionScheme`] in `ext`), else plain HTTP (not known to be
/// TLS). The request URI's scheme is never read: in an absolute-form request line or an HTTP/2
/// `:scheme` it is whatever the client wrote.
pub(crate) fn scheme(resolver: &ClientIpResolver, ext: &Extensions, headers: &HeaderMap) -> Scheme {
    let peer = peer_addr_of(ext).map(|a| a.ip().to_canonical());
    let forwarded = peer
        .filter(|p| resolver.is_trusted(*p))
        .and_then(|_| forwarded_proto(resolver, headers));
    let secure = match forwarded {
        Some(secure) => secure,
        None => ext.get::<ConnectionScheme>() == Some(&ConnectionScheme::Https),
    };
    Scheme {
        secure,
        client: peer.map(|p| resolver.resolve(p, headers)),
    }
}

/// What the trusted proxies say about the client's scheme: `Some(true)` for `https`,
/// `Some(false)` for anything else they name, `None` when they say nothing.
fn forwarded_proto(resolver: &ClientIpResolver, headers: &HeaderMap) -> Option<bool> {
    let proto = match resolver.header() {
        ForwardedHeader::Forwarded => forwarded_element_proto(resolver, headers)?,
        // The nearest proxy's word: the rightmost item of the last line (a client's own
        // `X-Forwarded-Proto` is to its left when a proxy appends).
        _ => {
            let line = headers.get_all("x-forwarded-proto").iter().next_back()?;
            let line = line.to_str().ok().unwrap_or("");
            rsplit_items(line).next().unwrap_or("").to_owned()
        }
    };
    Some(proto.eq_ignore_ascii_case("https"))
}

/// RFC 7239 §5.4: the `proto` of the element that describes the client's own connection,
/// found as the client address is (right to left, past the trusted proxies' elements).
fn forwarded_element_proto(resolver: &ClientIpResolver, headers: &HeaderMap) -> Option<String> {
    let elements = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .rev()
        .flat_map(|v| rsplit_items(v.to_str().unwrap_or("")))
        .take(MAX_HOPS);
    let mut proto = None;
    for element in elements {
        let (mut node, mut this) = (None, None);
        for pair in element.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "for" => node = parse_node(value),
                "proto" => this = Some(value.to_owned()),
                _ => {}
            }
        }
        // An element without `proto` says nothing of its hop: plain, to be safe.
        proto = Some(this.unwrap_or_default());
        match node {
            Some(ip) if resolver.is_trusted(ip.to_canonical()) => {}
            _ => break,
        }
    }
    proto
}
