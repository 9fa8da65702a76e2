//! The `audit` section of a configuration file (feature `config`).

use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderName;
use serde::Deserialize;

use super::{
    AuditBuilder, AuditHandle, AuditLayer, DynAuditSink, FanOut, JsonLinesSink, TracingSink,
};
use crate::client_ip::ClientIpResolver;
use crate::error::ConfigError;

/// The `audit` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditConfig {
    /// Where events go (default `tracing`): one sink, or a list of them (every event goes to
    /// each).
    #[serde(default = "default_sinks", deserialize_with = "one_or_many")]
    pub sink: Vec<SinkConfig>,
    /// The queue's capacity (default 4,096).
    #[serde(default)]
    pub capacity: Option<usize>,
    /// The environment variable holding the chain key (32 bytes or more): events are sealed
    /// and chained when set.
    #[serde(default)]
    pub chain_key_env: Option<String>,
    /// Request headers to record besides `User-Agent`.
    #[serde(default)]
    pub record_headers: Vec<String>,
    /// Headers never recorded in clear, besides the built-in ones.
    #[serde(default)]
    pub redact_headers: Vec<String>,
    /// Query parameters whose values are recorded in clear.
    #[serde(default)]
    pub keep_query_params: Vec<String>,
    /// Query parameters never recorded in clear, besides the built-in ones.
    #[serde(default)]
    pub redact_query_params: Vec<String>,
    /// The request id's header (default `x-request-id`): read from the request when
    /// well-formed (else replaced there), set on the response.
    #[serde(default)]
    pub request_id_header: Option<String>,
}

/// Where audit events go: `tracing` (default), `stdout`, or `{file: {path, max_bytes, keep}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum SinkConfig {
    /// `tracing` or `stdout`.
    Named(NamedSink),
    /// JSON lines appended to a file.
    File {
        /// The file.
        file: FileSinkConfig,
    },
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self::Named(NamedSink::Tracing)
    }
}

/// A sink named by a word.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NamedSink {
    /// `tracing` events (target `palisade::audit`).
    Tracing,
    /// JSON lines on standard output.
    Stdout,
}

/// JSON lines appended to a file, rotated by size when `max_bytes` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FileSinkConfig {
    /// The file (relative to the configuration file's directory).
    pub path: PathBuf,
    /// Rotate past this size.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Rotated files kept (default 5).
    #[serde(default)]
    pub keep: Option<usize>,
}

fn default_sinks() -> Vec<SinkConfig> {
    vec![SinkConfig::default()]
}

/// `sink: tracing` or `sink: [tracing, {file: {path: audit.jsonl}}]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SinkConfig>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<SinkConfig>),
        One(SinkConfig),
    }
    match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) if v.is_empty() => Err(serde::de::Error::custom(
            "an empty sink list would record nothing: remove the audit section instead",
        )),
        OneOrMany::Many(v) => Ok(v),
        OneOrMany::One(s) => Ok(vec![s]),
    }
}

fn header(field: &'static str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| ConfigError::Invalid {
        field,
        message: format!("`{name}` is not a header name"),
    })
}

impl AuditConfig {
    /// Starts the audit queue and builds the layer (inside a tokio runtime). `api_key_header`
    /// is redacted too; `base` is the configuration file's directory.
    ///
    /// # Errors
    ///
    /// A bad header name, a missing or short chain key, a file that cannot be opened, or no
    /// runtime.
    pub fn layer(
        &self,
        resolver: ClientIpResolver,
        api_key_header: Option<&str>,
        base: Option<&std::path::Path>,
    ) -> Result<(AuditLayer, AuditHandle), ConfigError> {
        self.builder(api_key_header, base, Vec::new())?
            .client_ip(resolver)
            .build()
    }

