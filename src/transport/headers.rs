//! [`SecurityHeaders`]: the response headers OWASP's REST Security Cheat Sheet recommends for
//! APIs.

use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

/// Which responses get `Cache-Control: no-store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoStore {
    /// Responses to requests that carried a credential (the default): what a caller was
    /// shown for its credential is kept by no cache, shared or private.
    #[default]
    Credentialed,
    /// Every response.
    AllResponses,
    /// None (refusals still carry it: palisade's own problem documents are never cached).
    Never,
}

/// One year, without `includeSubDomains` (which would bind every other host of the domain)
/// or `preload`.
const DEFAULT_HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// The security headers palisade adds to responses, **on by default**. See the
/// [module docs](crate::transport#response-headers).
///
/// A header the handler set is kept, unless
/// [`replace_handler_headers`](Self::replace_handler_headers) is set.
///
/// In a configuration file, the `response_headers` section:
/// `{strict_transport_security: "max-age=63072000; includeSubDomains", nosniff: true,
/// deny_framing: true, no_store: credentialed, replace_handler_headers: false, enabled: true}`
/// (each optional; `strict_transport_security: null` sends none).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityHeaders {
    /// Whether any header is added.
    enabled: bool,
    /// The `Strict-Transport-Security` value, sent on responses to requests that came over TLS.
    #[serde(deserialize_with = "hsts_value")]
    strict_transport_security: Option<HeaderValue>,
    /// `X-Content-Type-Options: nosniff`.
    nosniff: bool,
    /// `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'`.
    deny_framing: bool,
    /// Which responses get `Cache-Control: no-store`.
    no_store: NoStore,
    /// Whether a header the handler set is replaced.
    replace_handler_headers: bool,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self {
            enabled: true,
            strict_transport_security: Some(DEFAULT_HSTS),
            nosniff: true,
            deny_framing: true,
            no_store: NoStore::Credentialed,
            replace_handler_headers: false,
        }
    }
}

impl SecurityHeaders {
    /// The defaults: HSTS for a year on TLS responses, `nosniff`, framing denied, `no-store`
    /// on credentialed responses; a handler's own headers kept.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// No header at all.
    #[must_use]
    pub fn none() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Sends `Strict-Transport-Security: value` (on responses to TLS requests only, RFC 6797
    /// §7.2), for instance `max-age=63072000; includeSubDomains` once every host of the domain
    /// serves HTTPS.
    #[must_use]
    pub fn with_hsts(mut self, value: HeaderValue) -> Self {
        self.strict_transport_security = Some(value);
        self
    }

    /// Sends no `Strict-Transport-Security` (a TLS-terminating proxy in front sets it).
    #[must_use]
    pub fn without_hsts(mut self) -> Self {
        self.strict_transport_security = None;
        self
    }

    /// Sends no `X-Content-Type-Options: nosniff`.
    #[must_use]
    pub fn without_nosniff(mut self) -> Self {
        self.nosniff = false;
        self
    }

    /// Sends neither `X-Frame-Options: DENY` nor `Content-Security-Policy: frame-ancestors
    /// 'none'` (for an API that serves pages meant to be framed).
    #[must_use]
    pub fn without_frame_denial(mut self) -> Self {
        self.deny_framing = false;
        self
    }

    /// Which responses get `Cache-Control: no-store`.
    #[must_use]
    pub fn no_store(mut self, which: NoStore) -> Self {
        self.no_store = which;
        self
    }

    /// Replaces a header the handler set with palisade's (by default the handler's is kept).
    #[must_use]
    pub fn replace_handler_headers(mut self) -> Self {
        self.replace_handler_headers = true;
        self
    }

    /// Whether any header is added.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether a response needs to know if its request carried a credential.
    pub(crate) fn needs_credential(&self) -> bool {
        self.enabled && self.no_store == NoStore::Credentialed
    }

    /// Adds the headers to a response to a request that came over TLS (`secure`) and carried a
    /// credential (`credentialed`).
    pub(crate) fn apply(&self, headers: &mut HeaderMap, secure: bool, credentialed: bool) {
        if !self.enabled {
            return;
        }
        // Room for all five at once: the map grows (and rehashes) once, not per header. A map
        // already at `http`'s size limit (32,768 entries) takes none of them rather than panic.
        let _ = headers.try_reserve(5);
        let replace = self.replace_handler_headers;
        let mut set = |name: HeaderName, value: HeaderValue| {
            if replace || !headers.contains_key(&name) {
                let _ = headers.try_insert(name, value);
            }
        };
        if let Some(hsts) = self.strict_transport_security.as_ref().filter(|_| secure) {
            set(STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        if self.nosniff {
            set(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        }
        if self.deny_framing {
            set(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            let csp = HeaderValue::from_static("frame-ancestors 'none'");
            set(CONTENT_SECURITY_POLICY, csp);
        }
        let no_store = match self.no_store {
            NoStore::AllResponses => true,
            NoStore::Credentialed => credentialed,
            NoStore::Never => false,
        };
        if no_store {
            set(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
}

/// A `Strict-Transport-Security` value: a header value with a `max-age` directive (RFC 6797
/// §6.1.1 requires one), or `null` for none.
fn hsts_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<HeaderValue>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let has_max_age = text
        .split(';')
        .any(|d| d.trim().to_ascii_lowercase().starts_with("max-age="));
    match HeaderValue::from_str(&text) {
        Ok(v) if has_max_age => Ok(Some(v)),
        _ => Err(serde::de::Error::custom(format!(
            "`{text}` is not a Strict-Transport-Security value with a max-age directive"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::SecurityHeaders;

    /// A response whose headers already fill `http`'s map (its size limit) goes out as it is:
    /// no panic, nothing dropped.
    #[test]
    fn a_full_header_map_takes_no_more_and_does_not_panic() {
        let mut headers = HeaderMap::new();
        for i in 0.. {
            let name = HeaderName::try_from(format!("x-h-{i}")).unwrap();
            if headers
                .try_insert(name, HeaderValue::from_static("v"))
                .is_err()
            {
                break;
            }
        }
        let before = headers.len();
        SecurityHeaders::default().apply(&mut headers, true, true);
        assert_eq!(headers.len(), before);
        assert!(!headers.contains_key(http::header::X_CONTENT_TYPE_OPTIONS));
    }

    #[test]
    fn a_response_gets_the_headers_once() {
        let mut headers = HeaderMap::new();
        SecurityHeaders::default().apply(&mut headers, false, true);
        assert_eq!(headers[http::header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[http::header::CACHE_CONTROL], "no-store");
    }
}
