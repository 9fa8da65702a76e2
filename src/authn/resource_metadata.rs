//! [`ResourceMetadata`]: the OAuth 2.0 Protected Resource Metadata of RFC 9728. A client (an
//! MCP client, an SDK) that gets a 401 reads the `resource_metadata` URL from the challenge,
//! fetches the document from there, and learns which authorization servers issue tokens for
//! this API and which scopes it knows.
//!
//! ```
//! use palisade::authn::ResourceMetadata;
//!
//! let metadata = ResourceMetadata::builder("https://api.example.com/orders")
//!     .authorization_server("https://sso.example.com/realms/acme")
//!     .scopes(["orders:read", "orders:write"])
//!     .resource_name("Orders API")
//!     .build()?;
//! // RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
//! assert_eq!(metadata.path(), "/.well-known/oauth-protected-resource/orders");
//! assert_eq!(
//!     metadata.url(),
//!     "https://api.example.com/.well-known/oauth-protected-resource/orders"
//! );
//! # Ok::<(), palisade::ConfigError>(())
//! ```
//!
//! Given to [`AuthnLayer::resource_metadata`](super::AuthnLayer::resource_metadata) (or
//! the stack builder's `resource_metadata`,
//! or the file's `resource_metadata` section), the authentication layer serves the document at
//! [`path`](ResourceMetadata::path) to `GET` and `HEAD` without asking for a credential, and
//! every `Bearer` challenge of its 401 answers names the document (§5.1).

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Response, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ConfigError;

/// RFC 9728 §3: the well-known URI suffix.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A protected resource's metadata document (RFC 9728 §2), where it is served (§3.1), and the
/// challenge parameter that points to it (§5.1). Cloning is cheap.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    path: String,
    url: String,
    document: Bytes,
    /// `, resource_metadata="…"`, ready to append to a challenge.
    param: String,
}

/// Builds a [`ResourceMetadata`]; the file's `resource_metadata` section has the same fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResourceMetadataBuilder {
    /// The resource identifier: an `https` URL (or `http` to a loopback host), without query
    /// or fragment (§2, §3.3); tokens for this API name it as their audience.
    pub resource: String,
    /// The issuers of tokens this API accepts (§2 `authorization_servers`).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// The scopes this API's routes ask for (§2 `scopes_supported`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How tokens may be sent (§2 `bearer_methods_supported`): `header`, and `query` when the
    /// authenticators accept it (default `[header]`).
    #[serde(default)]
    pub bearer_methods: Vec<String>,
    /// A human-readable name (§2 `resource_name`).
    #[serde(default)]
    pub resource_name: Option<String>,
    /// Documentation for developers (§2 `resource_documentation`).
    #[serde(default)]
    pub resource_documentation: Option<String>,
    /// The algorithms of the DPoP proofs accepted (§2 `dpop_signing_alg_values_supported`).
    /// From a configuration file, the DPoP settings' when left empty.
    #[serde(default)]
    pub dpop_signing_algs: Vec<String>,
    /// Only DPoP-bound tokens are accepted (§2 `dpop_bound_access_tokens_required`). From a
    /// file, true when `require_bound_tokens` is.
    #[serde(default)]
    pub dpop_bound_access_tokens_required: bool,
    /// Certificate-bound tokens are accepted (§2 `tls_client_certificate_bound_access_tokens`,
    /// RFC 8705). From a file, true when a client certificate header is configured.
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
}

impl ResourceMetadata {
    /// Starts the metadata of the resource identified by `resource`.
    pub fn builder(resource: impl Into<String>) -> ResourceMetadataBuilder {
        ResourceMetadataBuilder {
            resource: resource.into(),
            ..ResourceMetadataBuilder::default()
        }
    }

    /// The path the document is served at (§3.1).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The document's URL, as challenges name it (§5.1).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The JSON document (§2, §3.2).
    #[must_use]
    pub fn document(&self) -> &Bytes {
        &self.document
    }

