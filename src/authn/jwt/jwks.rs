//! A JWKS URL's key set: fetched over HTTPS, cached for the `Cache-Control` lifetime (within
//! bounds), refreshed in the background, refetched on an unknown `kid` at a bounded rate, and
//! kept when a refresh fails. The URL may come from the issuer's discovery document (OpenID
//! Connect Discovery 1.0 / RFC 8414), read on the first fetch and again after a failed one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL};
use http::{Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::Value;

use super::keys::{AlgSet, Key};
use crate::clock::Timestamp;
use crate::fetch::HttpClient;

/// How a JWKS is cached and refetched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JwksTiming {
    /// Lifetime when the answer has no `max-age`.
    pub(crate) default_ttl: Duration,
    /// Bounds on the lifetime taken from `Cache-Control: max-age`.
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    /// At most one refetch per this interval for tokens naming an unknown `kid`.
    pub(crate) unknown_kid_interval: Duration,
    /// After a failed fetch, no other attempt for this long.
    pub(crate) retry_after_failure: Duration,
    /// The last good set serves at most this long after it was fetched; past it, while no
    /// fetch succeeds, every token of the issuer gets 503.
    pub(crate) max_stale: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self {
            default_ttl: super::JWKS_LIFETIME.0,
            min_ttl: super::JWKS_LIFETIME.1,
            max_ttl: super::JWKS_LIFETIME.2,
            unknown_kid_interval: Duration::from_secs(30),
            retry_after_failure: Duration::from_secs(5),
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

/// The most keys taken from one key set.
const MAX_KEYS: usize = 64;

#[derive(Debug)]
pub(crate) struct KeySet {
    pub(crate) keys: Box<[Arc<Key>]>,
    /// Whether a fetch ever succeeded.
    pub(crate) loaded: bool,
    /// When a background refresh is due.
    refresh_at: Timestamp,
    /// When it was fetched (a failed refresh keeps the set and this instant).
    fetched_at: Timestamp,
    generation: u64,
}

/// Where the key set's URL comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// Configured.
    Url(Uri),
    /// The `jwks_uri` of the discovery document at `document`, whose `issuer` must be `issuer`
    /// exactly (OpenID Connect Discovery 1.0 §4.3, RFC 8414 §3.3).
    Discover {
        document: Uri,
        issuer: Box<str>,
        allow_http: bool,
        found: ArcSwapOption<Uri>,
    },
}

impl Source {
    /// The document's URL for an issuer: `{iss}/.well-known/openid-configuration`, any
    /// terminating `/` of the issuer removed first (OpenID Connect Discovery 1.0 §4.1).
    pub(crate) fn openid_configuration(iss: &str) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            iss.trim_end_matches('/')
        )
    }
}

#[derive(Debug)]
pub(crate) struct Jwks {
    url: Source,
    client: HttpClient,
    rsa_algs: AlgSet,
    timing: JwksTiming,
    set: ArcSwap<KeySet>,
    lock: tokio::sync::Mutex<()>,
    in_flight: AtomicBool,
    refreshing: AtomicBool,
    last_unknown_kid_fetch: AtomicU64,
    last_failure: AtomicU64,
    fetches: AtomicU64,
    /// Fetches completed (counted when they end), so that callers who waited for one in flight
    /// do not fetch again.
    completed: AtomicU64,
}

/// What a lookup of a `kid` concluded.
pub(crate) enum Lookup {
    Found(Arc<Key>),
    /// The set holds no such key, and refetching is not allowed now.
    Unknown,
    /// A fetch (or waiting for the one in flight) may find it; the completed-fetch count
    /// seen, to pass to [`Jwks::fetch`].
    Fetch(u64),
    /// No key set was ever fetched and the last attempt failed too recently to retry, or the
    /// last fetch failed and the kid is not in the kept set.
    Unavailable,
}

