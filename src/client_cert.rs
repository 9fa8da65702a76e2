//! [`ClientCertificate`]: the certificate a client presented in mutual TLS, for tokens bound to
//! it (RFC 8705 §3: `cnf.x5t#S256`, the certificate's SHA-256 thumbprint).
//!
//! palisade does not terminate TLS. The certificate reaches it in one of two ways:
//!
//! - the host's TLS acceptor (a `rustls` server, say) puts a [`ClientCertificate`] into the
//!   request extensions: believed as it is;
//! - a TLS-terminating proxy sends it in a header ([`ClientCertHeader`]): believed only when the
//!   request comes straight from a proxy the stack trusts (the same list as for the client
//!   address, [`ClientIpResolver::trust_proxy`](crate::client_ip::ClientIpResolver::trust_proxy)).
//!   From any other peer the header is ignored: a client cannot claim a certificate it does
//!   not hold.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderName};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The certificate of the TLS client, by its SHA-256 thumbprint (of the DER encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate {
    sha256: [u8; 32],
}

impl ClientCertificate {
    /// The certificate whose DER encoding is `der` (what a TLS library hands over).
    #[must_use]
    pub fn from_der(der: &[u8]) -> Self {
        Self {
            sha256: Sha256::digest(der).into(),
        }
    }

    /// The certificate whose SHA-256 thumbprint is `sha256`.
    #[must_use]
    pub fn from_sha256(sha256: [u8; 32]) -> Self {
        Self { sha256 }
    }

    /// Its SHA-256 thumbprint.
    #[must_use]
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// Whether `x5t_s256` (base64url, as in a token's `cnf`) is this certificate's thumbprint.
    #[must_use]
    pub fn matches(&self, x5t_s256: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(x5t_s256)
            .is_ok_and(|t| t.as_slice() == self.sha256.as_slice())
    }
}

/// Where a TLS-terminating proxy puts the client's certificate.
///
/// In a configuration file, in the `client_ip` section: `client_cert_header: {pem:
/// x-ssl-client-cert}` or `{xfcc: x-forwarded-client-cert}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawCertHeader")]
#[non_exhaustive]
pub enum ClientCertHeader {
    /// The certificate as URL-encoded PEM, in this header (nginx's `$ssl_client_escaped_cert`,
    /// an AWS load balancer's `X-Amzn-Mtls-Clientcert`).
    Pem(HeaderName),
    /// Envoy's `x-forwarded-client-cert` (or a header of that format under another name): the
    /// `Hash` of the element the nearest proxy added (its last).
    Xfcc(HeaderName),
}

/// The file form: `{pem: <header>}` or `{xfcc: <header>}` (a map in every format, where YAML
/// would otherwise want an enum tag).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertHeader {
    #[serde(default)]
    pem: Option<String>,
    #[serde(default)]
    xfcc: Option<String>,
}

impl TryFrom<RawCertHeader> for ClientCertHeader {
    type Error = String;

    fn try_from(raw: RawCertHeader) -> Result<Self, String> {
        let name = |s: String| {
            HeaderName::try_from(s.as_str()).map_err(|_| format!("`{s}` is not a header name"))
        };
        match (raw.pem, raw.xfcc) {
            (Some(pem), None) => Ok(Self::Pem(name(pem)?)),
            (None, Some(xfcc)) => Ok(Self::Xfcc(name(xfcc)?)),
            _ => Err("name exactly one of `pem` and `xfcc`".into()),
        }
    }
}

/// The longest certificate header read (a certificate chain is a few KB).
const MAX_HEADER_BYTES: usize = 16 * 1024;

impl ClientCertHeader {
    /// The certificate in `headers`, if the header holds one (exactly one line, well formed).
    pub(crate) fn read(&self, headers: &HeaderMap) -> Option<ClientCertificate> {
        let name = match self {
            Self::Pem(name) | Self::Xfcc(name) => name,
        };
        let mut lines = headers.get_all(name).iter();
        let (Some(value), None) = (lines.next(), lines.next()) else {
            return None;
        };
        let value = value
            .to_str()
            .ok()
            .filter(|v| v.len() <= MAX_HEADER_BYTES)?;
        match self {
            Self::Pem(_) => pem(value),
            Self::Xfcc(_) => xfcc(value),
        }
    }
}

/// A URL-encoded PEM certificate (the first of a chain).
fn pem(value: &str) -> Option<ClientCertificate> {
    let text = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .ok()?;
    let text = text.trim();
    // The first block of a chain: the client's own certificate.
    let end = "-----END CERTIFICATE-----";
    let first = &text[..text.find(end)? + end.len()];
    let (label, der) = pem_rfc7468::decode_vec(first.as_bytes()).ok()?;
    (label == "CERTIFICATE").then(|| ClientCertificate::from_der(&der))
}