    /// The answer to `method` on `path` when it is the document's: 200 with the document to
    /// `GET`, without a body to `HEAD`; `None` for any other request.
    pub(crate) fn answer(&self, method: &Method, path: &str) -> Option<Response<Bytes>> {
        if path != self.path || !(method == Method::GET || method == Method::HEAD) {
            return None;
        }
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            self.document.clone()
        };
        let mut res = Response::new(body);
        *res.status_mut() = StatusCode::OK;
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // RFC 9110 §9.3.2: HEAD answers with GET's headers, the length included.
        res.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(self.document.len()));
        Some(res)
    }

    /// `rejection` with the `resource_metadata` parameter on its `Bearer` challenges.
    pub(crate) fn annotate(&self, rejection: crate::Rejection) -> crate::Rejection {
        match rejection {
            crate::Rejection::Unauthenticated(f) => {
                let challenges = f.challenges().iter().map(|c| self.challenge(c)).collect();
                crate::Rejection::Unauthenticated(f.with_challenges(challenges))
            }
            other => other,
        }
    }

    /// `challenge` with the `resource_metadata` parameter when it is a `Bearer` challenge
    /// (§5.1); any other scheme's as it is.
    pub(crate) fn challenge(&self, challenge: &HeaderValue) -> HeaderValue {
        let Ok(text) = challenge.to_str() else {
            return challenge.clone();
        };
        let scheme = text.split(' ').next().unwrap_or("");
        let token_scheme =
            scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop");
        if !token_scheme || text.contains("resource_metadata=") {
            return challenge.clone();
        }
        let sep = if text.len() == scheme.len() {
            " "
        } else {
            ", "
        };
        HeaderValue::try_from(format!("{text}{sep}{}", &self.param[2..]))
            .unwrap_or_else(|_| challenge.clone())
    }
}

