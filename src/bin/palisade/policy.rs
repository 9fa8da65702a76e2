//! `palisade policy explain`: which rule of a policy decides a request, and what it decides.
//! The file is a configuration file or a standalone policy file (`roles` and `routes`, as
//! `FileSource` reads it); the caller is described by its roles and scopes.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use http::Method;
use palisade::authz::Decision;
use palisade::clock::Timestamp;
use palisade::config::Config;
use palisade::invalidation::Invalidation;
use palisade::{AuthMethod, Principal};

use crate::{Failure, Outcome};

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Which rule decides a request and why; exit status 0 if allowed, 1 if refused.
    Explain(ExplainArgs),
    /// Checks the file's `roles` and `routes`, then publishes `PolicyChanged` on the file's
    /// invalidation bus: every instance built from its copy of the file reads it again.
    Reload(ReloadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    /// The configuration file: its policy is checked and its `invalidation` section names the
    /// bus.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// A configuration file or a policy file (its `roles` and `routes`).
    file: PathBuf,
    /// The request's method (`GET`, `delete`...).
    method: String,
    /// The request's path (`/v1/orders/42`), or with `--template` the route template the
    /// router matched (`/v1/orders/{id}`).
    path: String,
    /// Read PATH as the route template the router matched (axum's `MatchedPath`), not as a
    /// raw path.
    #[arg(long)]
    template: bool,
    /// A role of the caller (repeatable).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// A scope of the caller (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// The caller's authentication context class (`acr`), for step-up rules.
    #[arg(long)]
    acr: Option<String>,
    /// When the caller's user authenticated (`auth_time`, RFC 3339), for step-up rules.
    #[arg(long, value_name = "RFC3339")]
    auth_time: Option<String>,
    /// The caller presents no credential.
    #[arg(long, conflicts_with_all = ["roles", "scopes", "acr", "auth_time"])]
    anonymous: bool,
}

pub(crate) fn run(command: PolicyCommand) -> Outcome {
    match command {
        PolicyCommand::Explain(args) => run_explain(&args),
        PolicyCommand::Reload(args) => {
            // A policy that does not compile here would be refused by every instance.
            Config::from_path(&args.config)?
                .policy()
                .map_err(|e| format!("configuration file `{}`: {e}", args.config.display()))?;
            crate::revoke::publish(&args.config, &Invalidation::PolicyChanged)
        }
    }
}

fn run_explain(args: &ExplainArgs) -> Outcome {
    let config = Config::from_path(&args.file)?;
    let policy = config.policy().map_err(|e| {
        Failure::Error(format!("configuration file `{}`: {e}", args.file.display()))
    })?;
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", args.method))?;
    let principal = principal(args)?;
    let template = args.template.then_some(args.path.as_str());
    let decision = policy.decide(principal.as_ref(), &method, template, &args.path);
    for line in explain(args, &method, config.routes.len(), &decision) {
        println!("{line}");
    }
    if decision.is_allowed() {
        Ok(())
    } else {
        Err(Failure::No)
    }
}

/// The caller the arguments describe, `None` for an anonymous one.
fn principal(args: &ExplainArgs) -> Result<Option<Principal>, Failure> {
    if args.anonymous {
        return Ok(None);
    }
    let issuer = "palisade policy explain".into();
    let mut b = Principal::builder("caller", AuthMethod::Bearer { issuer })
        .roles(&args.roles)
        .scopes(&args.scopes);
    if let Some(acr) = &args.acr {
        b = b.acr(acr);
    }
    if let Some(at) = &args.auth_time {
        let at = Timestamp::parse_rfc3339(at).map_err(|e| format!("--auth-time {at}: {e}"))?;
        b = b.auth_time(at);
    }
    Ok(Some(b.build()))
}

