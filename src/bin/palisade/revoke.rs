//! `palisade keys revoke`: publish a key's (or a subject's keys') revocation on the
//! configuration file's invalidation bus, so every instance drops it from its caches at once.
//!
//! It does not change the key store: revoke the record there first (palisade does not own the
//! host's database), then publish.

use std::path::{Path, PathBuf};

use clap::Args;
use palisade::authn::api_key::KeyId;
use palisade::config::Config;
use palisade::invalidation::{Invalidation, InvalidationBus};

use crate::Outcome;

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("what").required(true).args(["id", "subject"])
))]
pub(crate) struct RevokeArgs {
    /// The configuration file whose `invalidation` section names the bus.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The key id (the 16 characters after the prefix).
    #[arg(long, value_name = "KEY_ID")]
    id: Option<String>,
    /// Every key of this subject.
    #[arg(long)]
    subject: Option<String>,
}

pub(crate) fn run(args: &RevokeArgs) -> Outcome {
    let message = match (&args.id, &args.subject) {
        (Some(id), _) => Invalidation::ApiKeyRevoked {
            key_id: KeyId::parse(id).ok_or_else(|| format!("`{id}` is not a key id"))?,
        },
        (None, Some(subject)) if !subject.is_empty() => Invalidation::SubjectKeysRevoked {
            subject: subject.as_str().into(),
        },
        _ => return Err("the subject is empty".into()),
    };
    publish(&args.config, &message)
}

/// Publishes `message` on the invalidation bus that the `invalidation` section of the
/// configuration file at `path` names (bounded by the section's timeout, as every publish).
pub(crate) fn publish(path: &Path, message: &Invalidation) -> Outcome {
    let config = Config::from_path(path)?;
    let section = config.invalidation.as_ref().ok_or_else(|| {
        format!(
            "{}: no `invalidation` section names a bus to publish on",
            path.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let bus = section.bus_in(config.base_dir.as_deref())?;
        // Bounded by the section's timeout, as every publish.
        bus.publish(message).await?;
        println!("published on `{}`: {}", section.channel, message.encode());
        Ok(())
    })
}
