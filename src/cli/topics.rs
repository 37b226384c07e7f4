//! `sfstream topics`: list, declare and delete PushTopics.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use sfstream_salesforce::SalesforceClient;
use sfstream_salesforce::rest::{
    DeclareOutcome, NotifyForFields, NotifyForOperations, PushTopic, PushTopicSpec, SobjectTopic,
};

use super::login::LoginArgs;

/// Options of `sfstream topics`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream topics list
  sfstream topics declare ContactNames \"SELECT Id, FirstName, LastName FROM Contact\" --notify-for-fields Select
  sfstream topics declare-sobject Contact --record-type Student --exclude-current-user
  sfstream topics delete ContactNames")]
pub struct TopicsArgs {
    #[command(flatten)]
    login: LoginArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Args)]
struct Notify {
    /// Which field changes notify: All, Referenced, Select or Where.
    #[arg(long, value_name = "MODE", value_parser = parse_notify_for_fields)]
    notify_for_fields: Option<NotifyForFields>,
    /// Do not notify creates.
    #[arg(long)]
    no_create: bool,
    /// Do not notify updates.
    #[arg(long)]
    no_update: bool,
    /// Do not notify deletes.
    #[arg(long)]
    no_delete: bool,
    /// Do not notify undeletes.
    #[arg(long)]
    no_undelete: bool,
}

impl Notify {
    fn operations(&self) -> NotifyForOperations {
        NotifyForOperations {
            create: !self.no_create,
            update: !self.no_update,
            delete: !self.no_delete,
            undelete: !self.no_undelete,
        }
    }
}

fn parse_notify_for_fields(text: &str) -> Result<NotifyForFields, String> {
    NotifyForFields::parse(text)
        .ok_or_else(|| format!("{text:?} is not All, Referenced, Select or Where"))
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print every PushTopic, one JSON object per line.
    List,
    /// Create a topic, or update it when it differs.
    Declare {
        /// Topic name (at most 25 characters); the channel is /topic/NAME.
        name: String,
        /// Its SOQL query (must select Id).
        query: String,
        #[command(flatten)]
        notify: Notify,
    },
    /// Declare a topic on changes to an sobject type, as the Nameko extension does.
    DeclareSobject {
        /// The sobject type, e.g. Contact.
        sobject: String,
        /// Only records of this record type (DeveloperName).
        #[arg(long)]
        record_type: Option<String>,
        /// Leave out changes made by the logged-in user.
        #[arg(long)]
        exclude_current_user: bool,
        /// More fields to select (repeatable).
        #[arg(long = "field", value_name = "FIELD")]
        fields: Vec<String>,
        #[command(flatten)]
        notify: Notify,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
}

fn outcome_word(outcome: &DeclareOutcome) -> &'static str {
    match outcome {
        DeclareOutcome::Created(_) => "created",
        DeclareOutcome::Updated(_) => "updated",
        DeclareOutcome::Unchanged(_) => "unchanged",
    }
}

fn topic_json(topic: &PushTopic) -> serde_json::Value {
    json!({
        "id": topic.id,
        "name": topic.name,
        "channel": topic.channel(),
        "query": topic.query,
        "notify_for_fields": topic.notify_for_fields.map(|n| n.as_str()),
        "active": topic.is_active,
    })
}

/// Runs `sfstream topics`.
pub async fn run(args: TopicsArgs) -> anyhow::Result<ExitCode> {
    let client = SalesforceClient::new(args.login.authenticator()?);
    match args.action {
        Action::List => {
            for topic in client.list_topics().await? {
                println!("{}", topic_json(&topic));
            }
        }
        Action::Declare {
            name,
            query,
            notify,
        } => {
            let mut spec =
                PushTopicSpec::new(name, query).notify_for_operations(notify.operations());
            if let Some(mode) = notify.notify_for_fields {
                spec = spec.notify_for_fields(mode);
            }
            let outcome = client.declare_topic(&spec).await?;
            println!(
                "{}",
                json!({"channel": spec.channel(), "outcome": outcome_word(&outcome)})
            );
        }
        Action::DeclareSobject {
            sobject,
            record_type,
            exclude_current_user,
            fields,
            notify,
        } => {
            let mut topic = SobjectTopic::new(sobject)
                .exclude_current_user(exclude_current_user)
                .extra_fields(fields)
                .notify_for_operations(notify.operations());
            if let Some(record_type) = record_type {
                topic = topic.record_type(record_type);
            }
            if let Some(mode) = notify.notify_for_fields {
                topic = topic.notify_for_fields(mode);
            }
            let declared = client.declare_sobject_topic(&topic).await?;
            println!(
                "{}",
                json!({"channel": declared.channel, "query": declared.query, "outcome": outcome_word(&declared.outcome)})
            );
        }
        Action::Delete { name } => {
            if !client.delete_topic(&name).await? {
                eprintln!("no PushTopic named {name}");
                return Ok(ExitCode::from(3));
            }
            eprintln!("deleted PushTopic {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
