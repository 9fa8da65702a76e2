//! Declarative configuration: one YAML, TOML or JSON file describes keys, trusted proxies,
//! roles, routes and quotas (and, as layers land, schemas and audit). Feature `config`.
//!
//! The format is documented in `docs/config.md`. Secrets never sit in the file: keys are stored
//! as hashes, and the optional hashing secret is read from an environment variable the file
//! names.
//!
//! # Example
//!
//! ```
//! use palisade::config::{Config, Format};
//!
//! let config = Config::parse(r#"
//! client_ip:
//!   trusted_proxies: ["10.0.0.0/8"]
//! api_keys:
//!   prefix: acme
//!   header: x-api-key
//! routes:
//!   - path: /v1/orders/{id}
//!     methods: [GET, DELETE]
//! "#, Format::Yaml)?;
//! let store = config.key_store()?;
//! let layer = config.palisade(store)?;
//! # let _ = layer;
//! # Ok::<(), palisade::ConfigError>(())
//! ```

use std::path::Path;

use serde::Deserialize;

use std::sync::Arc;

use crate::audit::AuditLayer;
use crate::authn::DynAuthenticator;
use crate::authn::api_key::KeyStore;
use crate::authz::Policy;
use crate::authz::{AuthzLayer, PolicySpec, RoleSpec, RuleSpec};
use crate::client_ip::ClientIpResolver;
use crate::error::ConfigError;
use crate::quota::{AnyQuotaStore, QuotaLayer};
use crate::route::RouteTable;
use crate::stack::PalisadeLayer;
use crate::validate::{ValidateLayer, ValidationConfig};

mod api_keys;
mod builder;
mod checks;
mod reload;

pub use api_keys::{ApiKeyConfig, PreviousHasherConfig};
pub use builder::ConfiguredBuilder;

#[cfg(feature = "introspection")]
pub use crate::authn::bearer_config::IntrospectionConfig;
#[cfg(feature = "jwt")]
pub use crate::authn::bearer_config::{
    DpopConfig, IssuerConfig, JwtConfig, JwtKeyConfig, SecretEncoding,
};
pub use crate::quota::config::{CostConfig, QuotaConfig, RedisConfig, RuleConfig, StoreConfig};
pub use crate::redis_spec::{RedisConnection, RedisMode};

/// The stack a configuration builds: every authenticator it configures in one chain,
/// authorization (with the host's [`Authorizer`](crate::authz::Authorizer), `()` for none), the two quota stages (which
/// admit everything when the configuration has no rules for them), validation, and audit
/// (which records nothing without an `audit` section).
pub type ConfiguredLayer<Az = ()> = PalisadeLayer<
    Arc<dyn DynAuthenticator>,
    AuthzLayer<Az>,
    QuotaLayer<AnyQuotaStore>,
    QuotaLayer<AnyQuotaStore>,
    ValidateLayer,
    AuditLayer,
>;

pub use crate::file::Format;

