//! Helpers shared by the emulator's integration tests: an org on a free
//! loopback port, a token, and a raw Bayeux session driven over HTTP.
#![allow(dead_code)]

pub mod pubsub;

use std::time::Duration;

use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};

/// API version used by the tests.
pub const V: &str = "62.0";

/// A running org plus an access token and an HTTP client.
pub struct Org {
    pub emulator: Emulator,
    pub token: String,
    pub http: reqwest::Client,
}

/// Test settings: faults on, connects held 2 s so tests stay quick.
pub fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(2);
    config.pubsub_keepalive = Duration::from_secs(1);
    config.pubsub_idle_timeout = Duration::from_secs(1);
    config
}

pub async fn start() -> Org {
    start_with(config()).await
}

pub async fn start_with(config: EmulatorConfig) -> Org {
    let emulator = Emulator::start(config).await.expect("emulator starts");
    let org = emulator.org();
    let token = org.tokens.issue(&org.org_id(), &org.user_id());
    Org {
        emulator,
        token,
        http: reqwest::Client::new(),
    }
}

impl Org {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.url())
    }

    pub fn data(&self, path: &str) -> String {
        self.url(&format!("/services/data/v{V}/{path}"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.data(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        status_json(response).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.data(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        status_json(response).await
    }

    pub async fn create(&self, sobject: &str, body: Value) -> String {
        let (status, reply) = self
            .send(reqwest::Method::POST, &format!("sobjects/{sobject}/"), body)
            .await;
        assert_eq!(status, 201, "create {sobject}: {reply}");
        reply["id"].as_str().expect("id").to_string()
    }

    pub async fn update(&self, sobject: &str, id: &str, body: Value) {
        let (status, reply) = self
            .send(
                reqwest::Method::PATCH,
                &format!("sobjects/{sobject}/{id}"),
                body,
            )
            .await;
        assert_eq!(status, 204, "update {sobject}: {reply}");
    }

    pub async fn delete(&self, sobject: &str, id: &str) {
        let (status, reply) = self
            .send(
                reqwest::Method::DELETE,
                &format!("sobjects/{sobject}/{id}"),
                json!(null),
            )
            .await;
        assert_eq!(status, 204, "delete {sobject}: {reply}");
    }

    pub async fn fault(&self, name: &str, body: Value) {
        let response = self
            .http
            .post(self.url(&format!("/_emulator/faults/{name}")))
            .json(&body)
            .send()
            .await
            .expect("fault");
        assert_eq!(response.status(), 200, "arming {name}");
    }

    /// A Bayeux session that has not handshaken yet.
    pub fn bayeux(&self) -> Bayeux {
        Bayeux {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .expect("client"),
            url: self.url(&format!("/cometd/{V}")),
            token: self.token.clone(),
            client_id: String::new(),
            next_id: 0,
        }
    }
}

pub async fn status_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A hand-driven Bayeux client over HTTP long-polling.
pub struct Bayeux {
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
    pub client_id: String,
    next_id: u64,
}

impl Bayeux {
    pub fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    pub async fn post(&self, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("cometd POST");
        status_json(response).await
    }

    pub async fn handshake(&mut self) -> Value {
        let id = self.id();
        let (status, reply) = self
            .post(
                json!([{"channel": "/meta/handshake", "version": "1.0", "minimumVersion": "1.0",
                "supportedConnectionTypes": ["long-polling"], "id": id, "ext": {"replay": true}}]),
            )
            .await;
        assert_eq!(status, 200);
        if let Some(client_id) = reply[0]["clientId"].as_str() {
            self.client_id = client_id.to_string();
        }
        reply[0].clone()
    }

    pub async fn connect(&mut self) -> Vec<Value> {
        let id = self.id();
        let (status, reply) = self
            .post(
                json!([{"channel": "/meta/connect", "clientId": self.client_id,
                "connectionType": "long-polling", "id": id}]),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        reply.as_array().cloned().unwrap_or_default()
    }

    /// Connects until at least `n` events arrived or `rounds` connects were made.
    pub async fn events(&mut self, n: usize, rounds: usize) -> Vec<Value> {
        let mut out = Vec::new();
        for _ in 0..rounds {
            for message in self.connect().await {
                if !message["channel"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("/meta/")
                {
                    out.push(message);
                }
            }
            if out.len() >= n {
                break;
            }
        }
        out
    }

    pub async fn subscribe(&mut self, channel: &str, replay: Option<i64>) -> Value {
        let id = self.id();
        let mut message = json!({"channel": "/meta/subscribe", "clientId": self.client_id,
            "subscription": channel, "id": id});
        if let Some(replay) = replay {
            message["ext"] = json!({"replay": {channel: replay}});
        }
        let (status, reply) = self.post(json!([message])).await;
        assert_eq!(status, 200);
        reply[0].clone()
    }

    /// Handshake, first connect, subscribe.
    pub async fn open(&mut self, channel: &str, replay: Option<i64>) {
        assert_eq!(self.handshake().await["successful"], true);
        self.connect().await;
        let reply = self.subscribe(channel, replay).await;
        assert_eq!(reply["successful"], true, "{reply}");
    }
}

pub fn replay_ids(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| e["data"]["event"]["replayId"].as_i64())
        .collect()
}
