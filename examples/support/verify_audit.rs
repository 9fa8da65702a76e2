//! Verifies a chained JSON-lines audit log, for the `audit_verify` and `palisade_keys`
//! examples: the key from `PALISADE_AUDIT_KEY` (never the command line, where other users of
//! the machine could see it).
//!
//! Arguments: `[--from-anywhere] [--allow-restarts] [--head HASH] FILE...`, the files of a
//! rotated log oldest first (`audit.jsonl.3 audit.jsonl.2 audit.jsonl.1 audit.jsonl`), each
//! required to continue the one before. With `--head`, the log must also hold the event of a
//! chain head published earlier (`AuditHandle::chain_head`), or it was cut at its end. Prints
//! the number of events and the last event's `seq` and `hash`, or names the first broken or
//! missing event and exits with status 1 (2 for a usage or I/O error).

use std::fs::File;
use std::io::{BufReader, Read};
use std::process::ExitCode;

use palisade::audit::Verifier;

pub(crate) const ARGS: &str = "[--from-anywhere] [--allow-restarts] [--head HASH] FILE...";

pub(crate) fn verify_audit(args: &[String]) -> ExitCode {
    let mut from_anywhere = false;
    let mut allow_restarts = false;
    let mut head: Option<&String> = None;
    let mut files: Vec<&String> = Vec::new();
    let mut usage_error = false;
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--from-anywhere" => from_anywhere = true,
            "--allow-restarts" => allow_restarts = true,
            "--head" => {
                head = rest.next();
                usage_error |= head.is_none();
            }
            flag if flag.starts_with("--") => usage_error = true,
            _ => files.push(a),
        }
    }
    if files.is_empty() || usage_error {
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
    if let Some(head) = head {
        // The files in order as one stream (they were just shown to continue each other), a
        // newline between two in case one does not end with one.
        let mut stream: Box<dyn Read> = Box::new(std::io::empty());
        for path in &files {
            match File::open(path) {
                Ok(f) => stream = Box::new(stream.chain(f).chain(&b"\n"[..])),
                Err(e) => {
                    eprintln!("{path}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        let mut verifier = Verifier::new(key.as_bytes()).expect_head(head.as_str());
        if from_anywhere {
            verifier = verifier.from_anywhere();
        }
        if allow_restarts {
            verifier = verifier.allow_restarts();
        }
        if let Err(e) = verifier.verify(BufReader::new(stream)) {
            println!("{e}");
            return ExitCode::from(1);
        }
        println!("the published head {head} is in the log");
    }
    ExitCode::SUCCESS
}
