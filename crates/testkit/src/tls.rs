//! TLS material for tests: a self-signed server certificate for the
//! loopback address (for servers that third-party clients reach only over
//! TLS, such as the emulator's Pub/Sub server).

/// A self-signed leaf certificate for `127.0.0.1` and `localhost`, and its
/// private key, both PEM.
pub fn self_signed() -> (String, String) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names)
        .unwrap_or_else(|e| panic!("cannot make a self-signed certificate: {e}"));
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}
