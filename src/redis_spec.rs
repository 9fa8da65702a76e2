//! How a Redis store of the configuration file reaches Redis: the `mode` of a Redis store
//! (`quota.store`, DPoP's replay cache), checked the same way for both.

use serde::Deserialize;

#[cfg(feature = "redis")]
use crate::error::ConfigError;

/// How a Redis store reaches Redis, in the configuration file: the choice between the
/// constructors `RedisStore::builder` (single), `RedisStore::cluster` and
/// `RedisStore::sentinel` (and the same three of `RedisReplayStore`).
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
