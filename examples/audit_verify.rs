//! Verifies a chained JSON-lines audit log: every line's HMAC, and that each line follows
//! the one before it. Prints the number of events, or names the first broken or missing one
//! and exits with status 1.
//!
//! ```sh
//! PALISADE_AUDIT_KEY=... cargo run --example audit_verify -- audit.jsonl
//! ```
//!
//! The key is read from the environment variable `PALISADE_AUDIT_KEY` (never from the command
//! line, where other users of the machine could see it).

#[path = "support/verify_audit.rs"]
mod verify;

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: audit_verify FILE  (key in PALISADE_AUDIT_KEY)");
        return ExitCode::from(2);
    };
    verify::verify_audit(&path)
}
