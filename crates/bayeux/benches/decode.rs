//! Decoding one `/meta/connect` response carrying 1,000 PushTopic events
//! (the emulator's and Salesforce's batch size) into `Vec<Message>`, next
//! to the parse-only floor: the same body into a `serde_json::Value`.
//!
//! `cargo bench -p sfstream-bayeux --bench decode`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sfstream_bayeux::parse_messages;

/// A connect response as the emulator sends it: the events, then the
/// connect reply. `extra` adds text fields to each sobject.
fn connect_response(events: usize, extra: usize) -> Vec<u8> {
    let mut body = String::from("[");
    for i in 0..events {
        body.push_str(&format!(
            r#"{{"data":{{"event":{{"createdDate":"2024-04-09T20:26:27.123Z","replayId":{},"type":"updated"}},"sobject":{{"Id":"0035g00000Bench1AAA","Name":"Ada Lovelace""#,
            i + 1
        ));
        for f in 0..extra {
            body.push_str(&format!(
                r#","Field_{f:02}__c":"value {f:02} of a change event, padded..""#
            ));
        }
        body.push_str(r#"}},"channel":"/topic/BenchContacts"},"#);
    }
    body.push_str(r#"{"clientId":"1kd8w2r7x0","advice":{"reconnect":"retry","interval":0,"timeout":110000},"channel":"/meta/connect","id":"7","successful":true}]"#);
    body.into_bytes()
}

fn decode(c: &mut Criterion) {
    for (name, extra) in [("small", 0), ("1kb", 19)] {
        let body = connect_response(1_000, extra);
        let mut group = c.benchmark_group(format!("connect_response_1000_{name}"));
        group.throughput(Throughput::Elements(1_000));
        group.bench_function("parse_messages", |b| {
            b.iter(|| parse_messages(&body).map(|m| m.len()))
        });
        group.bench_function("serde_json_value_floor", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(&body).map(|v| v.is_array()))
        });
        group.finish();
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
