//! Where policies come from ([`PolicySource`]) and the policy in force ([`LivePolicy`]).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};

use super::policy::{Policy, PolicySpec};
use tokio::sync::Notify;

use crate::error::{ConfigError, StoreError};
use crate::invalidation::{Hub, Invalidation, InvalidationBus, InvalidationListener};

/// Where the written policy comes from: code, a file, the host's database.
///
/// `load` returns the whole current policy; [`LivePolicy::watch`] calls it periodically and
/// swaps in what changed. Implementations write `async fn load`.
pub trait PolicySource: Send + Sync + 'static {
    /// The current written policy.
    fn load(&self) -> impl Future<Output = Result<PolicySpec, StoreError>> + Send;
}

/// A policy in code is its own (unchanging) source.
impl PolicySource for PolicySpec {
    async fn load(&self) -> Result<Self, StoreError> {
        Ok(self.clone())
    }
}

impl<T: PolicySource> PolicySource for Arc<T> {
    fn load(&self) -> impl Future<Output = Result<PolicySpec, StoreError>> + Send {
        (**self).load()
    }
}

/// The object-safe companion of [`PolicySource`], for hosts that choose the source at run
/// time: `Box<dyn DynPolicySource>` and `Arc<dyn DynPolicySource>` are [`PolicySource`]s (one
/// boxed future per load). Every `PolicySource` is one.
pub trait DynPolicySource: Send + Sync + 'static {
    /// [`PolicySource::load`], boxed.
    fn load_boxed(&self) -> crate::BoxFuture<'_, Result<PolicySpec, StoreError>>;
}

impl<T: PolicySource> DynPolicySource for T {
    fn load_boxed(&self) -> crate::BoxFuture<'_, Result<PolicySpec, StoreError>> {
        Box::pin(self.load())
    }
}

impl fmt::Debug for dyn DynPolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DynPolicySource")
    }
}

impl PolicySource for Box<dyn DynPolicySource> {
    async fn load(&self) -> Result<PolicySpec, StoreError> {
        // `(**self)`: the box is a DynPolicySource too (blanket impl); calling it would recurse.
        (**self).load_boxed().await
    }
}

impl PolicySource for Arc<dyn DynPolicySource> {
    async fn load(&self) -> Result<PolicySpec, StoreError> {
        (**self).load_boxed().await
    }
}

/// A policy file (YAML, TOML or JSON by its extension) with top-level `roles` and `routes`, the
/// same format as those sections of the configuration file. Feature `config`.
#[cfg(feature = "config")]
#[derive(Debug, Clone)]
pub struct FileSource {
    path: std::path::PathBuf,
}

#[cfg(feature = "config")]
impl FileSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[cfg(feature = "config")]
impl PolicySource for FileSource {
    async fn load(&self) -> Result<PolicySpec, StoreError> {
        use crate::error::StoreErrorKind;
        use crate::file::Format;
        let format = Format::from_path(&self.path).ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::InvalidData,
                "a policy file ends in .yaml, .yml, .toml or .json",
            )
        })?;
        // Read on the blocking pool, not on a runtime worker, and never more than the cap.
        let path = self.path.clone();
        let text = tokio::task::spawn_blocking(move || read_capped(&path, MAX_POLICY_FILE))
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Other, e))?
            .map_err(|e| StoreError::new(StoreErrorKind::Unavailable, e))?;
        format
            .parse(&text)
            .map_err(|message| StoreError::new(StoreErrorKind::InvalidData, message))
    }
}

/// The largest policy file read (16 MiB): a policy is small, and memory stays bounded.
#[cfg(feature = "config")]
const MAX_POLICY_FILE: u64 = 16 << 20;

/// Reads `path` as UTF-8, refusing files over `cap` bytes.
#[cfg(feature = "config")]
fn read_capped(path: &std::path::Path, cap: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the policy file is larger than {cap} bytes"),
        ));
    }
    Ok(text)
}

/// Why a reload did not change the policy in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The source could not be read or parsed.
    #[error("policy source failed")]
    Source(#[source] StoreError),
    /// The new policy does not compile.
    #[error("new policy refused")]
    Invalid(#[source] ConfigError),
}

#[derive(Default)]
struct Status {
    errors: AtomicU64,
    reloads: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The policy in force, swapped atomically on reload: a request sees either the old policy or
/// the new one, never a mix. Clones share it.
#[derive(Clone)]
pub struct LivePolicy {
    current: Arc<ArcSwap<Policy>>,
    status: Arc<Status>,
}

impl fmt::Debug for LivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LivePolicy")
            .field("current", &self.current.load())
            .field("reloads", &self.reloads())
            .field("reload_errors", &self.reload_errors())
            .finish()
    }
}