/// A whole configuration. Unknown fields are errors, so a typo never silently weakens a guard.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// How the client address is found: the proxies trusted and the header read.
    #[serde(default)]
    pub client_ip: ClientIpResolver,
    /// When plain HTTP is refused: by default, a credential over plain HTTP (403
    /// `insecure_transport`, before any lookup).
    #[serde(default)]
    pub transport: crate::transport::TransportPolicy,
    /// The security headers added to responses (on by default).
    #[serde(default)]
    pub response_headers: crate::transport::SecurityHeaders,
    /// API keys: format, where they are read from, and the stored records.
    #[serde(default)]
    pub api_keys: ApiKeyConfig,
    /// The roles of the authorization policy.
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
    /// The routes the service serves, and who may call them: the authorization policy's rules.
    #[serde(default)]
    pub routes: Vec<RuleSpec>,
    /// Rate limits and quotas.
    #[serde(default)]
    pub quota: QuotaConfig,
    /// Bearer JWTs: issuers, keys, audiences, claim mapping (feature `jwt`).
    #[cfg(feature = "jwt")]
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Opaque bearer tokens through RFC 7662 introspection (feature `introspection`).
    #[cfg(feature = "introspection")]
    #[serde(default)]
    pub introspection: Option<IntrospectionConfig>,
    /// The OAuth 2.0 Protected Resource Metadata (RFC 9728) served at its well-known path
    /// and named in `Bearer` challenges.
    #[serde(default)]
    pub resource_metadata: Option<crate::authn::ResourceMetadataBuilder>,
    /// Input validation: schemas, an OpenAPI document, rules per operation.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// The invalidation bus every instance shares (feature `redis`): revocations and policy
    /// changes published once, applied by every instance's caches.
    #[serde(default)]
    pub invalidation: Option<crate::invalidation::InvalidationConfig>,
    /// Audit: sinks, tamper evidence, redaction.
    #[serde(default)]
    pub audit: Option<crate::audit::AuditConfig>,
    /// Methods beyond the standard ones that `routes` may name (`PURGE`, `PROPFIND`...);
    /// any other unknown method, such as the typo `DELET`, stops startup.
    #[serde(default)]
    pub extension_methods: Vec<String>,
    /// Whether HEAD is decided by the GET rule when no rule lists HEAD (RFC 9110 §9.3.2);
    /// unset: `true`. See [`PolicySpec::head_as_get`].
    #[serde(default)]
    pub head_as_get: Option<bool>,
    /// Answer unknown paths and unserved methods with 403 instead of 404 and 405 (default
    /// `false`). See [`PolicySpec::hide_routes`].
    #[serde(default)]
    pub hide_routes: bool,
    /// The directory of the file the configuration was read from (relative paths in it are
    /// read from there).
    #[serde(skip)]
    pub base_dir: Option<std::path::PathBuf>,
    /// The file the configuration was read from, named in every startup error.
    #[serde(skip)]
    pub path: Option<std::path::PathBuf>,
}

impl Config {
    /// Reads a configuration file; the format comes from the extension.
    ///
    /// # Errors
    ///
    /// [`ConfigError::File`] when the file cannot be read, has an unknown extension, or does not
    /// parse (the message names the line and column).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file_error = |message: String| ConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let format = Format::from_path(path)
            .ok_or_else(|| file_error("use a .yaml, .yml, .toml or .json file".into()))?;
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let mut config = Self::parse(&text, format).map_err(|e| match e {
            ConfigError::File { message, .. } => file_error(message),
            other => other,
        })?;
        config.base_dir = path.parent().map(Path::to_path_buf);
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses a configuration from text.
    ///
    /// # Errors
    ///
    /// [`ConfigError::File`] (with path `<text>`) when it does not parse.
    pub fn parse(text: &str, format: Format) -> Result<Self, ConfigError> {
        format.parse(text).map_err(|message| ConfigError::File {
            path: "<text>".into(),
            message,
        })
    }

    /// The client address resolver.
    #[must_use]
    pub fn client_ip(&self) -> ClientIpResolver {
        self.client_ip.clone()
    }

    /// The declared route templates as a table (prefix wildcards such as `/admin/*` are rules,
    /// not routes, and are left out).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Route`] for an invalid or conflicting template.
    pub fn route_table(&self) -> Result<RouteTable, ConfigError> {
        let mut table = RouteTable::new();
        for r in self.routes.iter().filter(|r| !r.path.ends_with("/*")) {
            table = table.with_route(&r.path)?;
        }
        Ok(table)
    }

    /// The authorization policy: the `roles` and `routes` sections.
    #[must_use]
    pub fn policy_spec(&self) -> PolicySpec {
        let mut spec = PolicySpec::default();
        spec.roles.clone_from(&self.roles);
        spec.routes.clone_from(&self.routes);
        spec.extension_methods.clone_from(&self.extension_methods);
        spec.head_as_get = self.head_as_get.unwrap_or(true);
        spec.hide_routes = self.hide_routes;
        spec
    }

