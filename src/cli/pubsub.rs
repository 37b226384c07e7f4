//! The options that switch a command to the Pub/Sub API (gRPC) and build
//! its client, shared by `listen` and `publish`.

use anyhow::{Context, bail};
use clap::Args;
use sfstream_salesforce::Authenticator;
use sfstream_salesforce::pubsub::{PubSubClient, PubSubClientBuilder};
use sfstream_salesforce::replay::ReplayFrom;

/// `--pubsub` and its options.
#[derive(Debug, Args)]
pub struct PubSubArgs {
    /// Use the Pub/Sub API (gRPC) instead of CometD: Change Data Capture (/data/...) and platform events (/event/...).
    #[arg(long, env = "SALESFORCE_PUBSUB")]
    pub pubsub: bool,
    /// The Pub/Sub endpoint (with the emulator: the URL of its second stdout line).
    #[arg(
        long,
        env = "SALESFORCE_PUBSUB_URL",
        value_name = "URL",
        default_value = sfstream_pubsub::DEFAULT_URL
    )]
    pub pubsub_url: String,
    /// A PEM certificate to trust besides the public roots (a TLS-inspecting proxy, a test server).
    #[arg(long, env = "SALESFORCE_PUBSUB_CA", value_name = "FILE")]
    pub pubsub_ca: Option<std::path::PathBuf>,
}

impl PubSubArgs {
    /// A client builder for these options (`--pubsub-url`, `--pubsub-ca`).
    pub fn builder(&self, authenticator: Authenticator) -> anyhow::Result<PubSubClientBuilder> {
        let mut builder = PubSubClient::builder(authenticator).url(&self.pubsub_url);
        if let Some(path) = &self.pubsub_ca {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("--pubsub-ca {}", path.display()))?;
            builder = builder.add_root_certificate(pem);
        }
        Ok(builder)
    }

    /// Refuses Pub/Sub options given without `--pubsub`.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.pubsub && self.pubsub_ca.is_some() {
            bail!("--pubsub-ca is an option of --pubsub");
        }
        Ok(())
    }
}

/// Where a Pub/Sub subscription starts: NEW, ALL or a replay id (base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubSubStart {
    /// `LATEST` or `EARLIEST`.
    Preset(ReplayFrom),
    /// Just after this replay id.
    After(Vec<u8>),
}

/// Checks `--replay` when the options are read (a usage error): NEW, ALL,
/// a CometD replay id, or a Pub/Sub one (base64); each transport reads
/// its own forms later.
pub fn replay_arg(text: &str) -> Result<String, String> {
    if text.parse::<ReplayFrom>().is_ok() || parse_start(text).is_ok() {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not NEW, ALL or a replay id (a number; with --pubsub, base64)"
        ))
    }
}

/// Reads `--replay` for Pub/Sub: NEW, ALL, or a base64 replay id (as
/// `listen --pubsub` prints them).
pub fn parse_start(text: &str) -> anyhow::Result<PubSubStart> {
    let trimmed = text.trim();
    for (names, from) in [
        (["new", "new_events", "-1"], ReplayFrom::New),
        (["all", "all_events", "-2"], ReplayFrom::All),
    ] {
        if names.iter().any(|n| trimmed.eq_ignore_ascii_case(n)) {
            return Ok(PubSubStart::Preset(from));
        }
    }
    match sfstream_pubsub::replay_id::from_text(trimmed) {
        Ok(id) => Ok(PubSubStart::After(id)),
        Err(_) => bail!(
            "--replay {text:?}: with --pubsub, give NEW, ALL or a Pub/Sub replay id (base64, as printed in event.replayId)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts() {
        assert_eq!(
            parse_start("NEW").expect("new"),
            PubSubStart::Preset(ReplayFrom::New)
        );
        assert_eq!(
            parse_start(" all ").expect("all"),
            PubSubStart::Preset(ReplayFrom::All)
        );
        assert_eq!(
            parse_start("AAAAAAAAAAEAAA==").expect("id"),
            PubSubStart::After(vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
        );
        assert!(parse_start("not a replay id!").is_err());
    }
}
