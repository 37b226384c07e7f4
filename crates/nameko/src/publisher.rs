//! A confirming publisher on a supervised connection: one channel in
//! confirm mode, exchanges (re)declared on each new channel, retries across
//! reconnections within a time limit.

use std::collections::HashSet;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::Mutex;

use crate::topology::ExchangeDeclaration;
use crate::{Connection, Error};

/// Default time limit of one publish, including reconnections.
pub(crate) const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Outgoing<'a> {
    pub exchange: &'a ExchangeDeclaration,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub properties: BasicProperties,
    pub mandatory: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    Returned { reply_code: u16, reply_text: String },
}

struct PubChannel {
    channel: Channel,
    declared: HashSet<String>,
}

pub(crate) struct Publisher {
    conn: Connection,
    state: Mutex<Option<PubChannel>>,
    timeout: Duration,
}

impl Publisher {
    pub(crate) fn new(conn: Connection) -> Self {
        Self {
            conn,
            state: Mutex::new(None),
            timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }

    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Publishes with publisher confirms, retrying on channel or connection
    /// loss until the time limit.
    pub(crate) async fn publish(&self, msg: Outgoing<'_>) -> Result<Outcome, Error> {
        let work = async {
            let mut attempt = 0u32;
            loop {
                match self.try_publish(&msg).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(Error::Nacked) => return Err(Error::Nacked),
                    Err(Error::Closed) => return Err(Error::Closed),
                    Err(e) => {
                        *self.state.lock().await = None;
                        attempt = attempt.saturating_add(1);
                        let delay = self.conn.backoff().delay(attempt);
                        tracing::warn!(error = %e, exchange = %msg.exchange.name, ?delay, "publish failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| Error::PublishTimeout)?
    }

    async fn channel_for(&self, exchange: &ExchangeDeclaration) -> Result<Channel, Error> {
        let mut state = self.state.lock().await;
        let usable = state
            .as_ref()
            .is_some_and(|s| s.channel.status().connected());
        if !usable {
            let channel = self.conn.channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            *state = Some(PubChannel {
                channel,
                declared: HashSet::new(),
            });
        }
        let Some(pc) = state.as_mut() else {
            return Err(Error::Closed);
        };
        if !pc.declared.contains(&exchange.name) {
            exchange.declare(&pc.channel).await?;
            pc.declared.insert(exchange.name.clone());
        }
        Ok(pc.channel.clone())
    }

    async fn try_publish(&self, msg: &Outgoing<'_>) -> Result<Outcome, Error> {
        let channel = self.channel_for(msg.exchange).await?;
        let confirm = channel
            .basic_publish(
                msg.exchange.name.as_str().into(),
                msg.routing_key.into(),
                BasicPublishOptions {
                    mandatory: msg.mandatory,
                    immediate: false,
                },
                msg.body,
                msg.properties.clone(),
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(Some(returned)) => Ok(Outcome::Returned {
                reply_code: returned.reply_code,
                reply_text: returned.reply_text.as_str().to_owned(),
            }),
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(Outcome::Delivered),
            Confirmation::Nack(_) => Err(Error::Nacked),
        }
    }

    pub(crate) async fn close(&self) {
        if let Some(pc) = self.state.lock().await.take()
            && pc.channel.status().connected()
        {
            let _ = pc.channel.close(200, "OK".into()).await;
        }
    }
}

/// JSON message properties as kombu sets them: `application/json`, `utf-8`,
/// persistent (`delivery_mode` 2), priority 0.
pub(crate) fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
}
