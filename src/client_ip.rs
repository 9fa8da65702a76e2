//! [`ClientIp`]: the caller's address, trusting forwarded headers only from trusted proxies.
//!
//! The peer address of the TCP connection is the only address a server knows for sure. A
//! `X-Forwarded-For` or `Forwarded` (RFC 7239) header is just text the client can write, so
//! palisade reads it only when the peer is one of the host's **trusted proxies**, and then walks
//! the list from the right (the hop our own proxy appended) to the left, skipping trusted
//! proxies: the first address that is not a trusted proxy is the client. Anything to its left was
//! written by an untrusted party and is ignored. An unparseable hop (`unknown`, an obfuscated
//! identifier, garbage) stops the walk at the last address a trusted proxy vouched for.
//!
//! The peer address comes from the request extensions: [`PeerAddr`] (insert it yourself when
//! serving with plain hyper), or axum's `ConnectInfo<SocketAddr>` (feature `axum`, with
//! `into_make_service_with_connect_info`). Without either, no `ClientIp` is set.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are reported as IPv4.
//!
//! # Example
//!
//! ```
//! use std::net::IpAddr;
//! use http::HeaderMap;
//! use palisade::client_ip::{ClientIpResolver, ForwardedHeader};
//!
//! let resolver = ClientIpResolver::new()
//!     .trust_proxy("10.0.0.0/8".parse().unwrap())
//!     .with_header(ForwardedHeader::XForwardedFor);
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "203.0.113.9, 10.1.2.3".parse().unwrap());
//!
//! // From our proxy: the header counts, the rightmost untrusted hop is the client.
//! let proxy: IpAddr = "10.0.0.1".parse().unwrap();
//! assert_eq!(resolver.resolve(proxy, &headers).to_string(), "203.0.113.9");
//!
//! // From anyone else: the header is ignored.
//! let stranger: IpAddr = "198.51.100.7".parse().unwrap();
//! assert_eq!(resolver.resolve(stranger, &headers), stranger);
//! ```
//!
//! # Deployment caveat
//!
//! Trust exactly the proxies in front of you, and make sure they *append* to (or overwrite) the
//! header rather than pass the client's version through untouched.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, Request};
use ipnet::IpNet;
use serde::Serialize;
use tower_layer::Layer;
use tower_service::Service;

use crate::client_cert::{ClientCertHeader, ClientCertificate};

/// The resolved client address, put in the request extensions by [`ClientIpLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The address.
    #[must_use]
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The TCP peer address of a request. Insert it into the request extensions when serving with
/// plain hyper (axum users get `ConnectInfo` instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// Which forwarded header trusted proxies set (in a configuration file: `x-forwarded-for` or
/// `forwarded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de-facto standard).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            Self::Forwarded => http::header::FORWARDED,
        }
    }
}

/// At most this many hops are examined, right to left.
const MAX_HOPS: usize = 32;

/// Decides the client address from the peer address and, for trusted peers, a forwarded header.
///
/// With no trusted proxy (the default), the peer address is the client address.
///
/// In a configuration file, the `client_ip` section:
/// `{trusted_proxies: [10.0.0.0/8, 192.0.2.7], header: forwarded}` (each optional).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(from = "RawResolver")]
pub struct ClientIpResolver {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
    cert_header: Option<ClientCertHeader>,
}

/// Wider than a /8 (IPv4) or a /7 (IPv6: `fc00::/7`, the unique local addresses, is the
/// widest private range).
fn too_wide(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.prefix_len() < 8,
        IpNet::V6(n) => n.prefix_len() < 7,
    }
}

/// The file form of a [`ClientIpResolver`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResolver {
    /// Proxies (CIDR networks or single addresses) whose forwarded header is believed.
    #[serde(default, deserialize_with = "deserialize_nets")]
    trusted_proxies: Vec<IpNet>,
    /// `x-forwarded-for` (default) or `forwarded` (RFC 7239).
    #[serde(default)]
    header: ForwardedHeader,
    /// Where the trusted proxies put the client's TLS certificate.
    #[serde(default)]
    client_cert_header: Option<ClientCertHeader>,
}

impl From<RawResolver> for ClientIpResolver {
    fn from(raw: RawResolver) -> Self {
        // Through the builder, so a file gets the same checks (and warnings) as code.
        let resolver = Self::new()
            .trust_proxies(raw.trusted_proxies)
            .with_header(raw.header);
        match raw.client_cert_header {
            Some(h) => resolver.with_client_cert_header(h),
            None => resolver,
        }
    }
}

