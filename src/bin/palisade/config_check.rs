//! `palisade config check FILE`: every startup check of a configuration file, as the service
//! makes them when it builds its stack from the file (`Config::from_path`, then
//! `Config::builder().build()`): parsing (unknown fields, bad values), the authenticators,
//! the policy, quotas, validation, audit and resource metadata, and what one section names in
//! another. Nothing connects: Redis stores connect lazily, JWKS documents are fetched on first
//! use.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use palisade::ConfigError;
use palisade::audit::SinkConfig;
use palisade::authn::api_key::{KeyFormat, MemoryKeyStore};
use palisade::config::{Config, RedisMode};
use palisade::invalidation::InvalidationConfig;

use crate::table::count;
use crate::{Failure, Outcome};

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Run every startup check on a configuration file (YAML, TOML or JSON); exit status 1
    /// with the error (file, section, item) when the service would not start.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The configuration file.
    file: PathBuf,
}

pub(crate) fn run(command: ConfigCommand) -> Outcome {
    let ConfigCommand::Check(args) = command;
    match check(&args.file)? {
        Ok(config) => {
            println!("{}: ok", args.file.display());
            for line in summary(&config) {
                println!("  {line}");
            }
            Ok(())
        }
        Err(error) => {
            eprintln!("error: {error}");
            Err(Failure::No)
        }
    }
}

