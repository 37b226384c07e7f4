//! Any text: parsed as SOQL (and checked as a PushTopic query) or refused
//! with an error, never a panic or a stack overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(query) = sfstream_emulator::soql::parse(text) {
        let record = serde_json::Map::new();
        let _ = query.matches(&record);
        let _ = query.where_fields();
    }
    let _ = sfstream_emulator::soql::validate_pushtopic_query(text);
});
