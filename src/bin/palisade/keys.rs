//! `palisade keys`: issue a key, hash one, check one against what a store keeps.
//!
//! The key format and hasher come from `--prefix` and `--pepper-env`, or from a configuration
//! file's `api_keys` section (`--config`), so a hash is the one the service computes. A key is
//! read from standard input, never from the command line (where other users of the machine
//! could see it), and never printed: only `generate` shows the plaintext of the key it issued,
//! once.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use palisade::authn::api_key::{ApiKeys, KeyFormat, KeyHash, KeyHasher, KeyRecord, KeySpec};
use palisade::clock::{Clock, SystemClock, Timestamp};
use palisade::config::Config;
use zeroize::Zeroizing;

use crate::{Failure, Outcome};

/// The longest key read from standard input: keys are short, and memory stays bounded.
const MAX_KEY_BYTES: u64 = 1024;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Issue a key: the plaintext is printed once, with the record to store (its hash).
    Generate(GenerateArgs),
    /// The id and hash of a key read from standard input, as the service computes them.
    Hash(HasherArgs),
    /// Check the key on standard input against what a store keeps.
    ///
    /// Against a stored record (`--record`), a stored hash (`--hash`), or the record of its id
    /// in a configuration file's `api_keys.keys` (`--config` alone). Exit status 1 unless the
    /// service would accept it.
    Check(CheckArgs),
    /// Publish a key's (`--id`) or a subject's keys' (`--subject`) revocation on the
    /// configuration file's invalidation bus: every instance drops them from its caches at
    /// once. Revoke the record in the key store first.
    Revoke(crate::revoke::RevokeArgs),
}

/// How keys are formatted and hashed: flags, or a configuration file's `api_keys`.
#[derive(Debug, Args)]
pub(crate) struct HasherArgs {
    /// Take the prefix and the pepper from this configuration file's `api_keys` section.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prefix", "pepper_env"])]
    config: Option<PathBuf>,
    /// The key format's prefix (`api_keys.prefix`).
    #[arg(long, default_value = "pal")]
    prefix: String,
    /// Hash with HMAC-SHA-256 under the secret in this environment variable
    /// (`api_keys.pepper_env`); default plain SHA-256.
    #[arg(long, value_name = "VAR")]
    pepper_env: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Who the key authenticates.
    #[arg(long)]
    subject: String,
    /// A role of the key (repeatable).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// A scope of the key (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// The key's tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// The key's quota tier.
    #[arg(long)]
    tier: Option<String>,
    /// A label for people.
    #[arg(long)]
    name: Option<String>,
    /// When the key stops working (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    expires: Option<String>,
    #[command(flatten)]
    hasher: HasherArgs,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("against").required(true).multiple(true).args(["record", "hash", "config"])
))]
pub(crate) struct CheckArgs {
    /// A file holding the stored record (JSON or YAML, as `generate` prints it).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// The stored hash (hex).
    #[arg(long, value_name = "HEX")]
    hash: Option<String>,
    #[command(flatten)]
    hasher: HasherArgs,
}

pub(crate) fn run(command: KeysCommand) -> Outcome {
    match command {
        KeysCommand::Generate(args) => generate(&args),
        KeysCommand::Hash(args) => hash(&args),
        KeysCommand::Check(args) => check(&args),
        KeysCommand::Revoke(args) => crate::revoke::run(&args),
    }
}

/// A configuration file, its errors naming it.
fn load_config(path: &Path) -> Result<Config, Failure> {
    Config::from_path(path).map_err(Failure::from)
}

/// The key format and hasher the arguments describe.
fn api_keys(args: &HasherArgs) -> Result<ApiKeys, Failure> {
    if let Some(path) = &args.config {
        let config = load_config(path)?;
        return config.api_keys().map_err(|e| config_error(path, &e));
    }
    let keys = ApiKeys::new().with_format(KeyFormat::new(&args.prefix)?);
    let Some(var) = &args.pepper_env else {
        return Ok(keys);
    };
    let secret = Zeroizing::new(
        std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))?,
    );
    Ok(keys.with_hasher(KeyHasher::keyed(secret.as_bytes())?))
}

