//! [`Route`]: the (method, path template) a request belongs to, and [`RouteTable`].
//!
//! Policies are written against route templates (`/v1/orders/{id}`), never against raw paths,
//! so `/v1/orders/1` and `/v1/orders/2` are one route. In axum the router's `MatchedPath` names
//! the template (feature `axum`); elsewhere, or when palisade wraps the whole router, a
//! [`RouteTable`] (built on `matchit`, axum's template syntax) finds it.
//!
//! # Example
//!
//! ```
//! use http::{Method, Request};
//! use palisade::route::RouteTable;
//!
//! let table = RouteTable::from_templates(["/v1/orders/{id}", "/v1/orders"])?;
//! let req = Request::post("/v1/orders/42?x=1").body(()).unwrap();
//! let route = table.resolve(&req).unwrap();
//! assert_eq!(route.template(), "/v1/orders/{id}");
//! assert_eq!(route.method(), Method::POST);
//! assert!(table.resolve(&Request::get("/v2").body(()).unwrap()).is_none());
//! # Ok::<(), palisade::ConfigError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use http::{Method, Request};

use crate::error::ConfigError;

/// Which requests may go without credentials. The authorization policy answers it (its
/// `public` routes); the authentication layer asks it when a request carries no credential, and
/// admits such a request as [`Principal::anonymous`](crate::Principal::anonymous).
pub trait PublicRoutes: Send + Sync + 'static {
    /// Whether the request of `parts` is on a route that admits anonymous callers.
    fn is_public(&self, parts: &http::request::Parts) -> bool;
}

/// The most parameters one route template may hold. `matchit` (axum's matcher) names
/// parameters with single letters while matching and panics past its alphabet; palisade
/// refuses such a template at startup instead.
pub const MAX_TEMPLATE_PARAMS: usize = 16;

/// Checks that `template` can be matched: at most [`MAX_TEMPLATE_PARAMS`] parameters (`{{`
/// and `}}` are escaped braces, not parameters).
///
/// # Errors
///
/// [`ConfigError::Route`] naming the template.
pub fn check_template(template: &str) -> Result<(), ConfigError> {
    let bytes = template.as_bytes();
    let (mut i, mut params) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'{' && bytes.get(i + 1) == Some(&b'{') {
            i += 2;
            continue;
        }
        if bytes[i] == b'{' {
            params += 1;
        }
        i += 1;
    }
    if params > MAX_TEMPLATE_PARAMS {
        return Err(ConfigError::Route {
            template: template.to_owned(),
            message: format!(
                "a template holds at most {MAX_TEMPLATE_PARAMS} parameters, not {params}"
            ),
        });
    }
    Ok(())
}

/// A request's route: its method and the path template it matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    method: Method,
    template: Arc<str>,
}

impl Route {
    /// A route for `method` on `template`.
    pub fn new(method: Method, template: impl Into<Arc<str>>) -> Self {
        Self {
            method,
            template: template.into(),
        }
    }

    /// The request method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path template, e.g. `/v1/orders/{id}`.
    #[must_use]
    pub fn template(&self) -> &str {
        &self.template
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.template)
    }
}

/// Path templates a service serves, to name the [`Route`] of a request.
#[derive(Clone, Default)]
pub struct RouteTable {
    router: matchit::Router<Arc<str>>,
    len: usize,
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("len", &self.len)
            .finish()
    }
}

impl RouteTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A table of every template of `templates`, checked together: one `?` for the whole
    /// table, the first invalid or conflicting template named in the error.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Route`] when a template is invalid or conflicts with another.
    pub fn from_templates<I>(templates: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        templates
            .into_iter()
            .try_fold(Self::new(), |table, t| table.with_route(t.as_ref()))
    }

    /// Adds a template (`/users/{id}`, `/files/{*path}`). Adding one twice is a no-op. To
    /// build a table of many, [`from_templates`](Self::from_templates) checks them all at once.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Route`] when the template is invalid or conflicts with another.
    pub fn with_route(mut self, template: &str) -> Result<Self, ConfigError> {
        if self
            .router
            .at(template)
            .is_ok_and(|m| &**m.value == template)
        {
            return Ok(self);
        }
        check_template(template)?;
        self.router
            .insert(template, Arc::from(template))
            .map_err(|e| ConfigError::Route {
                template: template.to_owned(),
                message: e.to_string(),
            })?;
        self.len += 1;
        Ok(self)
    }

    /// The number of templates.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The template `path` matches, with its parameters as written in the path (not
    /// percent-decoded).
    #[must_use]
    pub fn matched(&self, path: &str) -> Option<RouteMatch> {
        let m = self.router.at(path).ok()?;
        Some(RouteMatch {
            template: m.value.clone(),
            params: m.params.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        })
    }

    /// The route of `req`: axum's `MatchedPath` when present, else the table's match on the path.
    #[must_use]
    pub fn resolve<B>(&self, req: &Request<B>) -> Option<Route> {
        if let Some(matched) = matched_template(req.extensions()) {
            return Some(Route::new(req.method().clone(), matched));
        }
        let m = self.router.at(req.uri().path()).ok()?;
        Some(Route {
            method: req.method().clone(),
            template: m.value.clone(),
        })
    }
}

