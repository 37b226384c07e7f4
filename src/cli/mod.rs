//! Subcommands of `sfstream`.

mod demo;
mod doctor;
mod emulator;
mod listen;
mod login;
mod publish;
mod pubsub;
mod query;
mod replay;
mod rpc;
mod run;
mod topics;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Real-time Salesforce integration: stream events, call the REST API,
/// and run an emulated org on your machine.
#[derive(Debug, Parser)]
#[command(name = "sfstream", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole product on an emulated org: declare a topic, stream, change records, restart.
    Demo(demo::DemoArgs),
    /// Stream events of Salesforce channels to stdout, one JSON object per line.
    Listen(listen::ListenArgs),
    /// List, declare and delete PushTopics.
    Topics(topics::TopicsArgs),
    /// Run a SOQL query; one JSON record per line.
    Query(query::QueryArgs),
    /// Publish a platform event or push a generic streaming event.
    Publish(publish::PublishArgs),
    /// Call a method of a Nameko service and print the JSON result.
    Rpc(rpc::RpcArgs),
    /// Run the Salesforce to Nameko event proxy described by a config file (PROXY: entries).
    Run(run::RunArgs),
    /// Inspect and edit replay markers.
    Replay(replay::ReplayArgs),
    /// Check that the next start will work: login, limits, markers against retention.
    Doctor(doctor::DoctorArgs),
    /// Run an emulated Salesforce org (OAuth, SOAP login, REST, SOQL, CometD streaming).
    Emulator(emulator::EmulatorArgs),
}

impl Cli {
    /// Whether only warnings are logged unless -v is given (the demo
    /// tells its own story on stderr).
    pub fn quiet_by_default(&self) -> bool {
        matches!(self.command, Command::Demo(_) | Command::Rpc(_))
    }
}

/// Logs go to stderr, so stdout stays for data.
pub fn init_logging(verbose: u8, quiet: bool) {
    let default = match verbose {
        0 if quiet => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // lapin logs every returned message at WARN; an unknown service is
    // reported by us already.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},lapin=error")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colored_stderr())
        .try_init();
}

/// Colours only for a person at a terminal: never when stderr is a file or
/// a pipe, nor when `NO_COLOR` is set to anything.
fn colored_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Listen(args) => listen::run(args).await,
        Command::Topics(args) => topics::run(args).await,
        Command::Query(args) => query::run(args).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Rpc(args) => rpc::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Emulator(args) => emulator::run(args).await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
