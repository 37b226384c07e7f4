//! A Pub/Sub client of the emulated org for tests: the generated tonic
//! client, the auth metadata, and subscriptions driven by hand.

use std::time::Duration;

use futures::Stream;
use sfstream_pubsub::proto::pub_sub_client::PubSubClient;
use sfstream_pubsub::proto::{
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse,
};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

/// LATEST, EARLIEST, CUSTOM.
pub const LATEST: i32 = 0;
pub const EARLIEST: i32 = 1;
pub const CUSTOM: i32 = 2;

pub struct PubSub {
    pub client: PubSubClient<Channel>,
    pub token: String,
    pub org_id: String,
    pub instance: String,
}

fn requests<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}

impl PubSub {
    pub async fn connect(org: &super::Org) -> Self {
        let client = PubSubClient::connect(org.emulator.pubsub_url())
            .await
            .expect("pubsub connects");
        Self {
            client,
            token: org.token.clone(),
            org_id: org.emulator.org().org_id(),
            instance: org.emulator.url(),
        }
    }

    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let m = request.metadata_mut();
        m.insert("accesstoken", self.token.parse().expect("token"));
        m.insert("instanceurl", self.instance.parse().expect("url"));
        m.insert("tenantid", self.org_id.parse().expect("org id"));
        request
    }

    /// Opens a subscription; more requests go through the returned sender.
    pub async fn subscribe(
        &mut self,
        topic: &str,
        preset: i32,
        replay_id: Vec<u8>,
        n: i32,
    ) -> Result<(mpsc::Sender<FetchRequest>, Streaming<FetchResponse>), Status> {
        let (tx, rx) = mpsc::channel(16);
        tx.send(FetchRequest {
            topic_name: topic.into(),
            replay_preset: preset,
            replay_id,
            num_requested: n,
            auth_refresh: String::new(),
        })
        .await
        .expect("queue");
        let stream = self
            .client
            .subscribe(self.request(requests(rx)))
            .await?
            .into_inner();
        Ok((tx, stream))
    }

    pub async fn managed(
        &mut self,
        developer_name: &str,
        n: i32,
    ) -> Result<
        (
            mpsc::Sender<ManagedFetchRequest>,
            Streaming<ManagedFetchResponse>,
        ),
        Status,
    > {
        let (tx, rx) = mpsc::channel(16);
        tx.send(ManagedFetchRequest {
            developer_name: developer_name.into(),
            num_requested: n,
            ..Default::default()
        })
        .await
        .expect("queue");
        let stream = self
            .client
            .managed_subscribe(self.request(requests(rx)))
            .await?
            .into_inner();
        Ok((tx, stream))
    }
}

/// More events wanted.
pub fn more(n: i32) -> FetchRequest {
    FetchRequest {
        num_requested: n,
        ..Default::default()
    }
}

/// The next response within `wait`: `None` when none came in time,
/// `Some(Ok(None))` when the stream ended.
pub async fn next<T>(
    stream: &mut Streaming<T>,
    wait: Duration,
) -> Option<Result<Option<T>, Status>> {
    tokio::time::timeout(wait, stream.message()).await.ok()
}

/// Collects events until `n` arrived (at most `wait` in all); keepalives are skipped.
pub async fn events(
    stream: &mut Streaming<FetchResponse>,
    n: usize,
    wait: Duration,
) -> Vec<FetchResponse> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    let mut count = 0;
    while count < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next(stream, left).await {
            Some(Ok(Some(response))) => {
                count += response.events.len();
                if !response.events.is_empty() {
                    out.push(response);
                }
            }
            _ => break,
        }
    }
    out
}

/// The CometD replay id in Pub/Sub replay id bytes.
pub fn number(bytes: &[u8]) -> i64 {
    sfstream_emulator::pubsub::replay_number(bytes).expect("an emulator replay id")
}