impl Jwks {
    pub(crate) fn new(
        url: Source,
        client: HttpClient,
        rsa_algs: AlgSet,
        timing: JwksTiming,
    ) -> Self {
        Self {
            url,
            client,
            rsa_algs,
            timing,
            set: ArcSwap::from_pointee(KeySet {
                keys: Box::new([]),
                loaded: false,
                refresh_at: Timestamp::UNIX_EPOCH,
                fetched_at: Timestamp::UNIX_EPOCH,
                generation: 0,
            }),
            lock: tokio::sync::Mutex::new(()),
            in_flight: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            last_unknown_kid_fetch: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        }
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The key set's URL, or the discovery document's while none was found.
    pub(crate) fn url(&self) -> Uri {
        match &self.url {
            Source::Url(u) => u.clone(),
            Source::Discover {
                document, found, ..
            } => found
                .load_full()
                .map_or_else(|| document.clone(), |u| (*u).clone()),
        }
    }

    /// The key set's URL: configured, or read from the discovery document (once, and again
    /// after a failed fetch).
    async fn resolve(&self) -> Result<Uri, String> {
        let Source::Discover {
            document,
            issuer,
            allow_http,
            found,
        } = &self.url
        else {
            return Ok(self.url());
        };
        if let Some(url) = found.load_full() {
            return Ok((*url).clone());
        }
        let request = Request::get(document.clone())
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| format!("discovery document: {}", crate::error::Chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!("discovery document: status {}", response.status()));
        }
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let meta: Metadata = serde_json::from_slice(response.body())
            .map_err(|e| format!("discovery document: {e}"))?;
        // A document that names another issuer is not this issuer's (an attacker's document,
        // or a misconfiguration): its keys must not verify this issuer's tokens.
        if *meta.issuer != **issuer {
            return Err(format!(
                "discovery document names issuer `{}`, not `{issuer}`",
                meta.issuer
            ));
        }
        let url = crate::fetch::check_url("jwks_uri", &meta.jwks_uri, *allow_http)
            .map_err(|e| format!("discovery document: {e}"))?;
        tracing::debug!(layer = "authn", issuer = %issuer, jwks = %url, "jwks_uri discovered");
        found.store(Some(Arc::new(url.clone())));
        Ok(url)
    }

    /// Finds the key for `pick` in the current set, or says what to do instead.
    pub(crate) fn lookup(
        &self,
        now: Timestamp,
        pick: impl Fn(&[Arc<Key>]) -> Option<Arc<Key>>,
        may_fetch: bool,
    ) -> Lookup {
        let seen = self.completed();
        let set = self.set.load();
        // Never fetched, or kept past `max_stale` while the provider does not answer: no key of
        // it is trusted until a fetch succeeds.
        if !set.loaded || self.stale(&set, now) {
            if !may_fetch || self.failed_recently(now) {
                return Lookup::Unavailable;
            }
            return Lookup::Fetch(seen);
        }
        if let Some(key) = pick(&set.keys) {
            return Lookup::Found(key);
        }
        // The last fetch failed: whether this kid is the provider's new key or a forgery cannot
        // be told now, so the answer is "unavailable, retry" (503), not "invalid token" (401).
        let unknown = if self.last_failure.load(Ordering::Relaxed) != 0 {
            Lookup::Unavailable
        } else {
            Lookup::Unknown
        };
        if !may_fetch || (self.failed_recently(now) && matches!(unknown, Lookup::Unavailable)) {
            return unknown;
        }
        if self.in_flight.load(Ordering::Acquire) {
            return Lookup::Fetch(seen);
        }
        // One refetch per interval for unknown kids, whoever asks: a flood of forged kids
        // costs the provider at most one request per interval.
        let last = self.last_unknown_kid_fetch.load(Ordering::Relaxed);
        let due = last == 0
            || now.as_unix_nanos().saturating_sub(last)
                >= self.timing.unknown_kid_interval.as_nanos() as u64;
        if due
            && self
                .last_unknown_kid_fetch
                .compare_exchange(
                    last,
                    now.as_unix_nanos().max(1),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Lookup::Fetch(seen);
        }
        unknown
    }

    /// Whether the set was fetched longer than `max_stale` ago.
    fn stale(&self, set: &KeySet, now: Timestamp) -> bool {
        now.saturating_duration_since(set.fetched_at) > self.timing.max_stale
    }

    /// Whether the current set is past `max_stale` (cached verdicts of its tokens then wait
    /// for a fetch too).
    pub(crate) fn is_stale(&self, now: Timestamp) -> bool {
        let set = self.set.load();
        set.loaded && self.stale(&set, now)
    }

    fn failed_recently(&self, now: Timestamp) -> bool {
        let last = self.last_failure.load(Ordering::Relaxed);
        last != 0
            && now.as_unix_nanos().saturating_sub(last)
                < self.timing.retry_after_failure.as_nanos() as u64
    }