impl ClientIpResolver {
    /// The networks whose forwarded header is believed.
    #[must_use]
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted
    }

    /// The header read from trusted proxies.
    #[must_use]
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// A resolver that trusts no proxy.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts peers in `net` to report the client address in the forwarded header.
    ///
    /// A network wider than a /8 (IPv4) or a /7 (IPv6), `0.0.0.0/0` above all, takes in
    /// clients as well as proxies: any client could then name its own address (and so dodge a
    /// per-address quota, or claim an exempt one). It is accepted, for hosts that only proxies
    /// can reach, and logged as a warning when set; name the proxies' own network instead.
    #[must_use]
    pub fn trust_proxy(mut self, net: IpNet) -> Self {
        if too_wide(&net) {
            tracing::warn!(
                target: "palisade::client_ip",
                %net,
                "trusting a network this wide lets any client in it name its own address in the forwarded header; trust the proxies' network instead"
            );
        }
        self.trusted.push(net);
        self
    }

    /// Trusts every network in `nets` (see [`trust_proxy`](Self::trust_proxy)).
    #[must_use]
    pub fn trust_proxies(self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        nets.into_iter().fold(self, Self::trust_proxy)
    }

    /// Whether a trusted network is wider than a /8 (IPv4) or a /7 (IPv6): see
    /// [`trust_proxy`](Self::trust_proxy).
    #[must_use]
    pub fn trusts_too_wide(&self) -> bool {
        self.trusted.iter().any(too_wide)
    }

    /// Reads the client address from `header` (default `X-Forwarded-For`).
    #[must_use]
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Reads the client's TLS certificate from `header` when the request comes straight from
    /// a trusted proxy (see [`crate::client_cert`]); from any other peer the header is ignored.
    #[must_use]
    pub fn with_client_cert_header(mut self, header: ClientCertHeader) -> Self {
        self.cert_header = Some(header);
        self
    }

    /// Where trusted proxies put the client's certificate, if anywhere.
    #[must_use]
    pub fn client_cert_header(&self) -> Option<&ClientCertHeader> {
        self.cert_header.as_ref()
    }

    /// The client certificate a trusted proxy reports for a request from `peer`.
    #[must_use]
    pub fn client_certificate(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Option<ClientCertificate> {
        let header = self.cert_header.as_ref()?;
        if !self.is_trusted(peer.to_canonical()) {
            return None;
        }
        header.read(headers)
    }

    pub(crate) fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` with `headers`.
    #[must_use]
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.is_trusted(client) {
            return client;
        }
        let name = self.header.name();
        // Later header lines were appended by later hops: walk lines and items right to left.
        let hops = headers
            .get_all(&name)
            .iter()
            .rev()
            .flat_map(|v| match v.to_str() {
                Ok(s) => rsplit_items(s),
                Err(_) => RSplit::invalid(),
            })
            .take(MAX_HOPS);
        for hop in hops {
            let parsed = match self.header {
                ForwardedHeader::XForwardedFor => parse_xff_node(hop),
                ForwardedHeader::Forwarded => parse_forwarded_element(hop),
            };
            let Some(ip) = parsed else {
                return client;
            };
            client = ip.to_canonical();
            if !self.is_trusted(client) {
                return client;
            }
        }
        client
    }

    /// The peer address of `req` from its extensions ([`PeerAddr`], or axum's `ConnectInfo`).
    #[must_use]
    pub fn peer_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
        peer_addr_of(req.extensions())
    }

    /// The client address of `req`, or `None` if its peer address is unknown.
    #[must_use]
    pub fn resolve_request<B>(&self, req: &Request<B>) -> Option<ClientIp> {
        Self::peer_addr(req).map(|peer| ClientIp(self.resolve(peer.ip(), req.headers())))
    }
}

/// The peer address in `ext` ([`PeerAddr`], or axum's `ConnectInfo`).
pub(crate) fn peer_addr_of(ext: &http::Extensions) -> Option<SocketAddr> {
    if let Some(PeerAddr(addr)) = ext.get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    None
}

/// Items of a comma-separated header line, right to left; one `None`-like marker for a
/// non-UTF-8 line (which stops the walk).
pub(crate) struct RSplit<'a> {
    rest: Option<&'a str>,
    invalid: bool,
}

impl RSplit<'_> {
    pub(crate) fn invalid() -> Self {
        RSplit {
            rest: None,
            invalid: true,
        }
    }
}

pub(crate) fn rsplit_items(s: &str) -> RSplit<'_> {
    RSplit {
        rest: Some(s),
        invalid: false,
    }
}

impl<'a> Iterator for RSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.invalid {
            self.invalid = false;
            return Some(""); // parses as no address: stops the walk
        }
        let rest = self.rest?;
        match rest.rfind(',') {
            Some(i) => {
                self.rest = Some(&rest[..i]);
                Some(rest[i + 1..].trim())
            }
            None => {
                self.rest = None;
                Some(rest.trim())
            }
        }
    }
}

/// One `X-Forwarded-For` item: `1.2.3.4`, `1.2.3.4:567`, `2001:db8::1`, `[2001:db8::1]:567`.
fn parse_xff_node(s: &str) -> Option<IpAddr> {
    parse_node(s)
}

pub(crate) fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    // `[2001:db8::1]` without a port.
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The `for=` node of one RFC 7239 `forwarded-element` (`for=192.0.2.60;proto=http;by=…`).
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    for pair in element.split(';') {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        let value = value.trim();
        // RFC 7239 §4: a value is a token or a quoted-string; IPv6 nodes must be quoted.
        let value = match value.strip_prefix('"') {
            Some(v) => v.strip_suffix('"')?,
            None => value,
        };
        // §6: "unknown" and obfuscated identifiers ("_hidden") are not addresses.
        return parse_node(value);
    }
    None
}

/// A layer that resolves [`ClientIp`] and puts it into the request extensions.
#[derive(Debug, Clone, Default)]
pub struct ClientIpLayer {
    resolver: Arc<ClientIpResolver>,
}

impl ClientIpLayer {
    /// A layer that resolves with `resolver`.
    #[must_use]
    pub fn new(resolver: ClientIpResolver) -> Self {
        Self {
            resolver: Arc::new(resolver),
        }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIpService {
            inner,
            resolver: self.resolver.clone(),
        }
    }
}

/// The service of [`ClientIpLayer`].
#[derive(Debug, Clone)]
pub struct ClientIpService<S> {
    inner: S,
    resolver: Arc<ClientIpResolver>,
}

impl<S> ClientIpService<S> {
    crate::macros::define_inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for ClientIpService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The host's own TLS acceptor's certificate wins over a proxy's header; without a
        // header configured, nothing is looked up.
        if self.resolver.cert_header.is_some()
            && req.extensions().get::<ClientCertificate>().is_none()
        {
            let peer = ClientIpResolver::peer_addr(&req);
            if let Some(cert) =
                peer.and_then(|p| self.resolver.client_certificate(p.ip(), req.headers()))
            {
                req.extensions_mut().insert(cert);
            }
        }
        match self.resolver.resolve_request(&req) {
            Some(ip) => {
                req.extensions_mut().insert(ip);
            }
            None => {
                // A spoofable value must not stand in for an unknown peer.
                req.extensions_mut().remove::<ClientIp>();
            }
        }
        self.inner.call(req)
    }
}

/// Reads a list of CIDR networks or single addresses (configuration files).
pub(crate) fn deserialize_nets<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<IpNet>, D::Error> {
    use serde::Deserialize;
    let items = Vec::<String>::deserialize(d)?;
    items
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("`{s}` is not an IP network or address"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn rfc8705_3_a_certificate_header_is_believed_from_trusted_proxies_only() {
        let hash = "ab".repeat(32);
        let h = headers("x-forwarded-client-cert", &[&format!("Hash={hash}")]);
        let xfcc = ClientCertHeader::Xfcc(HeaderName::from_static("x-forwarded-client-cert"));
        let r = ClientIpResolver::new()
            .trust_proxy("10.0.0.0/8".parse().unwrap())
            .with_client_cert_header(xfcc);
        let cert = ClientCertificate::from_sha256([0xab; 32]);
        assert_eq!(r.client_certificate(ip("10.1.2.3"), &h), Some(cert));
        assert_eq!(r.client_certificate(ip("::ffff:10.1.2.3"), &h), Some(cert));
        assert_eq!(r.client_certificate(ip("203.0.113.9"), &h), None);
        // Without a header configured, never.
        let plain = ClientIpResolver::new().trust_proxy("10.0.0.0/8".parse().unwrap());
        assert_eq!(plain.client_certificate(ip("10.1.2.3"), &h), None);
    }

    fn behind_proxy() -> ClientIpResolver {
        ClientIpResolver::new()
            .trust_proxy("10.0.0.0/8".parse().unwrap())
            .trust_proxy("fd00::/8".parse().unwrap())
    }

    #[test]
    fn trusting_everyone_is_flagged_because_any_client_could_name_its_address() {
        let everyone = ClientIpResolver::new().trust_proxy("0.0.0.0/0".parse().unwrap());
        assert!(everyone.trusts_too_wide());
        // The hazard itself: any peer is then a "proxy", and its header is believed.
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(everyone.resolve(ip("198.51.100.1"), &h), ip("203.0.113.9"));
        assert!(
            ClientIpResolver::new()
                .trust_proxies(["2000::/3".parse().unwrap()])
                .trusts_too_wide()
        );
        assert!(!behind_proxy().trusts_too_wide());
        assert!(
            !ClientIpResolver::new()
                .trust_proxies(["10.0.0.0/8".parse().unwrap(), "fc00::/7".parse().unwrap()])
                .trusts_too_wide()
        );
    }

    #[test]
    fn spoofed_forwarded_for_from_untrusted_peer_is_ignored() {
        let h = headers("x-forwarded-for", &["1.1.1.1"]);
        let peer = ip("203.0.113.50");
        assert_eq!(behind_proxy().resolve(peer, &h), peer);
        // With no trusted proxy at all, nothing is ever trusted.
        assert_eq!(
            ClientIpResolver::new().resolve(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn spoofed_leftmost_entries_behind_trusted_proxy_are_ignored() {
        // The client wrote "1.1.1.1"; our proxy appended the real peer 203.0.113.9.
        let h = headers("x-forwarded-for", &["1.1.1.1, 203.0.113.9"]);
        assert_eq!(
            behind_proxy().resolve(ip("10.0.0.2"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn chain_of_trusted_proxies_is_skipped() {
        let h = headers("x-forwarded-for", &["198.51.100.1", "10.9.9.9, 10.8.8.8"]);
        assert_eq!(
            behind_proxy().resolve(ip("10.0.0.2"), &h),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn all_trusted_hops_yield_the_leftmost() {
        let h = headers("x-forwarded-for", &["10.3.3.3, 10.2.2.2"]);
        assert_eq!(behind_proxy().resolve(ip("10.0.0.2"), &h), ip("10.3.3.3"));
    }

    #[test]
    fn garbage_hop_stops_at_last_trusted_address() {
        let h = headers("x-forwarded-for", &["198.51.100.1, unknown, 10.2.2.2"]);
        assert_eq!(behind_proxy().resolve(ip("10.0.0.2"), &h), ip("10.2.2.2"));
        let h = headers("x-forwarded-for", &["198.51.100.1,"]);
        assert_eq!(behind_proxy().resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"));
    }

    #[test]
    fn missing_header_from_trusted_proxy_yields_the_proxy() {
        assert_eq!(
            behind_proxy().resolve(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ports_and_brackets_are_accepted() {
        let h = headers("x-forwarded-for", &["[2001:db8::7]:4711, 198.51.100.3:80"]);
        assert_eq!(
            behind_proxy().resolve(ip("10.0.0.2"), &h),
            ip("198.51.100.3")
        );
        let h = headers("x-forwarded-for", &["[2001:db8::7]:4711, fd00::1"]);
        assert_eq!(behind_proxy().resolve(ip("fd00::2"), &h), ip("2001:db8::7"));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_reported_as_ipv4() {
        let h = HeaderMap::new();
        assert_eq!(
            ClientIpResolver::new().resolve(ip("::ffff:203.0.113.5"), &h),
            ip("203.0.113.5")
        );
        // ... and a mapped proxy address is still recognised as trusted.
        let h = headers("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(
            behind_proxy().resolve(ip("::ffff:10.0.0.2"), &h),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn rfc7239_forwarded_header_is_parsed() {
        let r = behind_proxy().with_header(ForwardedHeader::Forwarded);
        // RFC 7239 §4 examples: quoted IPv6 with port, parameters, case-insensitive names.
        let h = headers(
            "forwarded",
            &[
                r#"for=1.1.1.1, For="[2001:db8:cafe::17]:4711";proto=https, for=10.1.1.1;by=10.0.0.2"#,
            ],
        );
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("2001:db8:cafe::17"));
        // RFC 7239 §6: "unknown" and obfuscated nodes stop the walk.
        let h = headers("forwarded", &["for=198.51.100.1, for=_hidden"]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"));
        let h = headers("forwarded", &["proto=https"]);
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("10.0.0.2"));
    }

    #[test]
    fn layer_sets_client_ip_only_with_a_known_peer() {
        use std::convert::Infallible;
        let svc = tower_service_fn(|req: Request<()>| req.extensions().get::<ClientIp>().copied());
        let mut svc = ClientIpLayer::new(ClientIpResolver::new()).layer(svc);
        let mut req = Request::new(());
        req.extensions_mut().insert(ClientIp(ip("1.1.1.1"))); // planted by someone: dropped
        let got: Result<_, Infallible> = call_now(&mut svc, req);
        assert_eq!(got.unwrap(), None);
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(PeerAddr("192.0.2.1:5000".parse().unwrap()));
        assert_eq!(
            call_now(&mut svc, req).unwrap(),
            Some(ClientIp(ip("192.0.2.1")))
        );
    }

    fn tower_service_fn<F, R>(
        f: F,
    ) -> impl Service<
        Request<()>,
        Response = R,
        Error = std::convert::Infallible,
        Future = std::future::Ready<Result<R, std::convert::Infallible>>,
    >
    where
        F: FnMut(Request<()>) -> R,
    {
        struct Fn<F>(F);
        impl<F: FnMut(Request<()>) -> R, R> Service<Request<()>> for Fn<F> {
            type Response = R;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<R, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, req: Request<()>) -> Self::Future {
                std::future::ready(Ok((self.0)(req)))
            }
        }
        Fn(f)
    }

    fn call_now<S, R>(svc: &mut S, req: Request<()>) -> Result<R, std::convert::Infallible>
    where
        S: Service<
                Request<()>,
                Response = R,
                Error = std::convert::Infallible,
                Future = std::future::Ready<Result<R, std::convert::Infallible>>,
            >,
    {
        svc.call(req).into_inner()
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(|b| IpAddr::from(b).to_canonical()),
        ]
    }

    proptest! {
        #[test]
        fn resolve_never_panics_on_arbitrary_headers(
            line in "\\PC{0,200}", peer in arb_ip(),
        ) {
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&line) {
                h.insert("x-forwarded-for", v.clone());
                h.insert("forwarded", v);
            }
            let all = ClientIpResolver::new().trust_proxy("0.0.0.0/0".parse().unwrap())
                .trust_proxy("::/0".parse().unwrap());
            let _ = all.resolve(peer, &h);
            let _ = all.with_header(ForwardedHeader::Forwarded).resolve(peer, &h);
        }

        #[test]
        fn untrusted_peer_is_always_the_client(line in "[0-9a-f.:, \\[\\]]{0,80}", peer in arb_ip()) {
            let r = ClientIpResolver::new().trust_proxy("10.0.0.0/8".parse().unwrap());
            prop_assume!(!r.is_trusted(peer));
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", http::HeaderValue::from_str(&line).unwrap());
            prop_assert_eq!(r.resolve(peer, &h), peer);
        }

        #[test]
        fn client_is_rightmost_untrusted_hop(hops in proptest::collection::vec(arb_ip(), 0..12), peer_low in any::<u8>()) {
            let r = ClientIpResolver::new().trust_proxy("10.0.0.0/8".parse().unwrap());
            let peer = IpAddr::from([10, 0, 0, peer_low]);
            let line = hops.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let mut h = HeaderMap::new();
            if !line.is_empty() {
                h.insert("x-forwarded-for", http::HeaderValue::from_str(&line).unwrap());
            }
            // The model: the rightmost hop that is not trusted, else the leftmost, else the peer.
            let expected = hops.iter().rev().copied().find(|ip| !r.is_trusted(*ip))
                .or_else(|| hops.first().copied()).unwrap_or(peer);
            prop_assert_eq!(r.resolve(peer, &h), expected);
        }
    }
}
