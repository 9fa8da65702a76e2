//! [`ConfiguredBuilder`]: the stack a configuration describes, open for the host's own parts
//! until `build()`.

use http::HeaderName;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditLayer, AuditSink, DynAuditSink};
use crate::authn::api_key::{DynKeyStore, KeyStore};
use crate::authn::{Authenticator, Chain, DynAuthenticator};
use crate::authz::Authorizer;
use crate::authz::{AuthzLayer, LivePolicy, Policy};
use crate::error::ConfigError;
use crate::invalidation::{DynInvalidationBus, InvalidationBus};
use crate::quota::{AnyQuotaStore, QuotaStore};
use crate::rejection::RefusalFormat;
use crate::route::RouteTable;
use crate::stack::Palisade;

use super::{Config, ConfiguredLayer};

/// Audit to the host's own sinks alone (no `audit` section), with the API-key header hidden.
fn host_audit(
    sinks: Vec<Arc<dyn DynAuditSink>>,
    api_key_header: Option<&str>,
) -> Result<crate::audit::AuditBuilder<Arc<dyn DynAuditSink>>, ConfigError> {
    let fan_out = sinks
        .into_iter()
        .fold(crate::audit::FanOut::new(), crate::audit::FanOut::with);
    let sink: Arc<dyn DynAuditSink> = Arc::new(fan_out);
    let mut b = AuditLayer::builder(sink);
    if let Some(name) = api_key_header {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
            ConfigError::Invalid {
                field: "api_keys.header",
                message: format!("`{name}` is not a valid header name"),
            }
        })?;
        b = b.redact_header(name);
    }
    Ok(b)
}

/// The authenticators of the file, in the order they are tried: API keys (unless
/// `api_keys.enabled` is false), each JWT issuer, introspection. With both `jwt` and
/// `introspection`, tokens that are not JWTs go on to introspection. The JWT and
/// introspection authenticators honour the token revocations published on `bus`.
fn authenticators(
    c: &Config,
    store: Arc<dyn DynKeyStore>,
    bus: Option<&Arc<dyn DynInvalidationBus>>,
) -> Result<Vec<Arc<dyn DynAuthenticator>>, ConfigError> {
    let mut chain: Vec<Arc<dyn DynAuthenticator>> = Vec::new();
    #[cfg(not(any(feature = "jwt", feature = "introspection")))]
    let _ = bus;
    if c.api_keys.enabled {
        chain.push(Arc::new(c.authenticator(store)?));
    }
    #[cfg(feature = "jwt")]
    if let Some(jwt) = &c.jwt {
        let mut jwt = jwt.clone();
        jwt.pass_opaque_tokens |= c.has_introspection();
        let mut b = jwt.builder(c.base_dir.as_deref())?;
        if let Some(bus) = bus {
            b = b.invalidation(bus);
        }
        chain.push(Arc::new(b.build()?));
    }
    #[cfg(feature = "introspection")]
    if let Some(introspection) = &c.introspection {
        let mut b = introspection.builder(c.base_dir.as_deref())?;
        if let Some(bus) = bus {
            b = b.invalidation(bus);
        }
        chain.push(Arc::new(b.build()?));
    }
    Ok(chain)
}

/// The stack of a configuration, open for the host's own parts: see [`Config::builder`].
#[must_use]
pub struct ConfiguredBuilder<'c, Az = ()> {
    config: &'c Config,
    key_store: Option<Arc<dyn DynKeyStore>>,
    authenticators: Vec<Arc<dyn DynAuthenticator>>,
    authorizer: Az,
    authorizer_timeout: Option<Duration>,
    policy: Option<LivePolicy>,
    shadow: Option<LivePolicy>,
    quota_store: Option<AnyQuotaStore>,
    quota_stores: Vec<(String, AnyQuotaStore)>,
    audit_sinks: Vec<Arc<dyn DynAuditSink>>,
    format: Option<Arc<dyn RefusalFormat>>,
    routes: Option<RouteTable>,
    bus: Option<Arc<dyn DynInvalidationBus>>,
}

impl<Az> std::fmt::Debug for ConfiguredBuilder<'_, Az> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredBuilder")
            .field("own_key_store", &self.key_store.is_some())
            .field("authenticators", &self.authenticators.len())
            .field("authorizer", &std::any::type_name::<Az>())
            .field("own_policy", &self.policy.is_some())
            .field("own_quota_store", &self.quota_store.is_some())
            .field("audit_sinks", &self.audit_sinks.len())
            .finish_non_exhaustive()
    }
}