/// An error of a configuration's `api_keys` section, naming the file.
fn config_error(path: &Path, error: &palisade::ConfigError) -> Failure {
    Failure::Error(format!(
        "configuration file `{}`: `api_keys`: {error}",
        path.display()
    ))
}

fn generate(args: &GenerateArgs) -> Outcome {
    let keys = api_keys(&args.hasher)?;
    let mut spec = KeySpec::new(&args.subject).created_at(SystemClock.now());
    for role in &args.roles {
        spec = spec.role(role);
    }
    for scope in &args.scopes {
        spec = spec.scope(scope);
    }
    if let Some(tenant) = &args.tenant {
        spec = spec.tenant(tenant);
    }
    if let Some(tier) = &args.tier {
        spec = spec.tier(tier);
    }
    if let Some(name) = &args.name {
        spec = spec.name(name);
    }
    if let Some(at) = &args.expires {
        let at = Timestamp::parse_rfc3339(at).map_err(|e| format!("--expires {at}: {e}"))?;
        spec = spec.expires_at(at);
    }
    let issued = keys.generate(spec)?;
    let record = serde_json::to_string(&issued.record)?;
    println!("key: {}", issued.plaintext.expose_secret());
    println!("record: {record}");
    eprintln!(
        "The key is shown once and not kept anywhere: hand it to its owner now. \
         Store the record (it holds the key's hash, not the key)."
    );
    Ok(())
}

/// The key on standard input (surrounding whitespace removed), at most [`MAX_KEY_BYTES`].
fn read_key() -> Result<Zeroizing<String>, Failure> {
    let mut key = Zeroizing::new(String::new());
    std::io::stdin()
        .take(MAX_KEY_BYTES + 1)
        .read_to_string(&mut key)
        .map_err(|e| format!("standard input: {e}"))?;
    if key.len() as u64 > MAX_KEY_BYTES {
        return Err(Failure::Error(format!(
            "standard input: longer than {MAX_KEY_BYTES} bytes, not a key"
        )));
    }
    Ok(Zeroizing::new(key.trim().to_owned()))
}

/// The id and hash of `key`, or an error that never shows the key.
fn id_and_hash(keys: &ApiKeys, key: &str) -> Result<(String, KeyHash), Failure> {
    keys.hash(key)
        .map(|(id, hash)| (id.to_string(), hash))
        .map_err(|reason| {
            Failure::Error(format!(
                "not a key of this format (prefix `{}`): {}",
                keys.format().prefix(),
                reason.code()
            ))
        })
}

fn hash(args: &HasherArgs) -> Outcome {
    let keys = api_keys(args)?;
    let key = read_key()?;
    let (id, hash) = id_and_hash(&keys, &key)?;
    println!("id: {id}");
    println!("hash: {}", hash.to_hex());
    Ok(())
}

fn check(args: &CheckArgs) -> Outcome {
    let (keys, records) = match &args.hasher.config {
        Some(path) => {
            let config = load_config(path)?;
            let keys = config.api_keys().map_err(|e| config_error(path, &e))?;
            (keys, config.api_keys.keys)
        }
        None => (api_keys(&args.hasher)?, Vec::new()),
    };
    let key = read_key()?;
    let (id, hash) = id_and_hash(&keys, &key)?;
    let verdict = if let Some(stored) = &args.hash {
        let stored = KeyHash::from_hex(stored.trim())
            .ok_or("--hash: not 64 hexadecimal digits (a SHA-256 or HMAC-SHA-256 hash)")?;
        if stored.ct_eq(&hash) {
            Verdict::Matches
        } else {
            Verdict::WrongHash
        }
    } else {
        let record = match &args.record {
            Some(path) => Some(read_record(path)?),
            None => records.into_iter().find(|r| r.id().as_str() == id),
        };
        match record {
            // Hashed as the service checks it: with the hasher of the record's version.
            Some(record) => match keys.hasher_of(record.hash_version()) {
                Some(hasher) => judge(&record, &id, &hasher.hash(&key), SystemClock.now()),
                None => Verdict::UnknownVersion,
            },
            None => Verdict::Unknown,
        }
    };
    println!("key {id}: {}", verdict.describe());
    if verdict == Verdict::Matches {
        Ok(())
    } else {
        Err(Failure::No)
    }
}

