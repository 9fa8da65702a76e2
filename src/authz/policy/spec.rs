//! The written form of a policy: [`PolicySpec`], its roles and rules, and [`PolicyBuilder`].

use http::Method;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ConfigError;

use super::Policy;

/// A role: a name and the roles whose permissions it inherits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RoleSpec {
    /// The role's name.
    pub name: String,
    /// Roles whose permissions this role also has (`admin` inherits `editor`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
}

/// The methods a rule covers: some, or all (`"*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Methods {
    /// Every method.
    Any,
    /// These methods.
    Some(Vec<Method>),
}

impl Default for Methods {
    fn default() -> Self {
        Self::Some(vec![Method::GET])
    }
}

impl Serialize for Methods {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Any => ["*"].serialize(s),
            Self::Some(m) => s.collect_seq(m.iter().map(Method::as_str)),
        }
    }
}

impl<'de> Deserialize<'de> for Methods {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        if names.iter().any(|n| n == "*") {
            return if names.len() == 1 {
                Ok(Self::Any)
            } else {
                Err(serde::de::Error::custom(
                    "`*` stands alone in a method list",
                ))
            };
        }
        names
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| serde::de::Error::custom(format!("`{m}` is not an HTTP method")))
            })
            .collect::<Result<_, _>>()
            .map(Self::Some)
    }
}

/// One route rule: which methods on which path template (or prefix), for whom.
///
/// - `public: true`: anyone, even without credentials.
/// - otherwise: an authenticated caller holding **one of** `roles` (directly or by inheritance;
///   an empty list means any authenticated caller) and **all of** `scopes`;
/// - and, with `acr_values` or `max_auth_age` (step-up, RFC 9470), a user who authenticated
///   with one of `acr_values` (the token's `acr`) at most `max_auth_age` ago (its
///   `auth_time`): one who falls short gets 401 `insufficient_user_authentication`, with a
///   challenge naming what is needed.
///
/// `path` is an axum route template (`/v1/orders/{id}`) or a prefix wildcard (`/admin/*`, which
/// covers `/admin` and everything below it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleSpec {
    /// The route template or prefix wildcard.
    pub path: String,
    /// The methods (default `[GET]`; `["*"]` for all).
    #[serde(default)]
    pub methods: Methods,
    /// Roles allowed (any of them); empty: any authenticated caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Scopes required (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Open to everyone, without credentials.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// Step-up (RFC 9470): the user must have authenticated with one of these `acr` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
    /// Step-up (RFC 9470): the user must have authenticated (`auth_time`) at most this long
    /// ago (`5m`; whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "auth_age")]
    pub max_auth_age: Option<std::time::Duration>,
}

/// `max_auth_age` as a duration string (`5m`).
mod auth_age {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    // serde's `with` passes the field by reference.
    #[allow(clippy::ref_option)]
    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a duration such as `5m`")))
    }
}

impl RuleSpec {
    /// A rule for `methods` on `path`, open to any authenticated caller until narrowed.
    pub fn new(path: impl Into<String>, methods: Methods) -> Self {
        Self {
            path: path.into(),
            methods,
            roles: Vec::new(),
            scopes: Vec::new(),
            public: false,
            acr_values: Vec::new(),
            max_auth_age: None,
        }
    }

    /// Allows holders of any of `roles` (default: any authenticated caller).
    #[must_use]
    pub fn roles<'a>(mut self, roles: impl IntoIterator<Item = &'a str>) -> Self {
        self.roles = roles.into_iter().map(str::to_owned).collect();
        self
    }

    /// Requires every scope in `scopes`.
    #[must_use]
    pub fn scopes<'a>(mut self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.scopes = scopes.into_iter().map(str::to_owned).collect();
        self
    }

    /// Step-up (RFC 9470): requires a user who authenticated with one of `values` (`acr`).
    #[must_use]
    pub fn acr_values<'a>(mut self, values: impl IntoIterator<Item = &'a str>) -> Self {
        self.acr_values = values.into_iter().map(str::to_owned).collect();
        self
    }

    /// Step-up (RFC 9470): requires a user who authenticated at most `age` ago
    /// (`auth_time`).
    #[must_use]
    pub fn max_auth_age(mut self, age: std::time::Duration) -> Self {
        self.max_auth_age = Some(age);
        self
    }
}

/// A whole policy as written: roles and route rules. The `roles` and `routes` sections of a
/// configuration file, or built in code with [`PolicySpec::builder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicySpec {
    /// The roles.
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
    /// The route rules.
    #[serde(default)]
    pub routes: Vec<RuleSpec>,
    /// Methods beyond RFC 9110's and PATCH that rules may name (`PURGE`, `PROPFIND`...).
    /// Any other method is refused when the policy compiles, so a typo such as `DELET` never
    /// loads as a rule that nothing matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_methods: Vec<String>,
    /// HEAD is decided by the rule for GET when no rule lists HEAD (default `true`): RFC 9110
    /// §9.3.2 defines HEAD as GET without the body, and axum serves HEAD with the GET
    /// handler. `false`: HEAD needs rules of its own.
    #[serde(default = "yes")]
    pub head_as_get: bool,
    /// Answer a path no route matches and a method its route does not serve with 403
    /// `no_matching_rule`, like any refusal, instead of 404 and 405 (default `false`): an
    /// authenticated caller then cannot tell which routes exist.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hide_routes: bool,
}