    /// The audit builder of this section, writing to its sink and to `extra` sinks besides
    /// (the host's own). `api_key_header` is redacted too; `base` is the configuration file's
    /// directory. The queue starts when the builder is built.
    ///
    /// # Errors
    ///
    /// A bad header name, a missing or short chain key, or a file that cannot be opened.
    pub fn builder(
        &self,
        api_key_header: Option<&str>,
        base: Option<&std::path::Path>,
        extra: Vec<Arc<dyn DynAuditSink>>,
    ) -> Result<AuditBuilder<Arc<dyn DynAuditSink>>, ConfigError> {
        // Everything that can fail without side effects is checked before the sink's file is
        // created, so a configuration error leaves no empty log behind.
        let chain_key = match &self.chain_key_env {
            Some(var) => Some(zeroize::Zeroizing::new(std::env::var(var).map_err(
                |_| ConfigError::Env {
                    field: "audit.chain_key_env",
                    name: var.clone(),
                },
            )?)),
            None => None,
        };
        let mut sinks = self
            .sink
            .iter()
            .map(|c| open_sink(c, base))
            .collect::<Result<Vec<_>, _>>()?;
        sinks.extend(extra);
        let sink: Arc<dyn DynAuditSink> = if sinks.len() == 1 {
            sinks.remove(0)
        } else {
            Arc::new(sinks.into_iter().fold(FanOut::new(), FanOut::with))
        };
        let mut b = AuditLayer::builder(sink);
        if let Some(c) = self.capacity {
            b = b.capacity(c);
        }
        if let Some(key) = &chain_key {
            b = b.chain_key(key.as_bytes());
        }
        // A short key is the file's mistake: said here, naming `chain_key_env`'s key.
        if let Some(e) = b.error.take() {
            return Err(e);
        }
        for h in &self.record_headers {
            b = b.record_header(header("audit.record_headers", h)?);
        }
        for h in self
            .redact_headers
            .iter()
            .map(String::as_str)
            .chain(api_key_header)
        {
            b = b.redact_header(header("audit.redact_headers", h)?);
        }
        for p in &self.keep_query_params {
            b = b.keep_query_param(p);
        }
        for p in &self.redact_query_params {
            b = b.redact_query_param(p);
        }
        if let Some(h) = &self.request_id_header {
            b = b.request_id_header(header("audit.request_id_header", h)?);
        }
        Ok(b)
    }
}

/// The sink one entry of `sink` names.
fn open_sink(
    config: &SinkConfig,
    base: Option<&std::path::Path>,
) -> Result<Arc<dyn DynAuditSink>, ConfigError> {
    Ok(match config {
        SinkConfig::Named(NamedSink::Tracing) => Arc::new(TracingSink),
        SinkConfig::Named(NamedSink::Stdout) => Arc::new(JsonLinesSink::writer(std::io::stdout())),
        SinkConfig::File {
            file:
                FileSinkConfig {
                    path,
                    max_bytes,
                    keep,
                },
        } => {
            let path = match base {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.clone(),
            };
            Arc::new(
                // `Invalid`, not `File`: the file that failed is the log, and the error names
                // the configuration file it was configured in as well.
                JsonLinesSink::rotating(&path, *max_bytes, keep.unwrap_or(5)).map_err(|e| {
                    ConfigError::Invalid {
                        field: "audit.sink",
                        message: format!("file `{}`: {e}", path.display()),
                    }
                })?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Format};

    #[tokio::test]
    async fn the_audit_reference_in_docs_config_md_builds() {
        let doc = include_str!("../../docs/config.md");
        let yaml = doc
            .split("```yaml\n")
            .nth(4)
            .and_then(|rest| rest.split("```").next())
            .expect("a fourth yaml block in docs/config.md");
        let mut c = Config::parse(yaml, Format::Yaml).unwrap();
        // The chain key's variable is not set here: building names it.
        let err = c.audit().unwrap_err().to_string();
        assert!(err.contains("AUDIT_CHAIN_KEY"), "{err}");
        // ...and the failed build created no file.
        assert!(!std::path::Path::new("audit.jsonl").exists());
        let audit = c.audit.as_mut().unwrap();
        audit.chain_key_env = None;
        audit.sink = vec![super::SinkConfig::default()];
        let (_layer, handle) = c.audit().unwrap().unwrap();
        handle.shutdown().await;
        assert!(Config::default().audit().unwrap().is_none());
    }

    #[test]
    fn one_sink_or_a_list_of_them() {
        let one = Config::parse("audit: {sink: stdout}", Format::Yaml).unwrap();
        assert_eq!(one.audit.unwrap().sink.len(), 1);
        let two = Config::parse(
            "audit: {sink: [tracing, {file: {path: a.jsonl}}]}",
            Format::Yaml,
        )
        .unwrap();
        assert!(matches!(
            two.audit.unwrap().sink[..],
            [
                super::SinkConfig::Named(super::NamedSink::Tracing),
                super::SinkConfig::File { .. }
            ]
        ));
        let none = Config::parse("audit: {}", Format::Yaml).unwrap();
        assert_eq!(none.audit.unwrap().sink.len(), 1, "tracing by default");
        let err = Config::parse("audit: {sink: []}", Format::Yaml).unwrap_err();
        assert!(err.to_string().contains("empty sink list"), "{err}");
    }

    #[tokio::test]
    async fn the_request_id_header_is_named_in_the_file_and_checked() {
        let c =
            Config::parse("audit: {request_id_header: X-Correlation-Id}", Format::Yaml).unwrap();
        let b = c
            .audit
            .as_ref()
            .unwrap()
            .builder(None, None, Vec::new())
            .unwrap();
        assert!(format!("{b:?}").contains("x-correlation-id"), "{b:?}");
        let bad = Config::parse("audit: {request_id_header: 'x id'}", Format::Yaml).unwrap();
        let err = bad
            .audit
            .unwrap()
            .builder(None, None, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("audit.request_id_header"), "{err}");
    }
}
