//! `sfstream rpc`: call a method of any Nameko service (what `nameko
//! shell` is used for) and print the JSON result.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value};
use sfstream_nameko::{Connection, RpcCallError, RpcProxy, redact_uri};
use sfstream_service::config::Config;

/// The broker when neither `--amqp-uri`, `AMQP_URI` nor `--config` names one.
const DEFAULT_AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Options of `sfstream rpc`.
#[derive(Args)]
#[command(after_help = "Examples:
  sfstream rpc some-service create_contact '[\"Yo\", \"yo@yo.yo\"]'
  sfstream rpc some-service create_contact --kwargs '{\"last_name\": \"Yo\", \"email_address\": \"yo@yo.yo\"}'
  sfstream rpc --config config.yaml some-service create_contact '[\"Yo\", \"yo@yo.yo\"]'

Exit status: 0 with the result on stdout; 1 with the remote error (exc_type: value) on stderr.")]
pub struct RpcArgs {
    /// The AMQP broker (pyamqp:// URIs from Nameko configs work too).
    /// Default: amqp://guest:guest@127.0.0.1:5672/%2f.
    #[arg(long, env = "AMQP_URI", value_name = "URI", hide_env_values = true)]
    amqp_uri: Option<String>,
    /// A Nameko config file: its AMQP_URI is used (as `nameko shell
    /// --config` does), whatever --amqp-uri or $AMQP_URI say.
    #[arg(long, short, value_name = "PATH")]
    config: Option<std::path::PathBuf>,
    /// Service name.
    service: String,
    /// Method name.
    method: String,
    /// Positional arguments as a JSON array.
    #[arg(value_name = "ARGS_JSON", default_value = "[]")]
    args: String,
    /// Keyword arguments as a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    kwargs: String,
    /// Seconds to wait for the reply.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
}

impl std::fmt::Debug for RpcArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcArgs")
            .field("amqp_uri", &self.amqp_uri.as_deref().map(redact_uri))
            .field("config", &self.config)
            .field("service", &self.service)
            .field("method", &self.method)
            .field("args", &self.args)
            .field("kwargs", &self.kwargs)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RpcArgs {
    /// The broker: the config file's `AMQP_URI`, else `--amqp-uri` /
    /// `$AMQP_URI`, else the local default.
    fn broker(&self) -> anyhow::Result<String> {
        let Some(path) = &self.config else {
            return Ok(self
                .amqp_uri
                .clone()
                .unwrap_or_else(|| DEFAULT_AMQP_URI.to_owned()));
        };
        let config =
            Config::load(path).with_context(|| format!("cannot load {}", path.display()))?;
        match config.amqp_uri {
            Some(uri) => Ok(uri),
            None => bail!("{} has no AMQP_URI", path.display()),
        }
    }
}

/// Runs `sfstream rpc`.
pub async fn run(args: RpcArgs) -> anyhow::Result<ExitCode> {
    let positional: Vec<Value> = match serde_json::from_str(&args.args) {
        Ok(Value::Array(items)) => items,
        _ => bail!("ARGS_JSON must be a JSON array, e.g. '[\"Yo\", 3]'"),
    };
    let kwargs: Map<String, Value> = match serde_json::from_str(&args.kwargs) {
        Ok(Value::Object(map)) => map,
        _ => bail!("--kwargs must be a JSON object, e.g. '{{\"email\": \"a@b.c\"}}'"),
    };
    let broker = args.broker()?;
    let connection = Connection::connect(&broker)
        .await
        .with_context(|| format!("cannot connect to the AMQP broker {}", redact_uri(&broker)))?;
    let proxy = RpcProxy::start(&connection)
        .await
        .context("cannot start the RPC reply queue")?;
    let result = proxy
        .call(
            &args.service,
            &args.method,
            positional,
            kwargs,
            Duration::from_secs(args.timeout),
        )
        .await;
    proxy.stop().await;
    connection.close().await;
    match result {
        Ok(value) => {
            println!("{value}");
            Ok(ExitCode::SUCCESS)
        }
        Err(RpcCallError::Remote {
            exc_type, value, ..
        }) => bail!("{exc_type}: {value}"),
        Err(RpcCallError::UnknownService(_)) => {
            bail!("no service named {:?} is listening", args.service)
        }
        Err(error) => Err(error.into()),
    }
}