impl<'c> ConfiguredBuilder<'c> {
    pub(super) fn new(config: &'c Config) -> Self {
        ConfiguredBuilder {
            config,
            key_store: None,
            authenticators: Vec::new(),
            authorizer: (),
            authorizer_timeout: None,
            policy: None,
            shadow: None,
            quota_store: None,
            quota_stores: Vec::new(),
            audit_sinks: Vec::new(),
            format: None,
            routes: None,
            bus: None,
        }
    }
}

impl<'c, Az> ConfiguredBuilder<'c, Az> {
    /// Looks API keys up in `store` instead of the file's `api_keys.keys`.
    pub fn key_store(mut self, store: impl KeyStore) -> Self {
        self.key_store = Some(Arc::new(store));
        self
    }

    /// Tries `authenticator` after the file's own (API keys, JWT, introspection).
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticators.push(Arc::new(authenticator));
        self
    }

    /// Asks `authorizer` after the RBAC policy allowed a request (ownership, tenancy...).
    pub fn authorizer<Az2: Authorizer>(self, authorizer: Az2) -> ConfiguredBuilder<'c, Az2> {
        ConfiguredBuilder {
            config: self.config,
            key_store: self.key_store,
            authenticators: self.authenticators,
            authorizer,
            authorizer_timeout: self.authorizer_timeout,
            policy: self.policy,
            shadow: self.shadow,
            quota_store: self.quota_store,
            quota_stores: self.quota_stores,
            audit_sinks: self.audit_sinks,
            format: self.format,
            routes: self.routes,
            bus: self.bus,
        }
    }

    /// Bounds each call to the authorizer (default one second); past it the request is
    /// refused with 503 and `Retry-After` (see [`AuthzLayer::with_authorizer_timeout`]).
    pub fn authorizer_timeout(mut self, timeout: Duration) -> Self {
        self.authorizer_timeout = Some(timeout);
        self
    }

    /// Enforces `policy` instead of the file's `roles` and `routes` (for instance one loaded
    /// from the host's [`PolicySource`](crate::authz::PolicySource) with
    /// [`LivePolicy::from_source`], and reloaded through [`Handles::policy`]).
    ///
    /// [`Handles::policy`]: crate::Handles::policy
    pub fn policy(mut self, policy: LivePolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Evaluates `candidate` beside the enforced policy without enforcing it; disagreements
    /// are logged and recorded in audit events.
    pub fn shadow_policy(mut self, candidate: LivePolicy) -> Self {
        self.shadow = Some(candidate);
        self
    }

    /// Counts quotas in `store` instead of the `quota.store` the file names.
    pub fn quota_store(mut self, store: impl QuotaStore) -> Self {
        self.quota_store = Some(AnyQuotaStore::Custom(Arc::new(store)));
        self
    }

    /// Gives the store named `name`, which rules choose with `store: <name>`, instead of (or
    /// without) an entry `name` in the file's `quota.stores`. A name no rule chooses stops
    /// `build()`.
    pub fn named_quota_store(mut self, name: impl Into<String>, store: impl QuotaStore) -> Self {
        self.quota_stores
            .push((name.into(), AnyQuotaStore::Custom(Arc::new(store))));
        self
    }

    /// The routes the host serves, resolved once per request for every layer when the router
    /// does not name the matched route (see
    /// [`PalisadeBuilder::routes`](crate::PalisadeBuilder::routes));
    /// [`Config::route_table`] gives the file's.
    pub fn routes(mut self, routes: RouteTable) -> Self {
        self.routes = Some(routes);
        self
    }

    /// Writes every refusal's body with `format` instead of problem details (see
    /// [`RefusalFormat`]).
    pub fn refusal_format(mut self, format: impl RefusalFormat) -> Self {
        self.format = Some(Arc::new(format));
        self
    }

    /// Uses `bus` instead of the file's `invalidation` section: the file's JWT and
    /// introspection authenticators honour the token revocations published on it, and the
    /// built layer's [`Handles::invalidation`](crate::Handles::invalidation) publishes on it.
    /// A host's own key store or policy listens where the host builds it
    /// ([`CachedKeyStore`](crate::authn::api_key::CachedKeyStore),
    /// [`LivePolicy::watch_with_bus`]).
    pub fn invalidation(mut self, bus: impl InvalidationBus) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// Writes audit events to `sink` too (besides the `audit` section's sink; with no such
    /// section, to `sink` alone).
    pub fn audit_sink(mut self, sink: impl AuditSink) -> Self {
        self.audit_sinks.push(Arc::new(sink));
        self
    }
}

