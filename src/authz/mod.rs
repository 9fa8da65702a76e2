#![doc = include_str!("../../docs/authz.md")]

mod layer;
mod policy;
mod source;

pub use layer::{
    Authorizer, Authz, AuthzLayer, AuthzRequest, Denial, PathParams, ResponseFuture,
    ShadowDivergence,
};
pub use policy::{
    Decision, Methods, Outcome, Policy, PolicyBuilder, PolicySpec, RoleSpec, RuleRef, RuleSpec,
};
#[cfg(feature = "config")]
pub use source::FileSource;
pub use source::{LivePolicy, PolicySource, ReloadError, WatchHandle};
