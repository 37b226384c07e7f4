//! Nameko's names and declarations of exchanges, queues and bindings.
//!
//! These must match what Python Nameko declares, argument for argument:
//! RabbitMQ refuses a redeclaration with different properties
//! (`PRECONDITION_FAILED`).

pub use crate::amqp::{ExchangeDeclaration, QueueDeclaration};

/// Nameko's default RPC exchange (`rpc_exchange` config key).
pub const DEFAULT_RPC_EXCHANGE: &str = "nameko-rpc";

/// Time-to-live of an unused RPC reply queue (`x-expires`), as Nameko's
/// `RPC_REPLY_QUEUE_TTL`: 5 minutes.
pub const RPC_REPLY_QUEUE_TTL_MS: i64 = 300_000;

/// `rpc-<service>`: the queue of a service's RPC requests.
///
/// ```
/// assert_eq!(sfstream_nameko::topology::rpc_queue_name("contacts"), "rpc-contacts");
/// ```
pub fn rpc_queue_name(service: &str) -> String {
    format!("rpc-{service}")
}

/// `rpc.reply-<service>-<uuid>`: a caller's reply queue (standalone callers
/// use the service name `standalone_rpc_proxy`).
pub fn rpc_reply_queue_name(service: &str, id: &str) -> String {
    format!("rpc.reply-{service}-{id}")
}

/// `<service>.events`: the exchange a service's events are dispatched to.
pub fn event_exchange_name(service: &str) -> String {
    format!("{service}.events")
}

/// How an event handler shares events with other handlers (Nameko's
/// `handler_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandlerType {
    /// One instance of each (service, method) pool gets each event.
    #[default]
    ServicePool,
    /// One handler of all services gets each event.
    Singleton,
    /// Every instance gets each event.
    Broadcast,
}

/// The queue name Nameko uses for an event handler.
///
/// ```
/// use sfstream_nameko::topology::{HandlerType, event_queue_name};
///
/// assert_eq!(
///     event_queue_name("src", "made", HandlerType::ServicePool, "svc", "on_made", None),
///     "evt-src-made--svc.on_made"
/// );
/// assert_eq!(
///     event_queue_name("src", "made", HandlerType::Singleton, "svc", "on_made", None),
///     "evt-src-made"
/// );
/// assert_eq!(
///     event_queue_name("src", "made", HandlerType::Broadcast, "svc", "on_made", Some("abc")),
///     "evt-src-made--svc.on_made-abc"
/// );
/// ```
pub fn event_queue_name(
    source_service: &str,
    event_type: &str,
    handler_type: HandlerType,
    service: &str,
    method: &str,
    broadcast_identifier: Option<&str>,
) -> String {
    match handler_type {
        HandlerType::ServicePool => {
            format!("evt-{source_service}-{event_type}--{service}.{method}")
        }
        HandlerType::Singleton => format!("evt-{source_service}-{event_type}"),
        HandlerType::Broadcast => format!(
            "evt-{source_service}-{event_type}--{service}.{method}-{}",
            broadcast_identifier.unwrap_or("None")
        ),
    }
}

impl QueueDeclaration {
    /// Nameko's RPC service queue: `rpc-<service>`, durable, bound to the RPC
    /// exchange with `<service>.*`.
    pub fn rpc_service(service: &str, rpc_exchange: &str) -> Self {
        Self {
            name: rpc_queue_name(service),
            durable: true,
            exclusive: false,
            auto_delete: false,
            expires_ms: None,
            arguments: Default::default(),
            exchange: ExchangeDeclaration::topic(rpc_exchange),
            routing_key: format!("{service}.*"),
        }
    }

    /// Nameko's RPC reply queue: `rpc.reply-<service>-<uuid>`, declared by
    /// kombu with its defaults (durable, not exclusive, not auto-delete) and
    /// `x-expires` = 300000, bound to the RPC exchange with `<uuid>`.
    pub fn rpc_reply(service: &str, id: &str, rpc_exchange: &str) -> Self {
        Self {
            name: rpc_reply_queue_name(service, id),
            durable: true,
            exclusive: false,
            auto_delete: false,
            expires_ms: Some(RPC_REPLY_QUEUE_TTL_MS),
            arguments: Default::default(),
            exchange: ExchangeDeclaration::topic(rpc_exchange),
            routing_key: id.to_owned(),
        }
    }

    /// Nameko's event handler queue: durable; `auto_delete` unless
    /// `reliable_delivery`; `exclusive` for broadcast handlers unless
    /// `reliable_delivery`; bound to `<source>.events` with the event type.
    #[allow(clippy::too_many_arguments)]
    pub fn event_handler(
        source_service: &str,
        event_type: &str,
        handler_type: HandlerType,
        service: &str,
        method: &str,
        broadcast_identifier: Option<&str>,
        reliable_delivery: bool,
    ) -> Self {
        Self {
            name: event_queue_name(
                source_service,
                event_type,
                handler_type,
                service,
                method,
                broadcast_identifier,
            ),
            durable: true,
            exclusive: handler_type == HandlerType::Broadcast && !reliable_delivery,
            auto_delete: !reliable_delivery,
            expires_ms: None,
            arguments: Default::default(),
            exchange: ExchangeDeclaration::topic(event_exchange_name(source_service)),
            routing_key: event_type.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_match_nameko() {
        let q = QueueDeclaration::rpc_service("svc", DEFAULT_RPC_EXCHANGE);
        assert_eq!(
            (q.name.as_str(), q.routing_key.as_str()),
            ("rpc-svc", "svc.*")
        );
        assert!(q.durable && !q.exclusive && !q.auto_delete && q.expires_ms.is_none());
        let r = QueueDeclaration::rpc_reply("standalone_rpc_proxy", "u-1", DEFAULT_RPC_EXCHANGE);
        assert_eq!(r.name, "rpc.reply-standalone_rpc_proxy-u-1");
        assert_eq!(r.routing_key, "u-1");
        assert_eq!(r.expires_ms, Some(300_000));
        let b = QueueDeclaration::event_handler(
            "src",
            "e",
            HandlerType::Broadcast,
            "s",
            "m",
            Some("id"),
            false,
        );
        assert!(b.exclusive && b.auto_delete && b.durable);
        assert_eq!(b.exchange.name, "src.events");
        let p = QueueDeclaration::event_handler(
            "src",
            "e",
            HandlerType::ServicePool,
            "s",
            "m",
            None,
            true,
        );
        assert!(!p.exclusive && !p.auto_delete && p.durable);
        assert_eq!(p.name, "evt-src-e--s.m");
        let u = QueueDeclaration::event_handler(
            "src",
            "e",
            HandlerType::ServicePool,
            "s",
            "m",
            None,
            false,
        );
        assert!(!u.exclusive && u.auto_delete);
    }
}