/// The lines that explain `decision`.
/// `rules` is the number of rules the policy was written with.
fn explain(args: &ExplainArgs, method: &Method, rules: usize, decision: &Decision) -> Vec<String> {
    let caller = if args.anonymous {
        "an anonymous caller".to_owned()
    } else {
        format!(
            "roles [{}], scopes [{}]",
            args.roles.join(", "),
            args.scopes.join(", ")
        )
    };
    let what = if args.template { "template" } else { "path" };
    let outcome = decision.outcome();
    let mut lines = vec![
        format!("request: {method} {} ({what}) as {caller}", args.path),
        format!(
            "decision: {} ({})",
            if decision.is_allowed() {
                "allowed"
            } else {
                "refused"
            },
            outcome.code()
        ),
    ];
    match decision.rule() {
        Some(rule) => {
            lines.push(format!("rule: {}", rule.description()));
            if !rule.scopes().is_empty() {
                lines.push(format!("required scopes: {}", rule.scopes()));
            }
            if let Some(challenge) = rule.step_up() {
                lines.push(format!(
                    "step-up challenge: {}",
                    String::from_utf8_lossy(challenge.as_bytes())
                ));
            }
        }
        None => lines.push(format!(
            "rule: none of the policy's {} rules covers {method} on this {what} \
             (refused by default)",
            rules
        )),
    }
    lines.push(format!("why: {}", why(outcome.code())));
    lines
}

/// A sentence on what an outcome code means.
fn why(code: &str) -> &'static str {
    match code {
        "public" => "the rule is public: no credential is needed",
        "granted" => "the caller holds one of the rule's roles (or it names none) and every scope",
        "no_matching_rule" => "only what a rule grants is allowed",
        "missing_role" => "the caller holds none of the rule's roles, directly or inherited",
        "missing_scope" => "the caller holds a role of the rule but not every scope it requires",
        "not_authenticated" => "the rule is not public and the caller presented no credential",
        "insufficient_user_authentication" => {
            "the rule asks for a stronger or more recent user authentication (RFC 9470 step-up)"
        }
        _ => "see docs/authz.md",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ExplainArgs,
    }

    fn decide(yaml: &str, argv: &[&str]) -> (bool, Vec<String>) {
        let config = Config::parse(yaml, palisade::config::Format::Yaml).unwrap();
        let policy = config.policy().unwrap();
        let args = Wrapper::parse_from(
            std::iter::once("explain")
                .chain(std::iter::once("policy.yaml").chain(argv.iter().copied())),
        )
        .args;
        let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes()).unwrap();
        let principal = principal(&args).unwrap();
        let template = args.template.then_some(args.path.as_str());
        let decision = policy.decide(principal.as_ref(), &method, template, &args.path);
        (
            decision.is_allowed(),
            explain(&args, &method, config.routes.len(), &decision),
        )
    }

    const POLICY: &str = "
roles: [{name: viewer}, {name: admin, inherits: [viewer]}]
routes:
  - {path: /health, public: true}
  - {path: \"/orders/{id}\", methods: [GET], roles: [viewer], scopes: [orders:read]}
";

    #[test]
    fn the_deciding_rule_and_the_outcome_code_are_named() {
        let (allowed, lines) = decide(
            POLICY,
            &[
                "get",
                "/orders/7",
                "--role",
                "admin",
                "--scope",
                "orders:read",
            ],
        );
        assert!(allowed, "{lines:?}");
        assert!(
            lines.contains(&"decision: allowed (granted)".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("rule: routes[1]")),
            "{lines:?}"
        );
        let (allowed, lines) = decide(POLICY, &["GET", "/orders/7", "--role", "viewer"]);
        assert!(!allowed);
        assert!(
            lines.contains(&"decision: refused (missing_scope)".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"required scopes: orders:read".to_owned()),
            "{lines:?}"
        );
        // A method the route's rules do not name: 405 in the service.
        let (allowed, lines) = decide(POLICY, &["DELETE", "/orders/{id}", "--template"]);
        assert!(!allowed);
        assert!(
            lines.iter().any(|l| l.contains("method_not_allowed")),
            "{lines:?}"
        );
        let (allowed, lines) = decide(POLICY, &["GET", "/health", "--anonymous"]);
        assert!(allowed);
        assert!(lines.iter().any(|l| l.contains("(public)")), "{lines:?}");
        let (allowed, _) = decide(POLICY, &["GET", "/orders/7", "--anonymous"]);
        assert!(!allowed);
    }
}
