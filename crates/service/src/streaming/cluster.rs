//! Cluster mode (`CLUSTER:`): the replicas of a service share its
//! channels. Each channel is streamed by one replica, the holder of its
//! lease in Redis ([`Elector`]); the others stand by and take over when it
//! stops (at once) or dies (within the lease's TTL). Markers live in a
//! shared Redis store whose writes are fenced: a replica writes a
//! channel's marker only while Redis says it holds the channel's lease, so
//! a replica paused past its lease can neither stream on (it steps down
//! when it wakes) nor move a marker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sfstream_cluster::{Election, Elector, ElectorConfig, ElectorHandle, LeaseKey, Role};
use sfstream_salesforce::Transport;
use sfstream_salesforce::replay::{Fence, RedisStore, ReplayStore, open_redis_store};
use sfstream_salesforce::rest::SalesforceClient;

use super::dispatch::Dispatcher;
use super::work::Work;
use super::{Connected, Session, Subscriptions, connect, sources};
use crate::config::{ClusterConfig, ReplayStoreConfig, SalesforceConfig};
use crate::error::ServiceError;
use crate::metrics::{ChannelState, ClusterRole, ClusterStatus, ServiceMetrics};
use crate::runtime::{RunningEntrypoints, ServiceContext};
use crate::shutdown::ShutdownSignal;

/// How long a stopping replica waits to hand its leases over.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Subscribing a channel just led: attempts, and the wait between them.
const SUBSCRIBE_ATTEMPTS: u32 = 5;
const SUBSCRIBE_RETRY: Duration = Duration::from_millis(500);

/// What the service resolved before streaming.
pub(super) struct Parts {
    pub(super) subscriptions: Subscriptions,
    pub(super) transports: HashMap<String, Transport>,
    pub(super) store: Option<Arc<dyn ReplayStore>>,
    pub(super) gap_handlers: Vec<super::GapHandler>,
    pub(super) section: SalesforceConfig,
    pub(super) client: SalesforceClient,
    pub(super) cluster: ClusterConfig,
}

/// Channel -> the value its lease holds while this replica leads it
/// (empty: not leading, every write refused).
type Fences = Arc<Mutex<HashMap<String, String>>>;

pub(super) async fn start(
    parts: Parts,
    context: ServiceContext,
    shutdown: ShutdownSignal,
) -> Result<RunningEntrypoints, ServiceError> {
    let Parts {
        subscriptions,
        transports,
        store,
        gap_handlers,
        section,
        client,
        cluster,
    } = parts;
    if store.is_some() {
        return Err(ServiceError::Cluster(
            "a store given with Service::replay_store is not shared by the replicas; leave it out (the markers go to REPLAY_STORE when it is Redis, else to CLUSTER.REDIS_URI)".into(),
        ));
    }
    let group = context.name().to_string();
    let leases = lease_connection(&cluster).await?;
    let fences: Fences = Arc::default();
    let store = shared_store(&section, &cluster, fence(&group, &fences)).await?;

    let metrics = context.metrics().clone();
    let session = Arc::new(Session::default());
    let Connected {
        clients,
        cometd_messages,
        pubsub_messages,
    } = connect(
        &client,
        &section,
        store.clone(),
        &transports,
        &metrics,
        &session,
    )
    .await?;
    super::watch_marker_ages(&subscriptions, &transports, store, &metrics, &shutdown);
    metrics.set_connected(true);
    session
        .started
        .store(true, std::sync::atomic::Ordering::Relaxed);

    let (elector, elections) = Elector::start(
        leases,
        ElectorConfig {
            group,
            replica: cluster.replica_id.clone(),
            ttl: cluster.lease_ttl,
            channels: subscriptions.order.clone(),
        },
    );
    tracing::info!(replica = %cluster.replica_id, channels = subscriptions.order.len(), "cluster mode: sharing the channels");
    let subscriber = Connected {
        clients: clients.clone(),
        cometd_messages: None,
        pubsub_messages: None,
    };
    let leadership = tokio::spawn(follow(
        elections,
        subscriber,
        transports,
        fences,
        metrics.clone(),
    ));
    let status = tokio::spawn(report(elector.clone(), cluster.replica_id, metrics));

    let config = context.config().clone();
    // With work queues every replica handles what the leaders publish.
    let work = match cluster.work_queues {
        Some(settings) => match Work::start(&subscriptions, settings, &context, &config).await {
            Ok(work) => Some(work),
            Err(error) => {
                elector.stop(RELEASE_TIMEOUT).await;
                leadership.abort();
                status.abort();
                clients.close().await;
                return Err(error);
            }
        },
        None => None,
    };
    let mut dispatcher = Dispatcher::new(
        subscriptions,
        section.max_in_flight,
        context,
        config.clone(),
    )
    .gap_handlers(gap_handlers);
    if let Some(work) = &work {
        dispatcher = dispatcher.work(work.out.clone());
    }
    let messages = sources::merge(cometd_messages, pubsub_messages);
    Ok(Box::pin(async move {
        // Events are handled (or, with work queues, confirmed by RabbitMQ)
        // and markers committed while the leases still hold; then they are
        // handed over.
        let result = dispatcher.run(clients, messages, shutdown).await;
        elector.stop(RELEASE_TIMEOUT).await;
        leadership.abort();
        status.abort();
        let failed = match work {
            Some(work) => work.stop(config.shutdown_timeout).await,
            None => None,
        };
        match (result, failed) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(error)) => Err(error),
            (Ok(()), None) => Ok(()),
        }
    }))
}

