//! Replay ids are opaque bytes; as text (JSON lines, logs, a CLI's
//! `--replay`) they are standard base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A replay id as text.
pub fn to_text(id: &[u8]) -> String {
    STANDARD.encode(id)
}

/// A replay id from its text, or why not.
pub fn from_text(text: &str) -> Result<Vec<u8>, InvalidReplayIdText> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| InvalidReplayIdText(text.to_string()))?;
    if bytes.is_empty() {
        return Err(InvalidReplayIdText(text.to_string()));
    }
    Ok(bytes)
}

/// Text that is not a base64 replay id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a Pub/Sub replay id (base64 of its bytes)")]
pub struct InvalidReplayIdText(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = [0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0];
        assert_eq!(from_text(&to_text(&id)).as_deref(), Ok(&id[..]));
        assert!(from_text("not base64!").is_err());
        assert!(from_text("").is_err());
    }
}
