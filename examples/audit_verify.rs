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

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: audit_verify FILE  (key in PALISADE_AUDIT_KEY)");
        return ExitCode::from(2);
    };
    let Ok(key) = std::env::var("PALISADE_AUDIT_KEY") else {
        eprintln!("PALISADE_AUDIT_KEY is not set");
        return ExitCode::from(2);
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    match palisade::audit::verify(BufReader::new(file), key.as_bytes()) {
        Ok(n) => {
            println!("{path}: {n} events, chain intact");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{path}: {e}");
            ExitCode::from(1)
        }
    }
}
