//! Serving an org over HTTP, with a hand-rolled accept loop so that a stop
//! or a restart really drops every open connection (as a crashed or
//! restarted server would), and so a response can close its socket.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use crate::config::EmulatorConfig;
use crate::org::Org;

/// Marker a handler puts in a response's extensions to have the connection
/// closed instead of answered (a dropped connection, as clients see it).
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Builds the whole application for an org.
pub fn app(org: Arc<Org>) -> Router {
    Router::new()
        .merge(crate::auth::routes())
        .merge(crate::rest::routes(&org))
        .merge(crate::streaming::routes())
        .merge(crate::faults::routes(&org))
        .merge(crate::console::routes())
        .with_state(org)
}

/// An emulated org serving on a local port (HTTP) and another (Pub/Sub).
pub struct Emulator {
    org: Arc<Org>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
    pubsub_addr: SocketAddr,
    pubsub_tls: Option<tokio_rustls::TlsAcceptor>,
    pubsub_server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("pubsub_addr", &self.pubsub_addr)
            .field("pubsub_tls", &self.pubsub_tls.is_some())
            .field("serving", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts an org with `config` and serves it until stopped or dropped.
    pub async fn start(config: EmulatorConfig) -> io::Result<Self> {
        let pubsub_tls = config
            .pubsub_tls
            .as_ref()
            .map(crate::pubsub::serve::tls_acceptor)
            .transpose()?;
        let org = Arc::new(Org::new(config));
        let listener = TcpListener::bind(org.config.bind).await?;
        let addr = listener.local_addr()?;
        let pubsub_listener = TcpListener::bind(org.config.pubsub_bind).await?;
        let pubsub_addr = pubsub_listener.local_addr()?;
        org.set_base_url(format!("http://{addr}"));
        let server = tokio::spawn(serve(listener, app(org.clone())));
        let pubsub_server = tokio::spawn(crate::pubsub::serve::serve(
            pubsub_listener,
            org.clone(),
            pubsub_tls.clone(),
        ));
        Ok(Self {
            org,
            addr,
            server: Some(server),
            pubsub_addr,
            pubsub_tls,
            pubsub_server: Some(pubsub_server),
        })
    }

    /// The address the Pub/Sub API is served on.
    pub fn pubsub_addr(&self) -> SocketAddr {
        self.pubsub_addr
    }

    /// The Pub/Sub endpoint, `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn pubsub_url(&self) -> String {
        let scheme = if self.pubsub_tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.pubsub_addr)
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL (login URL and instance URL alike), e.g. `http://127.0.0.1:8710`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The org's state, for tests that inspect or change it directly.
    pub fn org(&self) -> &Arc<Org> {
        &self.org
    }

    /// Stops serving and drops every open connection. The org's data stays,
    /// so [`Emulator::resume`] brings the same org back on the same port.
    pub async fn stop(&mut self) {
        for server in [self.server.take(), self.pubsub_server.take()]
            .into_iter()
            .flatten()
        {
            server.abort();
            let _ = server.await;
        }
    }

    /// Serves again after [`Emulator::stop`], on the same port, with every
    /// CometD client forgotten (as after a server restart).
    pub async fn resume(&mut self) -> io::Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        self.org.streaming.forget_clients();
        let listener = TcpListener::bind(self.addr).await?;
        let pubsub_listener = TcpListener::bind(self.pubsub_addr).await?;
        self.server = Some(tokio::spawn(serve(listener, app(self.org.clone()))));
        self.pubsub_server = Some(tokio::spawn(crate::pubsub::serve::serve(
            pubsub_listener,
            self.org.clone(),
            self.pubsub_tls.clone(),
        )));
        Ok(())
    }

    /// A server restart: stop, then serve again with volatile state lost.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        self.resume().await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for server in [self.server.take(), self.pubsub_server.take()]
            .into_iter()
            .flatten()
        {
            server.abort();
        }
    }
}

/// Accepts connections until aborted; aborting drops every connection.
async fn serve(listener: TcpListener, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let app = app.clone();
                        async move {
                            let mut request = request.map(Body::new);
                            trim_trailing_slash(&mut request);
                            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                            let Ok(response): Result<Response<Body>, _> = app.oneshot(request).await;
                            if response.extensions().get::<DropConnection>().is_some() {
                                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "fault: connection dropped"));
                            }
                            Ok(response)
                        }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// `sobjects/Contact/` and `sobjects/Contact` are the same resource to
/// Salesforce; clients use both.
fn trim_trailing_slash(request: &mut Request<Body>) {
    let uri = request.uri();
    let path = uri.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let rebuilt = match uri.query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(new_uri) = rebuilt.parse() {
            *request.uri_mut() = new_uri;
        }
    }
}
