//! What audit records of headers and query strings: sensitive values never reach a sink.

use std::collections::HashSet;

use http::HeaderName;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};

/// The text that replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Which headers are recorded, and which header and query values are hidden.
#[derive(Debug, Clone)]
pub(crate) struct Redaction {
    /// Headers recorded besides `User-Agent`.
    pub(crate) record: Vec<HeaderName>,
    /// Headers whose values are never recorded in clear.
    pub(crate) secret_headers: HashSet<HeaderName>,
    /// Query parameters whose values are recorded in clear (all others are redacted).
    pub(crate) keep_params: HashSet<String>,
    /// Query parameters never recorded in clear, even when kept.
    pub(crate) secret_params: HashSet<String>,
}

impl Default for Redaction {
    fn default() -> Self {
        Self {
            record: Vec::new(),
            secret_headers: [
                AUTHORIZATION,
                PROXY_AUTHORIZATION,
                COOKIE,
                SET_COOKIE,
                HeaderName::from_static("x-api-key"),
            ]
            .into_iter()
            .collect(),
            keep_params: HashSet::new(),
            secret_params: [
                "access_token",
                "api_key",
                "apikey",
                "key",
                "token",
                "password",
                "secret",
                "client_secret",
                "code",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        }
    }
}

impl Redaction {
    /// The path with each query value replaced by [`REDACTED`] unless its parameter is kept
    /// (and not secret).
    pub(crate) fn path(&self, path: &str, query: Option<&str>) -> String {
        let Some(query) = query else {
            return path.to_owned();
        };
        let mut out = String::with_capacity(path.len() + query.len() + 16);
        out.push_str(path);
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push_str(k);
            if pair.contains('=') {
                out.push('=');
                let name = form_urlencoded::parse(format!("{k}=").as_bytes())
                    .next()
                    .map(|(k, _)| k.to_ascii_lowercase())
                    .unwrap_or_default();
                if self.keep_params.contains(&name) && !self.secret_params.contains(&name) {
                    out.push_str(v);
                } else {
                    out.push_str(REDACTED);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_redacted_unless_kept_and_never_when_secret() {
        let mut r = Redaction::default();
        r.keep_params.insert("limit".into());
        r.keep_params.insert("access_token".into());
        assert_eq!(
            r.path(
                "/v1/orders",
                Some("limit=10&q=alice%40example.com&access_token=abc&flag")
            ),
            "/v1/orders?limit=10&q=[redacted]&access_token=[redacted]&flag"
        );
        assert_eq!(r.path("/a", None), "/a");
        // An encoded parameter name is matched decoded.
        assert_eq!(
            r.path("/a", Some("acc%65ss_token=abc")),
            "/a?acc%65ss_token=[redacted]"
        );
    }
}