impl LivePolicy {
    /// Puts `policy` in force.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(policy)),
            status: Arc::default(),
        }
    }

    /// Compiles `spec` and puts it in force.
    ///
    /// # Errors
    ///
    /// As [`Policy::compile`].
    pub fn from_spec(spec: &PolicySpec) -> Result<Self, ConfigError> {
        Ok(Self::new(Policy::compile(spec)?))
    }

    /// Loads and compiles the first policy from `source`. At start-up a bad policy is an error,
    /// not a fallback.
    ///
    /// # Errors
    ///
    /// [`ReloadError`] when the source fails or its policy does not compile.
    pub async fn from_source<S: PolicySource>(source: &S) -> Result<Self, ReloadError> {
        let spec = source.load().await.map_err(ReloadError::Source)?;
        Self::from_spec(&spec).map_err(ReloadError::Invalid)
    }

    /// The policy in force now.
    #[must_use]
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// The policy in force, without touching its reference count (the request path).
    pub(crate) fn load(&self) -> Guard<Arc<Policy>> {
        self.current.load()
    }

    /// Compiles `spec` and swaps it in. On error the policy in force stays, and the error is
    /// logged and counted.
    ///
    /// # Errors
    ///
    /// [`ReloadError::Invalid`] when `spec` does not compile.
    pub fn replace(&self, spec: &PolicySpec) -> Result<(), ReloadError> {
        match Policy::compile(spec) {
            Ok(policy) => {
                let generation = policy.generation();
                self.current.store(Arc::new(policy));
                self.status.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(layer = "authz", generation, "policy reloaded");
                Ok(())
            }
            Err(e) => Err(self.refused(ReloadError::Invalid(e))),
        }
    }

    /// Loads `source` once and swaps its policy in (see [`replace`](Self::replace)).
    ///
    /// # Errors
    ///
    /// [`ReloadError`]; the policy in force stays.
    pub async fn reload<S: PolicySource>(&self, source: &S) -> Result<(), ReloadError> {
        match source.load().await {
            Ok(spec) => self.replace(&spec),
            Err(e) => {
                crate::telemetry::backend_error("policy_source", "error");
                Err(self.refused(ReloadError::Source(e)))
            }
        }
    }

    fn refused(&self, error: ReloadError) -> ReloadError {
        let chain = crate::error::Chain(&error).to_string();
        tracing::error!(layer = "authz", error = %chain, "policy reload refused; the policy in force stays");
        self.status.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.status.last_error.lock() {
            *last = Some(chain);
        }
        error
    }

    /// Polls `source` every `every` on a tokio task and swaps in each changed policy. A policy
    /// that fails to load or compile is refused (logged and counted); the one in force stays.
    /// The task stops when the returned handle is dropped.
    #[must_use = "the watcher stops when its handle is dropped"]
    pub fn watch<S: PolicySource>(&self, source: S, every: Duration) -> WatchHandle {
        self.watch_inner(source, every, None, None)
    }

    /// As [`watch`](Self::watch), and also reloads at once when
    /// [`Invalidation::PolicyChanged`] is published on `bus` (by any instance) or the bus
    /// reconnects. While the bus is down the source is polled at least every safe lifetime
    /// of the bus, so `every` can be long.
    #[must_use = "the watcher stops when its handle is dropped"]
    pub fn watch_with_bus<S: PolicySource>(
        &self,
        source: S,
        every: Duration,
        bus: &impl InvalidationBus,
    ) -> WatchHandle {
        self.watch_inner(source, every, Some(bus.hub().clone()), None)
    }

    /// As [`watch_with_bus`](Self::watch_with_bus) for a policy compiled from `known`: the
    /// first load waits for a message, a reconnection or `every`.
    #[cfg_attr(not(feature = "config"), allow(dead_code))] // the configured stack's
    pub(crate) fn follow_with_bus<S: PolicySource>(
        &self,
        source: S,
        known: PolicySpec,
        every: Duration,
        bus: &impl InvalidationBus,
    ) -> WatchHandle {
        self.watch_inner(source, every, Some(bus.hub().clone()), Some(known))
    }

    fn watch_inner<S: PolicySource>(
        &self,
        source: S,
        every: Duration,
        hub: Option<Hub>,
        known: Option<PolicySpec>,
    ) -> WatchHandle {
        // The task holds the policy weakly: it ends when the policy is no longer in use.
        let live = (Arc::downgrade(&self.current), Arc::downgrade(&self.status));
        let wake = Arc::new(Wake(Notify::new()));
        let listener: Arc<dyn InvalidationListener> = wake.clone();
        if let Some(hub) = &hub {
            hub.listen(&listener);
        }
        let task = tokio::spawn(async move {
            // Registered weakly with the bus: it listens as long as this task runs.
            let _listener = listener;
            let mut load_now = known.is_none();
            let mut last = known;
            while live.0.strong_count() > 0 {
                if !load_now {
                    load_now = true;
                    wait(hub.as_ref(), every, &wake).await;
                    continue;
                }
                let loaded = source.load().await;
                let (Some(current), Some(status)) = (live.0.upgrade(), live.1.upgrade()) else {
                    return;
                };
                let live = Self { current, status };
                match loaded {
                    Ok(spec) if last.as_ref() == Some(&spec) => {}
                    Ok(spec) => {
                        // Remember even a refused spec, so it is reported once, not every tick.
                        let _ = live.replace(&spec);
                        last = Some(spec);
                    }
                    Err(e) => {
                        let _ = live.refused(ReloadError::Source(e));
                    }
                }
                drop(live);
                wait(hub.as_ref(), every, &wake).await;
            }
        });
        WatchHandle { task: Some(task) }
    }

    /// How many policies were swapped in after the first.
    #[must_use]
    pub fn reloads(&self) -> u64 {
        self.status.reloads.load(Ordering::Relaxed)
    }

    /// How many reloads were refused.
    #[must_use]
    pub fn reload_errors(&self) -> u64 {
        self.status.errors.load(Ordering::Relaxed)
    }

    /// The last refused reload's error chain.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.status.last_error.lock().ok().and_then(|l| l.clone())
    }
}

