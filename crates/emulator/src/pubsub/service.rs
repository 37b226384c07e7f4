//! The RPCs of `eventbus.v1.PubSub` over the org.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{Stream, StreamExt};
use sfstream_pubsub::proto::pub_sub_server::PubSub;
use sfstream_pubsub::proto::{
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse, PublishRequest,
    PublishResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use tokio::sync::mpsc;
use tonic::{Code, Request, Response, Status, Streaming};

use super::auth::{self, Caller};
use super::managed::State;
use super::schema::{self, EventKind};
use super::subscribe::{self, Incoming, Outgoing, Subscription};
use super::{OpenGuard, publish};
use crate::org::Org;

/// A boxed stream of responses.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The Pub/Sub service of an org.
#[derive(Debug, Clone)]
pub struct PubSubService {
    org: Arc<Org>,
}

impl PubSubService {
    /// The service of `org`.
    pub fn new(org: Arc<Org>) -> Self {
        Self { org }
    }

    /// Authenticates a call and applies the `busy` fault to streams.
    fn admit(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        stream: bool,
    ) -> Result<Caller, Status> {
        let caller = auth::authenticate(&self.org, metadata)?;
        if stream && self.org.faults.take_pubsub_busy() {
            return Err(auth::unavailable(&caller.rpc_id));
        }
        Ok(caller)
    }

    /// Waits (bounded) for a stream's first request.
    async fn first<T>(&self, stream: &mut Streaming<T>, caller: &Caller) -> Result<T, Status> {
        match tokio::time::timeout(self.org.pubsub.idle_timeout, stream.message()).await {
            Ok(Ok(Some(first))) => Ok(first),
            Ok(Err(status)) => Err(status),
            Ok(Ok(None)) | Err(_) => Err(auth::invalid(
                "The stream ended before its first request.",
                &caller.rpc_id,
            )),
        }
    }
}

fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<Result<T, Status>>) -> ResponseStream<T> {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

fn fetch_response(out: Outgoing, rpc_id: &str) -> FetchResponse {
    match out {
        Outgoing::Batch {
            events,
            latest_replay_id,
            pending,
        } => FetchResponse {
            events,
            latest_replay_id,
            rpc_id: rpc_id.to_string(),
            pending_num_requested: pending,
        },
        Outgoing::Committed { pending, .. } => FetchResponse {
            rpc_id: rpc_id.to_string(),
            pending_num_requested: pending,
            ..FetchResponse::default()
        },
    }
}

fn managed_response(out: Outgoing, rpc_id: &str) -> ManagedFetchResponse {
    match out {
        Outgoing::Batch {
            events,
            latest_replay_id,
            pending,
        } => ManagedFetchResponse {
            events,
            latest_replay_id,
            rpc_id: rpc_id.to_string(),
            pending_num_requested: pending,
            commit_response: None,
        },
        Outgoing::Committed { response, pending } => ManagedFetchResponse {
            rpc_id: rpc_id.to_string(),
            pending_num_requested: pending,
            commit_response: Some(response),
            ..ManagedFetchResponse::default()
        },
    }
}

#[tonic::async_trait]
impl PubSub for PubSubService {
    type SubscribeStream = ResponseStream<FetchResponse>;
    type PublishStreamStream = ResponseStream<PublishResponse>;
    type ManagedSubscribeStream = ResponseStream<ManagedFetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = self.admit(request.metadata(), true)?;
        self.org
            .pubsub
            .stats
            .subscribes
            .fetch_add(1, Ordering::Relaxed);
        let mut inbound = request.into_inner();
        let first = self.first(&mut inbound, &caller).await?;
        let topic = first.topic_name.clone();
        if !schema::topic_exists(&self.org.store.lock(), &topic) {
            return Err(auth::topic_not_found(&topic, &caller.rpc_id));
        }
        if first.num_requested < 0 {
            return Err(auth::invalid(
                "num_requested must not be negative",
                &caller.rpc_id,
            ));
        }
        let cursor =
            subscribe::start_cursor(&self.org, &topic, first.replay_preset, &first.replay_id)
                .ok_or_else(|| auth::replay_id_corrupted(&caller.rpc_id))?;
        let (tx, rx) = mpsc::channel(subscribe::QUEUE);
        let subscription = Subscription {
            org: self.org.clone(),
            requested: subscribe::add_requested(0, first.num_requested),
            caller,
            topic,
            cursor,
            committer: None,
        };
        let incoming = inbound.map(|r| {
            r.map(|f| Incoming::Request {
                num_requested: f.num_requested,
                auth_refresh: f.auth_refresh,
            })
        });
        tokio::spawn(subscription.run(incoming, tx, fetch_response));
        Ok(Response::new(receiver_stream(rx)))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        let caller = self.admit(request.metadata(), false)?;
        let id = request.into_inner().schema_id;
        let pubsub = &self.org.pubsub;
        if pubsub.schema_by_id(&id).is_none() {
            let current = schema::all(&self.org.store.lock());
            for event_schema in current.into_iter().filter(|s| s.id == id) {
                let _ = pubsub.register(event_schema);
            }
        }
        let found = pubsub.schema_by_id(&id).ok_or_else(|| {
            auth::status(
                Code::NotFound,
                &format!("Schema {id} not found."),
                auth::TOPIC_NOT_FOUND,
                &caller.rpc_id,
            )
        })?;
        Ok(Response::new(SchemaInfo {
            schema_json: found.schema.json.clone(),
            schema_id: found.schema.id.clone(),
            rpc_id: caller.rpc_id,
        }))
    }

    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        let caller = self.admit(request.metadata(), false)?;
        let topic = request.into_inner().topic_name;
        let (event_schema, org_id) = {
            let store = self.org.store.lock();
            let event_schema = if topic == "/data/ChangeEvents" {
                // Every entity has its own schema; name the first one's.
                store
                    .schemas()
                    .into_iter()
                    .find(|s| s.cdc_enabled)
                    .map(schema::change_event)
            } else {
                schema::sobject_of_topic(&store, &topic).and_then(schema::of_sobject)
            };
            (event_schema, store.org_id.clone())
        };
        let event_schema =
            event_schema.ok_or_else(|| auth::topic_not_found(&topic, &caller.rpc_id))?;
        let can_publish = event_schema.kind == EventKind::PlatformEvent;
        let registered = self
            .org
            .pubsub
            .register(event_schema)
            .map_err(|e| Status::internal(format!("schema: {e}")))?;
        Ok(Response::new(TopicInfo {
            topic_name: topic,
            tenant_guid: org_id,
            can_publish,
            can_subscribe: true,
            schema_id: registered.schema.id.clone(),
            rpc_id: caller.rpc_id,
        }))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let caller = self.admit(request.metadata(), false)?;
        publish::publish(&self.org, &caller, request.into_inner()).map(Response::new)
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let mut caller = self.admit(request.metadata(), true)?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(subscribe::QUEUE);
        let org = self.org.clone();
        tokio::spawn(async move {
            let _open = OpenGuard::new(org.pubsub.clone(), |s| &s.streams);
            let mut drops = org.pubsub.watch_drops();
            loop {
                let next = tokio::select! {
                    _ = drops.changed() => return,
                    next = inbound.message() => next,
                };
                let Ok(Some(request)) = next else { return };
                let result = if caller.still_valid(&org, &request.auth_refresh) {
                    publish::publish(&org, &caller, request)
                } else {
                    Err(auth::unauthenticated(&caller.rpc_id))
                };
                let failed = result.is_err();
                if tx.send(result).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(receiver_stream(rx)))
    }

    async fn managed_subscribe(
        &self,
        request: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        let caller = self.admit(request.metadata(), true)?;
        self.org
            .pubsub
            .stats
            .subscribes
            .fetch_add(1, Ordering::Relaxed);
        let mut inbound = request.into_inner();
        let first = self.first(&mut inbound, &caller).await?;
        let managed = self
            .org
            .pubsub
            .managed
            .find(&first.subscription_id, &first.developer_name)
            .ok_or_else(|| {
                auth::status(
                    Code::NotFound,
                    "The managed subscription does not exist.",
                    auth::TOPIC_NOT_FOUND,
                    &caller.rpc_id,
                )
            })?;
        if managed.state == State::Stop {
            return Err(auth::status(
                Code::FailedPrecondition,
                "The managed subscription is stopped.",
                auth::INVALID_REQUEST,
                &caller.rpc_id,
            ));
        }
        let topic = managed.topic_name.clone();
        let org = &self.org;
        let cursor = match managed.committed {
            Some(committed) => subscribe::start_cursor(
                org,
                &topic,
                2,
                &super::replay_bytes(committed),
            )
            .or_else(|| {
                subscribe::start_cursor(org, &topic, managed.error_recovery_replay.preset(), &[])
            }),
            None => subscribe::start_cursor(org, &topic, managed.default_replay.preset(), &[]),
        }
        .ok_or_else(|| auth::replay_id_corrupted(&caller.rpc_id))?;
        let (tx, rx) = mpsc::channel(subscribe::QUEUE);
        let commit_org = self.org.clone();
        let (id, commit_topic) = (managed.id.clone(), topic.clone());
        let committer: subscribe::Committer = Box::new(move |request_id, replay_id| {
            let latest = commit_org
                .streaming
                .channel_state(&commit_topic)
                .map_or(0, |s| s.0);
            commit_org
                .pubsub
                .managed
                .commit(&id, request_id, replay_id, latest)
        });
        let subscription = Subscription {
            org: self.org.clone(),
            requested: subscribe::add_requested(0, first.num_requested),
            caller,
            topic,
            cursor,
            committer: Some(committer),
        };
        if let Some(commit) = first.commit_replay_id_request {
            // A commit in the first request: answer it like any other.
            let response = (subscription
                .committer
                .as_ref()
                .map(|c| c(&commit.commit_request_id, &commit.replay_id)))
            .map(|response| Outgoing::Committed {
                response,
                pending: subscription.requested,
            });
            if let Some(out) = response {
                let _ = tx
                    .send(Ok(managed_response(out, &subscription.caller.rpc_id)))
                    .await;
            }
        }
        let incoming = inbound.map(|r| {
            r.map(|m| match m.commit_replay_id_request {
                Some(commit) => Incoming::Commit {
                    request_id: commit.commit_request_id,
                    replay_id: commit.replay_id,
                },
                None => Incoming::Request {
                    num_requested: m.num_requested,
                    auth_refresh: m.auth_refresh,
                },
            })
        });
        tokio::spawn(subscription.run(incoming, tx, managed_response));
        Ok(Response::new(receiver_stream(rx)))
    }
}
