#![doc = include_str!("../../docs/authz.md")]

mod authorizer;
mod layer;
mod policy;
mod source;

pub use authorizer::{Authorizer, DynAuthorizer, Refusal};
pub use layer::{
    Authz, AuthzLayer, AuthzRequest, DEFAULT_AUTHORIZER_TIMEOUT, PathParams, ResponseFuture,
    ShadowDivergence,
};
pub use policy::{
    Decision, Methods, Outcome, Policy, PolicyBuilder, PolicySpec, RoleSpec, RuleRef, RuleSpec,
};
#[cfg(feature = "config")]
pub use source::FileSource;
pub use source::{DynPolicySource, LivePolicy, PolicySource, ReloadError, WatchHandle};
