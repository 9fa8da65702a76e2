//! How a verified bearer token's binding is proven on each request: the client certificate
//! the host hands over (RFC 8705 §3) or a DPoP proof (RFC 9449); and the scheme a refusal is
//! answered in.

use std::sync::Arc;

use http::HeaderValue;
use http::request::Parts;
use serde_json::{Map, Value};

use super::Authentication;
use super::bearer::Presented;
use crate::client_cert::ClientCertificate;
use crate::clock::Timestamp;
use crate::principal::{Confirmation, Principal};
use crate::rejection::{AuthnReason, ChallengeSet};

/// What a token is bound to (its `cnf` claim), checked on every request that brings it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// A client certificate (RFC 8705 §3.1: `cnf.x5t#S256`).
    Certificate(Arc<str>),
    /// A DPoP key (RFC 9449 §6.1: `cnf.jkt`, its RFC 7638 thumbprint), with the token's own
    /// hash, which every proof must carry as `ath` (§4.2): computed once with the token's
    /// verdict, not on every request.
    Key { jkt: Arc<str>, ath: Arc<str> },
}

impl Binding {
    /// What the principal records of this binding.
    pub(crate) fn confirmation(&self) -> Confirmation {
        match self {
            Self::Certificate(_) => Confirmation::ClientCertificate,
            Self::Key { .. } => Confirmation::Dpop,
        }
    }
}

/// What the token is bound to, `None` for an unbound token. A token bound by any other
/// confirmation method (RFC 7800 `jwk`, `kid`...) or by two at once needs a proof of
/// possession palisade does not check: refused (RFC 9449 §7.2).
pub(crate) fn binding(
    claims: &Map<String, Value>,
    token: &[u8],
) -> Result<Option<Binding>, AuthnReason> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(None);
    };
    let one = cnf.as_object().filter(|c| c.len() == 1);
    match one.and_then(|c| c.iter().next()) {
        Some((name, Value::String(x5t))) if name == "x5t#S256" => {
            Ok(Some(Binding::Certificate(x5t.as_str().into())))
        }
        Some((name, Value::String(jkt))) if name == "jkt" => Ok(Some(Binding::Key {
            jkt: jkt.as_str().into(),
            ath: token_hash(token).into(),
        })),
        _ => Err(AuthnReason::TokenBound),
    }
}

/// How a verified token's binding is proven: the client certificate the host hands over,
/// and (with the `jwt` feature and DPoP configured) DPoP proofs.
#[derive(Debug, Default)]
pub(crate) struct Possession {
    #[cfg(feature = "jwt")]
    pub(crate) dpop: Option<crate::authn::dpop::DpopCheck>,
}

/// What a verified token makes of a request.
pub(crate) enum Admission {
    Done(Authentication),
    /// Every check passed; the DPoP proof is still to be recorded against replay.
    #[cfg(feature = "jwt")]
    Remember(Principal, crate::authn::dpop::Proof),
}

impl Possession {
    /// The refusal for `reason`, in the scheme the token came in.
    pub(crate) fn refuse(
        &self,
        reason: AuthnReason,
        presented: Presented<'_>,
        bearer: &ChallengeSet,
        now: Timestamp,
    ) -> Authentication {
        // A DPoP request, or a reason only DPoP has (an unbound token where bound ones are
        // required): answered in the DPoP scheme.
        #[cfg(feature = "jwt")]
        if let Some(dpop) = &self.dpop
            && (presented.dpop || reason.scheme() == crate::rejection::Scheme::Dpop)
        {
            return Authentication::Refused(dpop.refuse(reason, now));
        }
        let _ = (presented, now);
        Authentication::Refused(bearer.refuse(reason))
    }

    /// Admits `principal`, whose token is bound to `binding`, if the request proves it holds
    /// what the token is bound to: the certificate (RFC 8705 §3), or the key, by a DPoP proof
    /// (RFC 9449 §4.3, §7.1). A bound token presented as a plain bearer token is refused
    /// (RFC 9449 §7.2), and so is an unbound one presented with DPoP.
    pub(crate) fn admit(
        &self,
        principal: Principal,
        binding: Option<&Binding>,
        presented: Presented<'_>,
        parts: &Parts,
        bearer: &ChallengeSet,
        now: Timestamp,
    ) -> Admission {
        let refuse = |reason| Admission::Done(self.refuse(reason, presented, bearer, now));
        #[cfg(feature = "jwt")]
        if binding.is_none() && self.dpop.as_ref().is_some_and(|d| d.require_bound) {
            return refuse(AuthnReason::DpopTokenNotBound);
        }
        match (binding, presented.dpop) {
            (None, false) => Admission::Done(Authentication::Authenticated(principal)),
            (Some(Binding::Certificate(x5t)), false) => {
                let cert = parts.extensions.get::<ClientCertificate>();
                if cert.is_some_and(|c| c.matches(x5t)) {
                    Admission::Done(Authentication::Authenticated(principal))
                } else {
                    refuse(AuthnReason::TokenBound)
                }
            }
            (Some(Binding::Key { .. }), false) => refuse(AuthnReason::TokenBound),
            #[cfg(feature = "jwt")]
            (binding, true) => {
                let Some(dpop) = &self.dpop else {
                    return refuse(AuthnReason::TokenBound);
                };
                let Some(Binding::Key { jkt, ath }) = binding else {
                    return refuse(AuthnReason::DpopTokenNotBound);
                };
                match dpop.verify(parts, ath, now) {
                    Ok(proof) if jkt.as_bytes() == proof.thumbprint.as_bytes() => {
                        Admission::Remember(principal, proof)
                    }
                    Ok(_) => refuse(AuthnReason::DpopKeyMismatch),
                    Err(reason) => refuse(reason),
                }
            }
            #[cfg(not(feature = "jwt"))]
            (_, true) => refuse(AuthnReason::TokenBound),
        }
    }

