//! Serving Pub/Sub: HTTP/2 (cleartext or TLS) with a hand-rolled accept
//! loop, so that stopping the server, or the `drop-streams` fault, really
//! drops every connection and the streams on it.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sfstream_pubsub::proto::pub_sub_server::PubSubServer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use super::OpenGuard;
use super::service::PubSubService;
use crate::config::PubSubTls;
use crate::org::Org;

/// How long a TLS handshake may take.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// A TLS acceptor from PEM certificate and key, offering HTTP/2 by ALPN
/// (gRPC clients insist on it).
pub fn tls_acceptor(tls: &PubSubTls) -> io::Result<TlsAcceptor> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("Pub/Sub TLS {what}: {e}"),
        )
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("certificate", &e))?;
    if certs.is_empty() {
        return Err(invalid("certificate", &"no certificate in the PEM"));
    }
    // The error names the problem, never the key's bytes.
    let key =
        PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| invalid("key", &e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("config", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("certificate or key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until aborted; aborting drops every connection.
pub async fn serve(listener: TcpListener, org: Arc<Org>, tls: Option<TlsAcceptor>) {
    let routes =
        tonic::service::Routes::new(PubSubServer::new(PubSubService::new(org.clone()))).prepare();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(routes.clone());
                let org = org.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    let _open = OpenGuard::new(org.pubsub.clone(), |s| &s.connections);
                    let mut drops = org.pubsub.watch_drops();
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let builder = builder.http2_only();
                    tokio::select! {
                        _ = drops.changed() => {}
                        _ = async {
                            match tls {
                                Some(acceptor) => {
                                    let Ok(Ok(stream)) = tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await else {
                                        return;
                                    };
                                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                                }
                                None => {
                                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                                }
                            }
                        } => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
