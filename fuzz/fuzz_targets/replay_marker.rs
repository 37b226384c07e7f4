//! Any event data: a replay marker is extracted or not, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfstream_salesforce::replay::ReplayMarker;

fuzz_target!(|data: &[u8]| {
    let _ = ReplayMarker::from_slice(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = ReplayMarker::from_event(&value);
    }
});
