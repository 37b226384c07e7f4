//! A supervised AMQP connection: connects, detects loss, and reconnects with
//! exponential backoff. Consumers built on it redeclare their topology and
//! resume consuming after each reconnection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lapin::ConnectionProperties;
use tokio::sync::{Mutex, watch};

use sfstream_common::Backoff;

use crate::{AmqpUri, Error};

/// Delays between reconnection attempts: from 100 ms up to 5 s, jittered.
pub const RECONNECT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// Options of a [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Backoff between reconnection attempts.
    pub backoff: Backoff,
    /// Name shown in the RabbitMQ management UI.
    pub connection_name: String,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            backoff: RECONNECT_BACKOFF,
            connection_name: "sfstream-nameko".to_owned(),
        }
    }
}

struct Inner {
    uri: AmqpUri,
    options: ConnectionOptions,
    current: Mutex<Option<Arc<lapin::Connection>>>,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
    generation: AtomicU64,
}

/// A supervised connection to RabbitMQ, shared (cheaply cloned) by the RPC
/// servers, clients, event dispatchers and handlers of a process.
///
/// When the connection is lost, the next user to need it re-opens it,
/// retrying with [`Backoff`] until the broker is back (or the connection is
/// [closed](Self::close)); the consumers then redeclare their exchanges,
/// queues and bindings and consume again. Logs show the URI with its
/// password redacted.
///
/// ```no_run
/// # async fn demo() -> Result<(), sfstream_nameko::Error> {
/// let conn = sfstream_nameko::Connection::connect("pyamqp://guest:guest@127.0.0.1").await?;
/// println!("connected to {}", conn.uri()); // amqp://guest:***@127.0.0.1:5672/%2f
/// conn.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("uri", &self.inner.uri)
            .finish()
    }
}

impl Connection {
    /// Connects to `uri` (`amqp://`, `amqps://` or Nameko's `pyamqp://`).
    /// The first connection attempt must succeed; later losses are recovered.
    pub async fn connect(uri: &str) -> Result<Self, Error> {
        Self::connect_with(uri, ConnectionOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with options.
    pub async fn connect_with(uri: &str, options: ConnectionOptions) -> Result<Self, Error> {
        let uri = AmqpUri::parse(uri)?;
        let (closed_tx, _) = watch::channel(false);
        let conn = Self {
            inner: Arc::new(Inner {
                uri,
                options,
                current: Mutex::new(None),
                closed: AtomicBool::new(false),
                closed_tx,
                generation: AtomicU64::new(0),
            }),
        };
        let first = conn.open().await?;
        *conn.inner.current.lock().await = Some(first);
        Ok(conn)
    }

    /// The URI, with the password redacted.
    pub fn uri(&self) -> &AmqpUri {
        &self.inner.uri
    }

    /// How many times the connection has been (re)opened.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Closes the AMQP connection; consumers and publishers using it stop.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.closed_tx.send_replace(true);
        let current = self.inner.current.lock().await.take();
        if let Some(c) = current
            && c.status().connected()
        {
            let _ = c.close(200, "OK".into()).await;
        }
    }

    /// Becomes `true` when [`close`](Self::close) is called: lets a task
    /// waiting on the broker (a backoff, a reconnection) give up at once.
    pub fn closed_signal(&self) -> watch::Receiver<bool> {
        self.inner.closed_tx.subscribe()
    }

    /// The backoff between reconnection attempts, for users of the
    /// connection that retry after a loss.
    pub fn backoff(&self) -> Backoff {
        self.inner.options.backoff
    }

    async fn open(&self) -> Result<Arc<lapin::Connection>, Error> {
        let props = ConnectionProperties::default()
            .with_connection_name(self.inner.options.connection_name.clone().into());
        let c = lapin::Connection::connect_uri(self.inner.uri.lapin_uri(), props).await?;
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(uri = %self.inner.uri, generation, "AMQP connection open");
        Ok(Arc::new(c))
    }

    /// The live lapin connection, re-opening it (with backoff, until success
    /// or [`close`](Self::close)) if it was lost.
    pub(crate) async fn get(&self) -> Result<Arc<lapin::Connection>, Error> {
        let mut guard = self.inner.current.lock().await;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if let Some(c) = guard.as_ref()
            && c.status().connected()
        {
            return Ok(c.clone());
        }
        if guard.take().is_some() {
            tracing::warn!(uri = %self.inner.uri, "AMQP connection lost; reconnecting");
        }
        let mut closed = self.closed_signal();
        let mut attempt = 0u32;
        loop {
            match self.open().await {
                Ok(c) => {
                    *guard = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    let delay = self.backoff().delay(attempt);
                    tracing::warn!(uri = %self.inner.uri, error = %e, ?delay, "AMQP reconnection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = closed.wait_for(|c| *c) => return Err(Error::Closed),
                    }
                }
            }
        }
    }

    /// Opens a channel on the live connection, re-opening the connection
    /// first if it was lost (with backoff, until it succeeds or the
    /// connection is [closed](Self::close): [`Error::Closed`]). The caller
    /// owns the channel: it closes when its last clone is dropped.
    pub async fn channel(&self) -> Result<lapin::Channel, Error> {
        let c = self.get().await?;
        Ok(c.create_channel().await?)
    }
}
