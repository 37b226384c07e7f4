//! Any `code:args:message` text parses, and a parsed code round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfstream_bayeux::ErrorField;

fuzz_target!(|text: &str| {
    let parsed = ErrorField::parse(text);
    if parsed.code.is_none() {
        assert_eq!(parsed.message, text);
    }
    let _ = parsed.to_string();
});
