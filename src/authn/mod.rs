#![doc = include_str!("../../docs/authn.md")]

mod authenticator;
mod layer;
mod resource_metadata;

pub mod api_key;
#[cfg(any(feature = "jwt", feature = "introspection"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "jwt", feature = "introspection"))))]
pub mod bearer;
#[cfg(all(feature = "config", any(feature = "jwt", feature = "introspection")))]
pub(crate) mod bearer_config;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub mod dpop;
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub mod introspection;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub mod jwt;
#[cfg(any(feature = "jwt", feature = "introspection"))]
mod possession;

pub use authenticator::{Authentication, Authenticator, Chain, DynAuthenticator};
pub use layer::{Authn, AuthnLayer, ResponseFuture};
pub use resource_metadata::{ResourceMetadata, ResourceMetadataBuilder};
