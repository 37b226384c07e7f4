//! [`Transport`]: which Salesforce API carries a channel's events, and
//! which channels each can carry.

use std::fmt;
use std::str::FromStr;

/// The API a channel is streamed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// The Streaming API (Bayeux/CometD): every kind of channel.
    #[default]
    CometD,
    /// The Pub/Sub API (gRPC): Change Data Capture (`/data/…`) and platform
    /// events (`/event/…`) only.
    PubSub,
}

impl Transport {
    /// Whether this transport can carry `channel`.
    pub fn carries(self, channel: &str) -> bool {
        match self {
            Transport::CometD => true,
            Transport::PubSub => channel.starts_with("/data/") || channel.starts_with("/event/"),
        }
    }

    /// The transport `channel` goes over when `preferred` is asked for:
    /// the preferred one when it can carry it, else CometD (PushTopics and
    /// generic channels exist only there).
    pub fn for_channel(preferred: Transport, channel: &str) -> Transport {
        if preferred.carries(channel) {
            preferred
        } else {
            Transport::CometD
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::CometD => "cometd",
            Transport::PubSub => "pubsub",
        })
    }
}

/// Text that names no transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a transport; use cometd or pubsub")]
pub struct ParseTransportError(pub String);

impl FromStr for Transport {
    type Err = ParseTransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', '/'], "")
            .as_str()
        {
            "cometd" | "streaming" | "bayeux" => Ok(Transport::CometD),
            "pubsub" | "grpc" => Ok(Transport::PubSub),
            _ => Err(ParseTransportError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_channels() {
        assert_eq!("pubsub".parse(), Ok(Transport::PubSub));
        assert_eq!("Pub/Sub".parse(), Ok(Transport::PubSub));
        assert_eq!("CometD".parse(), Ok(Transport::CometD));
        assert!("kafka".parse::<Transport>().is_err());
        assert!(Transport::PubSub.carries("/data/AccountChangeEvent"));
        assert!(Transport::PubSub.carries("/event/Order__e"));
        assert!(!Transport::PubSub.carries("/topic/Accounts"));
        assert_eq!(
            Transport::for_channel(Transport::PubSub, "/topic/Accounts"),
            Transport::CometD
        );
        assert_eq!(Transport::PubSub.to_string(), "pubsub");
    }
}