impl<Az: Authorizer> ConfiguredBuilder<'_, Az> {
    /// Builds the stack; [`PalisadeLayer::handles`](crate::stack::PalisadeLayer::handles) returns the audit queue and the live
    /// policies. Must run inside a tokio runtime when the stack audits or counts in Redis.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`] of the file's sections, or no authenticator at all.
    pub fn build(self) -> Result<ConfiguredLayer<Az>, ConfigError> {
        let c = self.config;
        self.build_stack().map_err(|e| c.in_file(e))
    }

    fn build_stack(self) -> Result<ConfiguredLayer<Az>, ConfigError> {
        let c = self.config;
        c.route_table()?;
        let validate = c.validate_layer()?;
        let bus = match self.bus {
            Some(bus) => Some(bus),
            None => c
                .invalidation
                .as_ref()
                .map(|i| i.bus_in(c.base_dir.as_deref()))
                .transpose()?,
        };
        let store = key_store(c, self.key_store, bus.as_ref())?;
        let chain = authenticators(c, store, bus.as_ref())?
            .into_iter()
            .chain(self.authenticators)
            .reduce(|a, b| Arc::new(Chain::new(a, b)) as Arc<dyn DynAuthenticator>)
            .ok_or(ConfigError::NoKeySource)?;
        let policy = match self.policy {
            Some(policy) => policy,
            None => file_policy(c, bus.as_ref())?,
        };
        c.check_routes(&policy.current())?;
        let mut authz = AuthzLayer::new(policy).with_authorizer(self.authorizer);
        if let Some(timeout) = self.authorizer_timeout {
            authz = authz.with_authorizer_timeout(timeout);
        }
        if let Some(shadow) = self.shadow {
            authz = authz.with_shadow(shadow);
        }
        let quotas =
            c.quota
                .stages_with(c.base_dir.as_deref(), self.quota_store, self.quota_stores)?;
        if (c.audit.is_some() || !self.audit_sinks.is_empty())
            && tokio::runtime::Handle::try_current().is_err()
        {
            // Checked before a sink's file is created: a failed start leaves no empty log.
            return Err(ConfigError::Invalid {
                field: "audit",
                message: "the audit queue's task needs a tokio runtime: build the stack inside \
                          one"
                .into(),
            });
        }
        let audit = match &c.audit {
            Some(section) => Some(section.builder(
                c.api_keys.header.as_deref(),
                c.base_dir.as_deref(),
                self.audit_sinks,
            )?),
            None if self.audit_sinks.is_empty() => None,
            None => Some(host_audit(self.audit_sinks, c.api_keys.header.as_deref())?),
        };
        let mut stack = Palisade::builder()
            .with_client_ip(c.client_ip())
            .transport(c.transport.clone())
            .response_headers(c.response_headers.clone())
            .limit_clients(quotas.clients)
            .authenticate(chain)
            .limit_principals(quotas.principals)
            .authorize(authz)
            .validate(validate)
            .audit(audit);
        if let Some(routes) = self.routes {
            stack = stack.routes(routes);
        }
        if let Some(bus) = bus {
            stack = stack.invalidation(bus);
        }
        if let Some(format) = self.format {
            stack = stack.refusal_format(format);
        }
        if let Some(metadata) = &c.resource_metadata {
            stack = stack.resource_metadata(metadata_of(c, metadata.clone()).build()?);
        }
        stack.build()
    }
}

/// The host's key store, or the file's keys, behind the `api_keys.cache` section's cache.
fn key_store(
    c: &super::Config,
    host: Option<Arc<dyn DynKeyStore>>,
    bus: Option<&Arc<dyn DynInvalidationBus>>,
) -> Result<Arc<dyn DynKeyStore>, ConfigError> {
    let store: Arc<dyn DynKeyStore> = match host {
        Some(store) => store,
        None => Arc::new(c.key_store()?),
    };
    Ok(match &c.api_keys.cache {
        Some(_) if !c.api_keys.enabled => {
            return Err(ConfigError::Invalid {
                field: "api_keys.cache",
                message: "API keys are off (`enabled: false`): nothing would be cached".into(),
            });
        }
        Some(cache) => Arc::new(cache.wrap(store, bus)),
        None => store,
    })
}

