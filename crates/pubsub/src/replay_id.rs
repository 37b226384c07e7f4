//! Replay ids are opaque bytes; as text (JSON lines, logs, a CLI's
//! `--replay`) they are standard base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A replay id as text.
pub fn to_text(id: &[u8]) -> String {
    STANDARD.encode(id)
}

/// Appends a replay id as text ([`to_text`]) to `out`.
pub fn write_text(id: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + base64::encoded_len(id.len(), true).unwrap_or(0), 0);
    let written = STANDARD.encode_slice(id, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
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

    #[test]
    fn write_text_appends_to_text() {
        for n in 0..12 {
            let id: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            let mut out = b"x".to_vec();
            write_text(&id, &mut out);
            assert_eq!(out, format!("x{}", to_text(&id)).into_bytes());
        }
    }
}
