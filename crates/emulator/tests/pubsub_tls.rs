//! Pub/Sub over TLS, for clients that only speak TLS.

mod common;

use sfstream_emulator::PubSubTls;
use sfstream_pubsub::proto::TopicRequest;
use sfstream_pubsub::proto::pub_sub_client::PubSubClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[tokio::test]
async fn pubsub_serves_tls_with_h2() {
    let (cert_pem, key_pem) = sfstream_testkit::tls::self_signed();
    let mut config = common::config();
    config.pubsub_tls = Some(PubSubTls {
        cert_pem: cert_pem.clone(),
        key_pem,
    });
    let org = common::start_with(config).await;
    let url = org.emulator.pubsub_url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let channel = Channel::from_shared(url)
        .expect("url")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&cert_pem))
                .domain_name("localhost"),
        )
        .expect("tls")
        .connect()
        .await
        .expect("TLS handshake");
    let ps = common::pubsub::PubSub {
        client: PubSubClient::new(channel),
        token: org.token.clone(),
        org_id: org.emulator.org().org_id(),
        instance: org.emulator.url(),
    };
    let topic = ps
        .client
        .clone()
        .get_topic(ps.request(TopicRequest {
            topic_name: "/data/AccountChangeEvent".into(),
        }))
        .await
        .expect("topic over TLS")
        .into_inner();
    assert!(topic.can_subscribe);

    // A cleartext client gets nowhere.
    let cleartext = org.emulator.pubsub_url().replace("https", "http");
    let answered = async {
        let mut client = PubSubClient::connect(cleartext).await.ok()?;
        let request = ps.request(TopicRequest {
            topic_name: "/data/AccountChangeEvent".into(),
        });
        client.get_topic(request).await.ok()
    }
    .await;
    assert!(answered.is_none());

    // A key that is not PEM is refused at start, without echoing it.
    let mut config = common::config();
    config.pubsub_tls = Some(PubSubTls {
        cert_pem,
        key_pem: "secret-not-a-key".into(),
    });
    let error = sfstream_emulator::Emulator::start(config)
        .await
        .expect_err("bad key");
    assert!(!error.to_string().contains("secret-not-a-key"), "{error}");
}