impl ResourceMetadataBuilder {
    /// Adds an issuer of the tokens this API accepts (call again for more).
    #[must_use]
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// The scopes this API's routes ask for.
    #[must_use]
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// How tokens may be sent (default `header` only).
    #[must_use]
    pub fn bearer_methods(mut self, methods: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.bearer_methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name for the API.
    #[must_use]
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// A page of documentation for developers.
    #[must_use]
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The algorithms of the DPoP proofs accepted (§2 `dpop_signing_alg_values_supported`).
    #[must_use]
    pub fn dpop_signing_algs(mut self, algs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.dpop_signing_algs = algs.into_iter().map(Into::into).collect();
        self
    }

    /// Says that only DPoP-bound tokens are accepted (§2 `dpop_bound_access_tokens_required`).
    #[must_use]
    pub fn dpop_bound_access_tokens_required(mut self) -> Self {
        self.dpop_bound_access_tokens_required = true;
        self
    }

    /// Says that certificate-bound tokens (RFC 8705) are accepted (§2
    /// `tls_client_certificate_bound_access_tokens`).
    #[must_use]
    pub fn tls_client_certificate_bound_access_tokens(mut self) -> Self {
        self.tls_client_certificate_bound_access_tokens = true;
        self
    }

    /// Checks the fields and makes the document.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field: a resource that is not an absolute `https`
    /// URL (or `http` to a loopback host) or has a query or fragment, an authorization server
    /// or documentation URL that is not one, a bearer method other than `header`, `body`,
    /// `query`.
    pub fn build(mut self) -> Result<ResourceMetadata, ConfigError> {
        if self.resource.contains('#') {
            return Err(invalid(
                "resource_metadata.resource",
                "the resource identifier has no fragment (RFC 9728 §2)",
            ));
        }
        let resource = url("resource_metadata.resource", &self.resource)?;
        if resource.query().is_some() {
            return Err(invalid(
                "resource_metadata.resource",
                "the resource identifier has no query (RFC 9728 §2)",
            ));
        }
        for s in &self.authorization_servers {
            url("resource_metadata.authorization_servers", s)?;
        }
        if let Some(doc) = &self.resource_documentation {
            url("resource_metadata.resource_documentation", doc)?;
        }
        let methods = if self.bearer_methods.is_empty() {
            vec!["header".to_owned()]
        } else {
            std::mem::take(&mut self.bearer_methods)
        };
        if let Some(m) = methods
            .iter()
            .find(|m| !matches!(m.as_str(), "header" | "body" | "query"))
        {
            return Err(invalid(
                "resource_metadata.bearer_methods",
                &format!("`{m}` is not `header`, `body` or `query` (RFC 9728 §2, RFC 6750 §2)"),
            ));
        }
        let path = match resource.path().trim_end_matches('/') {
            "" => WELL_KNOWN.to_owned(),
            p => format!("{WELL_KNOWN}{p}"),
        };
        let authority = resource.authority().map_or("", |a| a.as_str());
        let scheme = resource.scheme_str().unwrap_or("https");
        let url = format!("{scheme}://{authority}{path}");
        let doc = self.document(methods);
        let param = format!(", resource_metadata=\"{url}\"");
        if HeaderValue::try_from(&param[2..]).is_err() || url.contains('"') {
            return Err(invalid(
                "resource_metadata.resource",
                "the metadata URL cannot be sent in a challenge",
            ));
        }
        Ok(ResourceMetadata {
            path,
            url,
            document: Bytes::from(doc.to_string()),
            param,
        })
    }

    /// The §2 document: the members given, and `methods` as `bearer_methods_supported`.
    fn document(self, methods: Vec<String>) -> Value {
        let mut doc = Map::new();
        doc.insert("resource".into(), Value::String(self.resource.clone()));
        let list = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
        if !self.authorization_servers.is_empty() {
            doc.insert(
                "authorization_servers".into(),
                list(self.authorization_servers),
            );
        }
        if !self.scopes.is_empty() {
            doc.insert("scopes_supported".into(), list(self.scopes));
        }
        doc.insert("bearer_methods_supported".into(), list(methods));
        if let Some(name) = self.resource_name {
            doc.insert("resource_name".into(), Value::String(name));
        }
        if let Some(d) = self.resource_documentation {
            doc.insert("resource_documentation".into(), Value::String(d));
        }
        if !self.dpop_signing_algs.is_empty() {
            doc.insert(
                "dpop_signing_alg_values_supported".into(),
                list(self.dpop_signing_algs),
            );
        }
        if self.dpop_bound_access_tokens_required {
            doc.insert(
                "dpop_bound_access_tokens_required".into(),
                Value::Bool(true),
            );
        }
        if self.tls_client_certificate_bound_access_tokens {
            let name = "tls_client_certificate_bound_access_tokens";
            doc.insert(name.into(), Value::Bool(true));
        }
        Value::Object(doc)
    }
}

fn invalid(field: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

/// `s` as an absolute `https` URL, or `http` to a loopback host.
fn url(field: &'static str, s: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = s
        .parse()
        .map_err(|_| invalid(field, &format!("`{s}` is not a URL")))?;
    let host = uri.host().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(uri),
        Some("http") if loopback => Ok(uri),
        _ => Err(invalid(
            field,
            &format!("`{s}` is not an https URL (http only to a loopback host)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(m: &ResourceMetadata) -> Value {
        serde_json::from_slice(m.document()).unwrap()
    }

    #[test]
    fn rfc9728_3_1_the_well_known_segment_goes_between_host_and_path() {
        for (resource, path, url) in [
            (
                "https://api.example.com",
                "/.well-known/oauth-protected-resource",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/",
                "/.well-known/oauth-protected-resource",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com:8443/v1/orders",
                "/.well-known/oauth-protected-resource/v1/orders",
                "https://api.example.com:8443/.well-known/oauth-protected-resource/v1/orders",
            ),
            (
                "http://127.0.0.1:3000/mcp",
                "/.well-known/oauth-protected-resource/mcp",
                "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp",
            ),
        ] {
            let m = ResourceMetadata::builder(resource).build().unwrap();
            assert_eq!((m.path(), m.url()), (path, url), "{resource}");
            // §3.3: the document names the resource exactly as it was given.
            assert_eq!(doc(&m)["resource"], resource);
        }
    }

    #[test]
    fn rfc9728_2_the_document_has_the_members_given_and_header_by_default() {
        let m = ResourceMetadata::builder("https://api.example.com/orders")
            .authorization_server("https://sso.example.com/realms/acme")
            .scopes(["orders:read"])
            .resource_name("Orders API")
            .resource_documentation("https://docs.example.com/orders")
            .build()
            .unwrap();
        assert_eq!(
            doc(&m),
            json!({
                "resource": "https://api.example.com/orders",
                "authorization_servers": ["https://sso.example.com/realms/acme"],
                "scopes_supported": ["orders:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Orders API",
                "resource_documentation": "https://docs.example.com/orders",
            })
        );
        // Only what was given: no empty lists.
        let bare = ResourceMetadata::builder("https://api.example.com")
            .build()
            .unwrap();
        assert_eq!(
            doc(&bare),
            json!({"resource": "https://api.example.com", "bearer_methods_supported": ["header"]})
        );
    }

    #[test]
    fn a_resource_that_is_not_an_https_identifier_is_a_startup_error() {
        for (resource, why) in [
            ("http://api.example.com/orders", "https"),
            ("api.example.com/orders", "URL"),
            ("https://api.example.com/orders?x=1", "query"),
            ("https://api.example.com/orders#top", "fragment"),
        ] {
            let err = ResourceMetadata::builder(resource).build().unwrap_err();
            assert!(err.to_string().contains(why), "{resource}: {err}");
            assert!(err.to_string().contains("resource"), "{resource}: {err}");
        }
        let err = ResourceMetadata::builder("https://api.example.com")
            .authorization_server("sso.example.com")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("authorization_servers"), "{err}");
        let err = ResourceMetadata::builder("https://api.example.com")
            .bearer_methods(["cookie"])
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("cookie"), "{err}");
    }

    #[test]
    fn rfc9728_5_1_bearer_challenges_name_the_document_and_others_do_not() {
        let m = ResourceMetadata::builder("https://api.example.com/orders")
            .build()
            .unwrap();
        let named = r#"resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/orders""#;
        let v = HeaderValue::from_static;
        assert_eq!(
            m.challenge(&v(r#"Bearer realm="api", error="invalid_token""#)),
            format!(r#"Bearer realm="api", error="invalid_token", {named}"#)
        );
        assert_eq!(m.challenge(&v("Bearer")), format!("Bearer {named}"));
        assert_eq!(
            m.challenge(&v(r#"ApiKey realm="api""#)),
            r#"ApiKey realm="api""#
        );
        // Named once, however often it passes.
        let once = m.challenge(&v(r#"Bearer realm="api""#));
        assert_eq!(m.challenge(&once), once);
    }

    #[test]
    fn only_get_and_head_on_the_path_are_answered() {
        let m = ResourceMetadata::builder("https://api.example.com/orders")
            .build()
            .unwrap();
        let path = m.path().to_owned();
        let get = m.answer(&Method::GET, &path).unwrap();
        assert_eq!(get.status(), StatusCode::OK);
        assert_eq!(get.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(get.body(), m.document());
        assert!(m.answer(&Method::HEAD, &path).unwrap().body().is_empty());
        assert!(m.answer(&Method::POST, &path).is_none());
        assert!(m.answer(&Method::GET, "/orders").is_none());
        assert!(m.answer(&Method::GET, &format!("{path}/x")).is_none());
    }

    #[cfg(feature = "config")]
    #[test]
    fn the_file_section_builds_the_same_metadata() {
        use crate::config::{Config, Format};
        let c = Config::parse(
            "resource_metadata:
  resource: https://api.example.com/orders
  authorization_servers: [https://sso.example.com/realms/acme]
  scopes: [orders:read]
  resource_name: Orders API
",
            Format::Yaml,
        )
        .unwrap();
        let from_file = c.resource_metadata.unwrap().build().unwrap();
        let in_code = ResourceMetadata::builder("https://api.example.com/orders")
            .authorization_server("https://sso.example.com/realms/acme")
            .scopes(["orders:read"])
            .resource_name("Orders API")
            .build()
            .unwrap();
        assert_eq!(from_file.document(), in_code.document());
        // A misspelt member is an error, not ignored.
        let err = Config::parse(
            "resource_metadata: {resource: https://api.example.com, scope: [a]}",
            Format::Yaml,
        )
        .unwrap_err();
        assert!(err.to_string().contains("scope"), "{err}");
    }
}