/// The Redis connection of the leases.
async fn lease_connection(
    cluster: &ClusterConfig,
) -> Result<redis::aio::ConnectionManager, ServiceError> {
    let shown = sfstream_salesforce::replay::redact_url(&cluster.redis_uri);
    let client = redis::Client::open(cluster.redis_uri.as_str())
        .map_err(|e| ServiceError::Cluster(format!("CLUSTER.REDIS_URI {shown}: {e}")))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3);
    redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| ServiceError::Cluster(format!("cannot reach {shown}: {e}")))
}

/// The fence of the markers: a channel's lease key and the value it must
/// hold.
fn fence(group: &str, fences: &Fences) -> Fence {
    let (group, fences) = (group.to_string(), fences.clone());
    Arc::new(move |channel: &str| {
        (
            LeaseKey::new(group.clone(), channel).lease_key(),
            fences.lock().get(channel).cloned().unwrap_or_default(),
        )
    })
}

/// The replicas' shared marker store: `REPLAY_STORE` when it is Redis,
/// else the cluster's Redis; fenced.
async fn shared_store(
    section: &SalesforceConfig,
    cluster: &ClusterConfig,
    fence: Fence,
) -> Result<Arc<dyn ReplayStore>, ServiceError> {
    let store: RedisStore = match &section.replay_store {
        ReplayStoreConfig::Redis { url, ttl } => RedisStore::connect(url, *ttl).await,
        ReplayStoreConfig::Uri(uri) if uri.trim_start().starts_with("redis") => {
            open_redis_store(uri).await
        }
        ReplayStoreConfig::Uri(uri) => {
            return Err(ServiceError::Cluster(format!(
                "REPLAY_STORE {} belongs to one replica; the replicas must share their markers: use a redis:// store, or leave REPLAY_STORE out to keep them in CLUSTER.REDIS_URI",
                sfstream_salesforce::replay::redact_url(uri)
            )));
        }
        ReplayStoreConfig::Memory => {
            tracing::info!("cluster mode: replay markers kept in CLUSTER.REDIS_URI");
            open_redis_store(&cluster.redis_uri).await
        }
    }
    .map_err(ServiceError::ReplayStore)?;
    Ok(Arc::new(store.with_fence(fence)))
}

/// Streams what the elector says this replica leads, and stops streaming
/// what it steps down from.
async fn follow(
    mut elections: tokio::sync::mpsc::Receiver<Election>,
    subscriber: Connected,
    transports: HashMap<String, Transport>,
    fences: Fences,
    metrics: Arc<ServiceMetrics>,
) {
    while let Some(election) = elections.recv().await {
        match election {
            Election::Lead { channel, fence, .. } => {
                fences.lock().insert(channel.clone(), fence);
                change(&metrics, &channel, "lead");
                let transport = transports.get(&channel).copied().unwrap_or_default();
                subscribe(&subscriber, &channel, transport, &metrics).await;
            }
            Election::StepDown { channel, reason } => {
                // Writes first: from here on this replica's markers of the
                // channel are refused, whatever is still in flight.
                fences.lock().insert(channel.clone(), String::new());
                change(&metrics, &channel, "step_down");
                tracing::info!(%channel, ?reason, "cluster: no longer streaming this channel");
                let transport = transports.get(&channel).copied().unwrap_or_default();
                subscriber.unsubscribe(&channel, transport);
                metrics.remove_channel_state(&channel);
            }
        }
    }
}

async fn subscribe(
    subscriber: &Connected,
    channel: &str,
    transport: Transport,
    metrics: &ServiceMetrics,
) {
    for attempt in 1..=SUBSCRIBE_ATTEMPTS {
        match subscriber.subscribe(channel, transport).await {
            Ok(()) => {
                metrics.set_channel_state(channel, ChannelState::Subscribed);
                return;
            }
            Err(error) => {
                metrics.set_channel_state(
                    channel,
                    ChannelState::Retrying {
                        error: error.to_string(),
                        attempt,
                    },
                );
                tracing::warn!(%channel, %error, attempt, "cluster: subscribing a led channel failed");
                tokio::time::sleep(SUBSCRIBE_RETRY * attempt).await;
            }
        }
    }
    metrics.set_channel_state(
        channel,
        ChannelState::Failed {
            error: format!("not subscribed after {SUBSCRIBE_ATTEMPTS} attempts"),
        },
    );
}

fn change(metrics: &ServiceMetrics, channel: &str, change: &str) {
    metrics
        .counter(
            "sfstream_lease_changes_total",
            &[
                ("channel", channel.to_string()),
                ("change", change.to_string()),
            ],
        )
        .increment(1);
}

/// Keeps `/health`'s cluster view current (holders change without an
/// election here).
async fn report(elector: ElectorHandle, replica: String, metrics: Arc<ServiceMetrics>) {
    let mut tick = tokio::time::interval(sfstream_cluster::elector::TICK * 2);
    loop {
        tick.tick().await;
        let channels = elector
            .roles()
            .into_iter()
            .map(|(channel, role)| {
                let role = match role {
                    Role::Leading { .. } => ClusterRole::Leading,
                    Role::Standby { holder } => ClusterRole::Standby { holder },
                };
                (channel, role)
            })
            .collect();
        metrics.set_cluster(ClusterStatus {
            replica: replica.clone(),
            channels,
        });
    }
}