/// Keeps a [`LivePolicy::watch`] task running; dropping it stops the task, and so does
/// dropping every clone of the policy it watches.
pub struct WatchHandle {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl WatchHandle {
    /// Lets the watcher run for as long as its policy is in use (held by a layer, a service
    /// or a clone of the [`LivePolicy`]), instead of until this handle is dropped: for a
    /// policy handed to a stack that the host does not keep a handle beside.
    pub fn detach(mut self) {
        self.task = None;
    }
}

impl fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchHandle").finish_non_exhaustive()
    }
}

/// A watcher's pause: `every` (at most the bus's safe lifetime while it is down), or until the
/// bus says the policy changed.
async fn wait(hub: Option<&Hub>, every: Duration, wake: &Wake) {
    let period = hub.map_or(every, |h| h.lifetime(every));
    tokio::select! {
        () = tokio::time::sleep(period) => {}
        () = wake.0.notified() => {}
    }
}

/// Wakes a watcher when the policy changed elsewhere.
struct Wake(Notify);

impl InvalidationListener for Wake {
    fn invalidate(&self, message: &Invalidation) {
        if matches!(message, Invalidation::PolicyChanged) {
            self.0.notify_one();
        }
    }

    fn resync(&self) {
        self.0.notify_one();
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(all(test, feature = "config"))]
mod tests {
    use super::*;

    #[test]
    fn policy_files_over_the_cap_are_refused_unread() {
        let path = std::env::temp_dir().join(format!("palisade-cap-{}.yaml", std::process::id()));
        std::fs::write(&path, "routes: []\n# padding padding padding\n").unwrap();
        assert!(read_capped(&path, 1024).is_ok());
        let err = read_capped(&path, 8).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn a_missing_file_is_a_store_error_not_a_panic() {
        let err = FileSource::new("/nonexistent/palisade-policy.yaml")
            .load()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::error::StoreErrorKind::Unavailable);
    }
}

#[cfg(test)]
mod bus_tests {
    use super::*;
    use crate::invalidation::InProcessBus;

    struct Shared(Mutex<PolicySpec>);

    impl PolicySource for Arc<Shared> {
        async fn load(&self) -> Result<PolicySpec, StoreError> {
            Ok(self.0.lock().unwrap().clone())
        }
    }

    fn spec(path: &str) -> PolicySpec {
        PolicySpec::builder()
            .role("reader", [])
            .allow([http::Method::GET], path, ["reader"])
            .build()
    }

    #[tokio::test(start_paused = true)]
    async fn policy_changed_on_the_bus_reloads_at_once() {
        let bus = InProcessBus::new();
        let source = Arc::new(Shared(Mutex::new(spec("/a"))));
        let live = LivePolicy::from_spec(&spec("/a")).unwrap();
        let _watch = live.watch_with_bus(source.clone(), Duration::from_secs(3600), &bus);
        let reloads = |n: u64| {
            let live = live.clone();
            tokio::time::timeout(Duration::from_secs(1), async move {
                while live.reloads() < n {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        reloads(1).await.expect("the first load");
        *source.0.lock().unwrap() = spec("/b");
        bus.publish(&Invalidation::PolicyChanged).await.unwrap();
        // Paused time: the hour-long poll cannot fire; only the bus can wake the watcher.
        reloads(2).await.expect("reloaded on PolicyChanged");
        assert_eq!(live.reloads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_detached_watcher_runs_while_its_policy_is_in_use_and_ends_with_it() {
        let bus = InProcessBus::new();
        let source = Arc::new(Shared(Mutex::new(spec("/a"))));
        let live = LivePolicy::from_spec(&spec("/a")).unwrap();
        live.follow_with_bus(source.clone(), spec("/a"), Duration::from_secs(3600), &bus)
            .detach();
        *source.0.lock().unwrap() = spec("/b");
        bus.publish(&Invalidation::PolicyChanged).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), async {
            while live.reloads() < 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("reloaded on the message, with no handle held");
        assert!(live.current().covers(Some(&http::Method::GET), "/b"));
        drop(live);
        bus.publish(&Invalidation::PolicyChanged).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), async {
            while Arc::strong_count(&source) > 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the task ended with its policy and let go of its source");
    }
}
