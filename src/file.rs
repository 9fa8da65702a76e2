//! File formats of configuration and policy files: YAML, TOML and JSON (feature `config`).

use std::path::Path;

use serde::de::DeserializeOwned;

/// The file format of a configuration or policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// YAML 1.2 (through the maintained `serde_yaml_ng`).
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl Format {
    /// The format of a file, by its extension (`.yaml`/`.yml`, `.toml`, `.json`).
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// Parses `text` in this format; the error names the line and column where it can.
    pub(crate) fn parse<T: DeserializeOwned>(self, text: &str) -> Result<T, String> {
        match self {
            Self::Yaml => serde_yaml_ng::from_str(text).map_err(|e| e.to_string()),
            Self::Toml => toml::from_str(text).map_err(|e| e.to_string()),
            Self::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
        }
    }
}