/// The route a request was resolved to by the stack's [`RouteTable`] (see
/// [`PalisadeBuilder::routes`](crate::PalisadeBuilder::routes)), for hosts whose router does
/// not name the matched route: the template and the raw path parameters. The stack resolves a
/// request once and inserts this into its extensions; authorization, quotas and validation all
/// read it instead of matching the path again.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    template: Arc<str>,
    params: Box<[(Box<str>, Box<str>)]>,
}

impl RouteMatch {
    /// The template the path matched, e.g. `/v1/orders/{id}`.
    #[must_use]
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The path parameters, as written in the path (not percent-decoded).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (&**k, &**v))
    }
}

/// The route template of a request: axum's `MatchedPath` when the router matched one, else the
/// stack's [`RouteMatch`]; the one place palisade reads either.
///
/// Templates are named **where the layer is mounted**: a layer on a router nested with
/// `Router::nest("/api/{tenant}", inner)` sees the inner router's templates (`/orders/{id}`,
/// not `/api/{tenant}/orders/{id}`), as the request path it sees is the inner one too; a layer
/// on the outer router sees the full templates.
pub(crate) fn matched_template(ext: &http::Extensions) -> Option<&str> {
    #[cfg(feature = "axum")]
    if let Some(m) = ext.get::<axum::extract::MatchedPath>() {
        let full = m.as_str();
        if let Some(nested) = ext.get::<axum::extract::NestedPath>()
            && let Some(rest) = full.strip_prefix(nested.as_str())
        {
            return Some(if rest.is_empty() { "/" } else { rest });
        }
        return Some(full);
    }
    ext.get::<RouteMatch>().map(RouteMatch::template)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_templates_checks_every_template_and_names_the_first_bad_one() {
        let table = RouteTable::from_templates(["/a", "/b/{id}", "/a"]).unwrap();
        assert_eq!(table.len(), 2);
        let err = RouteTable::from_templates(["/a/{id}", "/a/{name}"]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Route { template, .. } if template == "/a/{name}"),
            "{err}"
        );
    }

    #[test]
    fn conflicting_templates_are_config_errors() {
        let err = RouteTable::new()
            .with_route("/a/{id}")
            .unwrap()
            .with_route("/a/{name}")
            .unwrap_err();
        assert!(matches!(err, ConfigError::Route { .. }), "{err}");
    }

    #[test]
    fn a_template_with_too_many_parameters_is_refused_not_a_panic() {
        let many: String = (0..30).map(|i| format!("/{{p{i}}}")).collect();
        let err = RouteTable::new().with_route(&many).unwrap_err();
        assert!(err.to_string().contains("at most 16 parameters"), "{err}");
        let sixteen: String = (0..16).map(|i| format!("/{{p{i}}}")).collect();
        assert!(RouteTable::new().with_route(&sixteen).is_ok());
        assert!(check_template("/literal/{{braces}}").is_ok());
    }

    #[test]
    fn duplicate_template_is_kept_once() {
        let t = RouteTable::new()
            .with_route("/a")
            .unwrap()
            .with_route("/a")
            .unwrap();
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_match_names_the_template_and_the_raw_parameters() {
        let t = RouteTable::new()
            .with_route("/orders/{id}/lines/{line}")
            .unwrap();
        let m = t.matched("/orders/a%2Fb/lines/7").unwrap();
        assert_eq!(m.template(), "/orders/{id}/lines/{line}");
        assert_eq!(
            m.params().collect::<Vec<_>>(),
            [("id", "a%2Fb"), ("line", "7")]
        );
        assert!(t.matched("/orders").is_none());
        let mut ext = http::Extensions::new();
        ext.insert(m);
        assert_eq!(matched_template(&ext), Some("/orders/{id}/lines/{line}"));
    }

    #[test]
    fn query_string_does_not_affect_the_route() {
        let t = RouteTable::new().with_route("/files/{*path}").unwrap();
        let req = Request::get("/files/a/b.txt?download=1").body(()).unwrap();
        assert_eq!(t.resolve(&req).unwrap().to_string(), "GET /files/{*path}");
    }
}
