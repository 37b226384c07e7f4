//! `sfstream doctor`: "is this going to work?" Logs in and reports the org,
//! the login flow and its retirement status, the limits left, the
//! PushTopics, the stored markers against retention, and what the next
//! start will do for each channel. A table on a terminal, JSON otherwise;
//! exit status 1 when something will fail.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{Value, json};
use sfstream_salesforce::limits_watch::{LimitsPolicy, LimitsWatch};
use sfstream_salesforce::replay::{
    AgeStatus, ReplayFrom, ReplayStore, age_status, marker_age, open_store, retention,
    set_warn_ages,
};
use sfstream_salesforce::{Authenticator, Credentials, SalesforceClient, defaults};
use sfstream_service::config::{Config, ReplayStoreConfig};

use super::login::LoginArgs;

/// Options of `sfstream doctor`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream doctor --username me@example.com --replay-store redis://127.0.0.1:6379/0
  sfstream doctor --config service.yaml /topic/ContactChanges

stdout: a report (a table on a terminal, JSON otherwise). Exit status: 0
when the next start will work, 1 when something will fail (login, an
expired marker without a fallback, a limit used up).")]
pub struct DoctorArgs {
    #[command(flatten)]
    login: LoginArgs,
    /// A service config file: its SALESFORCE: login, store and replay options.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Where replay markers live (without --config).
    #[arg(long, env = "SALESFORCE_REPLAY_STORE", value_name = "URI")]
    replay_store: Option<String>,
    /// Where a channel without a marker starts (without --config).
    #[arg(long, value_name = "NEW|ALL", default_value = "NEW")]
    replay: ReplayFrom,
    /// On an expired marker, resubscribe with this (without --config).
    #[arg(long, value_name = "NEW|ALL")]
    replay_fallback: Option<ReplayFrom>,
    /// Channels to check (default: every channel with a stored marker).
    #[arg(value_name = "CHANNEL")]
    channels: Vec<String>,
}

/// The limits a streaming integration lives on.
const STREAMING_LIMITS: [&str; 5] = [
    "DailyStreamingApiEvents",
    "DailyDurableStreamingApiEvents",
    "DailyDeliveredPlatformEvents",
    "HourlyPublishedPlatformEvents",
    "DailyApiRequests",
];

/// What the report is built from.
struct Plan {
    authenticator: Authenticator,
    store: Option<String>,
    default_replay: ReplayFrom,
    fallback: Option<ReplayFrom>,
}

fn plan(args: &DoctorArgs) -> anyhow::Result<Plan> {
    let Some(path) = &args.config else {
        return Ok(Plan {
            authenticator: args.login.authenticator()?,
            store: args.replay_store.clone(),
            default_replay: args.replay,
            fallback: args.replay_fallback,
        });
    };
    let config = Config::load(path).with_context(|| format!("--config {}", path.display()))?;
    let section = config
        .salesforce
        .with_context(|| format!("{} has no SALESFORCE: section", path.display()))?;
    let store = match &section.replay_store {
        ReplayStoreConfig::Memory => None,
        ReplayStoreConfig::Redis { url, .. } => Some(url.clone()),
        ReplayStoreConfig::Uri(uri) => Some(uri.clone()),
        _ => None,
    };
    // The service's warn ages are the ones its markers are judged by.
    if let Some(ages) = section.marker_age_warn {
        set_warn_ages(ages);
    }
    Ok(Plan {
        authenticator: Authenticator::new(section.credentials.clone())
            .with_login_url(section.login_url.clone())
            .with_api_version(section.api_version.clone()),
        store,
        default_replay: section.default_replay,
        fallback: section.replay_fallback,
    })
}

