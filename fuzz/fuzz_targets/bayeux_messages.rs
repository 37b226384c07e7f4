//! Any response body: parsed into Bayeux messages or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = sfstream_bayeux::parse_messages(data) {
        for message in messages {
            let _ = message.error_field();
            let _ = message.data_value();
            let _ = message.is_event();
        }
    }
});
