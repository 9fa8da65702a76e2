#![doc = include_str!("../../docs/authn.md")]

mod authenticator;
mod layer;

pub mod api_key;

pub use authenticator::{Authentication, Authenticator, Chain, DynAuthenticator};
pub use layer::{Authn, AuthnLayer, ResponseFuture};