/// A record file: JSON, or YAML (which JSON also is).
fn read_record(path: &Path) -> Result<KeyRecord, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text.trim();
    let text = text.strip_prefix("record:").unwrap_or(text);
    serde_yaml_ng::from_str(text)
        .map_err(|e| Failure::Error(format!("{}: not a key record: {e}", path.display())))
}

/// What checking a key against a record found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The key is the record's, and the record is in force.
    Matches,
    /// The key's hash is not the one stored.
    WrongHash,
    /// The key's id is not the record's.
    OtherId,
    /// No record has the key's id.
    Unknown,
    /// The record's hash version is neither the current one nor a previous one.
    UnknownVersion,
    /// The key is the record's, but the record is revoked.
    Revoked,
    /// The key is the record's, but it has expired.
    Expired,
}

impl Verdict {
    fn describe(self) -> &'static str {
        match self {
            Self::Matches => "matches the stored record; the service accepts it",
            Self::WrongHash => {
                "does not match: its hash is not the stored one (another key, or another prefix \
                 or pepper)"
            }
            Self::OtherId => "does not match: the record is another key's",
            Self::Unknown => "no record has this key's id",
            Self::UnknownVersion => {
                "cannot be checked: the record's hash_version is neither the current one nor a \
                 previous one (`api_keys.previous_hashers`)"
            }
            Self::Revoked => "matches the stored record, which is revoked: the service refuses it",
            Self::Expired => "matches the stored record, which has expired: the service refuses it",
        }
    }
}

/// Whether the key of id `id` and hash `hash` is `record`'s, and in force at `now`.
fn judge(record: &KeyRecord, id: &str, hash: &KeyHash, now: Timestamp) -> Verdict {
    if record.id().as_str() != id {
        Verdict::OtherId
    } else if !record.hash().ct_eq(hash) {
        Verdict::WrongHash
    } else if record.is_revoked() {
        Verdict::Revoked
    } else if record.is_expired_at(now) {
        Verdict::Expired
    } else {
        Verdict::Matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(spec: KeySpec) -> (String, KeyRecord) {
        let issued = ApiKeys::new().generate(spec).unwrap();
        (issued.plaintext.expose_secret().to_owned(), issued.record)
    }

    #[test]
    fn a_key_is_judged_against_its_record_id_hash_revocation_and_expiry() {
        let now = Timestamp::from_unix_secs(2_000_000_000);
        let keys = ApiKeys::new();
        let (key, record) = issued(KeySpec::new("alice"));
        let (id, hash) = id_and_hash(&keys, &key).unwrap();
        assert_eq!(judge(&record, &id, &hash, now), Verdict::Matches);
        let (other, _) = issued(KeySpec::new("bob"));
        let (other_id, other_hash) = id_and_hash(&keys, &other).unwrap();
        assert_eq!(
            judge(&record, &other_id, &other_hash, now),
            Verdict::OtherId
        );
        assert_eq!(judge(&record, &id, &other_hash, now), Verdict::WrongHash);
        let revoked = record.clone().revoked(Timestamp::from_unix_secs(1));
        assert_eq!(judge(&revoked, &id, &hash, now), Verdict::Revoked);
        let (key, record) =
            issued(KeySpec::new("carol").expires_at(Timestamp::from_unix_secs(1_000)));
        let (id, hash) = id_and_hash(&keys, &key).unwrap();
        assert_eq!(judge(&record, &id, &hash, now), Verdict::Expired);
    }

    #[test]
    fn a_malformed_key_is_refused_without_being_shown() {
        let Err(Failure::Error(message)) = id_and_hash(&ApiKeys::new(), "pal_hunter2-secret")
        else {
            panic!("a malformed key was hashed");
        };
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("prefix `pal`"), "{message}");
    }

    #[test]
    fn a_record_reads_as_generate_prints_it() {
        let (_, record) = issued(KeySpec::new("alice").role("admin"));
        let dir = std::env::temp_dir().join(format!("palisade-cli-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("record.json");
        let json = serde_json::to_string(&record).unwrap();
        std::fs::write(&path, format!("record: {json}\n")).unwrap();
        let read = read_record(&path).unwrap();
        assert_eq!(read.id(), record.id());
        assert!(read.hash().ct_eq(record.hash()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
