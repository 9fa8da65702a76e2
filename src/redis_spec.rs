//! How a Redis store of the configuration file reaches Redis: the `mode` of a Redis store
//! (`quota.store`, DPoP's replay cache), checked the same way for both, and
//! [`RedisConnection`], the whole way to a Redis (mode, URLs, Sentinel, TLS) as the
//! `invalidation.redis` section gives it.

#[cfg(feature = "redis")]
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;

#[cfg(feature = "redis")]
use crate::error::ConfigError;

/// How a Redis store reaches Redis, in the configuration file: the choice between the
/// constructors `RedisStore::builder` (single), `RedisStore::cluster` and
/// `RedisStore::sentinel` (and the same three of `RedisReplayStore` and `RedisBus`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RedisMode {
    /// One server: the variable holds one URL (default).
    #[default]
    Single,
    /// A Redis Cluster: the variable holds the URLs of one or more seed nodes.
    Cluster,
    /// A primary that Sentinel watches: the variable holds the sentinels' URLs, and `service`
    /// names the primary as the sentinels know it.
    Sentinel,
}

/// How to reach a Redis, in the configuration file (`invalidation.redis`): the same items as a
/// Redis `quota.store`. The URLs come from an environment variable (they may hold a password):
///
/// ```yaml
/// mode: sentinel                    # single (default) | cluster | sentinel
/// url_env: PALISADE_REDIS_SENTINELS # single: one URL; cluster: seed nodes; sentinel: sentinels
/// service: orders-primary           # sentinel only: the name the sentinels monitor
/// primary_url_env: PALISADE_REDIS_PRIMARY  # sentinel only: the primary's login and database
/// # tls_ca_file: redis-ca.pem       # rediss:// signed by a private CA (not with sentinel)
/// # tls_client_cert_file: client.pem  # with tls_client_key_file: a client certificate
/// ```
///
/// Every item takes effect or startup fails naming it: several URLs for one server, Sentinel
/// without a service, a service, primary login or TLS file the mode or the URLs would ignore,
/// half a client certificate, or a file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisConnection {
    /// How Redis is reached: `single` (default), `cluster` or `sentinel`.
    #[serde(default)]
    pub mode: RedisMode,
    /// The environment variable holding the URL (`redis://[user:password@]host:port/db`, or
    /// `rediss://` for TLS); for `cluster` the seed nodes' URLs and for `sentinel` the
    /// sentinels' URLs, separated by commas.
    pub url_env: String,
    /// For `mode: sentinel`: the name the sentinels monitor the primary under.
    #[serde(default)]
    pub service: Option<String>,
    /// For `mode: sentinel`: the variable holding `redis://[user:]password@any/db`, how to log
    /// in to the primary (its host is not used: the sentinels name the primary).
    #[serde(default)]
    pub primary_url_env: Option<String>,
    /// For `rediss://` servers signed by a private CA: the CA certificates (PEM), read relative
    /// to the configuration file's directory (feature `redis-tls`). Without it the Mozilla
    /// roots are trusted.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) to present to `rediss://` servers that ask for one
    /// (`tls-auth-clients yes`), with [`tls_client_key_file`](Self::tls_client_key_file).
    #[serde(default)]
    pub tls_client_cert_file: Option<PathBuf>,
    /// The private key (PEM) of [`tls_client_cert_file`](Self::tls_client_cert_file).
    #[serde(default)]
    pub tls_client_key_file: Option<PathBuf>,
}

impl RedisConnection {
    /// One server, its URL in environment variable `url_env`.
    #[must_use]
    pub fn new(url_env: impl Into<String>) -> Self {
        Self {
            mode: RedisMode::Single,
            url_env: url_env.into(),
            service: None,
            primary_url_env: None,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
        }
    }
}

/// The names of a [`RedisConnection`]'s items in the file, for errors.
#[cfg(feature = "redis")]
pub(crate) struct Names {
    pub(crate) items: Items,
    pub(crate) primary_url_env: &'static str,
    pub(crate) tls_ca_file: &'static str,
    pub(crate) tls_client_cert_file: &'static str,
    pub(crate) tls_client_key_file: &'static str,
}

/// What a [`RedisConnection`] resolves to: where Redis is, and the TLS settings.
#[cfg(feature = "redis")]
pub(crate) struct Resolved {
    pub(crate) topology: crate::redis_link::Topology,
    pub(crate) tls: crate::redis_link::Tls,
}

