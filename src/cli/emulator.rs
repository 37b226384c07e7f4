//! `sfstream emulator`: serve an emulated org until stopped.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sfstream_emulator::config::defaults;
use sfstream_emulator::{Emulator, EmulatorConfig, PubSubTls};

/// Options of `sfstream emulator`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream emulator
  sfstream emulator --bind 127.0.0.1:8710 --faults
  SALESFORCE_PASSWORD=secret sfstream emulator --username me@example.com

The first line on stdout is `listening on http://HOST:PORT`; use that URL as
both the login URL and the instance URL. The second is `pubsub on
http://HOST:PORT` (`https://` with --pubsub-tls-cert), the Pub/Sub API endpoint.
Open the first URL in a browser for the console: records by type (create,
edit, delete), PushTopics, streaming clients, events live as they are
raised, counters, and (with --faults) the fault buttons.")]
pub struct EmulatorArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8710", env = "SFSTREAM_EMULATOR_BIND")]
    bind: SocketAddr,
    /// Username of the login user.
    #[arg(
        long,
        env = "SALESFORCE_USERNAME",
        default_value = defaults::USERNAME
    )]
    username: String,
    /// Password of the login user.
    #[arg(
        long,
        env = "SALESFORCE_PASSWORD",
        default_value = defaults::PASSWORD,
        hide_default_value = true
    )]
    password: String,
    /// Security token appended to the password in password logins.
    #[arg(
        long,
        env = "SALESFORCE_SECURITY_TOKEN",
        default_value = defaults::SECURITY_TOKEN,
        hide_default_value = true
    )]
    security_token: String,
    /// Connected app consumer key (OAuth client_id).
    #[arg(
        long,
        env = "SALESFORCE_CONSUMER_KEY",
        default_value = defaults::CONSUMER_KEY
    )]
    consumer_key: String,
    /// Connected app consumer secret (OAuth client_secret).
    #[arg(
        long,
        env = "SALESFORCE_CONSUMER_SECRET",
        default_value = defaults::CONSUMER_SECRET,
        hide_default_value = true
    )]
    consumer_secret: String,
    /// Refresh token accepted by the refresh-token flow.
    #[arg(
        long,
        env = "SALESFORCE_REFRESH_TOKEN",
        default_value = defaults::REFRESH_TOKEN,
        hide_default_value = true
    )]
    refresh_token: String,
    /// PEM certificate or public key that verifies JWT bearer assertions (enables that flow).
    #[arg(long, value_name = "PEM")]
    jwt_certificate: Option<PathBuf>,
    /// Serve the fault-injection control API under /_emulator (loopback peers only).
    #[arg(long)]
    faults: bool,
    /// Seconds a /meta/connect is held when there is nothing to deliver.
    #[arg(long, default_value_t = 110)]
    connect_hold_secs: u64,
    /// Seconds without a request after which a CometD client's session is dropped.
    #[arg(long, default_value_t = 40)]
    session_timeout_secs: u64,
    /// Most events kept per channel (older ones expire).
    #[arg(long, default_value_t = 100_000)]
    history_limit: usize,
    /// Most events delivered in one connect response.
    #[arg(long, default_value_t = 1_000)]
    max_events_per_connect: usize,
    /// Address the Pub/Sub API (gRPC) listens on (port 0 picks a free port).
    #[arg(
        long,
        default_value = "127.0.0.1:0",
        env = "SFSTREAM_EMULATOR_PUBSUB_BIND"
    )]
    pubsub_bind: SocketAddr,
    /// PEM certificate chain to serve Pub/Sub over TLS (with --pubsub-tls-key).
    #[arg(long, value_name = "PEM", requires = "pubsub_tls_key")]
    pubsub_tls_cert: Option<PathBuf>,
    /// PEM private key of --pubsub-tls-cert.
    #[arg(long, value_name = "PEM", requires = "pubsub_tls_cert")]
    pubsub_tls_key: Option<PathBuf>,
    /// Seconds a Pub/Sub subscription owed events waits before a keepalive.
    #[arg(long, default_value_t = 270)]
    pubsub_keepalive_secs: u64,
    /// Seconds without a FetchRequest after which a Pub/Sub subscription with nothing requested is closed.
    #[arg(long, default_value_t = 60)]
    pubsub_idle_secs: u64,
}

/// Starts the emulator and serves until Ctrl-C or SIGTERM.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    let mut config = EmulatorConfig::default();
    config.bind = args.bind;
    config.credentials.username = args.username;
    config.credentials.password = args.password;
    config.credentials.security_token = args.security_token;
    config.credentials.consumer_key = args.consumer_key;
    config.credentials.consumer_secret = args.consumer_secret;
    config.credentials.refresh_token = args.refresh_token;
    if let Some(path) = &args.jwt_certificate {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("--jwt-certificate {}", path.display()))?;
        config.credentials.jwt_public_key_pem = Some(pem);
    }
    config.faults_enabled = args.faults;
    config.connect_hold = Duration::from_secs(args.connect_hold_secs);
    config.session_timeout = Duration::from_secs(args.session_timeout_secs);
    config.history_limit = args.history_limit;
    config.max_events_per_connect = args.max_events_per_connect;
    config.pubsub_bind = args.pubsub_bind;
    config.pubsub_keepalive = Duration::from_secs(args.pubsub_keepalive_secs);
    config.pubsub_idle_timeout = Duration::from_secs(args.pubsub_idle_secs);
    if let (Some(cert), Some(key)) = (&args.pubsub_tls_cert, &args.pubsub_tls_key) {
        let cert_pem = std::fs::read_to_string(cert)
            .with_context(|| format!("--pubsub-tls-cert {}", cert.display()))?;
        let key_pem = std::fs::read_to_string(key)
            .with_context(|| format!("--pubsub-tls-key {}", key.display()))?;
        config.pubsub_tls = Some(PubSubTls { cert_pem, key_pem });
    }
    if !config.bind.ip().is_loopback() {
        tracing::warn!(bind = %config.bind, "the emulator is reachable from other hosts");
    }
    let emulator = Emulator::start(config)
        .await
        .with_context(|| format!("cannot listen on {} and {}", args.bind, args.pubsub_bind))?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", emulator.url())?;
        writeln!(stdout, "pubsub on {}", emulator.pubsub_url())?;
        stdout.flush()?;
    }
    tracing::info!(url = %emulator.url(), pubsub = %emulator.pubsub_url(), faults = args.faults, console = %format!("{}/", emulator.url()), "emulated org ready");
    super::shutdown_signal().await;
    tracing::info!("stopping");
    Ok(ExitCode::SUCCESS)
}
