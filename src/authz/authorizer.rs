//! The [`Authorizer`] hook, what it answers ([`Refusal`]) and its object-safe companion
//! [`DynAuthorizer`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::layer::AuthzRequest;
use crate::BoxFuture;

/// Why an [`Authorizer`] did not allow a request: `Err(Refusal::deny("not_owner"))` refuses it
/// (403), `Err(Refusal::unavailable("orders_db"))` says the answer could not be found (503 with
/// `Retry-After`). `Ok(())` allows it.
///
/// Both codes are `&'static str` on purpose: a stable word chosen by the host, never text from
/// the request or a backend's error message.
///
/// ```
/// use palisade::authz::Refusal;
/// use std::time::Duration;
///
/// let denied = Refusal::deny("not_owner");
/// assert_eq!(denied.code(), "not_owner");
/// let down = Refusal::unavailable("orders_db").retry_after(Duration::from_secs(5));
/// assert!(down.is_unavailable());
/// assert_eq!(down.code(), "orders_db");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The caller may not do this (403). `code` is sent to the client as the problem body's
    /// `code` and recorded by audit as the reason.
    Deny {
        /// A stable reason code (`"not_owner"`, `"tenant_mismatch"`).
        code: &'static str,
    },
    /// What the decision needs (the host's database, a permission service) failed or timed
    /// out: the request is refused with 503 (fail closed) and `Retry-After`. The client sees
    /// only `temporarily_unavailable`; audit records the reason `authorizer_unavailable` and
    /// `cause`.
    Unavailable {
        /// The host's own code for what failed (`"orders_db"`), for audit and logs only.
        cause: &'static str,
        /// How long the client is told to wait; `None` for the default of one second.
        retry_after: Option<Duration>,
    },
}

impl Refusal {
    /// Refuses the request (403) with reason code `code`.
    #[must_use]
    pub const fn deny(code: &'static str) -> Self {
        Self::Deny { code }
    }

    /// Could not decide because `cause` failed (503, fail closed).
    #[must_use]
    pub const fn unavailable(cause: &'static str) -> Self {
        Self::Unavailable {
            cause,
            retry_after: None,
        }
    }

    /// Tells the client to retry after `wait` (whole seconds, at least 1). Only an
    /// [`Unavailable`](Self::Unavailable) refusal carries it; a denial is returned unchanged.
    #[must_use]
    pub const fn retry_after(self, wait: Duration) -> Self {
        match self {
            Self::Unavailable { cause, .. } => Self::Unavailable {
                cause,
                retry_after: Some(wait),
            },
            denied @ Self::Deny { .. } => denied,
        }
    }

    /// The denial's reason code, or the outage's cause.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Deny { code } => code,
            Self::Unavailable { cause, .. } => cause,
        }
    }

    /// Whether this is an outage (503) rather than a denial (403).
    #[must_use]
    pub const fn is_unavailable(self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The last word after RBAC allowed a request: checks that need the request itself, such as
/// object ownership against path parameters or a tenant match. The hook for OWASP API1 (broken
/// object level authorization).
///
/// Runs only for requests RBAC allowed, and only for authenticated (non-anonymous) callers.
/// `()` is the no-op authorizer (the default), which costs nothing.
///
/// # Contract
///
/// - `Ok(())` allows; `Err(`[`Refusal::deny`]`)` refuses with 403; when the facts cannot be
///   read (the database is down), return `Err(`[`Refusal::unavailable`]`)`: a 503 the client
///   may retry, never a 403 that would tell a rightful owner they are not one.
/// - Never put a backend's error text or request data in a code: log the error yourself.
/// - Bound your own backend calls with a timeout: the layer waits for the answer.
///
/// Implementations write `async fn authorize`; `Arc<T>`, `Box<dyn DynAuthorizer>` and
/// `Arc<dyn DynAuthorizer>` are authorizers too.
pub trait Authorizer: Send + Sync + 'static {
    /// Whether this authorizer never refuses (lets the layer skip it entirely).
    #[doc(hidden)]
    const ALWAYS_ALLOWS: bool = false;

    /// Allows (`Ok`) or refuses the request.
    fn authorize(
        &self,
        request: &AuthzRequest<'_>,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;
}

impl Authorizer for () {
    const ALWAYS_ALLOWS: bool = true;

    async fn authorize(&self, _: &AuthzRequest<'_>) -> Result<(), Refusal> {
        Ok(())
    }
}

impl<T: Authorizer> Authorizer for Arc<T> {
    const ALWAYS_ALLOWS: bool = T::ALWAYS_ALLOWS;

    fn authorize(
        &self,
        request: &AuthzRequest<'_>,
    ) -> impl Future<Output = Result<(), Refusal>> + Send {
        (**self).authorize(request)
    }
}

/// The object-safe companion of [`Authorizer`], for hosts that choose the authorizer at run
/// time: `Box<dyn DynAuthorizer>` and `Arc<dyn DynAuthorizer>` are [`Authorizer`]s (one boxed
/// future per request that reaches the authorizer). Every `Authorizer` is one.
pub trait DynAuthorizer: Send + Sync + 'static {
    /// [`Authorizer::authorize`], boxed.
    fn authorize_boxed<'a>(
        &'a self,
        request: &'a AuthzRequest<'a>,
    ) -> BoxFuture<'a, Result<(), Refusal>>;
}

impl<T: Authorizer> DynAuthorizer for T {
    fn authorize_boxed<'a>(
        &'a self,
        request: &'a AuthzRequest<'a>,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(self.authorize(request))
    }
}

impl std::fmt::Debug for dyn DynAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynAuthorizer")
    }
}

impl Authorizer for Box<dyn DynAuthorizer> {
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<(), Refusal> {
        // `(**self)`: the box is a DynAuthorizer too (blanket impl); calling it would recurse.
        (**self).authorize_boxed(request).await
    }
}

impl Authorizer for Arc<dyn DynAuthorizer> {
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<(), Refusal> {
        (**self).authorize_boxed(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_applies_to_an_outage_only() {
        let wait = Duration::from_secs(7);
        assert_eq!(
            Refusal::unavailable("db").retry_after(wait),
            Refusal::Unavailable {
                cause: "db",
                retry_after: Some(wait)
            }
        );
        assert_eq!(
            Refusal::deny("not_owner").retry_after(wait),
            Refusal::deny("not_owner")
        );
        assert!(!Refusal::deny("not_owner").is_unavailable());
    }

    #[test]
    fn the_dyn_companions_are_authorizers() {
        fn is_authorizer<A: Authorizer>() -> bool {
            !A::ALWAYS_ALLOWS
        }
        assert!(is_authorizer::<Box<dyn DynAuthorizer>>());
        assert!(is_authorizer::<Arc<dyn DynAuthorizer>>());
        assert!(!is_authorizer::<Arc<()>>());
    }
}
