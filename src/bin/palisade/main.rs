//! `palisade`: the command-line tool for operators (feature `cli`). Issues and checks API
//! keys, checks a configuration file as the service's startup would, explains authorization
//! decisions, verifies and summarizes audit logs. See `docs/cli.md`.
//!
//! Exit status: 0 when the answer is yes (the key matches, the file is valid, the request is
//! allowed, the chain is intact), 1 when it is no, 2 for a usage or I/O error.

mod audit_summary;
mod audit_verify;
mod config_check;
mod keys;
mod policy;
mod revoke;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operator tooling for palisade: API keys, configuration, policy, audit logs.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Issue, hash and check API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Check a configuration file.
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
    /// Explain authorization decisions.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Verify and summarize audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the HMAC chain of a log, across its rotated files (oldest first).
    Verify(audit_verify::VerifyArgs),
    /// Refusals per hour by reason, route, subject and client address.
    Summary(audit_summary::SummaryArgs),
}

/// How a command ended: its answer, or an error that stopped it.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The answer is no (exit status 1); the command has said why.
    No,
    /// A usage or I/O error (exit status 2), printed to standard error.
    Error(String),
}

/// What a command returns: `Ok(())` for yes.
pub(crate) type Outcome = Result<(), Failure>;

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Self::Error(error.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Keys(command) => keys::run(command),
        Command::Config(command) => config_check::run(command),
        Command::Policy(command) => policy::run(command),
        Command::Audit(AuditCommand::Verify(args)) => audit_verify::run(&args),
        Command::Audit(AuditCommand::Summary(args)) => audit_summary::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::No) => ExitCode::from(1),
        Err(Failure::Error(message)) => {
            eprintln!("palisade: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
