//! The Bayeux endpoint `POST /cometd/{version}`: handshake, connect
//! (long-polling), subscribe, unsubscribe and disconnect, with Salesforce's
//! cookies, replay extension, limits and error strings.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::Utc;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use super::channels::ReplayFrom;
use super::clients::Client;
use super::{ChannelKind, Streaming};
use crate::config::{LATEST_API_VERSION, OLDEST_API_VERSION};
use crate::org::Org;
use crate::server::DropConnection;

/// Largest request body Salesforce accepts on the CometD endpoint.
pub const MAX_REQUEST_BYTES: usize = 32_768;

/// The replay id error; note the two spaces after "invalid.".
pub fn invalid_replay_id(id: i64) -> String {
    format!(
        "400::The replayId {{{id}}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."
    )
}

pub(super) fn routes() -> Router<Arc<Org>> {
    Router::new().route("/cometd/{version}", post(handle))
}

fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == "BAYEUX_BROWSER")
        .map(|(_, v)| v.to_string())
}

fn version_served(version: &str) -> bool {
    let latest: f64 = LATEST_API_VERSION.parse().unwrap_or(0.0);
    version
        .parse::<f64>()
        .is_ok_and(|v| (OLDEST_API_VERSION..=latest).contains(&v) && version.contains('.'))
}

/// What the batch's connect (processed last) needs.
struct PendingConnect {
    client_id: String,
    id: Value,
}

