//! [`ConfigError`] (building the stack) and [`StoreError`] (a backend failed).

use std::error::Error as StdError;
use std::fmt;

/// A boxed error, as tower uses.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A mistake found while building palisade: reported before serving, never per request.
///
/// Builders never fail half-way: a chained method that meets a mistake remembers it, and the
/// builder's `build()` reports the first one.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A route template is invalid or conflicts with another.
    #[error("route template `{template}`: {message}")]
    Route {
        /// The template.
        template: String,
        /// What is wrong with it.
        message: String,
    },
    /// An API key prefix is not 2 to 16 lowercase ASCII letters and digits, starting with a
    /// letter.
    #[error(
        "api key prefix `{prefix}` must be 2-16 characters of [a-z0-9], starting with a letter"
    )]
    KeyPrefix {
        /// The prefix.
        prefix: String,
    },
    /// A header name is not a valid HTTP header name.
    #[error("`{name}` is not a valid header name")]
    HeaderName {
        /// The name.
        name: String,
    },
    /// A server-side hashing secret (pepper) is shorter than 32 bytes.
    #[error("the api key hashing secret must be at least 32 bytes, got {len}")]
    PepperTooShort {
        /// Its length.
        len: usize,
    },
    /// An API key source list is empty, so no key could ever be read.
    #[error("no api key source is configured")]
    NoKeySource,
    /// A key record in a configuration is invalid.
    #[error("api key record `{id}`: {message}")]
    KeyRecord {
        /// The key id as written.
        id: String,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration file could not be read or parsed.
    #[error("configuration file `{path}`: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong (parse errors name the line).
        message: String,
    },
    /// An environment variable named by the configuration is missing or not UTF-8.
    #[error("`{field}`: environment variable `{name}` is not set or not valid UTF-8")]
    Env {
        /// The configuration item that names the variable (`api_keys.pepper_env`).
        field: &'static str,
        /// The variable's name.
        name: String,
    },
    /// An authorization policy is invalid (unknown role, inheritance cycle, clashing rules...).
    #[error("policy: {message}")]
    Policy {
        /// What is wrong, naming the role or rule.
        message: String,
    },
    /// A JSON Schema does not compile, or one of its `$ref`s does not resolve.
    #[error("schema: {message}")]
    Schema {
        /// What is wrong.
        message: String,
    },
    /// A file other than the configuration file (an OpenAPI document, a CA certificate) could
    /// not be read or parsed.
    #[error("{what} `{path}`: {message}")]
    OtherFile {
        /// What the file is for (`OpenAPI document`, `Redis CA certificate file`).
        what: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A mistake in a configuration file: the file, and the mistake (which names the section
    /// and the item).
    #[error("configuration file `{path}`: {error}")]
    InFile {
        /// The file.
        path: String,
        /// The mistake.
        error: Box<Self>,
    },
    /// A configuration value is invalid.
    #[error("`{field}`: {message}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached or refused to answer.
    Unavailable,
    /// The backend answered with data palisade cannot use (a corrupt record).
    InvalidData,
    /// The store does not offer this operation (a host's quota store without
    /// `refund`).
    Unsupported,
    /// Anything else.
    Other,
}

/// A key store, policy source or quota store failed. Maps to a 503 refusal (fail closed).
///
/// Its `Display` must not contain secrets: implementations wrap their backend's error as the
/// [`source`](StdError::source) and palisade logs the chain at `warn` level.
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<BoxError>,
}

impl StoreError {
    /// An error of `kind` caused by `source`.
    pub fn new(kind: StoreErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// An error of `kind` with no underlying cause.
    #[must_use]
    pub fn from_kind(kind: StoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            StoreErrorKind::Unavailable => "store unavailable",
            StoreErrorKind::InvalidData => "store returned invalid data",
            StoreErrorKind::Unsupported => "store does not support this operation",
            StoreErrorKind::Other => "store error",
        })
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Displays an error and its `source()` chain as `outer: inner: root`, for logs.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_shows_every_cause_and_display_only_the_kind() {
        let e = StoreError::new(StoreErrorKind::Unavailable, "connection refused");
        assert_eq!(e.to_string(), "store unavailable");
        assert_eq!(
            Chain(&e).to_string(),
            "store unavailable: connection refused"
        );
    }
}