/// The configuration of `path` when the service would start with it, or the startup error
/// (naming the file); `Err` when the check itself could not run.
pub(crate) fn check(path: &Path) -> Result<Result<Config, String>, Failure> {
    let config = match Config::from_path(path) {
        Ok(config) => config,
        Err(error) => return Ok(Err(error.to_string())),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("the runtime to build the stack in: {e}"))?;
    // Building opens the audit files; a check must leave no file it created behind.
    let created: Vec<PathBuf> = audit_files(&config)
        .into_iter()
        .filter(|p| !p.exists())
        .collect();
    let built = runtime.block_on(async {
        sections(&config).map_err(|e| format!("configuration file `{}`: {e}", path.display()))?;
        let layer = config.builder().build().map_err(|e| e.to_string())?;
        if let Some(audit) = layer.handles().audit() {
            audit.shutdown().await;
        }
        Ok::<(), String>(())
    });
    let built = built.map_err(|e| with_env_line(e, path));
    for path in created {
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(built.map(|()| config))
}

/// The sections' own checks, one at a time in the order the stack is built, each error
/// named by its section (the whole stack's build then checks what spans sections).
fn sections(c: &Config) -> Result<(), String> {
    /// `result`'s error, after `section` (as written in the message) unless it names a word of `named` already.
    fn step<T>(
        section: &str,
        named: &[&str],
        result: Result<T, ConfigError>,
    ) -> Result<(), String> {
        result.map(drop).map_err(|e| {
            let message = e.to_string();
            if named.iter().any(|n| message.contains(n)) {
                message
            } else {
                format!("{section}: {message}")
            }
        })
    }
    step("`api_keys.prefix`", &[], KeyFormat::new(&c.api_keys.prefix))?;
    if let Some(var) = &c.api_keys.pepper_env {
        step(
            &format!("`api_keys.pepper_env` (`{var}`)"),
            &["`api_keys.pepper_env`"],
            c.api_keys(),
        )?;
    }
    if !c.api_keys.previous_hashers.is_empty() {
        step(
            "`api_keys.previous_hashers`",
            &["`api_keys.previous_hashers`"],
            c.api_keys(),
        )?;
    }
    step("`api_keys.keys`", &[], c.key_store())?;
    if c.api_keys.enabled {
        step(
            "`api_keys`",
            &["`api_keys"],
            c.authenticator(MemoryKeyStore::new()),
        )?;
    }
    step("`routes`", &["routes"], c.route_table())?;
    step("`roles`", &["routes", "roles"], c.policy())?;
    // A revocation horizon or capacity needs the `invalidation` bus: with one, the whole
    // stack's build checks them.
    if let Some(jwt) = &c.jwt {
        let mut jwt = jwt.clone();
        if c.invalidation.is_some() {
            jwt.revocation_horizon = None;
            jwt.revocation_capacity = None;
        }
        step(
            "`jwt`",
            &["`jwt"],
            jwt.authenticator_in(c.base_dir.as_deref()),
        )?;
    }
    if let Some(introspection) = &c.introspection {
        let mut introspection = introspection.clone();
        if c.invalidation.is_some() {
            introspection.revocation_horizon = None;
            introspection.revocation_capacity = None;
        }
        step(
            "`introspection`",
            &["`introspection"],
            introspection.authenticator_in(c.base_dir.as_deref()),
        )?;
    }
    step("`validation`", &["validation"], c.validate_layer())
}

/// `error`, with the line of `path` that names the environment variable it is about, if any.
fn with_env_line(error: String, path: &Path) -> String {
    let Some(name) = error
        .split_once("environment variable `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name.to_owned())
    else {
        return error;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return error;
    };
    // The first line naming it that is not a comment (YAML and TOML comments start with #).
    let named = |l: &str| l.contains(name.as_str()) && !l.trim_start().starts_with('#');
    match text.lines().position(named) {
        Some(i) => format!("{error} (named at line {} of the file)", i + 1),
        None => error,
    }
}

/// The files of the `audit` section's file sinks, as the stack resolves them.
fn audit_files(config: &Config) -> Vec<PathBuf> {
    let Some(audit) = &config.audit else {
        return Vec::new();
    };
    audit
        .sink
        .iter()
        .filter_map(|sink| match sink {
            SinkConfig::File { file } => Some(match &config.base_dir {
                Some(dir) if file.path.is_relative() => dir.join(&file.path),
                _ => file.path.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// A length as a count.
fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// What the file configures, one line per part.
fn summary(c: &Config) -> Vec<String> {
    let mut authn = Vec::new();
    if c.api_keys.enabled {
        authn.push(format!(
            "api keys (prefix `{}`, {}{})",
            c.api_keys.prefix,
            count(
                len(c.api_keys.keys.len()),
                "stored record",
                "stored records"
            ),
            if c.api_keys.pepper_env.is_some() {
                ", peppered"
            } else {
                ""
            }
        ));
    }
    if let Some(jwt) = &c.jwt {
        let issuers = count(len(jwt.issuers.len()), "issuer", "issuers");
        authn.push(format!("jwt ({issuers})"));
    }
    if c.introspection.is_some() {
        authn.push("introspection".into());
    }
    let mut lines = vec![
        format!("authentication: {}", authn.join(", ")),
        format!(
            "authorization: {}, {}",
            count(len(c.roles.len()), "role", "roles"),
            count(len(c.routes.len()), "rule", "rules")
        ),
        format!(
            "quota: {}, {} before authentication, {} after",
            count(len(c.quota.policies.len()), "policy", "policies"),
            count(len(c.quota.clients.len()), "rule", "rules"),
            c.quota.principals.len()
        ),
        format!(
            "validation: {}{}",
            count(
                len(c.validation.operations.len()),
                "operation",
                "operations"
            ),
            if c.validation.openapi.is_some() {
                " and an OpenAPI document"
            } else {
                ""
            }
        ),
    ];
    if let Some(audit) = &c.audit {
        lines.push(format!(
            "audit: {}{}",
            count(len(audit.sink.len()), "sink", "sinks"),
            if audit.chain_key_env.is_some() {
                ", chained"
            } else {
                ""
            }
        ));
    }
    if c.resource_metadata.is_some() {
        lines.push("resource metadata: served".into());
    }
    if let Some(i) = &c.invalidation {
        lines.push(invalidation(i));
    }
    lines
}

/// The summary line of the `invalidation` section.
fn invalidation(i: &InvalidationConfig) -> String {
    let mode = match i.redis.mode {
        RedisMode::Cluster => "cluster",
        RedisMode::Sentinel => "sentinel",
        _ => "one server",
    };
    let tls = if i.redis.tls_ca_file.is_some() || i.redis.tls_client_cert_file.is_some() {
        ", custom TLS"
    } else {
        ""
    };
    format!(
        "invalidation: Redis pub/sub on `{}` ({mode}, URLs from ${}{tls}), safe lifetime {}",
        i.channel,
        i.redis.url_env,
        humantime::format_duration(i.safe_lifetime)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("palisade-cli-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_valid_file_passes_and_its_audit_file_is_not_left_behind() {
        let path = write(
            "audit.yaml",
            "routes: [{path: /a}]\naudit: {sink: {file: {path: check-audit.jsonl}}}\n",
        );
        let log = path.with_file_name("check-audit.jsonl");
        let _ = std::fs::remove_file(&log);
        let config = check(&path).unwrap().unwrap();
        assert!(!log.exists(), "the check created {}", log.display());
        assert_eq!(audit_files(&config), vec![log]);
        assert!(summary(&config).iter().any(|l| l == "audit: 1 sink"));
    }

    #[test]
    fn a_startup_mistake_names_the_file_and_the_item() {
        let path = write("typo.yaml", "routes: [{path: /a, methods: [DELET]}]\n");
        let error = check(&path).unwrap().unwrap_err();
        assert!(error.contains("typo.yaml"), "{error}");
        assert!(error.contains("DELET"), "{error}");
    }
}
