//! The client against real third-party Bayeux servers in their failure
//! cases: Faye (npm `faye`) and the CometD project's Node server (npm
//! `cometd-nodejs-server`), both installed by `scripts/test-deps.sh`.
//! Each answers a client it does not know in its own words (Faye
//! `401:<id>:Unknown client`, CometD `402::session_unknown`), with advice
//! `reconnect: handshake`: the client must handshake and resubscribe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use sfstream_bayeux::{Backoff, Client, ClientBuilder, ClientEvent, HandshakeReason, Messages};
use tokio::process::Child;

#[derive(Debug, Clone, Copy)]
enum Peer {
    Faye,
    CometD,
}

struct Server {
    peer: Peer,
    child: Child,
    port: u16,
    url: String,
    env: Vec<(&'static str, String)>,
}

impl Server {
    /// Starts the server on `port` (0: a free one).
    async fn start(peer: Peer, port: u16, env: Vec<(&'static str, String)>) -> Self {
        let (script, package) = match peer {
            Peer::Faye => ("faye_server.js", "faye"),
            Peer::CometD => ("cometd_server.js", "cometd-nodejs-server"),
        };
        let (child, url) =
            sfstream_testkit::peers::bayeux_server(script, package, port, &env).await;
        let port = url
            .split(':')
            .nth(2)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("a port");
        Self {
            peer,
            child,
            port,
            url,
            env,
        }
    }

    /// kill -9, then the same server again on the same port (every
    /// session it knew is gone).
    async fn restart(&mut self) {
        self.child.kill().await.expect("SIGKILL");
        tokio::time::sleep(Duration::from_millis(500)).await;
        *self = Self::start(self.peer, self.port, self.env.clone()).await;
    }

    /// Publishes `{"n": start..start+n}` on `channel`, from the server side.
    async fn publish(&self, channel: &str, start: u64, n: u64) {
        let url = format!(
            "http://127.0.0.1:{}/publish?channel={channel}&n={n}&start={start}",
            self.port
        );
        let response = reqwest::get(url).await.expect("publish request");
        assert!(response.status().is_success(), "{response:?}");
    }
}

type Events = Arc<Mutex<Vec<ClientEvent>>>;

fn builder(url: &str, events: &Events) -> ClientBuilder {
    let events = events.clone();
    Client::builder(url)
        .backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        })
        .connection_timeout(Some(Duration::from_secs(30)))
        .on_event(move |e| events.lock().push(e.clone()))
}

fn count(events: &Events, what: impl Fn(&ClientEvent) -> bool) -> usize {
    events.lock().iter().filter(|e| what(e)).count()
}

/// Waits (at most 20 s) until `what` has happened `n` times.
async fn happened(events: &Events, n: usize, what: impl Fn(&ClientEvent) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(events, &what) < n {
        assert!(
            Instant::now() < deadline,
            "not seen {n} times within 20 s: {:?}",
            events.lock()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn subscribed(channel: &'static str) -> impl Fn(&ClientEvent) -> bool {
    move |e| matches!(e, ClientEvent::Subscribed { channel: c } if c == channel)
}

/// The next `n` values of `data.n`, each within 10 s.
async fn next_numbers(messages: &mut Messages, n: usize) -> Vec<u64> {
    let mut numbers = Vec::new();
    while numbers.len() < n {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open")
            .expect("an event, not an error");
        let data = message.data_value().expect("json");
        numbers.push(data["n"].as_u64().expect("a number"));
    }
    numbers
}

async fn survives_a_restart_on_the_same_port(peer: Peer) {
    let mut server = Server::start(peer, 0, Vec::new()).await;
    let events = Events::default();
    let (client, mut messages) = builder(&server.url, &events)
        .connect()
        .await
        .expect("handshake");
    client.subscribe("/chat/a").await.expect("subscribed");
    server.publish("/chat/a", 0, 3).await;
    assert_eq!(next_numbers(&mut messages, 3).await, vec![0, 1, 2]);

    server.restart().await;
    // The server answers the next connect with "unknown client" and
    // advice handshake: a new session, and the channel subscribed again.
    happened(&events, 2, subscribed("/chat/a")).await;
    server.publish("/chat/a", 100, 3).await;
    assert_eq!(next_numbers(&mut messages, 3).await, vec![100, 101, 102]);
    assert!(
        count(&events, |e| matches!(
            e,
            ClientEvent::Handshaken {
                reason: HandshakeReason::SessionLost,
                ..
            }
        )) >= 1,
        "{:?}",
        events.lock()
    );
    assert_eq!(
        count(&events, |e| matches!(e, ClientEvent::Closed { .. })),
        0
    );
    client.disconnect().await;
}

async fn handshakes_again_after_the_server_forgot_an_idle_client(peer: Peer) {
    let env = match peer {
        Peer::Faye => vec![("FAYE_TIMEOUT", "1".to_string())],
        Peer::CometD => vec![("MAX_INTERVAL", "1000".to_string())],
    };
    let server = Server::start(peer, 0, env).await;
    let events = Events::default();
    // One pending event pauses polling: while the consumer does not read,
    // the client sends no connect and the server forgets the session.
    let (client, mut messages) = builder(&server.url, &events)
        .max_pending(1)
        .connect()
        .await
        .expect("handshake");
    client.subscribe("/chat/idle").await.expect("subscribed");
    server.publish("/chat/idle", 0, 1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(next_numbers(&mut messages, 1).await, vec![0]);
    happened(&events, 2, subscribed("/chat/idle")).await;
    server.publish("/chat/idle", 1, 2).await;
    assert_eq!(next_numbers(&mut messages, 2).await, vec![1, 2]);
    client.disconnect().await;
}

#[tokio::test]
async fn faye_restart_on_the_same_port() {
    survives_a_restart_on_the_same_port(Peer::Faye).await;
}

#[tokio::test]
async fn cometd_restart_on_the_same_port() {
    survives_a_restart_on_the_same_port(Peer::CometD).await;
}

#[tokio::test]
async fn faye_forgets_an_idle_client() {
    handshakes_again_after_the_server_forgot_an_idle_client(Peer::Faye).await;
}

#[tokio::test]
async fn cometd_forgets_an_idle_client() {
    handshakes_again_after_the_server_forgot_an_idle_client(Peer::CometD).await;
}

/// A stock CometD server delivers queued events with the reply to any
/// request: here, with the reply to a subscribe sent while polling is
/// paused. Every one of them reaches the consumer.
#[tokio::test]
async fn cometd_events_in_a_subscribe_reply_are_delivered() {
    let server = Server::start(Peer::CometD, 0, Vec::new()).await;
    let events = Events::default();
    let (client, mut messages) = builder(&server.url, &events)
        .max_pending(1)
        .connect()
        .await
        .expect("handshake");
    client.subscribe("/chat/q").await.expect("subscribed");
    server.publish("/chat/q", 0, 1).await;
    // Wait until the first event is pending (polling paused), then queue more.
    let deadline = Instant::now() + Duration::from_secs(10);
    while messages.pending_count() < 1 {
        assert!(Instant::now() < deadline, "the first event never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.publish("/chat/q", 1, 5).await;
    // The queued events come back with this subscribe's reply.
    client.subscribe("/chat/other").await.expect("subscribed");
    assert_eq!(next_numbers(&mut messages, 6).await, vec![0, 1, 2, 3, 4, 5]);
    client.disconnect().await;
}