/// Runs `sfstream doctor`.
pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let flow = plan.authenticator.credentials().flow();
    let retirement = matches!(plan.authenticator.credentials(), Credentials::Soap { .. })
        .then_some(defaults::SOAP_LOGIN_RETIREMENT_NOTICE);
    if let Some(notice) = retirement {
        warnings.push(notice.to_string());
    }
    let mut report = json!({
        "api_version": plan.authenticator.api_version(),
        "login": {"flow": flow, "retires": retirement.map(|_| defaults::SOAP_LOGIN_RETIREMENT)},
    });

    // Login, limits and PushTopics.
    let client = SalesforceClient::new(plan.authenticator.clone());
    match plan.authenticator.login().await {
        Ok(session) => {
            report["login"]["ok"] = json!(true);
            report["org"] = json!({
                "instance_url": session.instance_url,
                "org_id": session.org_id,
                "user_id": session.user_id,
            });
            report["limits"] = limits(&client, &mut problems, &mut warnings).await;
            report["pushtopics"] = match client.list_topics().await {
                Ok(topics) => topics
                    .iter()
                    .map(|t| json!({"name": t.name, "query": t.query, "active": t.is_active}))
                    .collect(),
                Err(error) => {
                    warnings.push(format!("PushTopics could not be listed: {error}"));
                    Value::Null
                }
            };
        }
        Err(error) => {
            report["login"]["ok"] = json!(false);
            report["login"]["error"] = json!(error.to_string());
            problems.push(format!("login ({flow}) fails: {error}"));
        }
    }

    // Markers and the next start.
    let store = match &plan.store {
        Some(uri) => Some(open_store(uri).await.context("--replay-store")?),
        None => None,
    };
    let (markers, next) = markers_and_next_start(
        store.as_deref(),
        &args.channels,
        &plan,
        &mut problems,
        &mut warnings,
    )
    .await?;
    report["markers"] = markers;
    report["next_start"] = next;
    report["warnings"] = json!(warnings);
    report["problems"] = json!(problems);
    report["ok"] = json!(problems.is_empty());

    if std::io::stdout().is_terminal() {
        print_table(&report);
    } else {
        println!("{report}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn limits(
    client: &SalesforceClient,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Value {
    let limits = match client.limits().await {
        Ok(limits) => limits,
        Err(error) => {
            warnings.push(format!("limits could not be read: {error}"));
            return Value::Null;
        }
    };
    let mut out = serde_json::Map::new();
    // The warning threshold the services and listen use.
    let watch = LimitsWatch::new(LimitsPolicy::default());
    for name in STREAMING_LIMITS {
        let Some(limit) = limits.get(name) else {
            continue;
        };
        out.insert(
            name.to_string(),
            json!({"max": limit.max, "remaining": limit.remaining}),
        );
        if limit.max > 0 && limit.remaining <= 0 {
            problems.push(format!("{name} is used up (0 of {} left)", limit.max));
        } else if watch.is_over(limit) {
            warnings.push(format!(
                "{name}: {} of {} left (over {:.0}% used)",
                limit.remaining,
                limit.max,
                watch.policy().warn_at * 100.0
            ));
        }
    }
    Value::Object(out)
}

struct Stored {
    channel: String,
    transport: &'static str,
    replay_id: String,
    created: Option<DateTime<Utc>>,
}

async fn markers_and_next_start(
    store: Option<&dyn ReplayStore>,
    channels: &[String],
    plan: &Plan,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> anyhow::Result<(Value, Value)> {
    let mut stored: Vec<Stored> = Vec::new();
    if let Some(store) = store {
        for (channel, marker) in store.list().await? {
            stored.push(Stored {
                channel,
                transport: "cometd",
                replay_id: marker.replay_id.to_string(),
                created: marker.created,
            });
        }
        for (topic, marker) in store.list_opaque().await? {
            stored.push(Stored {
                channel: topic,
                transport: "pubsub",
                replay_id: sfstream_pubsub::replay_id::to_text(&marker.replay_id),
                created: marker.created,
            });
        }
    }
    let now = Utc::now();
    let mut markers = Vec::new();
    let mut next = Vec::new();
    for s in &stored {
        let retention = retention(&s.channel);
        let age = s.created.map(|c| marker_age(c, now));
        // The one warn-age policy (`--marker-age-warn-hours` of listen,
        // MARKER_AGE_WARN_HOURS of a service).
        let status = match age.map(|age| age_status(&s.channel, age)) {
            Some(AgeStatus::Expired) => "expired",
            Some(AgeStatus::NearingRetention) => "near_retention",
            Some(AgeStatus::Fresh) => "ok",
            None => "unknown_age",
        };
        markers.push(json!({
            "channel": s.channel,
            "transport": s.transport,
            "replay_id": s.replay_id,
            "created": s.created.map(|c| c.to_rfc3339()),
            "age_seconds": age.map(|a| a.as_secs()),
            "retention_seconds": retention.as_secs(),
            "status": status,
        }));
        if !channels.is_empty() && !channels.contains(&s.channel) {
            continue;
        }
        let action = match (status, plan.fallback) {
            ("expired", Some(fallback)) => {
                warnings.push(format!(
                    "{}: its marker is past the {} h retention; the next start falls back to {fallback} and may miss events since {}",
                    s.channel,
                    retention.as_secs() / 3600,
                    s.created.map(|c| c.to_rfc3339()).unwrap_or_default()
                ));
                json!({"channel": s.channel, "action": "fallback", "fallback": fallback.to_string(), "gap_from": s.created.map(|c| c.to_rfc3339())})
            }
            ("expired", None) => {
                problems.push(format!(
                    "{}: its marker is past the {} h retention and no fallback is set: the next start fails (set a replay fallback, or reset the marker)",
                    s.channel,
                    retention.as_secs() / 3600
                ));
                json!({"channel": s.channel, "action": "fail", "reason": "marker expired, no fallback"})
            }
            ("near_retention", _) => {
                warnings.push(format!(
                    "{}: its marker is {} h old, near the {} h retention",
                    s.channel,
                    age.map(|a| a.as_secs() / 3600).unwrap_or_default(),
                    retention.as_secs() / 3600
                ));
                json!({"channel": s.channel, "action": "resume", "after": s.replay_id})
            }
            _ => json!({"channel": s.channel, "action": "resume", "after": s.replay_id}),
        };
        next.push(action);
    }
    for channel in channels {
        if !stored.iter().any(|s| &s.channel == channel) {
            next.push(json!({"channel": channel, "action": "start", "from": plan.default_replay.to_string()}));
        }
    }
    Ok((Value::Array(markers), Value::Array(next)))
}

fn print_table(report: &Value) {
    let ok = |v: &Value| {
        if v.as_bool() == Some(true) {
            "ok"
        } else {
            "FAILS"
        }
    };
    println!(
        "login      {} ({})  {}",
        ok(&report["login"]["ok"]),
        report["login"]["flow"].as_str().unwrap_or_default(),
        report["org"]["instance_url"].as_str().unwrap_or_default()
    );
    println!(
        "org        {}  API {}",
        report["org"]["org_id"].as_str().unwrap_or("-"),
        report["api_version"].as_str().unwrap_or_default()
    );
    if let Some(limits) = report["limits"].as_object() {
        for (name, limit) in limits {
            println!(
                "limit      {name:<32} {} of {} left",
                limit["remaining"], limit["max"]
            );
        }
    }
    if let Some(topics) = report["pushtopics"].as_array() {
        println!("pushtopics {}", topics.len());
    }
    for marker in report["markers"].as_array().into_iter().flatten() {
        println!(
            "marker     {:<40} {:<7} {:<16} age {:>7} s of {} s  {}",
            marker["channel"].as_str().unwrap_or_default(),
            marker["transport"].as_str().unwrap_or_default(),
            marker["replay_id"].as_str().unwrap_or_default(),
            marker["age_seconds"],
            marker["retention_seconds"],
            marker["status"].as_str().unwrap_or_default()
        );
    }
    for action in report["next_start"].as_array().into_iter().flatten() {
        println!("next start {action}");
    }
    for warning in report["warnings"].as_array().into_iter().flatten() {
        println!("warning    {}", warning.as_str().unwrap_or_default());
    }
    for problem in report["problems"].as_array().into_iter().flatten() {
        println!("PROBLEM    {}", problem.as_str().unwrap_or_default());
    }
    println!(
        "{}",
        if report["ok"] == true {
            "ok: the next start will work"
        } else {
            "the next start will fail"
        }
    );
}
