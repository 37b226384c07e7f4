//! Salesforce record ids: 15-character case-sensitive ids and their
//! 18-character case-insensitive form (the 15 plus a 3-character checksum).

use std::sync::atomic::{AtomicU64, Ordering};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Hands out unique ids with a given 3-character key prefix.
#[derive(Debug, Default)]
pub struct IdGenerator {
    next: AtomicU64,
}

impl IdGenerator {
    /// A generator whose first id number is 1.
    pub fn new() -> Self {
        Self {
            next: AtomicU64::new(1),
        }
    }

    /// A new 18-character id for an object whose key prefix is `prefix`.
    pub fn next_id(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        make_id(prefix, n)
    }
}

/// Builds the 18-character id number `n` under `prefix` (a "pod" of `5g`
/// and a base-62 counter, as real ids look like `0035g00000AbCdE`).
pub fn make_id(prefix: &str, n: u64) -> String {
    let mut digits = [b'0'; 10];
    let mut rest = n;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    let mut id = String::with_capacity(18);
    id.push_str(prefix);
    id.push_str("5g");
    id.push_str(std::str::from_utf8(&digits).unwrap_or("0000000000"));
    let suffix = checksum(&id);
    id.push_str(&suffix);
    id
}

/// The 3-character suffix that makes a 15-character id case-insensitive.
pub fn checksum(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in bytes.chunks(5).take(3) {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(SUFFIX[bits] as char);
    }
    out
}

/// Normalises a 15- or 18-character id to its 18-character form, or `None`
/// when `raw` is not a well-formed id.
pub fn normalize(raw: &str) -> Option<String> {
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match raw.len() {
        15 => Some(format!("{raw}{}", checksum(raw))),
        18 => {
            let base = &raw[..15];
            if checksum(base).eq_ignore_ascii_case(&raw[15..]) {
                Some(format!("{base}{}", checksum(base)))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The key prefix (first three characters) of an id.
pub fn prefix_of(id: &str) -> &str {
    id.get(..3).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_salesforce_checksum() {
        // A documented example: 001A0000006Vm9r -> 001A0000006Vm9rIAC
        assert_eq!(checksum("001A0000006Vm9r"), "IAC");
    }

    #[test]
    fn ids_are_unique_and_normalise() {
        let generator = IdGenerator::new();
        let a = generator.next_id("003");
        let b = generator.next_id("003");
        assert_ne!(a, b);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("0035g"));
        assert_eq!(normalize(&a[..15]).as_deref(), Some(a.as_str()));
        assert_eq!(normalize(&a).as_deref(), Some(a.as_str()));
        assert_eq!(normalize("not-an-id"), None);
        assert_eq!(normalize("003"), None);
    }
}