/// The `Hash` (hex SHA-256) of the last element of an `x-forwarded-client-cert` value.
fn xfcc(value: &str) -> Option<ClientCertificate> {
    let element = split_unquoted(value, ',').last()?;
    let hash = split_unquoted(element, ';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("hash")
            .then(|| value.trim().trim_matches('"'))
    })?;
    let mut sha256 = [0u8; 32];
    base16ct::mixed::decode(hash, &mut sha256)
        .ok()
        .filter(|d| d.len() == 32)?;
    Some(ClientCertificate::from_sha256(sha256))
}

/// `s` split at `sep` outside double quotes (a quoted `\"` does not end the quote).
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    /// A real certificate (the Redis TLS fixture's server certificate).
    const CERT: &str = include_str!("../tests/fixtures/redis-tls/server.crt");

    fn der() -> Vec<u8> {
        pem_rfc7468::decode_vec(CERT.trim().as_bytes()).unwrap().1
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn rfc8705_3_1_the_thumbprint_is_sha256_of_the_der_in_base64url() {
        let cert = ClientCertificate::from_der(&der());
        let x5t = URL_SAFE_NO_PAD.encode(Sha256::digest(der()));
        assert!(cert.matches(&x5t));
        assert!(!cert.matches(&URL_SAFE_NO_PAD.encode([0u8; 32])));
        assert!(!cert.matches("not base64url!"));
        assert!(!cert.matches(&x5t[..20]));
    }

    #[test]
    fn an_escaped_pem_header_gives_the_first_certificate_of_the_chain() {
        let escaped: String =
            percent_encoding::utf8_percent_encode(CERT, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let h = ClientCertHeader::Pem(HeaderName::from_static("x-ssl-client-cert"));
        let expected = ClientCertificate::from_der(&der());
        assert_eq!(
            h.read(&headers("x-ssl-client-cert", &escaped)),
            Some(expected)
        );
        // A chain: the client's certificate comes first.
        let chain = format!(
            "{CERT}\n{}",
            include_str!("../tests/fixtures/redis-tls/ca.crt")
        );
        let chain: String =
            percent_encoding::utf8_percent_encode(&chain, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(
            h.read(&headers("x-ssl-client-cert", &chain)),
            Some(expected)
        );
        // Not a certificate, or not PEM: nothing.
        for bad in [
            "",
            "garbage",
            "-----BEGIN CERTIFICATE-----%0Azz%0A-----END CERTIFICATE-----",
        ] {
            assert_eq!(h.read(&headers("x-ssl-client-cert", bad)), None, "{bad}");
        }
        // Two lines are one too many.
        let mut two = headers("x-ssl-client-cert", &escaped);
        two.append(
            "x-ssl-client-cert",
            HeaderValue::from_str(&escaped).unwrap(),
        );
        assert_eq!(h.read(&two), None);
    }

    #[test]
    fn an_xfcc_header_gives_the_hash_of_the_nearest_proxys_element() {
        let h = ClientCertHeader::Xfcc(HeaderName::from_static("x-forwarded-client-cert"));
        let hash: String = Sha256::digest(der())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let value = format!(
            r#"By=spiffe://a/b;Hash=ffff;Subject="CN=x, O=y",By=spiffe://c/d;Hash={hash};Subject="CN=client, O=Acme; Inc""#
        );
        assert_eq!(
            h.read(&headers("x-forwarded-client-cert", &value)),
            Some(ClientCertificate::from_der(&der()))
        );
        for bad in ["By=x", "Hash=abc", "Hash=zz"] {
            assert_eq!(h.read(&headers("x-forwarded-client-cert", bad)), None);
        }
    }

    #[test]
    fn the_file_names_the_header_and_its_format() {
        let h: ClientCertHeader = serde_json::from_str(r#"{"pem": "x-ssl-client-cert"}"#).unwrap();
        assert_eq!(
            h,
            ClientCertHeader::Pem(HeaderName::from_static("x-ssl-client-cert"))
        );
        let h: ClientCertHeader =
            serde_json::from_str(r#"{"xfcc": "x-forwarded-client-cert"}"#).unwrap();
        assert!(matches!(h, ClientCertHeader::Xfcc(_)));
        assert!(serde_json::from_str::<ClientCertHeader>(r#"{"der": "x"}"#).is_err());
        assert!(serde_json::from_str::<ClientCertHeader>(r#"{"pem": "bad header"}"#).is_err());
        assert!(serde_json::from_str::<ClientCertHeader>(r#"{"pem": "a", "xfcc": "b"}"#).is_err());
        assert!(serde_json::from_str::<ClientCertHeader>("{}").is_err());
    }
}