fn yes() -> bool {
    true
}

impl Default for PolicySpec {
    fn default() -> Self {
        Self {
            roles: Vec::new(),
            routes: Vec::new(),
            extension_methods: Vec::new(),
            head_as_get: true,
            hide_routes: false,
        }
    }
}

impl PolicySpec {
    /// Starts a policy in code.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            spec: Self::default(),
        }
    }

    /// Compiles the policy; see [`Policy::compile`].
    ///
    /// # Errors
    ///
    /// As [`Policy::compile`].
    pub fn compile(&self) -> Result<Policy, ConfigError> {
        Policy::compile(self)
    }
}

/// Builds a [`PolicySpec`] in code.
///
/// ```
/// use http::Method;
/// use palisade::authz::PolicySpec;
///
/// let policy = PolicySpec::builder()
///     .role("reader", [])
///     .role("editor", ["reader"])
///     .allow([Method::GET], "/v1/orders/{id}", ["reader"])
///     .allow_any_method("/admin/*", ["admin"])
///     .public([Method::GET], "/health")
///     .role("admin", ["editor"])
///     .build()
///     .compile()
///     .unwrap();
/// # let _ = policy;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PolicyBuilder {
    spec: PolicySpec,
}

impl PolicyBuilder {
    /// Declares `name`, inheriting the permissions of `inherits`.
    pub fn role<'a>(mut self, name: &str, inherits: impl IntoIterator<Item = &'a str>) -> Self {
        self.spec.roles.push(RoleSpec {
            name: name.to_owned(),
            inherits: inherits.into_iter().map(str::to_owned).collect(),
        });
        self
    }

    /// Allows `methods` on `path` to holders of any of `roles` (empty: any authenticated caller).
    pub fn allow<'a>(
        self,
        methods: impl IntoIterator<Item = Method>,
        path: &str,
        roles: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.rule(
            path,
            Methods::Some(methods.into_iter().collect()),
            roles,
            [],
        )
    }

    /// Allows every method on `path` to holders of any of `roles`.
    pub fn allow_any_method<'a>(
        self,
        path: &str,
        roles: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.rule(path, Methods::Any, roles, [])
    }

    /// Adds a rule that also requires every scope in `scopes`.
    pub fn rule<'a, 'b>(
        mut self,
        path: &str,
        methods: Methods,
        roles: impl IntoIterator<Item = &'a str>,
        scopes: impl IntoIterator<Item = &'b str>,
    ) -> Self {
        let mut rule = RuleSpec::new(path, methods);
        rule.roles = roles.into_iter().map(str::to_owned).collect();
        rule.scopes = scopes.into_iter().map(str::to_owned).collect();
        self.spec.routes.push(rule);
        self
    }

    /// Adds a rule written out in full (its roles, scopes and step-up requirement).
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::Method;
    /// use palisade::authz::{Methods, PolicySpec, RuleSpec};
    ///
    /// // Payments need a user who signed in with a second factor in the last five minutes.
    /// let policy = PolicySpec::builder()
    ///     .role("customer", [])
    ///     .route(
    ///         RuleSpec::new("/v1/payments", Methods::Some(vec![Method::POST]))
    ///             .roles(["customer"])
    ///             .acr_values(["urn:example:mfa"])
    ///             .max_auth_age(Duration::from_secs(300)),
    ///     )
    ///     .build()
    ///     .compile()
    ///     .unwrap();
    /// # let _ = policy;
    /// ```
    pub fn route(mut self, rule: RuleSpec) -> Self {
        self.spec.routes.push(rule);
        self
    }

    /// Opens `methods` on `path` to everyone, without credentials.
    pub fn public(mut self, methods: impl IntoIterator<Item = Method>, path: &str) -> Self {
        let mut rule = RuleSpec::new(path, Methods::Some(methods.into_iter().collect()));
        rule.public = true;
        self.spec.routes.push(rule);
        self
    }

    /// Whether HEAD is decided by the rule for GET when no rule lists HEAD (default `true`,
    /// RFC 9110 §9.3.2); `false` makes HEAD need rules of its own.
    pub fn head_as_get(mut self, yes: bool) -> Self {
        self.spec.head_as_get = yes;
        self
    }

    /// Whether unknown paths and unserved methods are answered 403 `no_matching_rule`
    /// instead of 404 and 405 (default `false`); see [`PolicySpec::hide_routes`].
    pub fn hide_routes(mut self, yes: bool) -> Self {
        self.spec.hide_routes = yes;
        self
    }

    /// The written policy.
    pub fn build(self) -> PolicySpec {
        self.spec
    }
}
