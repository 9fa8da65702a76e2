//! Verifies a chained JSON-lines audit log, for the `audit_verify` and `palisade_keys`
//! examples: the key from `PALISADE_AUDIT_KEY` (never the command line, where other users of
//! the machine could see it); prints the number of events, or names the first broken or
//! missing one and exits with status 1 (2 for a usage or I/O error).

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

pub(crate) fn verify_audit(path: &str) -> ExitCode {
    let Ok(key) = std::env::var("PALISADE_AUDIT_KEY") else {
        eprintln!("PALISADE_AUDIT_KEY is not set");
        return ExitCode::from(2);
    };
    let file = match File::open(path) {
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
