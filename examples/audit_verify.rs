//! Verifies a chained JSON-lines audit log: every line's HMAC, that each line follows the one
//! before it, and that the log begins at the start of its chain. Prints the number of events
//! and the last one's `seq` and `hash`, or names the first broken or missing one and exits
//! with status 1.
//!
//! ```sh
//! PALISADE_AUDIT_KEY=... cargo run --example audit_verify -- audit.jsonl
//! # a rotated log, oldest first; the oldest kept file may begin mid-chain
//! PALISADE_AUDIT_KEY=... cargo run --example audit_verify -- \
//!     --from-anywhere audit.jsonl.2 audit.jsonl.1 audit.jsonl
//! ```
//!
//! The key is read from the environment variable `PALISADE_AUDIT_KEY` (never from the command
//! line, where other users of the machine could see it).

#[path = "support/verify_audit.rs"]
mod verify;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!(
            "usage: audit_verify {}  (key in PALISADE_AUDIT_KEY)",
            verify::ARGS
        );
        return ExitCode::from(2);
    }
    verify::verify_audit(&args)
}
