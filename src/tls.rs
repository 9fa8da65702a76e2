//! The rustls crypto provider behind palisade's own TLS connections (JWKS documents,
//! introspection endpoints, `rediss://` quota stores).
//!
//! With the `aws-lc` feature it is AWS-LC's, whose default key exchange includes the
//! post-quantum hybrid `X25519MLKEM768`; without it, *ring*'s (pure Rust and assembly, no C
//! build, but without post-quantum key exchange, which is why rustls marks it deprecated).
//! The provider is always passed explicitly or installed only when the host installed none,
//! so a host's own rustls choice is never overridden.

/// The provider palisade's TLS clients use.
#[cfg(feature = "aws-lc")]
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The provider palisade's TLS clients use.
#[cfg(not(feature = "aws-lc"))]
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    // Deprecated upstream only for lacking post-quantum key exchange; the `aws-lc` feature
    // selects AWS-LC's provider, which has it.
    #[allow(deprecated)]
    rustls::crypto::ring::default_provider()
}
