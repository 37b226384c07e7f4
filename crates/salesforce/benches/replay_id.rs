//! The per-event hot path of `sfstream listen` after decoding:
//! - `ReplayMarker::from_raw` on each event's raw `data` (done twice per
//!   event: by the replay extension and by the stream), next to
//!   `ReplayMarker::from_event` on a parsed `serde_json::Value`;
//! - writing the output lines of a 1,000-event batch the way
//!   `src/cli/listen.rs` (`pump`) does: `{"channel":…,"data":…}\n` into a
//!   64 KiB `BufWriter` (over `io::sink()` here). The code is a copy of
//!   that loop: the CLI is a binary crate, so it cannot be called from here.
//!
//! `cargo bench -p sfstream-salesforce --bench replay_id`

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;
use sfstream_salesforce::replay::ReplayMarker;

fn events(extra: usize) -> Vec<(String, Box<RawValue>)> {
    (0..1_000)
        .map(|i| {
            let mut data = format!(
                r#"{{"event":{{"createdDate":"2024-04-09T20:26:27.123Z","replayId":{},"type":"updated"}},"sobject":{{"Id":"0035g00000Bench1AAA","Name":"Ada Lovelace""#,
                i + 1
            );
            for f in 0..extra {
                data.push_str(&format!(
                    r#","Field_{f:02}__c":"value {f:02} of a change event, padded..""#
                ));
            }
            data.push_str("}}");
            let raw = RawValue::from_string(data).expect("valid JSON");
            ("/topic/BenchContacts".to_string(), raw)
        })
        .collect()
}

fn replay_ids(c: &mut Criterion) {
    for (name, extra) in [("small", 0), ("1kb", 19)] {
        let batch = events(extra);
        let values: Vec<serde_json::Value> = batch
            .iter()
            .map(|(_, raw)| serde_json::from_str(raw.get()).expect("json"))
            .collect();
        let mut group = c.benchmark_group(format!("replay_marker_1000_{name}"));
        group.throughput(Throughput::Elements(1_000));
        group.bench_function("from_raw", |b| {
            b.iter(|| {
                batch
                    .iter()
                    .filter_map(|(_, raw)| ReplayMarker::from_raw(raw))
                    .map(|m| m.replay_id)
                    .sum::<i64>()
            })
        });
        group.bench_function("from_event_value", |b| {
            b.iter(|| {
                values
                    .iter()
                    .filter_map(ReplayMarker::from_event)
                    .map(|m| m.replay_id)
                    .sum::<i64>()
            })
        });
        group.finish();
    }
}

/// `pump`'s loop in src/cli/listen.rs.
fn write_batch(
    out: &mut impl Write,
    line: &mut Vec<u8>,
    batch: &[(String, Box<RawValue>)],
) -> std::io::Result<()> {
    for (channel, data) in batch {
        line.clear();
        line.extend_from_slice(b"{\"channel\":");
        serde_json::to_writer(&mut *line, channel)?;
        line.extend_from_slice(b",\"data\":");
        line.extend_from_slice(data.get().as_bytes());
        line.extend_from_slice(b"}\n");
        out.write_all(line)?;
    }
    out.flush()
}

fn output_lines(c: &mut Criterion) {
    for (name, extra) in [("small", 0), ("1kb", 19)] {
        let batch = events(extra);
        let mut group = c.benchmark_group(format!("output_lines_1000_{name}"));
        group.throughput(Throughput::Elements(1_000));
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::sink());
        let mut line = Vec::with_capacity(1024);
        group.bench_function("listen_pump_write", |b| {
            b.iter(|| write_batch(&mut out, &mut line, &batch))
        });
        group.finish();
    }
}

criterion_group!(benches, replay_ids, output_lines);
criterion_main!(benches);
