//! One org, two transports: a record change or a platform event is the
//! same event, with the same position, on CometD and on Pub/Sub.

mod common;

use std::time::Duration;

use common::pubsub::{LATEST, PubSub, events, number};
use serde_json::{Value, json};
use sfstream_pubsub::proto::{ProducerEvent, PublishRequest, SchemaRequest, TopicRequest};
use sfstream_pubsub::{avro as codec, bitmap};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(3);

async fn schema_of(ps: &PubSub, schema_id: &str) -> (Value, codec::Schema) {
    let info = ps
        .client
        .clone()
        .get_schema(ps.request(SchemaRequest {
            schema_id: schema_id.into(),
        }))
        .await
        .expect("schema")
        .into_inner();
    let parsed = codec::parse_schema(&info.schema_json).expect("parses");
    (
        serde_json::from_str(&info.schema_json).expect("json"),
        parsed,
    )
}

fn field_index(schema: &Value, name: &str) -> usize {
    schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .position(|f| f["name"] == name)
        .expect(name)
}

#[tokio::test]
async fn a_record_change_is_one_event_on_both_transports() {
    let org = common::start().await;
    let mut cometd = org.bayeux();
    cometd.open("/data/ContactChangeEvent", None).await;
    let mut ps = PubSub::connect(&org).await;
    let (_tx, mut stream) = ps
        .subscribe("/data/ContactChangeEvent", LATEST, vec![], 10)
        .await
        .expect("subscribes");

    let id = org
        .create(
            "Contact",
            json!({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}),
        )
        .await;
    org.update("Contact", &id, json!({"Email": null, "Title": "Countess"}))
        .await;

    let over_cometd = cometd.events(2, 3).await;
    let over_pubsub: Vec<_> = events(&mut stream, 2, WAIT)
        .await
        .into_iter()
        .flat_map(|r| r.events)
        .collect();
    assert_eq!(over_cometd.len(), 2);
    assert_eq!(over_pubsub.len(), 2);
    for (bayeux, grpc) in over_cometd.iter().zip(&over_pubsub) {
        let data = &bayeux["data"];
        assert_eq!(
            data["event"]["replayId"].as_i64(),
            Some(number(&grpc.replay_id))
        );
        let event = grpc.event.as_ref().expect("event");
        assert_eq!(data["schema"], event.schema_id, "one schema id on both");
        let (schema, parsed) = schema_of(&ps, &event.schema_id).await;
        let decoded = codec::decode(&parsed, &event.payload).expect("decodes");
        let (header, avro_header) = (
            &data["payload"]["ChangeEventHeader"],
            &decoded["ChangeEventHeader"],
        );
        for key in [
            "entityName",
            "recordIds",
            "changeType",
            "changeOrigin",
            "transactionKey",
            "sequenceNumber",
            "commitTimestamp",
            "commitNumber",
            "commitUser",
        ] {
            assert_eq!(header[key], avro_header[key], "{key}");
        }
        // Fields: the same values, compound fields nested, date-times as epoch ms.
        let payload = data["payload"].as_object().expect("payload");
        for (name, value) in payload {
            match name.as_str() {
                "ChangeEventHeader" => {}
                "FirstName" | "LastName" => {
                    assert_eq!(&decoded["Name"][name.as_str()], value, "{name}")
                }
                "Name" => {}
                "CreatedDate" | "LastModifiedDate" => {
                    let at =
                        sfstream_emulator::store::parse_datetime(value.as_str().expect("text"))
                            .expect("date");
                    assert_eq!(
                        decoded[name.as_str()],
                        json!(at.timestamp_millis()),
                        "{name}"
                    );
                }
                _ => assert_eq!(&decoded[name.as_str()], value, "{name}"),
            }
        }
        if header["changeType"] == "UPDATE" {
            let email = field_index(&schema, "Email");
            let title = field_index(&schema, "Title");
            let modified = field_index(&schema, "LastModifiedDate");
            assert_eq!(
                header["changedFields"],
                json!(["Email", "Title", "LastModifiedDate"])
            );
            assert_eq!(header["nulledFields"], json!(["Email"]));
            assert_eq!(
                avro_header["changedFields"],
                json!([bitmap::encode_top(&[email, title, modified])])
            );
            assert_eq!(
                avro_header["nulledFields"],
                json!([bitmap::encode_top(&[email])])
            );
            let mut expanded = decoded.clone();
            bitmap::expand_change_event(&parsed, &mut expanded).expect("expands");
            // A bitmap lists fields in schema order.
            assert_eq!(
                expanded["ChangeEventHeader"]["changedFields"],
                json!(["LastModifiedDate", "Email", "Title"])
            );
            assert_eq!(decoded["Title"], "Countess");
            assert_eq!(decoded["FirstName"], Value::Null, "not a top-level field");
            assert_eq!(decoded["Name"], Value::Null, "unchanged");
        }
    }
}

