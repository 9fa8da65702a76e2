//! Key tooling for operators: issue an API key, hash an existing one for a migration, verify a
//! chained audit log.
//!
//! ```sh
//! # A new key: the plaintext is printed once (hand it to the client), the record is what the
//! # key store keeps (a JSON object, the hash and never the key).
//! cargo run --example palisade_keys -- generate --subject ci-deploy --role deployer \
//!     --scope orders:write --name "CI deploy key" --expires 2027-06-30T00:00:00Z
//!
//! # The id and hash of an existing key, read from standard input (never from the command
//! # line, where other users of the machine could see it): to move keys between stores, or
//! # to check that a stored record matches a key.
//! printf '%s' "$KEY" | cargo run --example palisade_keys -- hash
//!
//! # A chained audit log: every line's HMAC and the order of lines (key in PALISADE_AUDIT_KEY).
//! PALISADE_AUDIT_KEY=... cargo run --example palisade_keys -- verify-audit audit.jsonl
//! ```
//!
//! Options common to `generate` and `hash`: `--prefix P` (the key format's prefix, default
//! `pal`) and `--pepper-env VAR` (hash with HMAC-SHA-256 under the secret in the environment
//! variable `VAR`, as a configuration's `api_keys.pepper_env` does; default plain SHA-256).
//! Both must match the service's own settings, or the record will not verify.

#[path = "support/verify_audit.rs"]
mod verify;

use std::io::Read;
use std::process::ExitCode;

use palisade::authn::api_key::{ApiKeys, KeyFormat, KeyHasher, KeySpec};
use palisade::clock::{Clock, SystemClock, Timestamp};

const USAGE: &str = "usage:
  palisade_keys generate --subject S [--role R]... [--scope S]... [--tenant T] [--tier T]
                         [--name N] [--expires RFC3339] [--prefix P] [--pepper-env VAR]
  palisade_keys hash [--prefix P] [--pepper-env VAR]        (the key on standard input)
  palisade_keys verify-audit [--from-anywhere] [--allow-restarts] FILE...
                                                            (key in PALISADE_AUDIT_KEY)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") => generate(&args[1..]),
        Some("hash") => hash(&args[1..]),
        Some("verify-audit") => return verify_audit(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// The value after option `name` at `i`, advancing `i`.
fn value<'a>(args: &'a [String], i: &mut usize, name: &str) -> Result<&'a str, String> {
    *i += 1;
    args.get(*i)
        .map(String::as_str)
        .ok_or_else(|| format!("{name} needs a value"))
}

/// The key format and hasher from `--prefix` and `--pepper-env`, and the other options.
fn keys_and_rest(args: &[String]) -> Result<(ApiKeys, Vec<(String, String)>), String> {
    let mut keys = ApiKeys::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let name = args[i].as_str();
        let v = value(args, &mut i, name)?;
        match name {
            "--prefix" => {
                keys = keys.with_format(KeyFormat::new(v).map_err(|e| e.to_string())?);
            }
            "--pepper-env" => {
                let secret = zeroize::Zeroizing::new(
                    std::env::var(v)
                        .map_err(|_| format!("the environment variable {v} is not set"))?,
                );
                keys = keys
                    .with_hasher(KeyHasher::keyed(secret.as_bytes()).map_err(|e| e.to_string())?);
            }
            _ if name.starts_with("--") => rest.push((name.to_owned(), v.to_owned())),
            _ => return Err(format!("unexpected argument `{name}`\n{USAGE}")),
        }
        i += 1;
    }
    Ok((keys, rest))
}

fn generate(args: &[String]) -> Result<(), String> {
    let (keys, options) = keys_and_rest(args)?;
    let subject = options
        .iter()
        .find(|(k, _)| k == "--subject")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| format!("--subject is required\n{USAGE}"))?;
    let mut spec = KeySpec::new(subject).created_at(SystemClock.now());
    for (name, v) in options {
        spec = match name.as_str() {
            "--subject" => spec,
            "--role" => spec.role(v),
            "--scope" => spec.scope(v),
            "--tenant" => spec.tenant(v),
            "--tier" => spec.tier(v),
            "--name" => spec.name(v),
            "--expires" => spec.expires_at(
                Timestamp::parse_rfc3339(&v).map_err(|e| format!("--expires {v}: {e}"))?,
            ),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        };
    }
    let issued = keys.generate(spec).map_err(|e| e.to_string())?;
    let record = serde_json::to_string(&issued.record).map_err(|e| e.to_string())?;
    println!("key: {}", issued.plaintext.expose_secret());
    println!("record: {record}");
    eprintln!(
        "The key is shown once and not kept anywhere: hand it to its owner now. \
         Store the record (it holds the key's hash, not the key)."
    );
    Ok(())
}

fn hash(args: &[String]) -> Result<(), String> {
    let (keys, options) = keys_and_rest(args)?;
    if let Some((name, _)) = options.first() {
        return Err(format!("unknown option `{name}`\n{USAGE}"));
    }
    let mut key = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut key)
        .map_err(|e| format!("standard input: {e}"))?;
    let (id, hash) = keys
        .hash(key.trim())
        .map_err(|reason| format!("not a key of this format: {}", reason.code()))?;
    println!("id: {id}");
    println!("hash: {}", hash.to_hex());
    Ok(())
}

fn verify_audit(args: &[String]) -> ExitCode {
    if args.is_empty() {
        eprintln!("usage: palisade_keys verify-audit {}", verify::ARGS);
        return ExitCode::from(2);
    }
    verify::verify_audit(args)
}
