//! The [`Authenticator`] trait, its outcome and the [`Chain`] of authenticators.

use std::future::Future;
use std::sync::Arc;

use http::HeaderValue;
use http::request::Parts;

use crate::BoxFuture;
use crate::principal::Principal;
use crate::rejection::{AuthnReason, Rejection};

/// What an [`Authenticator`] concluded about a request.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// The credential is good: this is the caller.
    Authenticated(Principal),
    /// No credential of this authenticator's kind is present; the next one in a chain may try.
    Absent,
    /// A credential of this authenticator's kind is present but bad (or could not be checked):
    /// the request is refused and no other authenticator is asked.
    Refused(Rejection),
}

/// Turns request parts into a [`Principal`], or a reason to refuse.
///
/// # Contract
///
/// - Return [`Authentication::Absent`] only when the request carries no credential of your
///   kind; a present-but-bad credential is [`Authentication::Refused`], never passed on.
/// - Never log or return the credential itself, in any form a client could replay.
/// - Bound the time spent on backends, and fail closed (refuse with
///   [`Rejection::Unavailable`]) when a backend fails.
///
/// Write `async fn authenticate` in implementations; `Arc<T>` and `Arc<dyn DynAuthenticator>`
/// are authenticators too.
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates the request described by `parts`.
    fn authenticate(&self, parts: &Parts) -> impl Future<Output = Authentication> + Send;

    /// Pushes this authenticator's `WWW-Authenticate` challenges, sent with the 401 when no
    /// authenticator found a credential (RFC 9110 §11.6.1).
    fn challenges(&self, out: &mut Vec<HeaderValue>);

    /// The same answer given at once, or `None` if it needs I/O (then
    /// [`authenticate`](Self::authenticate) is awaited, and must give the answer this would
    /// have). Authenticators over in-memory stores implement it so that the layer needs no
    /// boxed future. The default is `None`.
    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        let _ = parts;
        None
    }

    /// The kind of credential this authenticator finds in the request (`"api_key"`,
    /// `"bearer"`...; its syntax not checked), or `None` when it finds none. A [`Chain`]
    /// refuses a request whose authenticators find credentials of different kinds (400
    /// `multiple_credentials`): a client presents one identity per request, and a second
    /// credential must not ride along unchecked. The default is `None`: the authenticator takes
    /// no part in that check.
    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        let _ = parts;
        None
    }
}

impl<T: Authenticator> Authenticator for Arc<T> {
    fn authenticate(&self, parts: &Parts) -> impl Future<Output = Authentication> + Send {
        (**self).authenticate(parts)
    }

    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        (**self).authenticate_now(parts)
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        (**self).challenges(out);
    }

    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        (**self).credential_kind(parts)
    }
}

impl std::fmt::Debug for dyn DynAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynAuthenticator")
    }
}

/// The object-safe companion of [`Authenticator`], for hosts that pick authenticators at run
/// time: `Arc<dyn DynAuthenticator>` is an [`Authenticator`] (at the cost of one boxed future
/// per call).
pub trait DynAuthenticator: Send + Sync + 'static {
    /// [`Authenticator::authenticate`], boxed.
    fn authenticate_boxed<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Authentication>;

    /// [`Authenticator::challenges`].
    fn challenges_dyn(&self, out: &mut Vec<HeaderValue>);

    /// [`Authenticator::authenticate_now`].
    fn authenticate_now_dyn(&self, parts: &Parts) -> Option<Authentication>;

    /// [`Authenticator::credential_kind`].
    fn credential_kind_dyn(&self, parts: &Parts) -> Option<&'static str>;
}

impl<T: Authenticator> DynAuthenticator for T {
    fn authenticate_boxed<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Authentication> {
        Box::pin(self.authenticate(parts))
    }

    fn authenticate_now_dyn(&self, parts: &Parts) -> Option<Authentication> {
        self.authenticate_now(parts)
    }

    fn challenges_dyn(&self, out: &mut Vec<HeaderValue>) {
        self.challenges(out);
    }

    fn credential_kind_dyn(&self, parts: &Parts) -> Option<&'static str> {
        self.credential_kind(parts)
    }
}

impl Authenticator for Arc<dyn DynAuthenticator> {
    async fn authenticate(&self, parts: &Parts) -> Authentication {
        // `(**self)`: the Arc is a DynAuthenticator too (blanket impl); calling it would recurse.
        (**self).authenticate_boxed(parts).await
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        (**self).challenges_dyn(out);
    }

    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        (**self).authenticate_now_dyn(parts)
    }

    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        (**self).credential_kind_dyn(parts)
    }
}

/// Two authenticators tried in order: the first that finds its kind of credential decides.
///
/// ```
/// # use palisade::authn::{Chain, Authenticator};
/// # fn f<A: Authenticator, B: Authenticator, C: Authenticator>(a: A, b: B, c: C) {
/// let chain = Chain::new(a, b).or(c);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Chain<A, B> {
    first: A,
    second: B,
}

impl<A, B> Chain<A, B> {
    /// `first`, then `second` if `first` found no credential.
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }

    /// Appends `next` to the chain.
    pub fn or<C>(self, next: C) -> Chain<Self, C> {
        Chain::new(self, next)
    }
}

impl<A: Authenticator, B: Authenticator> Chain<A, B> {
    /// A refusal when the two authenticators find credentials of different kinds.
    fn mixed(&self, parts: &Parts) -> Option<Authentication> {
        match (
            self.first.credential_kind(parts),
            self.second.credential_kind(parts),
        ) {
            (Some(a), Some(b)) if a != b => {
                tracing::debug!(
                    layer = "authn",
                    first = a,
                    second = b,
                    "two kinds of credential in one request"
                );
                Some(Authentication::Refused(Rejection::unauthenticated(
                    AuthnReason::MultipleCredentials,
                    [],
                )))
            }
            _ => None,
        }
    }
}

impl<A: Authenticator, B: Authenticator> Authenticator for Chain<A, B> {
    async fn authenticate(&self, parts: &Parts) -> Authentication {
        if let Some(refused) = self.mixed(parts) {
            return refused;
        }
        match self.first.authenticate(parts).await {
            Authentication::Absent => self.second.authenticate(parts).await,
            decided => decided,
        }
    }

    fn challenges(&self, out: &mut Vec<HeaderValue>) {
        self.first.challenges(out);
        self.second.challenges(out);
    }

    fn authenticate_now(&self, parts: &Parts) -> Option<Authentication> {
        if let Some(refused) = self.mixed(parts) {
            return Some(refused);
        }
        match self.first.authenticate_now(parts)? {
            Authentication::Absent => self.second.authenticate_now(parts),
            decided => Some(decided),
        }
    }

    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        self.first
            .credential_kind(parts)
            .or_else(|| self.second.credential_kind(parts))
    }
}
