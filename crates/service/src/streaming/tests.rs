//! Unit tests of the streaming entrypoints: channel states, filters, routing.

use std::time::Duration;

use sfstream_bayeux::ErrorField;

use super::*;
use crate::entrypoints::{handle_notification, subscribe};
use crate::handler::boxed;

async fn nothing() {}

fn route(entrypoint: impl Into<Entrypoint>) -> Route {
    Route {
        entrypoint: entrypoint.into(),
        handler: boxed(nothing),
        handler_name: "nothing".into(),
        method_name: "nothing".into(),
    }
}

fn feed(metrics: &ServiceMetrics, event: ClientEvent) {
    on_stream_event(
        &StreamEvent::Connection(event),
        metrics,
        &Session::default(),
    );
}

#[test]
fn subscription_events_drive_the_channel_states_and_health() {
    let metrics = ServiceMetrics::new("states");
    metrics.set_connected(true);
    let (a, b) = ("/topic/A", "/topic/B?Name='x'");
    feed(&metrics, ClientEvent::Subscribed { channel: a.into() });
    feed(&metrics, ClientEvent::Subscribed { channel: b.into() });
    assert!(metrics.is_healthy());

    feed(
        &metrics,
        ClientEvent::SubscriptionRetrying {
            channel: b.into(),
            error: "403::Unknown client".into(),
            attempt: 2,
            retry_in: Duration::from_secs(1),
        },
    );
    assert_eq!(
        metrics.channel_states().get(b),
        Some(&ChannelState::Retrying {
            error: "403::Unknown client".into(),
            attempt: 2
        })
    );
    // Retrying is reported, not unhealthy.
    assert!(metrics.is_healthy());

    feed(
        &metrics,
        ClientEvent::SubscriptionFailed {
            channel: b.into(),
            error: ErrorField::parse(
                "400::The channel you requested to subscribe to does not exist {/topic/B}",
            ),
        },
    );
    assert!(matches!(
        metrics.channel_states().get(b),
        Some(ChannelState::Failed { error }) if error.contains("does not exist")
    ));
    assert_eq!(
        metrics.channel_states().get(a),
        Some(&ChannelState::Subscribed)
    );
    assert!(!metrics.is_healthy());
    let text = metrics.render();
    for (channel, state, value) in [
        (b, "failed", 1),
        (b, "retrying", 0),
        (b, "subscribed", 0),
        (a, "subscribed", 1),
        (a, "failed", 0),
    ] {
        let line = format!(
            r#"sfstream_channel_state{{service="states",channel="{channel}",state="{state}"}} {value}"#
        );
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    // A new session subscribes it again: healthy again.
    feed(&metrics, ClientEvent::Subscribed { channel: b.into() });
    assert!(metrics.is_healthy());
    // Disconnected: unhealthy whatever the channels.
    feed(&metrics, ClientEvent::ServerDisconnected);
    assert!(!metrics.is_healthy());
}

#[test]
fn one_filter_per_topic() {
    let same = [
        route(subscribe("/topic/X?Name='a'")),
        route(subscribe("/topic/X?Name='a'")),
        route(subscribe("/topic/Y")),
        route(handle_notification("Y")),
    ];
    assert!(check_filters(&same).is_ok());
    let different = [
        route(subscribe("/topic/Z")),
        route(subscribe("/topic/X?Name='a'")),
        route(subscribe("/topic/X?Name='b'")),
    ];
    let Err(ServiceError::ConflictingFilters {
        topic,
        first_subscription,
        second_subscription,
        ..
    }) = check_filters(&different)
    else {
        panic!("refused")
    };
    assert_eq!(topic, "/topic/X");
    assert_eq!(first_subscription, "/topic/X?Name='a'");
    assert_eq!(second_subscription, "/topic/X?Name='b'");
    let unfiltered_and_filtered = [
        route(handle_notification("X")),
        route(subscribe("/topic/X?Name='a'")),
    ];
    assert!(check_filters(&unfiltered_and_filtered).is_err());
}

#[test]
fn events_are_routed_by_their_subscription() {
    let bound = |channel: &str| BoundHandler {
        binding: Arc::new(Binding::new(subscribe(channel).into(), channel.into())),
        handler: boxed(nothing),
        name: "nothing".into(),
        method_name: "nothing".into(),
    };
    let subscriptions = Subscriptions::new(vec![
        bound("/topic/X?Name='a'"),
        bound("/topic/X?Name='a'"),
        bound("/topic/Y"),
    ]);
    assert_eq!(subscriptions.order, ["/topic/X?Name='a'", "/topic/Y"]);
    // The client names the subscription.
    assert_eq!(
        subscriptions.of("/topic/X?Name='a'", "/topic/X"),
        "/topic/X?Name='a'"
    );
    assert_eq!(subscriptions.handlers("/topic/X?Name='a'").len(), 2);
    // A client that gives only the channel: the topic's one subscription.
    assert_eq!(
        subscriptions.of("/topic/X", "/topic/X"),
        "/topic/X?Name='a'"
    );
    assert_eq!(subscriptions.of("/topic/Y", "/topic/Y"), "/topic/Y");
    // Not ours: kept as named (no handler).
    assert_eq!(subscriptions.of("/topic/Q", "/topic/Q"), "/topic/Q");
    assert!(subscriptions.handlers("/topic/Q").is_empty());
}
