//! `sfstream query`: SOQL results as JSON lines, following every page.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use sfstream_salesforce::SalesforceClient;

use super::login::LoginArgs;

/// Options of `sfstream query`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream query \"SELECT Id, Name FROM Account WHERE CreatedDate = TODAY\"
  sfstream query --all \"SELECT Id FROM Contact WHERE IsDeleted = true\"")]
pub struct QueryArgs {
    #[command(flatten)]
    login: LoginArgs,
    /// The SOQL query.
    soql: String,
    /// Include deleted and archived rows (queryAll).
    #[arg(long)]
    all: bool,
}

/// Runs `sfstream query`.
pub async fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let client = SalesforceClient::new(args.login.authenticator()?);
    let mut records = if args.all {
        client.query_all(args.soql)
    } else {
        client.query(args.soql)
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(record) = records.next().await {
        let record = record?;
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n").context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