    /// The compiled authorization policy.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Policy`] or [`ConfigError::Route`], as [`Policy::compile`].
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        Policy::compile(&self.policy_spec())
    }

    /// The whole palisade stack of this configuration, with keys looked up in `store`: as
    /// [`builder`](Self::builder)`.key_store(store).build()`.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`] of the parts.
    ///
    /// Authorization is always on: only what `routes` grants is allowed (each route is open to
    /// any authenticated caller unless it names roles or scopes, or is `public`), and every
    /// other request is refused.
    ///
    /// A Redis quota store and an audit queue must be built inside a tokio runtime.
    pub fn palisade<S: KeyStore>(&self, store: S) -> Result<ConfiguredLayer, ConfigError> {
        self.builder().key_store(store).build()
    }

    /// The stack of this configuration, open for the host's own parts before
    /// [`build`](ConfiguredBuilder::build): a key store, more authenticators, an
    /// [`Authorizer`](crate::authz::Authorizer), a live policy (reloaded from the host's [`PolicySource`]), a quota store,
    /// audit sinks.
    ///
    /// ```no_run
    /// # async fn f(config: palisade::config::Config) -> Result<(), Box<dyn std::error::Error>> {
    /// use palisade::audit::TracingSink;
    /// use palisade::authz::LivePolicy;
    ///
    /// let policy = LivePolicy::from_spec(&config.policy_spec())?;
    /// let guard = config
    ///     .builder()
    ///     .policy(policy)
    ///     .audit_sink(TracingSink)
    ///     .build()?;
    /// // Later: reload the policy through the handle the stack returns.
    /// let live = guard.handles().policy().expect("authorization is always on");
    /// live.replace(&config.policy_spec())?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`PolicySource`]: crate::authz::PolicySource
    pub fn builder(&self) -> ConfiguredBuilder<'_> {
        ConfiguredBuilder::new(self)
    }

    /// Whether the file has an `introspection` section (tokens that are not JWTs go on to it).
    #[cfg(feature = "jwt")]
    fn has_introspection(&self) -> bool {
        #[cfg(feature = "introspection")]
        return self.introspection.is_some();
        #[cfg(not(feature = "introspection"))]
        false
    }

    /// `error`, naming this configuration's file when it was read from one.
    pub(crate) fn in_file(&self, error: ConfigError) -> ConfigError {
        match (&self.path, error) {
            (_, e @ (ConfigError::File { .. } | ConfigError::InFile { .. })) => e,
            (Some(path), e) => ConfigError::InFile {
                path: path.display().to_string(),
                error: Box::new(e),
            },
            (None, e) => e,
        }
    }

    /// The audit layer of the `audit` section (and the handle to flush it at shutdown), or
    /// `None` without one. It goes outermost: `router.layer(palisade).layer(audit)`. Must be
    /// called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`AuditConfig::layer`](crate::audit::AuditConfig::layer).
    pub fn audit(
        &self,
    ) -> Result<Option<(crate::audit::AuditLayer, crate::audit::AuditHandle)>, ConfigError> {
        let Some(audit) = &self.audit else {
            return Ok(None);
        };
        audit
            .layer(
                self.client_ip(),
                self.api_keys.header.as_deref(),
                self.base_dir.as_deref(),
            )
            .map(Some)
    }

    /// The validation layer of the `validation` section. With an OpenAPI document, a route of
    /// the `routes` section that the document does not describe is an error (validation could
    /// not apply to it), and an operation of the document that no route grants is logged.
    ///
    /// # Errors
    ///
    /// As [`ValidationConfig::layer`], and routes missing from the OpenAPI document.
    pub fn validate_layer(&self) -> Result<ValidateLayer, ConfigError> {
        #[cfg(feature = "openapi")]
        if let Some(api) = self.validation.openapi(self.base_dir.as_deref())? {
            let routed: Vec<crate::Route> = self
                .routes
                .iter()
                .filter(|r| !r.path.ends_with("/*"))
                .flat_map(|r| match &r.methods {
                    crate::authz::Methods::Some(ms) => ms
                        .iter()
                        .map(|m| crate::Route::new(m.clone(), r.path.as_str()))
                        .collect::<Vec<_>>(),
                    crate::authz::Methods::Any => Vec::new(),
                })
                .collect();
            let documented = api.operations();
            let key = |r: &crate::Route| format!("{} {}", r.method(), r.template());
            let undocumented: Vec<String> = routed
                .iter()
                .filter(|r| !documented.iter().any(|d| key(d) == key(r)))
                .map(key)
                .collect();
            if !undocumented.is_empty() {
                return Err(ConfigError::Route {
                    template: undocumented[0].clone(),
                    message: format!(
                        "routes not described by the OpenAPI document: {}",
                        undocumented.join(", ")
                    ),
                });
            }
            for d in documented
                .iter()
                .filter(|d| !routed.iter().any(|r| key(r) == key(d)))
            {
                tracing::warn!(operation = %d, "an OpenAPI operation that no route grants (it is refused by authorization)");
            }
        }
        self.validation.layer(self.base_dir.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::api_key::MemoryKeyStore;

    const HASH: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn the_same_config_reads_from_yaml_toml_and_json() {
        let yaml = format!(
            "client_ip:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.1]\n  header: forwarded\n\
             api_keys:\n  prefix: acme\n  keys:\n    - id: aaaaaaaaaaaaaaaa\n      hash: {HASH}\n      subject: alice\n      expires_at: 2030-01-01T00:00:00Z\n\
             routes:\n  - path: /v1/orders/{{id}}\n    methods: [get, DELETE]\n"
        );
        let toml = format!(
            "[client_ip]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\nheader = \"forwarded\"\n\
             [api_keys]\nprefix = \"acme\"\n[[api_keys.keys]]\nid = \"aaaaaaaaaaaaaaaa\"\nhash = \"{HASH}\"\nsubject = \"alice\"\nexpires_at = \"2030-01-01T00:00:00Z\"\n\
             [[routes]]\npath = \"/v1/orders/{{id}}\"\nmethods = [\"get\", \"DELETE\"]\n"
        );
        let json = format!(
            r#"{{"client_ip": {{"trusted_proxies": ["10.0.0.0/8", "192.0.2.1"], "header": "forwarded"}},
              "api_keys": {{"prefix": "acme", "keys": [{{"id": "aaaaaaaaaaaaaaaa", "hash": "{HASH}", "subject": "alice", "expires_at": "2030-01-01T00:00:00Z"}}]}},
              "routes": [{{"path": "/v1/orders/{{id}}", "methods": ["get", "DELETE"]}}]}}"#
        );
        for (text, format) in [
            (yaml, Format::Yaml),
            (toml, Format::Toml),
            (json, Format::Json),
        ] {
            let c = Config::parse(&text, format).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(c.client_ip.trusted_proxies().len(), 2);
            assert_eq!(
                c.client_ip.header(),
                crate::client_ip::ForwardedHeader::Forwarded
            );
            assert_eq!(c.api_keys.prefix, "acme");
            assert_eq!(c.api_keys.keys[0].principal().subject(), "alice");
            assert_eq!(
                c.routes[0].methods,
                crate::authz::Methods::Some(vec![http::Method::GET, http::Method::DELETE])
            );
            assert_eq!(c.key_store().unwrap().len(), 1);
            assert_eq!(c.route_table().unwrap().len(), 1);
            c.palisade(c.key_store().unwrap()).unwrap();
        }
    }

    #[test]
    fn unknown_fields_are_errors_with_a_location() {
        let err = Config::parse("api_keys:\n  prefx: acme\n", Format::Yaml).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("prefx") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn plaintext_secrets_in_key_records_are_refused() {
        let text = format!(
            "api_keys:\n  keys:\n    - id: aaaaaaaaaaaaaaaa\n      hash: {HASH}\n      subject: a\n      key: pal_secret\n"
        );
        assert!(Config::parse(&text, Format::Yaml).is_err());
    }

    #[test]
    fn duplicate_key_ids_and_routes_are_refused() {
        let text = format!(
            "api_keys:\n  keys:\n    - {{id: aaaaaaaaaaaaaaaa, hash: {HASH}, subject: a}}\n    - {{id: aaaaaaaaaaaaaaaa, hash: {HASH}, subject: b}}\n"
        );
        let c = Config::parse(&text, Format::Yaml).unwrap();
        assert!(matches!(c.key_store(), Err(ConfigError::KeyRecord { .. })));
        let c = Config::parse(
            "routes:\n  - {path: /a, methods: [GET]}\n  - {path: /a, methods: [get]}\n",
            Format::Yaml,
        )
        .unwrap();
        assert!(matches!(c.policy(), Err(ConfigError::Policy { .. })));
    }

    #[test]
    fn head_as_get_and_hide_routes_reach_the_policy() {
        let c = Config::parse("routes: [{path: /a}]", Format::Yaml).unwrap();
        let p = c.policy().unwrap();
        assert!(p.head_as_get() && !p.hides_routes(), "the defaults");
        let c = Config::parse(
            "head_as_get: false\nhide_routes: true\nroutes: [{path: /a}]\n",
            Format::Yaml,
        )
        .unwrap();
        let p = c.policy().unwrap();
        assert!(!p.head_as_get() && p.hides_routes());
        // A standalone policy file (the policy's own form) takes them too.
        let spec: PolicySpec = serde_yaml_ng::from_str("head_as_get: false\nroutes: []").unwrap();
        assert!(!spec.head_as_get && !spec.hide_routes);
    }

    #[test]
    fn bad_values_are_refused_at_load() {
        assert!(Config::parse("routes: [{path: /a, methods: [\"GE T\"]}]", Format::Yaml).is_err());
        assert!(Config::parse("client_ip: {trusted_proxies: [nope]}", Format::Yaml).is_err());
        let c = Config::parse("api_keys: {prefix: Bad}", Format::Yaml).unwrap();
        assert!(matches!(c.api_keys(), Err(ConfigError::KeyPrefix { .. })));
        let c = Config::parse("api_keys: {header: \"bad header\"}", Format::Yaml).unwrap();
        assert!(matches!(
            c.authenticator(MemoryKeyStore::new()),
            Err(ConfigError::Invalid {
                field: "api_keys.header",
                ..
            })
        ));
        let c = Config::parse(
            "api_keys: {header: null, authorization_scheme: false}",
            Format::Yaml,
        )
        .unwrap();
        assert!(matches!(
            c.authenticator(MemoryKeyStore::new()),
            Err(ConfigError::Invalid {
                field: "api_keys",
                ..
            })
        ));
        let c = Config::parse(
            "api_keys: {pepper_env: PALISADE_TEST_SURELY_UNSET_VARIABLE}",
            Format::Yaml,
        )
        .unwrap();
        assert!(matches!(c.api_keys(), Err(ConfigError::Env { .. })));
    }

    const QUOTA: &str = r#"
routes:
  - {path: /v1/search, methods: [GET]}
  - {path: /v1/login, methods: [POST], public: true}
quota:
  store: {type: memory, max_keys: 1000}
  headers: {legacy: true}
  policies:
    ip: [{rate: 20, per: 1s, burst: 40}]
    auth-failures: [{quota: 10, window: 15m}]
    free: [{rate: 5, per: 1s}, {quota: 10000, window: day}]
    pro: [{rate: 50, per: 1s, name: pro-burst}, {quota: 1000000, window: month}]
  clients:
    - {key: client_ip, policy: ip, ipv6_prefix: 56, exempt: [10.0.0.0/8, 192.0.2.7]}
    - {key: client_ip, policy: auth-failures, count: failed-authentication}
    - {key: client_ip, policy: auth-failures, routes: [/v1/login]}
  principals:
    - {key: subject, policy: free, tiers: {pro: pro}, tier_by: tier}
  costs:
    - {path: /v1/search, cost: 3}
"#;

    #[test]
    fn the_quota_section_builds_both_stages() {
        let c = Config::parse(QUOTA, Format::Yaml).unwrap();
        let policies = c.quota.policies().unwrap();
        assert_eq!(policies.len(), 4);
        assert_eq!(
            policies["pro"].header(),
            r#""pro-burst";q=50;w=1, "pro-month";q=1000000;w=2678400"#
        );
        let stages = c.quota.stages(None).unwrap();
        assert!(!stages.clients.needs_principal());
        assert!(stages.principals.needs_principal());
        c.palisade(c.key_store().unwrap()).unwrap();
    }

    #[test]
    fn the_reference_in_docs_config_md_parses() {
        let doc = include_str!("../docs/config.md");
        let yaml = doc
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a yaml block in docs/config.md");
        let c = Config::parse(yaml, Format::Yaml).unwrap();
        assert!(matches!(c.quota.store, StoreConfig::Redis(_)));
        assert_eq!(c.quota.policies().unwrap().len(), 6);
        c.policy().unwrap();
        // Everything but the Redis connection builds (its URL variable is not set here).
        let mut c = c;
        c.quota.store = StoreConfig::default();
        c.quota.stages(None).unwrap();
        // And the whole stack, with the startup checks (every cost and quota route declared).
        c.palisade(MemoryKeyStore::new()).unwrap();
    }

    #[test]
    fn quota_mistakes_are_refused_at_load() {
        let load = |yaml: &str| {
            Config::parse(yaml, Format::Yaml).and_then(|c| c.quota.stages(None).map(|_| ()))
        };
        // A typo in a limit, an unknown window, an unknown policy, a principal key before
        // authentication, a cost no policy admits, a rate of zero.
        for bad in [
            "quota: {policies: {p: [{rate: 5, per: 1s, brust: 9}]}}",
            "quota: {policies: {p: [{quota: 5, window: fortnight}]}}",
            "quota: {policies: {p: [{rate: 5, per: 1s}]}, clients: [{key: client_ip, policy: q}]}",
            "quota: {policies: {p: [{rate: 5, per: 1s}]}, clients: [{key: subject, policy: p}]}",
            "quota: {policies: {p: [{rate: 2, per: 1s}]}, principals: [{key: subject, policy: p}], costs: [{path: /a, cost: 3}]}",
            "quota: {policies: {p: [{rate: 0, per: 1s}]}}",
            "quota: {store: {type: memory, max_kyes: 5}}",
            "quota: {store: {type: redis, url_env: PALISADE_TEST_SURELY_UNSET_VARIABLE}}",
        ] {
            assert!(load(bad).is_err(), "accepted: {bad}");
        }
        assert!(load("quota: {}").is_ok());
        // The builders' own types, read from the file, name what they expected.
        let p = "quota: {policies: {p: [{rate: 5, per: 1s}]}, ";
        for (bad, says) in [
            (
                "clients: [{key: client_address, policy: p}]}",
                "`client_address` is not a key",
            ),
            (
                "clients: [{key: client_ip, policy: p, count: failures}]}",
                "`failures` is not a counting",
            ),
            (
                "principals: [{key: subject, policy: p, ipv6_prefix: 56}]}",
                "apply to `key: client_ip` only",
            ),
            (
                "store: {type: redis, url_env: X, on_outage: local}}",
                "needs the number of instances",
            ),
            (
                "store: {type: redis, url_env: X, on_outage: fail-later}}",
                "`fail-later` is not an outage policy",
            ),
        ] {
            let err = load(&format!("{p}{bad}")).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let c = Config::parse(
            &format!("{p}clients: [{{key: client_ip, policy: p, count: failed-authentication}}], store: {{type: redis, url_env: X, on_outage: {{local: {{instances: 4}}}}}}}}"),
            Format::Yaml,
        )
        .unwrap();
        assert!(matches!(
            c.quota.clients[0].count,
            crate::quota::Counting::Responses(_)
        ));
        assert!(matches!(
            c.quota.store,
            crate::config::StoreConfig::Redis(ref r) if r.on_outage == crate::quota::OnOutage::Local { instances: 4 }
        ));
    }

    #[test]
    fn file_format_comes_from_the_extension() {
        assert_eq!(Format::from_path(Path::new("a.YML")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("a.toml")), Some(Format::Toml));
        assert_eq!(Format::from_path(Path::new("a.ini")), None);
        assert!(matches!(
            Config::from_path("/nonexistent/palisade.yaml"),
            Err(ConfigError::File { .. })
        ));
    }
}
