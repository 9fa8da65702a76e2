//! The file's own policy, read again when the invalidation bus says the policy changed.

use std::path::{Path, PathBuf};

use super::Config;
use crate::authz::{Policy, PolicySource, PolicySpec};
use crate::error::{Chain, ConfigError, StoreError, StoreErrorKind};

/// The policy items of a configuration file (`roles`, `routes`, `extension_methods`,
/// `head_as_get`, `hide_routes`), read again on each load and checked as at startup: the
/// whole file must parse, the policy compile, and every route named by `validation` and
/// `quota` stay declared. Anything else that changed in the file takes effect at the next
/// start only.
#[derive(Debug, Clone)]
pub(super) struct FilePolicy {
    path: PathBuf,
}

impl FilePolicy {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl PolicySource for FilePolicy {
    async fn load(&self) -> Result<PolicySpec, StoreError> {
        // Read on the blocking pool, not on a runtime worker.
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read(&path))
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Other, e))?
    }
}

fn read(path: &Path) -> Result<PolicySpec, StoreError> {
    let refused = |e: &ConfigError| {
        let kind = match e {
            ConfigError::File { .. } => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::InvalidData,
        };
        StoreError::new(kind, Chain(e).to_string())
    };
    let config = Config::from_path(path).map_err(|e| refused(&e))?;
    let spec = config.policy_spec();
    let policy = Policy::compile(&spec).map_err(|e| refused(&config.in_file(e)))?;
    config
        .check_routes(&policy)
        .map_err(|e| refused(&config.in_file(e)))?;
    Ok(spec)
}
