//! `palisade audit verify`: a chained JSON-lines audit log, every line's HMAC and the order of
//! lines, across the files of a rotated log (oldest first, each continuing the one before).
//! The key is read from an environment variable, never from the command line (where other
//! users of the machine could see it).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use clap::Args;
use palisade::audit::Verifier;
use zeroize::Zeroizing;

use crate::{Failure, Outcome};

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The log's files, oldest first (`audit.jsonl.2 audit.jsonl.1 audit.jsonl`).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The environment variable holding the chain key (`audit.chain_key_env`).
    #[arg(long, value_name = "VAR", default_value = "PALISADE_AUDIT_KEY")]
    key_env: String,
    /// The oldest file may begin mid-chain (older files were rotated away).
    #[arg(long)]
    from_anywhere: bool,
    /// A new chain may begin mid-log (a writer restarted without continuing the chain).
    #[arg(long)]
    allow_restarts: bool,
    /// The log must also hold the event of this published chain head
    /// (`AuditHandle::chain_head`), or it was cut at its end.
    #[arg(long, value_name = "HASH")]
    head: Option<String>,
}

/// A verifier with the options of `args`.
fn verifier<'k>(args: &VerifyArgs, key: &'k [u8], first: bool) -> Verifier<'k> {
    let mut v = Verifier::new(key);
    if first && args.from_anywhere {
        v = v.from_anywhere();
    }
    if args.allow_restarts {
        v = v.allow_restarts();
    }
    v
}

fn open(path: &PathBuf) -> Result<File, Failure> {
    File::open(path).map_err(|e| Failure::Error(format!("{}: {e}", path.display())))
}

pub(crate) fn run(args: &VerifyArgs) -> Outcome {
    let key = Zeroizing::new(
        std::env::var(&args.key_env)
            .map_err(|_| format!("the environment variable {} is not set", args.key_env))?,
    );
    let mut last: Option<String> = None;
    let mut total = 0;
    for (i, path) in args.files.iter().enumerate() {
        let mut verifier = verifier(args, key.as_bytes(), last.is_none() && i == 0);
        if let Some(hash) = &last {
            verifier = verifier.after(hash.clone());
        }
        let name = path.display();
        match verifier.verify(BufReader::new(open(path)?)) {
            Ok(v) => {
                total += v.events;
                if v.last_hash.is_some() {
                    last = v.last_hash;
                }
                let restarts = match v.restarts {
                    0 => String::new(),
                    n => format!(", {n} restarts"),
                };
                println!("{name}: {} events, chain intact{restarts}", v.events);
                if let (Some(seq), Some(hash)) = (v.last_seq, &last) {
                    println!("  last event: seq {seq}, hash {hash}");
                }
            }
            Err(e) => {
                println!("{name}: {e}");
                return Err(Failure::No);
            }
        }
    }
    if args.files.len() > 1 {
        println!("{total} events in {} files, one chain", args.files.len());
    }
    let Some(head) = &args.head else {
        return Ok(());
    };
    // The files in order as one stream (they were just shown to continue each other), a
    // newline between two in case one does not end with one.
    let mut stream: Box<dyn Read> = Box::new(std::io::empty());
    for path in &args.files {
        stream = Box::new(stream.chain(open(path)?).chain(&b"\n"[..]));
    }
    let verifier = verifier(args, key.as_bytes(), true).expect_head(head.as_str());
    if let Err(e) = verifier.verify(BufReader::new(stream)) {
        println!("{e}");
        return Err(Failure::No);
    }
    println!("the published head {head} is in the log");
    Ok(())
}
