//! Graceful shutdown: a trigger shared by the runtime, its entrypoints and
//! the caller, and the operating system's termination signals.

use std::sync::Arc;

use tokio::sync::watch;

/// Triggers a service's shutdown. Cheap to clone; triggering twice is
/// harmless.
///
/// ```
/// use sfstream_service::shutdown::Shutdown;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let shutdown = Shutdown::new();
/// let signal = shutdown.signal();
/// let waiter = tokio::spawn(async move { signal.wait().await });
/// shutdown.trigger();
/// waiter.await.expect("woken");
/// assert!(shutdown.is_triggered());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A trigger not yet pulled.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Asks everything holding a [`ShutdownSignal`] of this trigger to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A signal that resolves once this is triggered.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.tx.subscribe(),
        }
    }
}

/// Resolves once its [`Shutdown`] is triggered. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl ShutdownSignal {
    /// Waits for the shutdown (at once if it was already triggered).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // The sender lives as long as any `Shutdown` clone; if all are
        // gone, nobody can trigger it any more: treat that as a shutdown.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Whether the shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C; on non-Unix systems only Ctrl-C)
/// and returns its name.
///
/// # Errors
///
/// When the signal handlers cannot be installed.
pub async fn termination_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}
