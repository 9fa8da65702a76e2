//! The transport guard's refusal ([`crate::transport`]): why, and which kind of credential
//! came over plain HTTP.

/// Why the transport guard ([`crate::transport`]) refused a request. Codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportReason {
    /// A credential (or, when TLS is required for all, any request) came over plain HTTP.
    /// 403, not 421 or 400: see the [module docs](crate::transport#the-refusal).
    InsecureTransport,
}

impl TransportReason {
    /// The stable code (`"insecure_transport"`), on the wire and in audit; the status is 403.
    #[must_use]
    pub fn code(self) -> &'static str {
        "insecure_transport"
    }

    /// The problem's `detail`.
    #[must_use]
    pub fn detail(self) -> &'static str {
        "This API accepts credentials over HTTPS only. A credential sent over plain HTTP must \
         be considered compromised: revoke or rotate it."
    }
}

/// A refusal by the transport guard: the reason, and the kind of credential that came over
/// plain HTTP (`"api_key"`, `"bearer"`, `"authorization"`...; never the credential itself), so
/// that audit can tell an operator which credential to rotate.
#[derive(Debug, Clone)]
pub struct TransportRefusal {
    pub(super) reason: TransportReason,
    pub(super) credential: Option<&'static str>,
}

impl TransportRefusal {
    /// A refusal for `reason` of a request carrying a `credential` of this kind, if any.
    #[must_use]
    pub fn new(reason: TransportReason, credential: Option<&'static str>) -> Self {
        Self { reason, credential }
    }

    /// The reason.
    #[must_use]
    pub fn reason(&self) -> TransportReason {
        self.reason
    }

    /// The kind of credential exposed in clear text, if the request carried one.
    #[must_use]
    pub fn credential(&self) -> Option<&'static str> {
        self.credential
    }
}