#[tokio::test]
async fn platform_events_published_on_either_transport_reach_both() {
    let org = common::start().await;
    let reply = org
        .http
        .post(org.url("/_emulator/platform-events/Printer_Status__e"))
        .json(&json!({"fields": {"Printer_Model__c": "string", "Pages__c": "int"}}))
        .send()
        .await
        .expect("define");
    assert_eq!(reply.status(), 200);
    let topic = "/event/Printer_Status__e";
    let mut cometd = org.bayeux();
    cometd.open(topic, None).await;
    let mut ps = PubSub::connect(&org).await;
    let (_tx, mut stream) = ps
        .subscribe(topic, LATEST, vec![], 10)
        .await
        .expect("subscribes");
    let info = ps
        .client
        .clone()
        .get_topic(ps.request(TopicRequest {
            topic_name: topic.into(),
        }))
        .await
        .expect("topic")
        .into_inner();
    let (_, parsed) = schema_of(&ps, &info.schema_id).await;

    // Pub/Sub → CometD (and Pub/Sub).
    let event = |model: &str| {
        let value = json!({"CreatedDate": 1_712_666_096_000_i64, "CreatedById": org.emulator.org().user_id(),
            "Printer_Model__c": model, "Pages__c": 12});
        ProducerEvent {
            id: uuid::Uuid::new_v4().to_string(),
            schema_id: info.schema_id.clone(),
            payload: codec::encode(&parsed, &value).expect("encodes"),
            headers: vec![],
        }
    };
    let mut bad = event("x");
    bad.payload = vec![0xff; 3];
    let published = ps
        .client
        .clone()
        .publish(ps.request(PublishRequest {
            topic_name: topic.into(),
            events: vec![event("XZO-5"), bad, event("XZO-6")],
            auth_refresh: String::new(),
        }))
        .await
        .expect("publishes")
        .into_inner();
    assert_eq!(published.results.len(), 3);
    assert!(published.results[0].error.is_none() && published.results[2].error.is_none());
    assert!(published.results[1].error.is_some() && published.results[1].replay_id.is_empty());
    let first = number(&published.results[0].replay_id);
    assert!(number(&published.results[2].replay_id) > first);

    // REST → Pub/Sub (and CometD).
    org.create(
        "Printer_Status__e",
        json!({"Printer_Model__c": "REST-1", "Pages__c": 3}),
    )
    .await;

    let over_cometd = cometd.events(3, 3).await;
    let models: Vec<&str> = over_cometd
        .iter()
        .filter_map(|e| e["data"]["payload"]["Printer_Model__c"].as_str())
        .collect();
    assert_eq!(models, ["XZO-5", "XZO-6", "REST-1"]);
    assert_eq!(
        over_cometd[0]["data"]["event"]["replayId"].as_i64(),
        Some(first)
    );
    let over_pubsub: Vec<_> = events(&mut stream, 3, WAIT)
        .await
        .into_iter()
        .flat_map(|r| r.events)
        .collect();
    assert_eq!(over_pubsub.len(), 3);
    let rest = over_pubsub[2].event.as_ref().expect("event");
    let decoded = codec::decode(&parsed, &rest.payload).expect("decodes");
    assert_eq!(decoded["Printer_Model__c"], "REST-1");
    assert_eq!(decoded["Pages__c"], 3);
    assert_eq!(decoded["CreatedById"], org.emulator.org().user_id());
    assert!(
        decoded["CreatedDate"]
            .as_i64()
            .is_some_and(|ms| ms > 1_700_000_000_000)
    );
    assert_eq!(over_cometd[2]["data"]["event"]["EventUuid"], rest.id);
    assert_eq!(
        over_cometd[2]["data"]["event"]["replayId"].as_i64(),
        Some(number(&over_pubsub[2].replay_id))
    );

    // Only platform event topics accept events; at most 200 a request.
    let refused = ps
        .client
        .clone()
        .publish(ps.request(PublishRequest {
            topic_name: "/data/AccountChangeEvent".into(),
            events: vec![event("x")],
            auth_refresh: String::new(),
        }))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let too_many = ps
        .client
        .clone()
        .publish(ps.request(PublishRequest {
            topic_name: topic.into(),
            events: (0..201).map(|_| event("x")).collect(),
            auth_refresh: String::new(),
        }))
        .await
        .expect_err("refused");
    assert_eq!(too_many.code(), Code::InvalidArgument);
}