async fn handle(
    State(org): State<Arc<Org>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !version_served(&version) {
        return (StatusCode::NOT_FOUND, "Unknown version").into_response();
    }
    if body.len() > MAX_REQUEST_BYTES {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Maximum Request Size Exceeded",
        )
            .into_response();
    }
    if let Some(delay) = org.faults.take_delay() {
        tokio::time::sleep(delay).await;
    }
    let messages = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(single @ Value::Object(_)) => vec![single],
        _ => {
            let reply = json!([{ "successful": false, "error": "400::Invalid JSON message" }]);
            return (StatusCode::BAD_REQUEST, axum::Json(reply)).into_response();
        }
    };
    let authenticated = org.tokens.authenticate(&headers).is_some();
    let browser = browser_cookie(&headers);
    let streaming = &org.streaming;
    let mut replies: Vec<Value> = Vec::new();
    let mut new_browser = None;
    let mut connect = None;

    for message in messages {
        let channel = message
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let client_id = message
            .get("clientId")
            .and_then(Value::as_str)
            .map(str::to_string);
        if channel == "/meta/handshake" {
            let (reply, cookie) = handshake(&org, authenticated, id);
            replies.push(reply);
            if cookie.is_some() {
                new_browser = cookie;
            }
            continue;
        }
        let Some(client_id) = client_id else {
            replies.push(json!({"channel": channel, "id": id, "successful": false,
                "error": "403::Client has not completed handshake",
                "advice": {"reconnect": "handshake", "interval": 0}}));
            continue;
        };
        if let Some(error) = session_error(
            streaming,
            &client_id,
            browser.as_deref().or(new_browser.as_deref()),
        ) {
            replies.push(error_reply(&channel, &client_id, id, &error));
            continue;
        }
        if !authenticated {
            replies.push(json!({"clientId": client_id, "channel": channel, "id": id, "successful": false,
                "error": "401::Authentication invalid", "advice": {"reconnect": "none", "interval": 0}}));
            continue;
        }
        match channel.as_str() {
            "/meta/connect" => connect = Some(PendingConnect { client_id, id }),
            "/meta/subscribe" => replies.push(subscribe(&org, &client_id, id, &message)),
            "/meta/unsubscribe" => replies.push(unsubscribe(streaming, &client_id, id, &message)),
            "/meta/disconnect" => {
                streaming.inner.lock().clients.remove(&client_id);
                replies.push(json!({"clientId": client_id, "channel": "/meta/disconnect", "id": id, "successful": true}));
            }
            other if other.starts_with("/meta/") => {
                replies.push(error_reply(other, &client_id, id, "400::Unknown channel"))
            }
            other => replies.push(
                json!({"clientId": client_id, "channel": other, "id": id, "successful": false,
                "error": "403::Publish not allowed"}),
            ),
        }
    }

    let mut events = Vec::new();
    if let Some(pending) = connect {
        if org.faults.take_drop_connect() {
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            return response;
        }
        let delivered = streaming.stats().events_delivered.load(Ordering::Relaxed);
        if delivered >= org.daily_streaming_events_limit() {
            // The session stays; nothing is delivered until the allocation frees up.
            replies.push(
                json!({"clientId": pending.client_id, "channel": "/meta/connect",
                "id": pending.id, "successful": false,
                "error": "403::Organization total events daily limit exceeded"}),
            );
        } else {
            let (delivered, reply) = long_poll(streaming, &pending.client_id, pending.id).await;
            events = delivered;
            replies.extend(reply);
        }
    }
    let mut response = if org.faults.take_malformed() {
        Response::new(Body::from(
            "[{\"channel\":\"/meta/connect\",\"successful\":tru",
        ))
    } else {
        Response::new(Body::from(assemble(&events, &replies)))
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Some(cookie) = new_browser {
        if let Ok(value) =
            HeaderValue::from_str(&format!("BAYEUX_BROWSER={cookie}; Path=/; HttpOnly"))
        {
            headers.append(header::SET_COOKIE, value);
        }
        if let Ok(value) =
            HeaderValue::from_str(&format!("sfdc-stream=!{}; path=/", random_token(24)))
        {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `[event, event, …, reply, …]` from pre-serialised events and replies.
fn assemble(events: &[Bytes], replies: &[Value]) -> Bytes {
    let size: usize = events.iter().map(Bytes::len).sum::<usize>() + 256 * (replies.len() + 1);
    let mut out = BytesMut::with_capacity(size);
    out.put_u8(b'[');
    let mut first = true;
    for event in events {
        if !first {
            out.put_u8(b',');
        }
        first = false;
        out.put_slice(event);
    }
    for reply in replies {
        if !first {
            out.put_u8(b',');
        }
        first = false;
        out.put_slice(&serde_json::to_vec(reply).unwrap_or_default());
    }
    out.put_u8(b']');
    out.freeze()
}

fn error_reply(channel: &str, client_id: &str, id: Value, error: &str) -> Value {
    let mut reply = json!({"clientId": client_id, "channel": channel, "id": id, "successful": false, "error": error});
    if error == "403::Unknown client" {
        reply["advice"] = json!({"reconnect": "handshake", "interval": 0});
    }
    reply
}

fn handshake(org: &Org, authenticated: bool, id: Value) -> (Value, Option<String>) {
    let streaming = &org.streaming;
    streaming.stats.handshakes.fetch_add(1, Ordering::Relaxed);
    if org.faults.take_busy_handshake() {
        return (
            json!({"channel": "/meta/handshake", "id": id, "successful": false,
                "error": "503::Server is too busy.  Please try your request again later.",
                "advice": {"reconnect": "handshake", "interval": 0}}),
            None,
        );
    }
    if !authenticated {
        return (
            json!({"ext": {"sfdc": {"failureReason": "401::Authentication invalid"}},
                "advice": {"reconnect": "none"}, "channel": "/meta/handshake", "id": id,
                "error": "403::Handshake denied", "successful": false}),
            None,
        );
    }
    let client_id = random_token(28).to_lowercase();
    let browser = random_token(22);
    {
        let mut inner = streaming.inner.lock();
        let timeout = streaming.settings.session_timeout;
        inner
            .clients
            .retain(|_, c| c.connect_outstanding || c.last_seen.elapsed() <= timeout);
        if inner.clients.len() >= org.concurrent_clients_limit() {
            return (
                json!({"channel": "/meta/handshake", "id": id, "successful": false,
                    "error": "403::Organization concurrent user limit exceeded"}),
                None,
            );
        }
        inner
            .clients
            .insert(client_id.clone(), Client::new(browser.clone()));
    }
    streaming
        .stats
        .handshakes_ok
        .fetch_add(1, Ordering::Relaxed);
    (
        json!({"ext": {"replay": true, "payload.format": true}, "minimumVersion": "1.0",
            "clientId": client_id, "supportedConnectionTypes": ["long-polling"],
            "channel": "/meta/handshake", "id": id, "version": "1.0", "successful": true}),
        Some(browser),
    )
}

/// Checks the client exists, is alive and sent its browser cookie.
fn session_error(streaming: &Streaming, client_id: &str, browser: Option<&str>) -> Option<String> {
    let mut inner = streaming.inner.lock();
    let timeout = streaming.settings.session_timeout;
    let Some(client) = inner.clients.get(client_id) else {
        return Some("403::Unknown client".into());
    };
    if !client.connect_outstanding && client.last_seen.elapsed() > timeout {
        inner.clients.remove(client_id);
        return Some("403::Unknown client".into());
    }
    if browser.is_none() {
        return Some(format!(
            "400::Client {{{client_id}}} has established a session, but no BAYEUX_BROWSER cookie present"
        ));
    }
    None
}

/// Whether a channel can be subscribed to in this org.
fn channel_exists(org: &Org, channel: &str) -> bool {
    let store = org.store.lock();
    let name_of =
        |r: &crate::store::Record| r.get("Name").and_then(Value::as_str).map(str::to_string);
    match ChannelKind::of(channel) {
        Some(ChannelKind::PushTopic) => {
            let topic = &channel["/topic/".len()..];
            store.rows("PushTopic", false).any(|r| {
                name_of(r).as_deref() == Some(topic)
                    && r.get("IsActive") == Some(&Value::Bool(true))
            })
        }
        Some(ChannelKind::Generic) => store
            .rows("StreamingChannel", false)
            .any(|r| name_of(r).as_deref() == Some(channel)),
        Some(ChannelKind::ChangeEvent) => {
            let entity = &channel["/data/".len()..];
            entity == "ChangeEvents"
                || store.schemas().iter().any(|s| {
                    s.cdc_enabled
                        && (entity == format!("{}ChangeEvent", s.name)
                            || entity == format!("{}__ChangeEvent", s.name.trim_end_matches("__c")))
                })
        }
        Some(ChannelKind::PlatformEvent) => channel["/event/".len()..]
            .strip_suffix("__e")
            .is_some_and(crate::schema::valid_api_name),
        None => false,
    }
}

fn subscribe(org: &Org, client_id: &str, id: Value, message: &Value) -> Value {
    let streaming = &org.streaming;
    streaming.stats.subscribes.fetch_add(1, Ordering::Relaxed);
    let subscription = message
        .get("subscription")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let channel = subscription
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let reply = |error: Option<String>| {
        let mut r = json!({"clientId": client_id, "channel": "/meta/subscribe", "id": id,
            "subscription": subscription, "successful": error.is_none()});
        if let Some(e) = error {
            r["error"] = json!(e);
        }
        r
    };
    if let Some(error) = org.faults.take_subscribe_refusal() {
        return reply(Some(error));
    }
    if !channel_exists(org, &channel) {
        return reply(Some(format!(
            "400::The channel you requested to subscribe to does not exist {{{channel}}}"
        )));
    }
    let from = match message.pointer("/ext/replay") {
        None | Some(Value::Null) => ReplayFrom::New,
        Some(Value::Object(map)) => match map
            .get(&channel)
            .or_else(|| map.get(&subscription))
            .and_then(replay_number)
        {
            Some(n) => ReplayFrom::from_id(n),
            None => {
                return reply(Some(format!(
                    "400::The replayId for channel {{{channel}}} wasn't found using the provided replay ID map {{{}}}. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
                    Value::Object(map.clone())
                )));
            }
        },
        Some(_) => return reply(Some("400::Invalid replay extension".into())),
    };
    let mut inner = streaming.inner.lock();
    let kind = ChannelKind::of(&channel).unwrap_or(ChannelKind::PushTopic);
    let retention = streaming.retention(kind);
    let log = inner
        .channels
        .entry(channel.clone())
        .or_insert_with(|| super::ChannelLog::new(kind));
    log.apply_retention(Utc::now(), retention);
    let Some(cursor) = log.start_cursor(from) else {
        let n = match from {
            ReplayFrom::After(n) => n,
            ReplayFrom::New => -1,
            ReplayFrom::All => -2,
        };
        return reply(Some(invalid_replay_id(n)));
    };
    match inner.clients.get_mut(client_id) {
        Some(client) => {
            match super::clients::Filter::of(&subscription) {
                Some(filter) => client.filters.insert(channel.clone(), filter),
                None => client.filters.remove(&channel),
            };
            client.subscriptions.insert(channel, cursor);
            drop(inner);
            streaming.notify();
            reply(None)
        }
        None => error_reply(
            "/meta/subscribe",
            client_id,
            id.clone(),
            "403::Unknown client",
        ),
    }
}

fn replay_number(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn unsubscribe(streaming: &Streaming, client_id: &str, id: Value, message: &Value) -> Value {
    let subscription = message
        .get("subscription")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let channel = subscription.split('?').next().unwrap_or_default();
    let mut inner = streaming.inner.lock();
    let removed = inner
        .clients
        .get_mut(client_id)
        .and_then(|c| {
            c.filters.remove(channel);
            c.subscriptions.remove(channel)
        })
        .is_some();
    let mut reply = json!({"clientId": client_id, "channel": "/meta/unsubscribe", "id": id,
        "subscription": subscription, "successful": removed});
    if !removed {
        reply["error"] = json!(format!("400::Not subscribed to {{{subscription}}}"));
    }
    reply
}

/// Clears `connect_outstanding` however the long poll ends, even when the
/// client hangs up and the handler is dropped.
struct OutstandingGuard<'a> {
    streaming: &'a Streaming,
    client_id: &'a str,
    generation: u64,
}

impl Drop for OutstandingGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.streaming.inner.lock();
        if let Some(client) = inner.clients.get_mut(self.client_id)
            && client.connect_generation == self.generation
        {
            client.connect_outstanding = false;
            client.last_seen = Instant::now();
        }
    }
}

/// Holds a connect until events arrive, the hold time passes, a newer
/// connect supersedes it, or the server disconnects the client.
async fn long_poll(streaming: &Streaming, client_id: &str, id: Value) -> (Vec<Bytes>, Vec<Value>) {
    streaming.stats.connects.fetch_add(1, Ordering::Relaxed);
    let mut wake = streaming.wake.subscribe();
    let hold = streaming.settings.connect_hold;
    let (generation, first, shared_browser) = {
        let mut inner = streaming.inner.lock();
        let Some(client) = inner.clients.get_mut(client_id) else {
            return (
                Vec::new(),
                vec![error_reply(
                    "/meta/connect",
                    client_id,
                    id,
                    "403::Unknown client",
                )],
            );
        };
        client.connect_generation += 1;
        client.connect_outstanding = true;
        let generation = client.connect_generation;
        let browser = client.browser.clone();
        // Another client of the same browser already holds a connect: CometD
        // answers at once and tells this one to poll every 2 s instead.
        let shared = inner.clients.iter().any(|(other_id, c)| {
            other_id != client_id && c.browser == browser && c.connect_outstanding
        });
        (generation, generation == 1, shared)
    };
    streaming.notify(); // wakes an older connect of this client so it returns
    let _guard = OutstandingGuard {
        streaming,
        client_id,
        generation,
    };
    let deadline = tokio::time::Instant::now() + hold;
    let ok = |advice: Option<Value>| {
        let mut reply = json!({"clientId": client_id, "channel": "/meta/connect", "id": id, "successful": true});
        if let Some(advice) = advice {
            reply["advice"] = advice;
        }
        reply
    };
    loop {
        {
            let mut inner = streaming.inner.lock();
            let Some(client) = inner.clients.get_mut(client_id) else {
                return (
                    Vec::new(),
                    vec![error_reply(
                        "/meta/connect",
                        client_id,
                        id,
                        "403::Unknown client",
                    )],
                );
            };
            if client.connect_generation != generation {
                return (Vec::new(), vec![ok(None)]);
            }
            if client.disconnect_pending {
                inner.clients.remove(client_id);
                return (
                    Vec::new(),
                    vec![
                        json!({"channel": "/meta/disconnect", "clientId": client_id, "successful": true}),
                    ],
                );
            }
            let events = streaming.collect(&mut inner, client_id);
            let timed_out = tokio::time::Instant::now() >= deadline;
            if shared_browser && !first {
                streaming
                    .stats
                    .events_delivered
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                let advice =
                    json!({"reconnect": "retry", "interval": 2000, "multiple-clients": true});
                return (events, vec![ok(Some(advice))]);
            }
            if first || !events.is_empty() || timed_out {
                streaming
                    .stats
                    .events_delivered
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                let advice = first.then(|| json!({"reconnect": "retry", "interval": 0, "timeout": hold.as_millis() as u64}));
                return (events, vec![ok(advice)]);
            }
        }
        tokio::select! {
            changed = wake.changed() => { if changed.is_err() { return (Vec::new(), vec![ok(None)]); } }
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

impl Streaming {
    /// Takes up to one connect's worth of events for a client, advancing its cursors.
    fn collect(&self, inner: &mut super::Inner, client_id: &str) -> Vec<Bytes> {
        let max = self.settings.max_events_per_connect;
        let now = Utc::now();
        let super::Inner {
            channels, clients, ..
        } = inner;
        let Some(client) = clients.get_mut(client_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let filters = &client.filters;
        for (channel, cursor) in client.subscriptions.iter_mut() {
            if out.len() >= max {
                break;
            }
            let Some(log) = channels.get_mut(channel) else {
                continue;
            };
            if !log.has_after(*cursor) {
                continue;
            }
            log.apply_retention(now, self.retention(log.kind()));
            let filter = filters.get(channel);
            for event in log.after(*cursor, max - out.len()) {
                if filter.is_none_or(|f| f.passes(&event.message)) {
                    out.push(event.message.clone());
                }
                *cursor = event.replay_id;
            }
        }
        out
    }
}