    /// Whether a background refresh is due now (and claims it: only one caller gets `true`).
    pub(crate) fn claim_refresh(&self, now: Timestamp) -> bool {
        let set = self.set.load();
        set.loaded && now >= set.refresh_at && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Gives back a claimed refresh that will not run.
    pub(crate) fn release_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// How many fetches have ended (for [`fetch`](Self::fetch)'s `seen`).
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// Fetches the key set unless a fetch ended since the caller read `seen` from
    /// [`completed`](Self::completed): callers who queued behind a fetch in flight take its
    /// result (success or failure) instead of fetching again, so a hung provider costs one
    /// timeout, not one per waiting request. Returns whether a key of the previous set was
    /// withdrawn (so cached verdicts must go).
    pub(crate) async fn fetch(&self, seen: u64, now: Timestamp) -> Result<bool, String> {
        let _guard = self.lock.lock().await;
        if self.completed() != seen {
            return Ok(false);
        }
        self.in_flight.store(true, Ordering::Release);
        let result = self.fetch_locked(now).await;
        crate::telemetry::jwks_fetch(result.is_ok());
        if result.is_err() {
            crate::telemetry::backend_error("jwks", "error");
        }
        self.completed.fetch_add(1, Ordering::AcqRel);
        self.in_flight.store(false, Ordering::Release);
        self.refreshing.store(false, Ordering::Release);
        result
    }

    async fn fetch_locked(&self, now: Timestamp) -> Result<bool, String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let old = self.set.load_full();
        let fail = |message: String| {
            self.last_failure
                .store(now.as_unix_nanos().max(1), Ordering::Relaxed);
            if old.loaded {
                // Keep the last good set; try again after the failure interval.
                self.set.store(Arc::new(KeySet {
                    keys: old.keys.clone(),
                    loaded: true,
                    refresh_at: now.saturating_add(self.timing.retry_after_failure),
                    fetched_at: old.fetched_at,
                    generation: old.generation,
                }));
            }
            tracing::warn!(layer = "authn", jwks = %self.url(), kept_last_good = old.loaded, "jwks fetch failed: {message}");
            // A discovered URL is read again next time: the provider may have moved it.
            if let Source::Discover { found, .. } = &self.url {
                found.store(None);
            }
            message
        };
        let url = self.resolve().await.map_err(&fail)?;
        let request = Request::get(url)
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| fail(e.to_string()))?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| fail(crate::error::Chain(&e).to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("status {}", response.status())));
        }
        let ttl = ttl(response.headers().get(CACHE_CONTROL), &self.timing);
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<Value>,
        }
        let doc: Doc = serde_json::from_slice(response.body())
            .map_err(|e| fail(format!("not a JWK set: {e}")))?;
        let mut keys = Vec::new();
        for jwk in doc.keys.iter().take(MAX_KEYS) {
            match Key::from_jwk_value(jwk, self.rsa_algs) {
                Ok(key) if key.kid().is_some() || doc.keys.len() == 1 => keys.push(Arc::new(key)),
                Ok(_) => {
                    tracing::warn!(layer = "authn", jwks = %self.url(), "jwks key without a kid in a set of several; skipped")
                }
                Err(e) => {
                    let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::warn!(layer = "authn", jwks = %self.url(), kid, "jwks key skipped: {e}");
                }
            }
        }
        if keys.is_empty() {
            return Err(fail("no usable key in the set".into()));
        }
        let withdrawn = old.keys.iter().any(|k| !keys.iter().any(|n| n.same_as(k)));
        tracing::debug!(layer = "authn", jwks = %self.url(), keys = keys.len(), ?ttl, "jwks fetched");
        self.last_failure.store(0, Ordering::Relaxed);
        self.set.store(Arc::new(KeySet {
            keys: keys.into_boxed_slice(),
            loaded: true,
            refresh_at: now.saturating_add(ttl),
            fetched_at: now,
            generation: old.generation + 1,
        }));
        Ok(withdrawn)
    }
}

/// The lifetime from `Cache-Control` (`max-age`, or `no-cache`/`no-store` for the minimum),
/// within the configured bounds.
fn ttl(value: Option<&http::HeaderValue>, t: &JwksTiming) -> Duration {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return t.default_ttl;
    };
    let mut ttl = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return t.min_ttl;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            ttl = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    ttl.unwrap_or(t.default_ttl).clamp(t.min_ttl, t.max_ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_discovery_4_1_the_document_is_under_the_issuer_without_its_last_slash() {
        assert_eq!(
            Source::openid_configuration("https://sso.example.com/realms/acme/"),
            "https://sso.example.com/realms/acme/.well-known/openid-configuration"
        );
        assert_eq!(
            Source::openid_configuration("https://login.example.org/tenant/v2.0"),
            "https://login.example.org/tenant/v2.0/.well-known/openid-configuration"
        );
    }

    #[test]
    fn cache_control_sets_the_lifetime_within_bounds() {
        let t = JwksTiming::default();
        let h = |s: &'static str| http::HeaderValue::from_static(s);
        assert_eq!(ttl(None, &t), t.default_ttl);
        assert_eq!(
            ttl(Some(&h("public, max-age=3600")), &t),
            Duration::from_secs(3600)
        );
        assert_eq!(ttl(Some(&h("max-age=1")), &t), t.min_ttl);
        assert_eq!(ttl(Some(&h("max-age=99999999")), &t), t.max_ttl);
        assert_eq!(ttl(Some(&h("no-store")), &t), t.min_ttl);
        assert_eq!(ttl(Some(&h("max-age=abc")), &t), t.default_ttl);
    }
}