#[cfg(feature = "redis")]
impl RedisConnection {
    /// Reads the variables and files (relative to `base`), checking every item against the
    /// mode and the URLs; errors name the item (`names`) and never echo a URL.
    pub(crate) fn resolve(
        &self,
        base: Option<&Path>,
        names: &Names,
    ) -> Result<Resolved, ConfigError> {
        use crate::redis_link::Topology;
        let env = |field: &'static str, var: &String| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| ConfigError::Env {
                    field,
                    name: var.clone(),
                })
        };
        let value = env(names.items.url_env, &self.url_env)?;
        let mut urls = urls(self.mode, self.service.as_deref(), &value, &names.items)?;
        let primary = match &self.primary_url_env {
            None => None,
            Some(_) if self.mode != RedisMode::Sentinel => {
                return Err(ConfigError::Invalid {
                    field: names.primary_url_env,
                    message: "the primary's login is for `mode: sentinel` only".into(),
                });
            }
            Some(var) => Some(env(names.primary_url_env, var)?),
        };
        let tls_url = urls
            .iter()
            .chain(&primary)
            .any(|u| u.starts_with("rediss://"));
        let tls = self.tls(base, names, tls_url)?;
        let topology = match (self.mode, &self.service) {
            (RedisMode::Cluster, _) => Topology::Cluster(urls),
            (RedisMode::Sentinel, Some(service)) => Topology::Sentinel {
                service: service.clone(),
                sentinels: urls,
                primary,
            },
            _ => Topology::Single(urls.swap_remove(0)),
        };
        Ok(Resolved { topology, tls })
    }

    /// The TLS settings of the files, checked: none without `rediss://` URLs or with Sentinel.
    fn tls(
        &self,
        base: Option<&Path>,
        names: &Names,
        tls_url: bool,
    ) -> Result<crate::redis_link::Tls, ConfigError> {
        let given = [
            (names.tls_ca_file, &self.tls_ca_file),
            (names.tls_client_cert_file, &self.tls_client_cert_file),
            (names.tls_client_key_file, &self.tls_client_key_file),
        ];
        let Some((first, _)) = given.iter().find(|(_, f)| f.is_some()) else {
            return Ok(None);
        };
        let invalid = |field, message: &str| ConfigError::Invalid {
            field,
            message: message.into(),
        };
        if !tls_url {
            return Err(invalid(*first, "TLS settings need `rediss://` URLs"));
        }
        if self.mode == RedisMode::Sentinel {
            return Err(invalid(
                *first,
                "a custom CA or client certificate is not supported with Sentinel; its servers must present certificates the Mozilla roots trust",
            ));
        }
        match (&self.tls_client_cert_file, &self.tls_client_key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    names.tls_client_key_file,
                    "the client certificate's key is missing",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    names.tls_client_cert_file,
                    "the key's client certificate is missing",
                ));
            }
            _ => {}
        }
        read_tls(self, base, names)
    }
}

/// Reads the TLS files of `c` (feature `redis-tls`).
#[cfg(feature = "redis-tls")]
fn read_tls(
    c: &RedisConnection,
    base: Option<&Path>,
    names: &Names,
) -> Result<crate::redis_link::Tls, ConfigError> {
    let read = |what: &'static str, file: &Path| {
        let path = match base {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_path_buf(),
        };
        std::fs::read(&path).map_err(|e| ConfigError::OtherFile {
            what,
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let root_cert = c
        .tls_ca_file
        .as_deref()
        .map(|f| read(names.tls_ca_file, f))
        .transpose()?;
    let client_tls = match (&c.tls_client_cert_file, &c.tls_client_key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(names.tls_client_cert_file, cert)?,
            client_key: read(names.tls_client_key_file, key)?,
        }),
        _ => None,
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

#[cfg(all(feature = "redis", not(feature = "redis-tls")))]
fn read_tls(
    _: &RedisConnection,
    _: Option<&Path>,
    names: &Names,
) -> Result<crate::redis_link::Tls, ConfigError> {
    Err(ConfigError::Invalid {
        field: names.tls_ca_file,
        message: "TLS files need palisade's `redis-tls` feature".into(),
    })
}

/// The names of a Redis store's items in the file, for errors.
#[cfg(feature = "redis")]
pub(crate) struct Items {
    pub(crate) url_env: &'static str,
    pub(crate) service: &'static str,
}

/// The URLs `value` lists (separated by commas or white space), checked against `mode` and
/// `service`; never echoes a URL (it may hold a password).
#[cfg(feature = "redis")]
pub(crate) fn urls(
    mode: RedisMode,
    service: Option<&str>,
    value: &str,
    items: &Items,
) -> Result<Vec<String>, ConfigError> {
    let urls: Vec<String> = value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let invalid = |field, message: String| ConfigError::Invalid { field, message };
    if urls.is_empty() {
        return Err(invalid(items.url_env, "the variable holds no URL".into()));
    }
    match (mode, service) {
        (RedisMode::Single, _) if urls.len() > 1 => Err(invalid(
            items.url_env,
            format!(
                "the variable holds {} URLs; one server takes one (`mode: cluster` or `mode: sentinel` for several)",
                urls.len()
            ),
        )),
        (RedisMode::Sentinel, None) => Err(invalid(
            items.service,
            "`mode: sentinel` needs the name the sentinels monitor the primary under".into(),
        )),
        (RedisMode::Sentinel, Some(s)) if s.trim().is_empty() => {
            Err(invalid(items.service, "the service name is empty".into()))
        }
        (RedisMode::Single | RedisMode::Cluster, Some(_)) => Err(invalid(
            items.service,
            "a service name is for `mode: sentinel` only".into(),
        )),
        _ => Ok(urls),
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    const ITEMS: Items = Items {
        url_env: "quota.store.url_env",
        service: "quota.store.service",
    };

    #[test]
    fn urls_are_split_and_checked_against_the_mode() {
        let two = "redis://a:1/, redis://b:2/";
        assert_eq!(
            urls(RedisMode::Cluster, None, two, &ITEMS).unwrap(),
            ["redis://a:1/", "redis://b:2/"]
        );
        let e = urls(
            RedisMode::Single,
            None,
            "redis://:pw@a/ redis://:pw@b/",
            &ITEMS,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("quota.store.url_env") && !e.contains("pw"),
            "{e}"
        );
        let e = urls(RedisMode::Sentinel, None, two, &ITEMS).unwrap_err();
        assert!(e.to_string().contains("quota.store.service"));
        assert!(urls(RedisMode::Sentinel, Some(" "), two, &ITEMS).is_err());
        assert!(urls(RedisMode::Cluster, Some("m"), two, &ITEMS).is_err());
        assert!(urls(RedisMode::Cluster, None, " , ", &ITEMS).is_err());
        assert_eq!(
            urls(RedisMode::Sentinel, Some("m"), two, &ITEMS)
                .unwrap()
                .len(),
            2
        );
    }
}
