//! Verifies a chained JSON-lines audit log, for the `audit_verify` and `palisade_keys`
//! examples: the key from `PALISADE_AUDIT_KEY` (never the command line, where other users of
//! the machine could see it).
//!
//! Arguments: `[--from-anywhere] [--allow-restarts] FILE...`, the files of a rotated log oldest
//! first (`audit.jsonl.3 audit.jsonl.2 audit.jsonl.1 audit.jsonl`), each required to continue
//! the one before. Prints the number of events and the last event's `seq` and `hash` (to
//! compare with a published chain head), or names the first broken or missing event and exits
//! with status 1 (2 for a usage or I/O error).

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

use palisade::audit::Verifier;

pub(crate) const ARGS: &str = "[--from-anywhere] [--allow-restarts] FILE...";

pub(crate) fn verify_audit(args: &[String]) -> ExitCode {
    let from_anywhere = args.iter().any(|a| a == "--from-anywhere");
    let allow_restarts = args.iter().any(|a| a == "--allow-restarts");
    let files: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if files.is_empty()
        || args.iter().any(|a| {
            a.starts_with("--") && !matches!(a.as_str(), "--from-anywhere" | "--allow-restarts")
        })
    {
        eprintln!("arguments: {ARGS}  (key in PALISADE_AUDIT_KEY)");
        return ExitCode::from(2);
    }
    let Ok(key) = std::env::var("PALISADE_AUDIT_KEY") else {
        eprintln!("PALISADE_AUDIT_KEY is not set");
        return ExitCode::from(2);
    };
    let mut last: Option<String> = None;
    let mut total = 0;
    for (i, path) in files.iter().enumerate() {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::from(2);
            }
        };
        let mut verifier = Verifier::new(key.as_bytes());
        match (&last, i) {
            (Some(hash), _) => verifier = verifier.after(hash.clone()),
            (None, 0) if from_anywhere => verifier = verifier.from_anywhere(),
            _ => {}
        }
        if allow_restarts {
            verifier = verifier.allow_restarts();
        }
        match verifier.verify(BufReader::new(file)) {
            Ok(v) => {
                total += v.events;
                if v.last_hash.is_some() {
                    last = v.last_hash;
                }
                let restarts = if v.restarts > 0 {
                    format!(", {} restarts", v.restarts)
                } else {
                    String::new()
                };
                println!("{path}: {} events, chain intact{restarts}", v.events);
                if let (Some(seq), Some(hash)) = (v.last_seq, &last) {
                    println!("  last event: seq {seq}, hash {hash}");
                }
            }
            Err(e) => {
                println!("{path}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if files.len() > 1 {
        println!("{total} events in {} files, one chain", files.len());
    }
    ExitCode::SUCCESS
}