    /// The admission's answer, when it needs no wait (`None`: the replay store is remote).
    pub(crate) fn finish_now(
        &self,
        admission: Admission,
        now: Timestamp,
    ) -> Option<Authentication> {
        #[cfg(not(feature = "jwt"))]
        let _ = now;
        match admission {
            Admission::Done(answer) => Some(answer),
            #[cfg(feature = "jwt")]
            Admission::Remember(principal, proof) => {
                let dpop = self.dpop.as_ref()?;
                Some(match dpop.remember_now(&proof, now)? {
                    Ok(()) => Authentication::Authenticated(proven(principal, proof)),
                    Err(rejection) => Authentication::Refused(rejection),
                })
            }
        }
    }

    /// The admission's answer.
    pub(crate) async fn finish(&self, admission: Admission, now: Timestamp) -> Authentication {
        #[cfg(not(feature = "jwt"))]
        let _ = now;
        match admission {
            Admission::Done(answer) => answer,
            #[cfg(feature = "jwt")]
            Admission::Remember(principal, proof) => {
                let Some(dpop) = &self.dpop else {
                    return Authentication::Authenticated(principal);
                };
                match dpop.remember(&proof, now).await {
                    Ok(()) => Authentication::Authenticated(proven(principal, proof)),
                    Err(rejection) => Authentication::Refused(rejection),
                }
            }
        }
    }

    /// The plain challenges of the schemes a token may come in.
    pub(crate) fn challenges(&self, bearer: &ChallengeSet, out: &mut Vec<HeaderValue>) {
        out.push(bearer.plain().clone());
        #[cfg(feature = "jwt")]
        if let Some(dpop) = &self.dpop {
            out.push(dpop.challenges.plain().clone());
        }
    }
}

/// `principal`, admitted by `proof`: carrying the fresh nonce the proof earned, if any.
#[cfg(feature = "jwt")]
fn proven(principal: Principal, proof: crate::authn::dpop::Proof) -> Principal {
    match proof.next_nonce {
        Some(nonce) => principal.with_dpop_nonce(nonce),
        None => principal,
    }
}

/// `base64url(SHA-256(token))`: the `ath` a DPoP proof carries for an access token (RFC 9449
/// §4.2).
pub(crate) fn token_hash(token: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9449_7_2_and_rfc8705_3_1_what_a_token_is_bound_to() {
        let claims = |cnf: &str| -> Map<String, Value> {
            serde_json::from_str(&format!(r#"{{"cnf":{cnf}}}"#)).unwrap()
        };
        // RFC 8705 §3.1: a certificate thumbprint, checked against the client's certificate.
        let x5t = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2";
        assert_eq!(
            binding(&claims(&format!(r#"{{"x5t#S256":"{x5t}"}}"#)), b"t"),
            Ok(Some(Binding::Certificate(x5t.into())))
        );
        // RFC 9449 §6.1: a DPoP key's thumbprint, checked against the proof's key.
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        assert_eq!(
            binding(&claims(&format!(r#"{{"jkt":"{jkt}"}}"#)), b"t"),
            Ok(Some(Binding::Key {
                jkt: jkt.into(),
                ath: token_hash(b"t").into()
            }))
        );
        // RFC 7800 (a key), two methods at once, or anything else: no proof palisade checks.
        for cnf in [
            r#"{"jkt":1}"#,
            r#"{"jwk":{"kty":"EC"}}"#,
            r#"{"kid":"k1"}"#,
            r#"{"x5t#S256":"a","jkt":"b"}"#,
            r#"{"x5t#S256":1}"#,
            r#""x5t""#,
            "{}",
        ] {
            assert_eq!(
                binding(&claims(cnf), b"t"),
                Err(AuthnReason::TokenBound),
                "{cnf}"
            );
        }
        assert_eq!(binding(&Map::new(), b"t"), Ok(None));
    }
}