/// How often the file's own policy is read again when no `PolicyChanged` comes (while the bus
/// is down: every safe lifetime of the bus).
const FILE_POLICY_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// The file's `roles` and `routes`, in force. With an invalidation bus and a file to read
/// again, `PolicyChanged` (and a reconnection of the bus) reloads them from the file, for as
/// long as the stack is in use.
fn file_policy(
    c: &super::Config,
    bus: Option<&Arc<dyn DynInvalidationBus>>,
) -> Result<LivePolicy, ConfigError> {
    let spec = c.policy_spec();
    let policy = LivePolicy::new(Policy::compile(&spec)?);
    if let (Some(bus), Some(path)) = (bus, &c.path) {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::Invalid {
                field: "invalidation",
                message: "reloading `roles` and `routes` on a policy change needs a tokio \
                          runtime: build the stack inside one"
                    .into(),
            });
        }
        let source = super::reload::FilePolicy::new(path.clone());
        policy
            .follow_with_bus(source, spec, FILE_POLICY_EVERY, bus)
            .detach();
    }
    Ok(policy)
}

/// The `resource_metadata` section, completed from the rest of the file where it is silent
/// (RFC 9728 §2): the issuers of the `jwt` and `introspection` sections, the DPoP proof
/// algorithms and whether bound tokens are required, and certificate-bound tokens when a
/// client certificate header is configured.
fn metadata_of(
    c: &super::Config,
    mut m: crate::authn::ResourceMetadataBuilder,
) -> crate::authn::ResourceMetadataBuilder {
    let mut dpop = Vec::new();
    // Only when the section names no issuer itself.
    let servers = m.authorization_servers.is_empty();
    #[cfg(feature = "jwt")]
    if let Some(jwt) = &c.jwt {
        if servers {
            let issuers = jwt.issuers.iter().map(|i| i.issuer.clone());
            m.authorization_servers.extend(issuers);
        }
        dpop.extend(jwt.dpop.iter());
    }
    #[cfg(feature = "introspection")]
    if let Some(i) = &c.introspection {
        if let Some(iss) = i.issuer.as_ref().filter(|_| servers) {
            m.authorization_servers.push(iss.clone());
        }
        #[cfg(feature = "jwt")]
        dpop.extend(i.dpop.iter());
    }
    #[cfg(feature = "jwt")]
    for d in dpop {
        if m.dpop_signing_algs.is_empty() {
            m.dpop_signing_algs = d.algorithm_names();
        }
        m.dpop_bound_access_tokens_required |= d.require_bound_tokens;
    }
    #[cfg(not(feature = "jwt"))]
    let _: (&mut Vec<()>, bool) = (&mut dpop, servers);
    m.tls_client_certificate_bound_access_tokens |= c.client_ip.client_cert_header().is_some();
    m
}

#[cfg(all(test, feature = "jwt", feature = "introspection"))]
mod tests {
    use serde_json::Value;

    use crate::config::{Config, Format};

    #[test]
    fn rfc9728_2_the_metadata_names_what_the_file_configures() {
        let yaml = "
client_ip: {trusted_proxies: [10.0.0.1], client_cert_header: {pem: x-client-cert}}
jwt:
  issuers: [{issuer: 'https://sso.example.com', jwks_url: 'https://sso.example.com/certs', audiences: [a]}]
  dpop: {public_origin: 'https://api.example.com', algorithms: [ES256, EdDSA], require_bound_tokens: true}
introspection: {url: 'https://idp.example.com/introspect', client_id: c, issuer: 'https://idp.example.com'}
resource_metadata: {resource: 'https://api.example.com'}
";
        let c = Config::parse(yaml, Format::Yaml).unwrap();
        let m = super::metadata_of(&c, c.resource_metadata.clone().unwrap())
            .build()
            .unwrap();
        let doc: Value = serde_json::from_slice(m.document()).unwrap();
        assert_eq!(
            doc["authorization_servers"],
            serde_json::json!(["https://sso.example.com", "https://idp.example.com"])
        );
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            serde_json::json!(["ES256", "EdDSA"])
        );
        assert_eq!(doc["dpop_bound_access_tokens_required"], true);
        assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
        // What the section says itself is kept.
        let own = yaml.replace(
            "resource: 'https://api.example.com'",
            "resource: 'https://api.example.com', authorization_servers: ['https://other.example.com'], dpop_signing_algs: [PS256]",
        );
        let c = Config::parse(&own, Format::Yaml).unwrap();
        let m = super::metadata_of(&c, c.resource_metadata.clone().unwrap())
            .build()
            .unwrap();
        let doc: Value = serde_json::from_slice(m.document()).unwrap();
        assert_eq!(
            doc["authorization_servers"],
            serde_json::json!(["https://other.example.com"])
        );
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            serde_json::json!(["PS256"])
        );
    }
}
